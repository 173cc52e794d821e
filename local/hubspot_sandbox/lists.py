"""Contact lists (Lists API, v3 / 2026-03 / 2026-09): MANUAL lists, their names and their members.

The calls and their JSON follow HubSpot's specs (``ListCreateRequest``, ``ListFetchResponse``,
``ListUpdateResponse``, ``MembershipChangeRequest``, ``MembershipsUpdateResponse``,
``BatchInputRecordIdInput``, ``BatchResponseRecordIdWithMemberships``); the three versions differ only
in their path prefix, and the memberships batch read answers a partial failure with 207 before
2026-09 and with 200 from it. Where the specs say nothing, the sandbox takes the stricter answer for
a client, each a setting or documented here:

- names are unique among live lists without regard to case (HubSpot: "globally unique", and its read
  by name is "not case sensitive"); a clash on create, rename or restore answers 400
  ``VALIDATION_ERROR`` with ``subCategory`` ``ILS.DUPLICATE_LIST_NAMES``; a deleted list frees its name;
- a list that does not exist, is deleted or was purged answers 404 ``OBJECT_NOT_FOUND`` to every call
  naming it (``deleted_list_found`` makes ``GET`` by id answer a deleted one with ``deletedAt``);
  restoring a live list answers 400;
- only MANUAL contact lists (``0-1``) are kept; a membership change is checked whole before any of
  it applies: an id in both arrays, or more ids than ``list_ids_per_call``, answers 400;
- a record id is a member only while it names a live contact: ids of deleted contacts and ids a
  merge retired come back in ``recordIdsMissing`` when added, and a batch read of them answers
  ``OBJECT_NOT_FOUND`` in ``errors``, as the contacts batch read does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request

from .state import ContactList, SandboxState, now_iso

LISTS_READ = ("crm.lists.read",)
#: create takes the write scope alone; every other write takes both (an entry of several
#: space-separated scopes needs all of them, as OAuth writes a scope set)
LISTS_CREATE = ("crm.lists.write",)
LISTS_WRITE = ("crm.lists.read crm.lists.write",)
CONTACTS_TYPE = "0-1"
DUPLICATE_NAMES = "ILS.DUPLICATE_LIST_NAMES"
#: the most inputs a memberships batch read takes (HubSpot's is unconfirmed; its objects' is 100)
MAX_BATCH_READ = 100

PATTERN = re.compile(r"^/crm/(?:v3/lists|lists/(2026-03|2026-09))(?P<rest>/.*)?$")
_BY_NAME = re.compile(r"^/object-type-id/(?P<type>[^/]+)/name/(?P<name>.+)$")
_ONE = re.compile(r"^/(?P<id>[^/]+)(?P<action>/update-list-name|/restore|/memberships/add-and-remove)?$")

#: (status, body or None)
Answer = tuple[int, Any]
#: (handler, scopes, path arguments)
ListRoute = tuple[Callable[..., Answer], tuple[str, ...], tuple[str, ...]]


class ListsError(Exception):
    def __init__(self, status: int, category: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.category, self.message, self.extra = status, category, message, extra


def _fold(name: str) -> str:
    return name.strip().casefold()


def _string_ids(body: Any, key: str) -> list[str]:
    values = body.get(key) if isinstance(body, dict) else None
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise ListsError(400, "VALIDATION_ERROR", f"Invalid input JSON: '{key}' must be an array of strings")
    return list(dict.fromkeys(values))


class Lists:
    """The lists calls, over the sandbox's state (the caller holds its lock)."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def route(self, method: str, rest: str) -> ListRoute | None:
        if rest == "" and method == "POST":
            return self.create_list, LISTS_CREATE, ()
        if rest == "/records/memberships/batch/read" and method == "POST":
            return self.memberships_batch_read, LISTS_READ, ()
        if (match := _BY_NAME.match(rest)) and method == "GET":
            return self.get_by_name, LISTS_READ, (match.group("type"), match.group("name"))
        match = _ONE.match(rest)
        if match is None or match.group("id") in ("records", "object-type-id", "search", "folders"):
            return None
        found: dict[tuple[str, str | None], tuple[Callable[..., Answer], tuple[str, ...]]] = {
            ("GET", None): (self.get_list, LISTS_READ),
            ("DELETE", None): (self.delete_list, LISTS_WRITE),
            ("PUT", "/update-list-name"): (self.rename_list, LISTS_WRITE),
            ("PUT", "/restore"): (self.restore_list, LISTS_WRITE),
            ("PUT", "/memberships/add-and-remove"): (self.add_and_remove, LISTS_WRITE),
        }
        endpoint = found.get((method, match.group("action")))
        return None if endpoint is None else (endpoint[0], endpoint[1], (match.group("id"),))

    # --- state ------------------------------------------------------------------------------------

    def purge(self) -> None:
        """Forget the lists deleted longer ago than they can be restored."""
        horizon = self.state.clock() - self.state.config.list_restore_seconds
        purged = [
            i for i, x in self.state.lists.items() if x.deleted_at is not None and x.deleted_at <= horizon
        ]
        for list_id in purged:
            del self.state.lists[list_id]

    def live(self) -> list[ContactList]:
        self.purge()
        return [found for found in self.state.lists.values() if found.deleted_at is None]

    def _live(self, list_id: str) -> ContactList:
        self.purge()
        found = self.state.lists.get(list_id)
        if found is None or found.deleted_at is not None:
            raise ListsError(404, "OBJECT_NOT_FOUND", f"List {list_id} does not exist")
        return found

    def _check_name(self, name: Any, keep: str | None = None) -> str:
        if not isinstance(name, str) or not name.strip():
            raise ListsError(400, "VALIDATION_ERROR", "Invalid input: the list name must not be empty")
        for other in self.live():
            if other.list_id != keep and _fold(other.name) == _fold(name):
                raise ListsError(
                    400,
                    "VALIDATION_ERROR",
                    f"A list named '{other.name}' already exists",
                    subCategory=DUPLICATE_NAMES,
                    context={"listName": [name]},
                )
        return name

    def _check_count(self) -> None:
        limit = self.state.config.list_limit
        if len(self.live()) >= limit:
            raise ListsError(400, "VALIDATION_ERROR", f"The account has reached its limit of {limit} lists")

    def _is_contact(self, record_id: str) -> bool:
        return record_id in self.state.contacts

    def _json(self, found: ContactList) -> dict[str, Any]:
        """``PublicObjectList`` of a MANUAL contact list."""
        document: dict[str, Any] = {
            "listId": found.list_id,
            "listVersion": found.version,
            "name": found.name,
            "objectTypeId": CONTACTS_TYPE,
            "processingStatus": "COMPLETE",
            "processingType": "MANUAL",
            "createdAt": found.created_at,
            "updatedAt": found.updated_at,
            "size": sum(1 for member in found.members if self._is_contact(member)),
        }
        if found.deleted_at is not None:
            document["deletedAt"] = now_iso(found.deleted_at)
        return document

    # --- calls ------------------------------------------------------------------------------------

    def create_list(self, request: Request, version: str, body: Any) -> Answer:
        spec = body if isinstance(body, dict) else {}
        missing = [key for key in ("name", "objectTypeId", "processingType") if not spec.get(key)]
        if missing:
            raise ListsError(
                400, "VALIDATION_ERROR", f"Invalid input JSON: missing required fields {missing}"
            )
        if spec["objectTypeId"] != CONTACTS_TYPE:
            raise ListsError(400, "VALIDATION_ERROR", "The sandbox keeps contact lists (0-1) only")
        if spec["processingType"] != "MANUAL":
            raise ListsError(400, "VALIDATION_ERROR", "The sandbox keeps MANUAL lists only")
        name = self._check_name(spec["name"])
        self._check_count()
        now = now_iso(self.state.clock())
        created = ContactList(self.state.next_list_id(), name, now, now)
        self.state.lists[created.list_id] = created
        return 200, {"list": self._json(created)}

    def get_list(self, request: Request, version: str, body: Any, list_id: str) -> Answer:
        self.purge()
        found = self.state.lists.get(list_id)
        if found is not None and found.deleted_at is not None and self.state.config.deleted_list_found:
            return 200, {"list": self._json(found)}
        return 200, {"list": self._json(self._live(list_id))}

    def get_by_name(self, request: Request, version: str, body: Any, object_type: str, name: str) -> Answer:
        if object_type == CONTACTS_TYPE:
            for found in self.live():
                if _fold(found.name) == _fold(name):
                    return 200, {"list": self._json(found)}
        raise ListsError(404, "OBJECT_NOT_FOUND", f"No list named '{name}' for object type {object_type}")

    def rename_list(self, request: Request, version: str, body: Any, list_id: str) -> Answer:
        found = self._live(list_id)
        found.name = self._check_name(request.args.get("listName"), keep=list_id)
        found.version += 1
        found.updated_at = now_iso(self.state.clock())
        return 200, {"updatedList": self._json(found)}

    def delete_list(self, request: Request, version: str, body: Any, list_id: str) -> Answer:
        self.delete(list_id)
        return 204, None

    def delete(self, list_id: str) -> None:
        """Delete a list (restorable for ``list_restore_seconds``); 404 when there is no live one."""
        self._live(list_id).deleted_at = self.state.clock()

    def restore_list(self, request: Request, version: str, body: Any, list_id: str) -> Answer:
        self.purge()
        found = self.state.lists.get(list_id)
        if found is None:
            raise ListsError(404, "OBJECT_NOT_FOUND", f"List {list_id} does not exist or was purged")
        if found.deleted_at is None:
            raise ListsError(400, "VALIDATION_ERROR", f"List {list_id} is not deleted")
        self._check_name(found.name, keep=list_id)
        self._check_count()
        found.deleted_at = None
        found.updated_at = now_iso(self.state.clock())
        return 204, None

    def add_and_remove(self, request: Request, version: str, body: Any, list_id: str) -> Answer:
        found = self._live(list_id)
        adds, removes = _string_ids(body, "recordIdsToAdd"), _string_ids(body, "recordIdsToRemove")
        cap = self.state.config.list_ids_per_call
        if cap and len(adds) + len(removes) > cap:
            raise ListsError(
                400,
                "VALIDATION_ERROR",
                f"At most {cap} record ids may be added or removed in one request",
                context={"limit": [str(cap)]},
            )
        both = sorted(set(adds) & set(removes))
        if both:
            raise ListsError(
                400, "VALIDATION_ERROR", "Record ids cannot be both added and removed", context={"ids": both}
            )
        now = now_iso(self.state.clock())
        added, removed, missing = [], [], []
        for record_id in adds:
            if not self._is_contact(record_id):
                missing.append(record_id)
            elif record_id not in found.members:
                found.members[record_id] = now
                found.first_added.setdefault(record_id, now)
                added.append(record_id)
        for record_id in removes:
            if record_id in found.members:
                del found.members[record_id]
                removed.append(record_id)
            elif not self._is_contact(record_id):
                missing.append(record_id)
        if added or removed:
            found.updated_at = now
        return 200, {
            self.state.config.list_added_field: added,
            "recordIdsRemoved": removed,
            "recordIdsMissing": missing,
        }

    def memberships_batch_read(self, request: Request, version: str, body: Any) -> Answer:
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or any(
            not isinstance(item, dict) or not item.get("objectTypeId") or not item.get("recordId")
            for item in inputs
        ):
            raise ListsError(
                400, "VALIDATION_ERROR", "Invalid input JSON: each input needs objectTypeId and recordId"
            )
        if len(inputs) > MAX_BATCH_READ:
            raise ListsError(
                400,
                "VALIDATION_ERROR",
                f"Batch input limit exceeded. Maximum {MAX_BATCH_READ} records allowed per request",
            )
        started = now_iso(self.state.clock())
        live = self.live()
        results, missing = [], []
        for item in inputs:
            record_id = str(item["recordId"])
            if item["objectTypeId"] != CONTACTS_TYPE or not self._is_contact(record_id):
                missing.append(record_id)
                continue
            memberships = [
                {
                    "listId": found.list_id,
                    "listVersion": found.version,
                    "firstAddedTimestamp": found.first_added[record_id],
                    "lastAddedTimestamp": found.members[record_id],
                    "isPublicList": True,
                }
                for found in live
                if record_id in found.members
            ]
            results.append(
                {"objectTypeId": CONTACTS_TYPE, "recordId": record_id, "recordListMemberships": memberships}
            )
        payload: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": now_iso(self.state.clock()),
        }
        if not missing:
            return 200, payload
        payload["numErrors"] = 1
        payload["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": "Could not get some records, they may be deleted or not exist.",
                "context": {"ids": missing},
                "errors": [],
                "links": {},
            }
        ]
        return (200 if version == "2026-09" else 207), payload

    # --- what a person does in HubSpot's UI (test hooks) -------------------------------------------

    def members(self, list_id: str) -> list[str] | None:
        """The record ids of a list's live members, ascending as HubSpot pages them; None when
        the list is not kept (never created, or purged)."""
        self.purge()
        found = self.state.lists.get(list_id)
        if found is None:
            return None
        return sorted((m for m in found.members if self._is_contact(m)), key=lambda m: (len(m), m))

    def summary(self) -> list[dict[str, Any]]:
        """Every kept list, deleted ones included, with its members."""
        self.purge()
        return [
            {**self._json(found), "members": self.members(found.list_id)}
            for found in self.state.lists.values()
        ]
