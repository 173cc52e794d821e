"""HubSpot's Lists API, the calls that keep one MANUAL contact list per audience: create, read by
name or id, rename, delete, restore, change memberships (``add-and-remove``) and read records'
memberships in batch.

Every call goes through a ``HubSpotClient``, so the rate governor, the daily counter, credentials
and retries are the connector's own (HubSpot documents no limit of the Lists API apart from the
account's). Two refusals are typed, because the caller acts on them: ``DuplicateListName`` (400
``ILS.DUPLICATE_LIST_NAMES``: another list holds the name, compared without regard to case) and
``ListGone`` (404 on a call naming a list, or a read answering it with ``deletedAt``: it was deleted
or purged). Lists and record ids are strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .batch import MAX_BATCH_INPUTS
from .client import HubSpotClient
from .errors import ErrorKind, HubSpotError, classify

#: HubSpot's object type id of contacts
CONTACTS_OBJECT_TYPE = "0-1"
DUPLICATE_LIST_NAMES = "ILS.DUPLICATE_LIST_NAMES"
#: the most records one memberships batch read takes: HubSpot's number is unconfirmed, its
#: objects' batch read takes 100
MAX_MEMBERSHIP_READS = MAX_BATCH_INPUTS


class DuplicateListName(HubSpotError):
    """Another live list holds ``name`` (HubSpot compares names without regard to case); None:
    the name of a list being restored, which the call does not state."""

    def __init__(self, name: str | None, **kwargs: Any) -> None:
        taken = "the list's name" if name is None else f"the name {name!r}"
        super().__init__(ErrorKind.PERMANENT, f"another list holds {taken}", **kwargs)
        self.name = name


class ListGone(HubSpotError):
    """HubSpot has no live list ``list_id``: it was deleted (restorable for 90 days) or purged,
    or never existed."""

    def __init__(self, list_id: str, **kwargs: Any) -> None:
        super().__init__(ErrorKind.PERMANENT, f"list {list_id} does not exist or was deleted", **kwargs)
        self.list_id = list_id


@dataclass(frozen=True)
class HubSpotList:
    """A list as HubSpot describes it (``PublicObjectList``)."""

    list_id: str
    name: str
    object_type_id: str
    processing_type: str
    version: int | None = None
    size: int | None = None
    #: set when HubSpot answered a read of a deleted list with the list itself
    deleted_at: str | None = None

    @property
    def manual_contacts(self) -> bool:
        """A MANUAL contact list: the only kind whose members the connector may set."""
        return self.processing_type == "MANUAL" and self.object_type_id == CONTACTS_OBJECT_TYPE


@dataclass(frozen=True)
class MembershipChange:
    """What an ``add-and-remove`` did: ids added (members already are left out), removed
    (non-members are left out), and missing (no such record: neither added nor removed)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListMembership:
    list_id: str
    list_version: int | None = None
    first_added: str | None = None
    last_added: str | None = None


@dataclass
class MembershipsOutcome:
    """A memberships batch read: each record's lists, the records HubSpot reported not found, and
    those it answered with another error (or left out of its answer, a retryable error)."""

    memberships: dict[str, tuple[ListMembership, ...]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    failed: dict[str, HubSpotError] = field(default_factory=dict)

    def list_ids(self, record_id: str) -> frozenset[str]:
        return frozenset(member.list_id for member in self.memberships.get(record_id, ()))


class HubSpotLists:
    """The Lists API calls over one ``HubSpotClient`` (its version chooses the paths)."""

    def __init__(self, client: HubSpotClient) -> None:
        self.client = client
        self.paths = client.paths

    def create(self, name: str) -> HubSpotList:
        """Create a MANUAL contact list; ``DuplicateListName`` when the name is taken."""
        body = {"name": name, "objectTypeId": CONTACTS_OBJECT_TYPE, "processingType": "MANUAL"}
        try:
            _status, document = self.client.request("POST", self.paths.lists, body)
        except HubSpotError as error:
            raise _typed(error, name=name) from error
        return _list_of(document, "list")

    def find_by_name(self, name: str) -> HubSpotList | None:
        """The live contact list named ``name`` (HubSpot ignores case), or None."""
        try:
            _status, document = self.client.request(
                "GET", self.paths.list_by_name(CONTACTS_OBJECT_TYPE, name)
            )
        except HubSpotError as error:
            if error.status == 404:
                return None
            raise
        found = _list_of(document, "list")
        return None if found.deleted_at else found

    def get(self, list_id: str) -> HubSpotList:
        """The live list ``list_id``; ``ListGone`` when it was deleted or never existed."""
        try:
            _status, document = self.client.request("GET", self.paths.list_path(list_id))
        except HubSpotError as error:
            raise _typed(error, list_id=list_id) from error
        found = _list_of(document, "list")
        if found.deleted_at:
            raise ListGone(list_id, status=200, body=document)
        return found

    def rename(self, list_id: str, name: str) -> HubSpotList:
        """Rename a list (the new name is a query parameter); ``DuplicateListName`` when another
        list holds it, ``ListGone`` when the list is not there."""
        try:
            _status, document = self.client.request(
                "PUT", self.paths.list_rename(list_id), params={"listName": name}
            )
        except HubSpotError as error:
            raise _typed(error, list_id=list_id, name=name) from error
        return _list_of(document, "updatedList")

    def delete(self, list_id: str) -> None:
        """Delete a list (HubSpot keeps it restorable for 90 days); ``ListGone`` when it is not
        there."""
        try:
            self.client.request("DELETE", self.paths.list_path(list_id))
        except HubSpotError as error:
            raise _typed(error, list_id=list_id) from error

    def restore(self, list_id: str) -> None:
        """Restore a deleted list, with its id. ``ListGone`` when it cannot be (purged after 90
        days, or never existed); ``DuplicateListName`` when another list took its name meanwhile.

        A list that is live already counts as restored: HubSpot refuses to restore it, which is
        also what a retry meets after an attempt that was applied without an answer, so any
        other refusal is checked with a read of the list."""
        try:
            self.client.request("PUT", self.paths.list_restore(list_id))
        except HubSpotError as error:
            typed = _typed(error, list_id=list_id, naming=True)
            if typed is not error or error.kind is not ErrorKind.PERMANENT:
                raise typed from error
            try:
                self.get(list_id)
            except HubSpotError:
                raise error from None

    def add_and_remove(
        self,
        list_id: str,
        add: Sequence[str],
        remove: Sequence[str],
        deadline: float | None = None,
    ) -> MembershipChange:
        """Add and remove members in one call. Idempotent: HubSpot ignores adds of members and
        removes of non-members, and reports ids of records it does not have in ``missing``.
        ``ListGone`` when the list is not there. An id may not be both added and removed."""
        adds, removes = list(dict.fromkeys(add)), list(dict.fromkeys(remove))
        both = set(adds) & set(removes)
        if both:
            raise ValueError(f"record ids both added and removed: {sorted(both)}")
        if not adds and not removes:
            return MembershipChange()
        body = {"recordIdsToAdd": adds, "recordIdsToRemove": removes}
        try:
            _status, document = self.client.request(
                "PUT", self.paths.list_add_and_remove(list_id), body, deadline=deadline
            )
        except HubSpotError as error:
            raise _typed(error, list_id=list_id) from error
        document = document if isinstance(document, Mapping) else {}
        # The specs spell it recordsIdsAdded; HubSpot's v3 docs example recordIdsAdded.
        added = [*_ids(document.get("recordsIdsAdded")), *_ids(document.get("recordIdsAdded"))]
        return MembershipChange(
            tuple(dict.fromkeys(added)),
            tuple(_ids(document.get("recordIdsRemoved"))),
            tuple(_ids(document.get("recordIdsMissing"))),
        )

    def memberships(self, record_ids: Sequence[str], deadline: float | None = None) -> MembershipsOutcome:
        """The lists each contact is a member of (``records/memberships/batch/read``): at most
        ``MAX_MEMBERSHIP_READS`` distinct record ids a call."""
        if len(record_ids) > MAX_MEMBERSHIP_READS:
            raise ValueError(f"at most {MAX_MEMBERSHIP_READS} records per memberships read")
        if len(set(record_ids)) != len(record_ids):
            raise ValueError("memberships read record ids must be distinct")
        if not record_ids:
            return MembershipsOutcome()
        body = {"inputs": [{"objectTypeId": CONTACTS_OBJECT_TYPE, "recordId": rid} for rid in record_ids]}
        _status, document = self.client.request(
            "POST", self.paths.list_memberships_batch_read, body, deadline=deadline
        )
        return _memberships_of(document, record_ids)


def _typed(
    error: HubSpotError, list_id: str | None = None, name: str | None = None, naming: bool = False
) -> HubSpotError:
    """The typed error ``error`` amounts to on a call naming ``list_id`` and/or giving a list a
    name (``name``, or ``naming`` for a restore, which gives back the list's own)."""
    common: dict[str, Any] = {
        "status": error.status,
        "category": error.category,
        "correlation_id": error.correlation_id,
        "sub_category": error.sub_category,
        "body": error.body,
    }
    if (naming or name is not None) and error.status == 400 and _duplicate_name(error):
        return DuplicateListName(name, **common)
    if list_id is not None and error.status == 404:
        return ListGone(list_id, **common)
    return error


def _duplicate_name(error: HubSpotError) -> bool:
    if error.sub_category == DUPLICATE_LIST_NAMES:
        return True
    details = error.body.get("errors") if isinstance(error.body, Mapping) else None
    return any(
        isinstance(detail, Mapping) and detail.get("subCategory") == DUPLICATE_LIST_NAMES
        for detail in details or []
    )


def _ids(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _list_of(document: Any, key: str) -> HubSpotList:
    found = document.get(key) if isinstance(document, Mapping) else None
    if not isinstance(found, Mapping) or found.get("listId") is None:
        raise HubSpotError(ErrorKind.PERMANENT, f"HubSpot's answer holds no {key}", body=document)
    return HubSpotList(
        list_id=str(found["listId"]),
        name=str(found.get("name") or ""),
        object_type_id=str(found.get("objectTypeId") or ""),
        processing_type=str(found.get("processingType") or ""),
        version=_number(found.get("listVersion")),
        size=_number(found.get("size")),
        deleted_at=str(found["deletedAt"]) if found.get("deletedAt") else None,
    )


def _named(error: Mapping[str, Any], asked: set[str]) -> Iterable[str]:
    """The asked record ids an error's ``context`` names (HubSpot does not document the key)."""
    context = error.get("context")
    values = context.values() if isinstance(context, Mapping) else []
    return [str(item) for value in values if isinstance(value, list) for item in value if str(item) in asked]


def _memberships_of(document: Any, record_ids: Sequence[str]) -> MembershipsOutcome:
    document = document if isinstance(document, Mapping) else {}
    outcome = MembershipsOutcome()
    asked = set(record_ids)
    for item in document.get("results") or []:
        if not isinstance(item, Mapping) or str(item.get("recordId")) not in asked:
            continue
        outcome.memberships[str(item["recordId"])] = tuple(
            ListMembership(
                str(member["listId"]),
                _number(member.get("listVersion")),
                member.get("firstAddedTimestamp"),
                member.get("lastAddedTimestamp"),
            )
            for member in item.get("recordListMemberships") or []
            if isinstance(member, Mapping) and member.get("listId") is not None
        )
    for item in document.get("errors") or []:
        if not isinstance(item, Mapping):
            continue
        error = classify(400, item)
        error.kind = ErrorKind.PERMANENT
        for record_id in _named(item, asked):
            if record_id in outcome.memberships:
                continue
            if error.not_found:
                if record_id not in outcome.missing:
                    outcome.missing.append(record_id)
            else:
                outcome.failed[record_id] = error
    for record_id in record_ids:
        if record_id not in outcome.memberships and record_id not in outcome.missing:
            outcome.failed.setdefault(
                record_id, HubSpotError(ErrorKind.RETRYABLE, "HubSpot's answer left this record out")
            )
    return outcome


__all__ = [
    "CONTACTS_OBJECT_TYPE",
    "DUPLICATE_LIST_NAMES",
    "MAX_MEMBERSHIP_READS",
    "DuplicateListName",
    "HubSpotList",
    "HubSpotLists",
    "ListGone",
    "ListMembership",
    "MembershipChange",
    "MembershipsOutcome",
]
