"""Reconcile's check of the audiences' HubSpot lists (``AudienceTarget`` list or both): for the
contacts HubSpot holds, which of the audiences' lists their record is in
(``records/memberships/batch/read``, 100 records a call), compared with the status each contact
last handed to each list (``LedgerEntry.listed``).

A contact is in an audience's list exactly while the status it handed is ``realized``. It
disagrees (membership drift) when HubSpot's list shows otherwise and nothing explains it: the
audience is live, has a list, the contact handed its status to that list (its generation: a list
made again is being refilled), and no change of the record waits in the list's buffer (HubSpot
then shows the state before it). A person adding or removing the contact in HubSpot's UI is the
usual cause.

The repair hands the same status to the list again, through the buffer the flusher writes to
(``lists.ports.ListChanges``), with the status's own rank and the repair's time after it: it
outranks what was sent (the buffer drops a change no newer than the one it sent last, so a plain
repeat would be dropped for a while), and it is outranked by every newer status (a newer
timestamp or receive order, or a list made again), so it never rolls a membership back. A
status handed since the contact was read is newer, so the repair loses to it wherever they meet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..hubspot.errors import DailyLimitReached, HubSpotError
from ..lists.model import BufferFull, Toggle
from ..lists.ports import ListBuffer, ListChanges
from ..model import AudienceStatus
from ..observability import logger
from ..upsert.audiences import AudienceDirectory, AudienceMetadata
from ..upsert.ledger import LedgerEntry, ListedAudience
from .model import MembershipDrift, MembershipFinding
from .ports import MembershipReader


@dataclass(frozen=True)
class ListedContact:
    """A contact HubSpot holds under the record id the ledger knows, as reconcile read it."""

    email: str
    record_id: str
    entry: LedgerEntry


class MembershipsUnread(Exception):
    """The memberships read did not answer: ``daily_limit`` stops the run; anything else passes
    over the page's lists (their contacts are compared at the next walk)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ListsCheck:
    def __init__(
        self,
        reader: MembershipReader,
        audiences: AudienceDirectory,
        buffer: ListBuffer,
        changes: ListChanges,
        page_size: int = 100,
    ) -> None:
        self._reader = reader
        self._audiences = audiences
        self._buffer = buffer
        self._changes = changes
        self._page_size = page_size

    def check(
        self,
        contacts: Sequence[ListedContact],
        drift: MembershipDrift,
        *,
        dry_run: bool,
        now_ms: int,
        spent: Callable[[], None],
    ) -> None:
        """Compare the contacts' lists with HubSpot's and repair (unless ``dry_run``); ``spent``
        counts each HubSpot call. Raises ``MembershipsUnread`` for a read HubSpot refused before
        sending (the daily limit)."""
        lists = self._lists(contacts)
        wanted = [contact for contact in contacts if _compared(contact, lists)]
        for start in range(0, len(wanted), self._page_size):
            chunk = wanted[start : start + self._page_size]
            memberships = self._read([contact.record_id for contact in chunk], spent)
            if memberships is None:
                drift.skipped += sum(len(_compared(contact, lists)) for contact in chunk)
                continue
            suspects: list[tuple[ListedContact, str, ListedAudience]] = []
            for contact in chunk:
                compared = _compared(contact, lists)
                held = memberships.get(contact.record_id)
                if held is None:
                    drift.skipped += len(compared)
                    continue
                drift.checked += len(compared)
                for audience_id, listed in compared:
                    member = listed.status == AudienceStatus.REALIZED.value
                    if member != (lists[audience_id].list_id in held):
                        suspects.append((contact, audience_id, listed))
            self._settle(suspects, lists, drift, dry_run, now_ms)

    def _lists(self, contacts: Sequence[ListedContact]) -> dict[str, AudienceMetadata]:
        """The audiences whose lists are compared: live, with a list."""
        audience_ids = {audience_id for contact in contacts for audience_id in contact.entry.listed}
        if not audience_ids:
            return {}
        found = self._audiences.lookup(audience_ids)
        return {
            audience_id: metadata
            for audience_id, metadata in found.items()
            if metadata.list_id and not metadata.deleted and metadata.unreadable is None
        }

    def _read(self, record_ids: list[str], spent: Callable[[], None]) -> dict[str, frozenset[str]] | None:
        try:
            answer = self._reader.memberships(record_ids)
        except DailyLimitReached as exc:
            raise MembershipsUnread("daily_limit") from exc
        except HubSpotError as exc:
            spent()
            logger.warning("reconcile passed over a memberships read", extra={"error": str(exc)[:500]})
            return None
        spent()
        return answer

    def _settle(
        self,
        suspects: Sequence[tuple[ListedContact, str, ListedAudience]],
        lists: Mapping[str, AudienceMetadata],
        drift: MembershipDrift,
        dry_run: bool,
        now_ms: int,
    ) -> None:
        """A change of the record waiting in the list's buffer explains the difference (HubSpot
        shows the list before it); the others are drift, repaired per audience."""
        by_audience: dict[str, list[tuple[ListedContact, ListedAudience]]] = {}
        for contact, audience_id, listed in suspects:
            by_audience.setdefault(audience_id, []).append((contact, listed))
        for audience_id, found in sorted(by_audience.items()):
            waiting = {toggle.record_id for toggle in self._buffer.read(audience_id)}
            drifted = [(contact, listed) for contact, listed in found if contact.record_id not in waiting]
            refused: frozenset[str] = frozenset()
            if drifted and not dry_run:
                refused = self._repair(audience_id, drifted, now_ms)
            list_id = str(lists[audience_id].list_id)
            for contact, listed in drifted:
                repaired = not dry_run and contact.record_id not in refused
                member = listed.status == AudienceStatus.REALIZED.value
                drift.add(MembershipFinding(contact.email, audience_id, list_id, member, repaired))

    def _repair(
        self, audience_id: str, drifted: Sequence[tuple[ListedContact, ListedAudience]], now_ms: int
    ) -> frozenset[str]:
        """The record ids the buffer had no room for (not repaired: the next walk finds them)."""
        toggles = [
            Toggle(
                contact.record_id,
                listed.status == AudienceStatus.REALIZED.value,
                (listed.timestamp_ms, *listed.order, listed.generation, now_ms),
            )
            for contact, listed in drifted
        ]
        try:
            self._changes.append(audience_id, toggles, now_ms)
        except BufferFull as full:
            logger.warning(
                "membership repairs refused: the list buffer is full", extra={"audience": audience_id}
            )
            return full.refused
        return frozenset()


def _compared(
    contact: ListedContact, lists: Mapping[str, AudienceMetadata]
) -> list[tuple[str, ListedAudience]]:
    """The contact's handed statuses compared: of audiences with a list, at the list's generation
    (a list made again is refilled: its members are still on their way)."""
    return [
        (audience_id, listed)
        for audience_id, listed in sorted(contact.entry.listed.items())
        if audience_id in lists and listed.generation == lists[audience_id].list_generation
    ]
