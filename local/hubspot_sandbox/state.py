"""The sandbox's in-memory account: contacts, property schema, tokens, limits and faults."""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .validations import ConditionalRequired

ALL_SCOPES = frozenset(
    {
        "crm.objects.contacts.read",
        "crm.objects.contacts.write",
        "crm.schemas.contacts.read",
        "crm.schemas.contacts.write",
        "crm.lists.read",
        "crm.lists.write",
        "oauth",
    }
)
PORTAL_ID = 24_681_357
#: Counted calls kept per token for ``busiest_window`` (a long-running sandbox forgets older ones).
CALL_LOG_SIZE = 100_000
#: Contact events kept for the webhooks journal (HubSpot keeps 3 days; a long-running sandbox
#: keeps this many, and an offset older than the oldest kept one has expired).
EVENT_LOG_SIZE = 100_000
#: HubSpot's documented limits per tier (per app per 10 s, per account per day), 2026.
TIERS = {
    "free": (100, 250_000),
    "starter": (100, 250_000),
    "professional": (190, 625_000),
    "enterprise": (190, 1_000_000),
    "api-limit-increase": (250, 1_250_000),
    "marketplace-oauth": (110, 250_000),
}


def now_iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def split_values(text: str | None) -> list[str]:
    """A multi-valued property's values (HubSpot separates them with semicolons)."""
    return [value for value in (text or "").split(";") if value]


@dataclass
class ContactList:
    """One MANUAL contact list: its definition and its members (record ids)."""

    list_id: str
    name: str
    created_at: str
    updated_at: str
    version: int = 1
    #: set while the list is deleted (restorable until ``list_restore_seconds`` have passed)
    deleted_at: float | None = None
    #: member record id -> when it was last added (ISO)
    members: dict[str, str] = field(default_factory=dict)
    #: record id -> when it was first added, kept after a removal (HubSpot reports both times)
    first_added: dict[str, str] = field(default_factory=dict)


class RestoreRefused(Exception):
    """HubSpot refuses to restore a contact whose email another live contact now holds."""


@dataclass
class SandboxConfig:
    """Tier limits (Free/Starter by default) and fault injection; all changeable at run time."""

    ten_second_limit: int = 100
    window_ms: int = 10_000
    daily_limit: int = 250_000
    custom_property_limit: int = 1_000
    oauth_token_ttl_seconds: int = 1_800
    error_rate: float = 0.0  # share of API calls answered with error_status
    error_status: int = 502
    #: share of write calls (POST/PATCH/PUT) that are applied and then answered error_status: what a
    #: client sees when HubSpot's gateway fails after the write went through
    applied_error_rate: float = 0.0
    locked_rate: float = 0.0  # share answered 423 Locked
    latency_ms: int = 0
    drop_rate: float = 0.0  # share of connections closed without an answer
    force_429: int = 0  # the next N API calls get a TEN_SECONDLY_ROLLING 429
    #: False mimics endpoints that ignore objectWriteTraceId: one bad input fails the whole request.
    per_input_errors: bool = True
    omit_results: int = 0  # leave this many results out of the next batch answer
    #: Whether ``idProperty=email`` (single and batch reads, PATCH, batch upsert) also matches an
    #: address a merge left in ``hs_additional_emails``. HubSpot does not document it. False is the
    #: default because ``idProperty`` is documented as naming one unique property (``email``), and
    #: it is the harsher answer for a client: an upsert of a merged-away address then creates a
    #: second contact instead of landing on the surviving one. True lets tests run the other answer.
    additional_emails_match: bool = False
    #: How a batch read reports the inputs it did not find: True (HubSpot's observed answer) puts
    #: every missing id in the ``context.ids`` of one ``OBJECT_NOT_FOUND`` error; False gives one
    #: error per missing input, which the spec's ``StandardError`` allows just as well.
    group_missing_reads: bool = True
    #: the most live lists the account may hold; a create (or restore) past it answers 400
    #: ``VALIDATION_ERROR``. HubSpot's count and error are unconfirmed (an older FAQ: 1,500 static
    #: lists on Marketing Pro/Enterprise, 25 on Starter), so this is a setting, not a tier preset.
    list_limit: int = 1_500
    #: the most record ids one ``add-and-remove`` may carry (adds and removes together); 0 is no
    #: cap. HubSpot documents none; a cap lets tests run a client's answer to a refused size.
    list_ids_per_call: int = 0
    #: how long a deleted list can be restored (HubSpot: 90 days); after it the list is purged
    list_restore_seconds: int = 90 * 86_400
    #: the field ``add-and-remove`` reports added ids under: the specs spell it ``recordsIdsAdded``
    #: (sic), HubSpot's v3 docs example ``recordIdsAdded``; a client should read either
    list_added_field: str = "recordsIdsAdded"
    #: whether ``GET`` of a deleted (restorable) list by id answers 200 with ``deletedAt`` set
    #: instead of 404; HubSpot does not say which, so a client must take both
    deleted_list_found: bool = False
    #: how long the webhooks journal keeps an entry (HubSpot: 3 days); older offsets have expired
    journal_retention_seconds: int = 3 * 86_400
    #: how long a journal entry's file URL works after it was handed out
    journal_url_ttl_seconds: int = 300
    seed: int = 7

    def update(self, changes: dict[str, Any]) -> None:
        """Change settings; ``{"tier": "professional"}`` sets that tier's documented limits."""
        changes = dict(changes)
        if "tier" in changes:
            tier = str(changes.pop("tier"))
            if tier not in TIERS:
                raise KeyError(f"tier {tier!r} (one of {', '.join(TIERS)})")
            self.ten_second_limit, self.daily_limit = TIERS[tier]
        for key, value in changes.items():
            if not hasattr(self, key):
                raise KeyError(key)
            current = getattr(self, key)
            setattr(
                self,
                key,
                value if isinstance(current, bool) and isinstance(value, bool) else type(current)(value),
            )


@dataclass
class Token:
    value: str
    scopes: frozenset[str]
    oauth: bool = False
    expires_at: float | None = None


def _default_properties() -> dict[str, dict[str, Any]]:
    def prop(
        name: str, label: str, kind: str = "string", field_type: str = "text", **extra: Any
    ) -> dict[str, Any]:
        return {
            "name": name,
            "label": label,
            "type": kind,
            "fieldType": field_type,
            "groupName": "contactinformation",
            "description": "",
            "displayOrder": -1,
            "hidden": False,
            "formField": True,
            "hubspotDefined": True,
            "options": extra.pop("options", []),
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": name == "email",
            "archived": False,
            "createdAt": "2019-08-06T02:41:08.029Z",
            "updatedAt": "2019-08-06T02:41:08.029Z",
            "modificationMetadata": {
                "archivable": False,
                "readOnlyDefinition": True,
                "readOnlyValue": extra.pop("read_only", False),
            },
            **extra,
        }

    stages = [
        {"label": s.title(), "value": s, "displayOrder": i, "hidden": False}
        for i, s in enumerate(["subscriber", "lead", "customer"])
    ]
    props = [
        prop("email", "Email"),
        prop("firstname", "First Name"),
        prop("lastname", "Last Name"),
        prop("address", "Street Address"),
        prop("city", "City"),
        prop("country", "Country/Region"),
        prop("phone", "Phone Number", field_type="phonenumber"),
        prop("company", "Company Name"),
        prop("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", options=stages),
        prop("hs_object_id", "Record ID", "number", "number", read_only=True),
        # Set by merges only; HubSpot keeps both multi-valued, separated by semicolons.
        prop("hs_additional_emails", "Additional email addresses", "enumeration", "checkbox", read_only=True),
        prop("hs_merged_object_ids", "Merged Contact IDs", "enumeration", "checkbox", read_only=True),
        prop("createdate", "Create Date", "datetime", "date", read_only=True),
        prop("lastmodifieddate", "Last Modified Date", "datetime", "date", read_only=True),
    ]
    return {p["name"]: p for p in props}


@dataclass
class SandboxState:
    config: SandboxConfig = field(default_factory=SandboxConfig)
    clock: Callable[[], float] = time.time
    lock: threading.RLock = field(default_factory=threading.RLock)
    #: live contacts only; archived ones move to ``archived`` and erased ones are gone
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: primary email -> live contact id
    email_index: dict[str, str] = field(default_factory=dict)
    #: address a merge left in ``hs_additional_emails`` -> live contact id
    additional_index: dict[str, str] = field(default_factory=dict)
    #: deleted (archived) contacts, restorable, each with its ``archivedAt``
    archived: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: a record id a merge retired -> the id of the record it became
    merged_into: dict[str, str] = field(default_factory=dict)
    #: addresses erased by a GDPR delete, which HubSpot refuses from then on
    blocklist: set[str] = field(default_factory=set)
    #: what happened to contacts, oldest first, as the webhooks journal reports it
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=EVENT_LOG_SIZE))
    _event_seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    #: webhooks-journal subscriptions by id
    subscriptions: dict[int, dict[str, Any]] = field(default_factory=dict)
    _subscription_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(501))
    #: journal entry files handed out: offset -> (URL expiry as epoch seconds, events)
    journal_files: dict[str, tuple[float, list[dict[str, Any]]]] = field(default_factory=dict)
    properties: dict[str, dict[str, Any]] = field(default_factory=_default_properties)
    groups: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "contactinformation": {
                "name": "contactinformation",
                "label": "Contact information",
                "displayOrder": 0,
                "archived": False,
            }
        }
    )
    #: property -> rule type -> rule (``ruleType``, ``ruleArguments``, ``shouldApplyNormalization``)
    validation_rules: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: conditional required properties (HubSpot's UI only; enforced on 2026-09 API writes)
    conditional_required: list[ConditionalRequired] = field(default_factory=list)
    tokens: dict[str, Token] = field(default_factory=dict)
    oauth_clients: dict[str, str] = field(default_factory=dict)  # client id -> secret
    refresh_tokens: dict[str, tuple[str, frozenset[str]]] = field(
        default_factory=dict
    )  # token -> (client, scopes)
    windows: dict[str, deque[float]] = field(default_factory=dict)
    #: when the 10-second limit counted each call, per token (the latest CALL_LOG_SIZE): what a
    #: client's pacing is judged by, since HubSpot counts a call on arrival, not when it is answered
    counted: dict[str, deque[float]] = field(default_factory=dict)
    daily_used: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)
    #: injected faults by kind (error, applied_error, locked, drop, latency) and refused tokens (auth)
    faults: Counter[str] = field(default_factory=Counter)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))
    #: contact lists by id, deleted ones included until purged (see ``lists.py``)
    lists: dict[str, ContactList] = field(default_factory=dict)
    #: list ids start far from contact ids, so a client that mixes them up is caught
    _list_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(70_001))

    def next_id(self) -> str:
        return str(next(self._ids))

    def next_list_id(self) -> str:
        return str(next(self._list_ids))

    def next_subscription_id(self) -> int:
        return next(self._subscription_ids)

    def add_private_app_token(self, scopes: frozenset[str] = ALL_SCOPES, value: str | None = None) -> str:
        token = value or f"pat-na1-{secrets.token_hex(4)}-{secrets.token_hex(2)}-sandbox"
        self.tokens[token] = Token(token, scopes)
        return token

    def revoke_token(self, token: str) -> bool:
        """Revoke an access token (a rotated private-app token): calls with it answer 401 from now
        on. True when the token existed."""
        with self.lock:
            return self.tokens.pop(token, None) is not None

    def add_oauth_app(self, scopes: frozenset[str] = ALL_SCOPES) -> tuple[str, str, str]:
        client_id, client_secret = secrets.token_hex(8), secrets.token_hex(16)
        refresh = f"na1-{secrets.token_hex(12)}"
        self.oauth_clients[client_id] = client_secret
        self.refresh_tokens[refresh] = (client_id, scopes)
        return client_id, client_secret, refresh

    def issue_access_token(self, scopes: frozenset[str]) -> Token:
        token = Token(
            f"sandbox-oauth-{secrets.token_hex(16)}",
            scopes,
            oauth=True,
            expires_at=self.clock() + self.config.oauth_token_ttl_seconds,
        )
        self.tokens[token.value] = token
        return token

    def busiest_window(self, token: str, since: float = float("-inf")) -> int:
        """The most calls of ``token`` counted since ``since`` in any window of the 10-second
        limit (which the limit would refuse past ``ten_second_limit``)."""
        with self.lock:
            times = [t for t in self.counted.get(token, ()) if t >= since]
        width = self.config.window_ms / 1000
        start = most = 0
        for end, moment in enumerate(times):
            while times[start] <= moment - width:
                start += 1
            most = max(most, end - start + 1)
        return most

    def custom_property_count(self) -> int:
        return sum(1 for p in self.properties.values() if not p.get("hubspotDefined"))

    def take_rate_limit(self, token: str) -> tuple[str | None, int, int]:
        """Count one call; returns (429 policy or None, remaining in window, daily remaining)."""
        now = self.clock()
        window = self.windows.setdefault(token, deque())
        horizon = now - self.config.window_ms / 1000
        while window and window[0] <= horizon:
            window.popleft()
        if self.config.force_429 > 0:
            self.config.force_429 -= 1
            return "TEN_SECONDLY_ROLLING", 0, self.config.daily_limit - self.daily_used
        if self.daily_used >= self.config.daily_limit:
            return "DAILY", max(0, self.config.ten_second_limit - len(window)), 0
        if len(window) >= self.config.ten_second_limit:
            return "TEN_SECONDLY_ROLLING", 0, self.config.daily_limit - self.daily_used
        window.append(now)
        self.counted.setdefault(token, deque(maxlen=CALL_LOG_SIZE)).append(now)
        self.daily_used += 1
        return None, self.config.ten_second_limit - len(window), self.config.daily_limit - self.daily_used

    # --- what people and HubSpot itself do to contacts -------------------------------------------

    def record(self, event_type: str, object_id: str, **details: Any) -> None:
        """Note one contact event (``contact.deletion``, ``contact.merge``, ...) for the journal."""
        with self.lock:
            self.events.append(
                {
                    "sequence": next(self._event_seq),
                    "subscriptionType": event_type,
                    "objectId": object_id,
                    "occurredAt": int(self.clock() * 1000),
                    **details,
                }
            )

    def resolve(self, contact_id: str) -> str:
        """The id a record answers to now: an id a merge retired leads to the record it became."""
        seen = {contact_id}
        while contact_id in self.merged_into:
            contact_id = self.merged_into[contact_id]
            if contact_id in seen:
                break
            seen.add(contact_id)
        return contact_id

    def find_email(self, email: str) -> str | None:
        """The live contact ``idProperty=email`` finds for ``email`` (normalized)."""
        found = self.email_index.get(email)
        if found is None and self.config.additional_emails_match:
            found = self.additional_index.get(email)
        return found

    def find_archived_email(self, email: str) -> str | None:
        """The most recently deleted contact whose email is ``email``."""
        matches = [cid for cid, c in self.archived.items() if c["properties"].get("email") == email]
        return max(matches, key=lambda cid: self.archived[cid]["archivedAt"], default=None)

    def _unindex(self, contact_id: str, contact: dict[str, Any]) -> list[str]:
        """Drop a contact's addresses from the indexes; returns them (primary first)."""
        emails = [
            contact["properties"].get("email") or "",
            *split_values(contact["properties"].get("hs_additional_emails")),
        ]
        for email in emails:
            if self.email_index.get(email) == contact_id:
                del self.email_index[email]
            if self.additional_index.get(email) == contact_id:
                del self.additional_index[email]
        return [email for email in emails if email]

    def _index(self, contact_id: str, contact: dict[str, Any]) -> None:
        email = contact["properties"].get("email")
        if email:
            self.email_index[email] = contact_id
        for extra in split_values(contact["properties"].get("hs_additional_emails")):
            if extra not in self.email_index:
                self.additional_index.setdefault(extra, contact_id)

    def archive(self, contact_id: str) -> bool:
        """Delete a contact as HubSpot's DELETE does (restorable); False when there was no live one."""
        with self.lock:
            contact_id = self.resolve(contact_id)
            contact = self.contacts.pop(contact_id, None)
            if contact is None:
                return False
            self._unindex(contact_id, contact)
            contact["archivedAt"] = now_iso(self.clock())
            self.archived[contact_id] = contact
            self.record("contact.deletion", contact_id, changeFlag="DELETED")
            return True

    def restore(self, contact_id: str) -> None:
        """Restore a deleted contact (HubSpot does it from its UI, within 90 days of the deletion;
        there is no API for it). The contact comes back with its id and values.

        Raises KeyError for an id that is not a deleted contact, and RestoreRefused when another
        live contact now holds its email (created since by an upsert of that address): HubSpot keeps
        emails unique, so the restore cannot go through."""
        with self.lock:
            contact = self.archived[contact_id]
            email = contact["properties"].get("email")
            holder = self.email_index.get(email) if email else None
            if holder is not None:
                raise RestoreRefused(f"contact {holder} holds {email} now")
            del self.archived[contact_id]
            contact.pop("archivedAt", None)
            contact["updatedAt"] = now_iso(self.clock())
            self.contacts[contact_id] = contact
            self._index(contact_id, contact)
            self.record("contact.restore", contact_id, changeFlag="RESTORED")

    def erase(self, contact_id: str) -> bool:
        """A GDPR delete: the contact (live or deleted) is gone for good and its addresses are
        blocklisted. False when there was no such contact."""
        with self.lock:
            contact_id = self.resolve(contact_id)
            contact = self.contacts.pop(contact_id, None) or self.archived.pop(contact_id, None)
            if contact is None:
                return False
            self.blocklist.update(self._unindex(contact_id, contact))
            for old in [old for old, new in self.merged_into.items() if new == contact_id]:
                del self.merged_into[old]
            # HubSpot sends both: a privacy deletion is also a deletion.
            self.record("contact.privacyDeletion", contact_id, changeFlag="GDPR_DELETED")
            self.record("contact.deletion", contact_id, changeFlag="DELETED")
            return True

    def merge(self, primary_id: str, merged_id: str) -> str:
        """Merge two live contacts as HubSpot does since its 2024-25 change: the result is a record
        with a new id that both old ids resolve to; the primary's values win and the other's fill
        the gaps; the other's email becomes an additional email; ``hs_merged_object_ids`` lists
        the retired ids. Returns the new id. KeyError when either is not a live contact,
        ValueError when both are the same record."""
        with self.lock:
            primary_id, merged_id = self.resolve(primary_id), self.resolve(merged_id)
            if primary_id == merged_id:
                raise ValueError("a contact cannot be merged with itself")
            primary, other = self.contacts[primary_id], self.contacts[merged_id]
            del self.contacts[primary_id], self.contacts[merged_id]
            emails = [*self._unindex(primary_id, primary), *self._unindex(merged_id, other)]
            new_id, now = self.next_id(), now_iso(self.clock())
            properties = {**other["properties"], **primary["properties"]}
            email = properties.get("email")
            additional = [e for e in dict.fromkeys(emails) if e != email]
            retired = [
                *split_values(primary["properties"].get("hs_merged_object_ids")),
                *split_values(other["properties"].get("hs_merged_object_ids")),
                primary_id,
                merged_id,
            ]
            changes = {
                "hs_object_id": new_id,
                "createdate": min(primary["createdAt"], other["createdAt"]),
                "lastmodifieddate": now,
                "hs_merged_object_ids": ";".join(dict.fromkeys(retired)),
            }
            if additional:
                changes["hs_additional_emails"] = ";".join(additional)
            history = {**other.get("history", {}), **primary.get("history", {})}
            history = {name: [dict(v) for v in versions] for name, versions in history.items()}
            for name, value in changes.items():
                history.setdefault(name, []).insert(
                    0, {"value": value, "timestamp": now, "sourceType": "CRM_UI"}
                )
            properties.update(changes)
            self.contacts[new_id] = {
                "properties": properties,
                "history": history,
                "createdAt": changes["createdate"],
                "updatedAt": now,
            }
            self._index(new_id, self.contacts[new_id])
            self.merged_into[primary_id] = self.merged_into[merged_id] = new_id
            self.record(
                "contact.merge",
                new_id,
                changeFlag="MERGED",
                primaryObjectId=primary_id,
                mergedObjectIds=[merged_id],
                newObjectId=new_id,
            )
            return new_id
