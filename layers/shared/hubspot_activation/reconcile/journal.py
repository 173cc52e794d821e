"""The journal poller: reconciles, in near real time, just the contacts HubSpot's webhooks journal
says were edited (a managed property), deleted, erased, merged or restored.

Each poll reads the journal from the stored offset (at most ``max_entries`` entries), maps the
events' record ids to the ledger's emails, has the reconciler check those contacts, and only then
stores the offset after them: a poll that stops early (deadline, the reconciler's budget, a failed
call) leaves the offset where it was, and the next poll reads the same entries again (a contact
checked twice costs a read, never a write). On its first run it subscribes to the contact events
and starts after the newest entry: what happened before is the scheduled walk's. When the stored
offset has expired, events were lost: it reads again from the earliest entry still held and says
a full walk is needed (``full_walk_needed``); the caller starts it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..hubspot.journal import (
    CONTACT_ACTIONS,
    CONTACT_TYPE,
    GDPR_ACTIONS,
    MAX_BATCH,
    FileExpired,
    JournalEntry,
    JournalUnavailable,
    OffsetExpired,
)
from .model import ReconcileReport
from .ports import ContactReconciler

#: the events' fields naming a contact record (a merge names the records merged and the new one)
ID_FIELDS = ("objectId", "primaryObjectId", "newObjectId")
MERGED_IDS = "mergedObjectIds"


@dataclass(frozen=True)
class JournalPosition:
    """Where the poller is: the offset of the last entry handled (None: read from the earliest),
    the account it is for, and a digest of what its subscriptions cover."""

    offset: str | None
    portal_id: int
    subscribed: str


class JournalOffsets(Protocol):
    """The poller's stored position (one per deployment)."""

    def load(self) -> JournalPosition | None:
        """The stored position (None: the poller never ran)."""
        ...

    def save(self, position: JournalPosition, previous: JournalPosition | None) -> bool:
        """Store ``position`` if the stored one is still ``previous`` (False: another poll moved
        it meanwhile, and this one's position is dropped)."""
        ...


class ContactIdIndex(Protocol):
    """HubSpot record ids to the ledger's contacts."""

    def emails(self, ids: Collection[str]) -> set[str]:
        """The emails of the tracked contacts HubSpot holds under any of ``ids``."""
        ...


class Journal(Protocol):
    """``hubspot.journal.WebhooksJournal``'s calls the poller makes."""

    @property
    def calls(self) -> int: ...

    def portal_id(self) -> int: ...

    def subscriptions(self) -> list[dict[str, Any]]: ...

    def subscribe_contacts(self, portal_id: int, properties: Sequence[str]) -> dict[str, Any]: ...

    def subscribe_privacy_deletions(self, portal_id: int) -> dict[str, Any]: ...

    def latest(self) -> JournalEntry | None: ...

    def batch_after(self, offset: str | None, count: int = MAX_BATCH) -> list[JournalEntry]: ...

    def events(self, entry: JournalEntry) -> list[dict[str, Any]]: ...


@dataclass
class JournalReport:
    #: journal entries and events read
    entries: int = 0
    events: int = 0
    #: contacts handed to the reconciler
    contacts: int = 0
    #: HubSpot journal calls made (exempt from HubSpot's limits, counted anyway)
    calls: int = 0
    #: the offset stored at the end (None: unchanged or none yet)
    offset: str | None = None
    #: the stored offset had expired: the poll started again from the earliest entry
    expired: bool = False
    #: events may have been lost: the caller should walk every tracked contact
    full_walk_needed: bool = False
    #: subscriptions were created or updated this poll
    subscribed: bool = False
    #: entries are left after this poll's (poll again)
    more: bool = False
    #: why the poll ended without storing an offset (``deadline``, ``reconcile:<why>``,
    #: ``file_expired``, ``conflict``, ``unavailable``)
    stopped_by: str | None = None
    #: why the journal cannot be read (a person must act)
    unavailable: str | None = None
    reconcile: ReconcileReport | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "events": self.events,
            "contacts": self.contacts,
            "calls": self.calls,
            "offset": self.offset,
            "expired": self.expired,
            "fullWalkNeeded": self.full_walk_needed,
            "subscribed": self.subscribed,
            "more": self.more,
            "stoppedBy": self.stopped_by,
            "unavailable": self.unavailable,
            "reconcile": self.reconcile.as_json() if self.reconcile is not None else None,
        }


def record_ids(events: Iterable[dict[str, Any]]) -> set[str]:
    """The contact record ids the events name: for a merge, the records merged and the survivor."""
    wanted = {*CONTACT_ACTIONS, *GDPR_ACTIONS}
    ids: set[str] = set()
    for event in events:
        if str(event.get("objectTypeId", CONTACT_TYPE)) != CONTACT_TYPE or event.get("action") not in wanted:
            continue
        for name in ID_FIELDS:
            if event.get(name) is not None:
                ids.add(str(event[name]))
        merged = event.get(MERGED_IDS)
        if isinstance(merged, list):
            ids.update(str(value) for value in merged)
    return ids


def subscription_digest(properties: Iterable[str]) -> str:
    """What the subscriptions cover: the actions and the managed properties."""
    text = "\n".join([*CONTACT_ACTIONS, *GDPR_ACTIONS, "", *sorted(set(properties))])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class JournalPoller:
    def __init__(
        self,
        journal: Journal,
        offsets: JournalOffsets,
        contacts_by_id: ContactIdIndex,
        reconciler: ContactReconciler,
        managed_properties: Callable[[], Sequence[str]],
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 1000,
        reserve_seconds: float = 5.0,
    ) -> None:
        """``clock``: the reconciler's ``monotonic`` (deadlines are on it). ``reserve_seconds``:
        no journal read starts with less than this left before the deadline."""
        self._journal = journal
        self._offsets = offsets
        self._contacts_by_id = contacts_by_id
        self._reconciler = reconciler
        self._managed_properties = managed_properties
        self._clock = clock
        self._max_entries = max_entries
        self._reserve = reserve_seconds

    def poll(self, deadline: float) -> JournalReport:
        report = JournalReport()
        calls_before = self._journal.calls
        try:
            self._poll(deadline, report)
        except JournalUnavailable as error:
            report.stopped_by, report.unavailable = "unavailable", error.message
        finally:
            report.calls = self._journal.calls - calls_before
        return report

    def _poll(self, deadline: float, report: JournalReport) -> None:
        stored = self._offsets.load()
        portal_id = self._journal.portal_id()
        properties = list(self._managed_properties())
        digest = subscription_digest(properties)
        if stored is None or stored.portal_id != portal_id:
            # First run (or another account): subscribe, then start after the newest entry.
            self._subscribe(portal_id, properties, report)
            newest = self._journal.latest()
            position = JournalPosition(newest.offset if newest else None, portal_id, digest)
            self._store(position, stored, report)
            return
        if stored.subscribed != digest:
            self._subscribe(portal_id, properties, report)
            stored = self._moved(stored, JournalPosition(stored.offset, portal_id, digest), report)
            if stored is None:
                return
        entries, events = self._read(stored.offset, deadline, report)
        if entries is None or not (entries or report.expired):
            return
        ids = record_ids(events)
        emails = self._contacts_by_id.emails(ids) if ids else set()
        report.contacts = len(emails)
        if emails:
            outcome = self._reconciler.run(emails=sorted(emails), deadline=deadline)
            report.reconcile = outcome
            if outcome.stopped_by is not None:
                report.stopped_by = f"reconcile:{outcome.stopped_by}"
                return
        # After an expired offset with nothing left to read, the next poll reads from the earliest.
        last = entries[-1].offset if entries else None
        self._store(JournalPosition(last, portal_id, stored.subscribed), stored, report)

    def _read(
        self, offset: str | None, deadline: float, report: JournalReport
    ) -> tuple[list[JournalEntry] | None, list[dict[str, Any]]]:
        """Up to ``max_entries`` entries after ``offset`` and their events; (None, ...) when the
        poll must end without storing."""
        entries: list[JournalEntry] = []
        events: list[dict[str, Any]] = []
        after = offset
        while len(entries) < self._max_entries:
            if self._clock() + self._reserve > deadline:
                report.stopped_by = "deadline"
                return None, events
            count = min(MAX_BATCH, self._max_entries - len(entries))
            try:
                batch = self._journal.batch_after(after, count)
            except OffsetExpired:
                if after != offset or after is None:
                    raise
                # Events after the stored offset are gone: read what is left, walk everything.
                report.expired = report.full_walk_needed = True
                after = None
                continue
            try:
                for entry in batch:
                    events.extend(self._journal.events(entry))
            except FileExpired:
                report.stopped_by = "file_expired"
                return None, events
            entries.extend(batch)
            report.entries, report.events = len(entries), len(events)
            if len(batch) < count:
                return entries, events
            after = batch[-1].offset
        report.more = True
        return entries, events

    def _subscribe(self, portal_id: int, properties: Sequence[str], report: JournalReport) -> None:
        """Create or update the two contact subscriptions unless they already cover what is
        needed (so a re-run, or another deployment's subscriptions, cost no write)."""
        existing = [s for s in self._journal.subscriptions() if str(s.get("objectTypeId")) == CONTACT_TYPE]
        objects = [s for s in existing if s.get("subscriptionType") == "OBJECT"]
        if not any(
            set(CONTACT_ACTIONS) <= set(s.get("actions") or [])
            and set(properties) <= set(s.get("properties") or [])
            and not s.get("objectIds")
            for s in objects
        ):
            self._journal.subscribe_contacts(portal_id, properties)
            report.subscribed = True
        if not any(
            s.get("subscriptionType") == "GDPR_PRIVACY_DELETION"
            and set(GDPR_ACTIONS) <= set(s.get("actions") or [])
            for s in existing
        ):
            self._journal.subscribe_privacy_deletions(portal_id)
            report.subscribed = True

    def _moved(
        self, stored: JournalPosition, position: JournalPosition, report: JournalReport
    ) -> JournalPosition | None:
        if not self._offsets.save(position, stored):
            report.stopped_by = "conflict"
            return None
        return position

    def _store(
        self, position: JournalPosition, stored: JournalPosition | None, report: JournalReport
    ) -> None:
        if self._offsets.save(position, stored):
            report.offset = position.offset
        else:
            report.stopped_by = "conflict"


__all__ = [
    "ContactIdIndex",
    "Journal",
    "JournalOffsets",
    "JournalPoller",
    "JournalPosition",
    "JournalReport",
    "record_ids",
]
