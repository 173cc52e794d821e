"""The webhooks journal (2026-03) for OAuth apps: subscriptions, and the journal read by offset.

HubSpot's spec describes the calls and their JSON (``SubscriptionResponse``,
``BatchResponseJournalFetchResponse``: each entry is ``{currentOffset, expiresAt, url}``, the URL
of a file holding the entry's events). It does not describe four things, which the sandbox decides
as follows, each the stricter answer for a client:

- the file's content: a JSON array of events, each ``{eventId, subscriptionId, subscriptionType,
  portalId, appId, objectTypeId, objectId, action, occurredAt}`` plus ``propertyName`` /
  ``propertyValue`` for an UPDATE and ``primaryObjectId`` / ``mergedObjectIds`` / ``newObjectId``
  for a MERGE; one event per entry, so a client cannot assume entries are batched;
- nothing after an offset: ``offset/{offset}/next``, ``earliest`` and ``latest`` answer 204 with no
  body, the batch calls an empty ``results``;
- an offset that is unknown or whose entry has expired (older than the 3 days HubSpot keeps, or
  dropped from the sandbox's bounded event log): 400 ``VALIDATION_ERROR`` with the offset in
  ``context.offset``; the client must start again from ``earliest`` and reconcile what it missed;
- a file URL past its ``expiresAt``: 403, as an expired pre-signed S3 URL answers.

Journal calls are exempt from the 10-second and daily limits (the spec says so for each of them),
so they are counted in ``requests`` but never throttled.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from .state import PORTAL_ID, SandboxState, now_iso

JOURNAL_READ = ("webhooks-journal-data-access",)
SUBSCRIPTION_READ = ("webhooks-journal-subscription-read", "webhooks-journal-subscription-management")
SUBSCRIPTION_WRITE = ("webhooks-journal-subscription-management",)
JOURNAL_SCOPES = frozenset({*JOURNAL_READ, *SUBSCRIPTION_READ, *SUBSCRIPTION_WRITE})
APP_ID = 3_141_592
ACTIONS = frozenset(
    {
        "CREATE",
        "UPDATE",
        "DELETE",
        "MERGE",
        "RESTORE",
        "ASSOCIATION_ADDED",
        "ASSOCIATION_REMOVED",
        "SNAPSHOT",
        "APP_INSTALL",
        "APP_UNINSTALL",
        "ADDED_TO_LIST",
        "REMOVED_FROM_LIST",
        "GDPR_DELETE",
    }
)
#: the sandbox's contact events -> the journal's actions
_ACTION_OF = {
    "contact.creation": "CREATE",
    "contact.propertyChange": "UPDATE",
    "contact.deletion": "DELETE",
    "contact.merge": "MERGE",
    "contact.restore": "RESTORE",
    "contact.privacyDeletion": "GDPR_DELETE",
}
_OFFSETS = uuid.UUID("4f1c3b0e-5d6a-4c1b-9a57-0c3e2b7d9f10")
_JOURNAL = re.compile(r"^/webhooks-journal/(?:journal|journal-local)/2026-03(?P<rest>/.*)$")
_SUBSCRIPTIONS = re.compile(r"^/webhooks-journal/subscriptions/2026-03(?P<rest>/.*)?$")

#: (status, body or None)
Answer = tuple[int, Any]


class JournalError(Exception):
    def __init__(self, status: int, category: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.category, self.message, self.extra = status, category, message, extra


def is_journal_path(path: str) -> bool:
    return bool(_JOURNAL.match(path) or _SUBSCRIPTIONS.match(path))


class Journal:
    """The journal's and subscriptions' calls, over the sandbox's state and event log."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    # --- routing -----------------------------------------------------------------------------------

    def route(
        self, method: str, path: str
    ) -> tuple[Callable[..., Answer], tuple[str, ...], tuple[str, ...]] | None:
        """(handler, scopes any one of which grants access, path arguments) or None."""
        if match := _SUBSCRIPTIONS.match(path):
            rest = match.group("rest") or ""
            if rest == "":
                return {
                    "GET": (self.list_subscriptions, SUBSCRIPTION_READ, ()),
                    "POST": (self.upsert_subscription, SUBSCRIPTION_WRITE, ()),
                }.get(method)
            if re.fullmatch(r"/\d+", rest):
                return {
                    "GET": (self.get_subscription, SUBSCRIPTION_READ, (rest[1:],)),
                    "DELETE": (self.delete_subscription, SUBSCRIPTION_WRITE, (rest[1:],)),
                }.get(method)
            return None
        match = _JOURNAL.match(path)
        if match is None:
            return None
        rest = match.group("rest")
        if method == "POST":
            return (self.batch_read, JOURNAL_READ, ()) if rest == "/batch/read" else None
        if method != "GET":
            return None
        for pattern, handler in (
            (r"/earliest", self.earliest),
            (r"/latest", self.latest),
            (r"/offset/([^/]+)/next", self.next_one),
            (r"/batch/earliest/([^/]+)", self.batch_earliest),
            (r"/batch/latest/([^/]+)", self.batch_latest),
            (r"/batch/([^/]+)/next/([^/]+)", self.batch_next),
        ):
            if found := re.fullmatch(pattern, rest):
                return handler, JOURNAL_READ, found.groups()
        return None

    # --- subscriptions -----------------------------------------------------------------------------

    def _subscription_json(self, subscription: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in subscription.items() if not key.startswith("_")}

    def list_subscriptions(self, request: Request, body: Any) -> Answer:
        live = [s for s in self.state.subscriptions.values() if "deletedAt" not in s]
        return 200, {"results": [self._subscription_json(s) for s in live]}

    def get_subscription(self, request: Request, body: Any, subscription_id: str) -> Answer:
        return 200, self._subscription_json(self._subscription(subscription_id))

    def delete_subscription(self, request: Request, body: Any, subscription_id: str) -> Answer:
        self._subscription(subscription_id)["deletedAt"] = now_iso(self.state.clock())
        return 204, None

    def _subscription(self, subscription_id: str) -> dict[str, Any]:
        subscription = self.state.subscriptions.get(int(subscription_id))
        if subscription is None or "deletedAt" in subscription:
            raise JournalError(404, "OBJECT_NOT_FOUND", f"Subscription {subscription_id} not found")
        return subscription

    def upsert_subscription(self, request: Request, body: Any) -> Answer:
        """Create the subscription, or update the one of the same type for the same object type."""
        kind, actions = self._checked_subscription(body)
        now_text, now_ms = now_iso(self.state.clock()), int(self.state.clock() * 1000)
        existing = next(
            (
                s
                for s in self.state.subscriptions.values()
                if "deletedAt" not in s
                and (s["subscriptionType"], s["objectTypeId"]) == (kind, body["objectTypeId"])
            ),
            None,
        )
        fields: dict[str, Any] = {"actions": actions, "portalId": int(body["portalId"])}
        if kind == "OBJECT":
            fields.update(
                properties=[str(p) for p in body["properties"]],
                objectIds=[int(i) for i in body["objectIds"]],
            )
        if existing is not None:
            existing.update(fields, updatedAt=now_text)
            return 200, self._subscription_json(existing)
        subscription_id = self.state.next_subscription_id()
        subscription = {
            "id": subscription_id,
            "appId": APP_ID,
            "subscriptionType": kind,
            "objectTypeId": body["objectTypeId"],
            **fields,
            "createdAt": now_text,
            "updatedAt": now_text,
            "_since": now_ms,  # events before the subscription existed are not in its journal
        }
        self.state.subscriptions[subscription_id] = subscription
        return 200, self._subscription_json(subscription)

    @staticmethod
    def _checked_subscription(body: Any) -> tuple[str, list[str]]:
        if not isinstance(body, dict):
            raise JournalError(400, "VALIDATION_ERROR", "Invalid input JSON: expected an object")
        kind = body.get("subscriptionType") or "OBJECT"
        required = {
            "OBJECT": ("actions", "objectIds", "objectTypeId", "portalId", "properties"),
            "GDPR_PRIVACY_DELETION": ("actions", "objectTypeId", "portalId"),
        }.get(kind)
        if required is None:
            raise JournalError(400, "VALIDATION_ERROR", f"subscriptionType {kind} is not supported here")
        missing = [key for key in required if body.get(key) is None]
        if missing:
            raise JournalError(
                400,
                "VALIDATION_ERROR",
                f"Invalid input JSON: missing required fields {missing}",
                context={"missing": missing},
            )
        actions = body["actions"]
        if not isinstance(actions, list) or not actions or not set(actions) <= ACTIONS:
            raise JournalError(
                400, "VALIDATION_ERROR", f"actions must be a non-empty list of {sorted(ACTIONS)}"
            )
        if body["objectTypeId"] != "0-1":
            raise JournalError(400, "VALIDATION_ERROR", f"objectTypeId {body['objectTypeId']} is not known")
        if int(body["portalId"]) != PORTAL_ID:
            raise JournalError(
                403, "MISSING_SCOPES", f"The app is not installed in portal {body['portalId']}"
            )
        return str(kind), [str(a) for a in actions]

    # --- the journal -------------------------------------------------------------------------------

    def _entries(self) -> list[dict[str, Any]]:
        """Every entry the journal holds now, oldest first: one per event and matching subscription,
        within the retention period."""
        horizon = (self.state.clock() - self.state.config.journal_retention_seconds) * 1000
        subscriptions = [s for s in self.state.subscriptions.values() if "deletedAt" not in s]
        entries = []
        for event in list(self.state.events):
            if event["occurredAt"] < horizon:
                continue
            for subscription in subscriptions:
                document = self._journal_event(event, subscription)
                if document is not None:
                    entries.append(document)
        return entries

    @staticmethod
    def _journal_event(event: dict[str, Any], subscription: dict[str, Any]) -> dict[str, Any] | None:
        action = _ACTION_OF.get(event["subscriptionType"])
        if (
            action is None
            or action not in subscription["actions"]
            or event["occurredAt"] < subscription["_since"]
        ):
            return None
        if subscription["subscriptionType"] == "OBJECT":
            if subscription["objectIds"] and int(event["objectId"]) not in subscription["objectIds"]:
                return None
            if action == "UPDATE" and event["propertyName"] not in subscription["properties"]:
                return None
        elif action != "GDPR_DELETE":
            return None
        offset = str(uuid.uuid5(_OFFSETS, f"{event['sequence']}:{subscription['id']}"))
        document = {
            "eventId": offset,
            "subscriptionId": subscription["id"],
            "subscriptionType": subscription["subscriptionType"],
            "portalId": PORTAL_ID,
            "appId": APP_ID,
            "objectTypeId": "0-1",
            "objectId": int(event["objectId"]),
            "action": action,
            "occurredAt": event["occurredAt"],
        }
        for key in ("propertyName", "propertyValue", "primaryObjectId", "newObjectId"):
            if key in event:
                document[key] = event[key]
        if "mergedObjectIds" in event:
            document["mergedObjectIds"] = [int(i) for i in event["mergedObjectIds"]]
        return document

    def _fetch(self, request: Request, entry: dict[str, Any]) -> dict[str, Any]:
        """A ``JournalFetchResponse``: the entry's offset and a short-lived URL of its file."""
        expires = self.state.clock() + self.state.config.journal_url_ttl_seconds
        self.state.journal_files[entry["eventId"]] = (expires, [entry])
        return {
            "currentOffset": entry["eventId"],
            "expiresAt": now_iso(expires),
            "url": f"{request.host_url}__sandbox/journal-files/{entry['eventId']}.json",
        }

    def _batch(self, request: Request, entries: list[dict[str, Any]]) -> Answer:
        started = now_iso(self.state.clock())
        return 200, {
            "status": "COMPLETE",
            "results": [self._fetch(request, entry) for entry in entries],
            "requestedAt": started,
            "startedAt": started,
            "completedAt": now_iso(self.state.clock()),
        }

    def _after(self, offset: str) -> list[dict[str, Any]]:
        entries = self._entries()
        for index, entry in enumerate(entries):
            if entry["eventId"] == offset:
                return entries[index + 1 :]
        raise JournalError(
            400,
            "VALIDATION_ERROR",
            f"Offset {offset} is unknown or has expired; read again from the earliest entry",
            context={"offset": [offset]},
        )

    @staticmethod
    def _count(raw: str) -> int:
        if not raw.isdigit() or int(raw) < 1:
            raise JournalError(400, "VALIDATION_ERROR", f"count must be an integer of at least 1, not {raw}")
        return int(raw)

    def earliest(self, request: Request, body: Any) -> Answer:
        entries = self._entries()
        return (200, self._fetch(request, entries[0])) if entries else (204, None)

    def latest(self, request: Request, body: Any) -> Answer:
        entries = self._entries()
        return (200, self._fetch(request, entries[-1])) if entries else (204, None)

    def next_one(self, request: Request, body: Any, offset: str) -> Answer:
        entries = self._after(offset)
        return (200, self._fetch(request, entries[0])) if entries else (204, None)

    def batch_earliest(self, request: Request, body: Any, count: str) -> Answer:
        return self._batch(request, self._entries()[: self._count(count)])

    def batch_latest(self, request: Request, body: Any, count: str) -> Answer:
        return self._batch(request, self._entries()[-self._count(count) :])

    def batch_next(self, request: Request, body: Any, offset: str, count: str) -> Answer:
        return self._batch(request, self._after(offset)[: self._count(count)])

    def batch_read(self, request: Request, body: Any) -> Answer:
        """The entries named by their offsets; unknown or expired ones are errors (207)."""
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise JournalError(400, "VALIDATION_ERROR", "Invalid input JSON: 'inputs' must be an array")
        by_offset = {entry["eventId"]: entry for entry in self._entries()}
        wanted = [str(offset) for offset in body["inputs"]]
        status, payload = self._batch(request, [by_offset[o] for o in wanted if o in by_offset])
        missing = [o for o in wanted if o not in by_offset]
        if missing:
            payload["numErrors"] = 1
            payload["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "Some offsets are unknown or have expired",
                    "context": {"offset": missing},
                    "errors": [],
                    "links": {},
                }
            ]
            return 207, payload
        return status, payload

    def file(self, name: str) -> Response:
        """A journal entry's file, as its pre-signed URL serves it (no bearer token)."""
        expires, events = self.state.journal_files.get(name.removesuffix(".json"), (None, []))
        if expires is None:
            return Response(
                "<Error><Code>NoSuchKey</Code></Error>", status=404, content_type="application/xml"
            )
        if self.state.clock() > expires:
            return Response(
                "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                status=403,
                content_type="application/xml",
            )
        return Response(json.dumps(events), status=200, content_type="application/json")
