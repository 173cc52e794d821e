"""The reconciler: reads what HubSpot holds for tracked contacts (100 a call, only the managed
properties), compares it with each contact's confirmed state, and repairs through the flusher;
with the audiences' lists kept, it compares the lists' memberships too (``memberships``). It
knows nothing about Lambda: the handlers pass what to check and until when."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..emails import normalize_email
from ..field_rules import FieldRule, FieldRules
from ..hubspot.errors import DailyLimitReached, ErrorKind, HubSpotError
from ..observability import logger
from ..upsert.ledger import DELETED, ERASED, FAILED, MERGED, SYNCED, LedgerEntry
from ..upsert.ports import FlushWaker
from ..upsert.properties import audience_property_name
from ..upsert.schema import PropertySchema
from ..upsert.state import ContactState
from .budget import BACKLOG
from .memberships import ListedContact, ListsCheck, MembershipsUnread
from .model import (
    IDENTITY_PROPERTIES,
    DeletionPolicy,
    DriftKind,
    Finding,
    HubSpotRecord,
    MembershipDrift,
    ReconcileReport,
    Repair,
    Seen,
)
from .ports import HubSpotReader, ReconcileBudget, TrackedContacts
from .values import same_value

#: Every property overwritten from the source, the default.
NO_RULES = FieldRules()

#: What a read that did not answer leaves: the run stops, or the read's contacts are passed over.
_STOPPED = object()
_PASSED_OVER = object()

#: Why an erased contact is recorded as failed.
ERASED_REASON = (
    "HubSpot holds this contact neither live nor archived: it was erased (a GDPR delete, after which "
    "HubSpot refuses its email) or deleted for good. It is not sent again until an operator replays it."
)


@dataclass(frozen=True)
class ReconcileSettings:
    deletions: DeletionPolicy = DeletionPolicy.RESPECT
    #: contacts read per HubSpot call (HubSpot's batch read takes at most 100)
    page_size: int = 100
    #: flush lanes (a repaired contact's lane is woken)
    lanes: int = 1
    #: which side wins per property: ``fill_empty`` edits are HubSpot's, ``never`` is not read
    rules: FieldRules = NO_RULES


@dataclass
class _Drift:
    """A contact's synced properties HubSpot changed, by what the rules make of each."""

    #: written again from the source (the contact becomes pending)
    edited: list[str] = field(default_factory=list)
    #: ``fill_empty`` properties HubSpot now holds another value for: kept, not written
    kept: list[str] = field(default_factory=list)
    #: held values HubSpot emptied: filled from the source (the contact becomes pending)
    emptied: list[str] = field(default_factory=list)
    #: held values HubSpot changed to another value: still held, not drift
    held_changed: list[str] = field(default_factory=list)

    @property
    def found(self) -> list[str]:
        """What counts as edited drift (a held value changing is HubSpot's own business)."""
        return list(dict.fromkeys([*self.edited, *self.kept, *self.emptied]))

    @property
    def to_write(self) -> bool:
        return bool(self.edited or self.emptied)

    @property
    def changes(self) -> bool:
        return bool(self.found or self.held_changed)


@dataclass
class _Pass:
    """One run: its report, and the contacts HubSpot did not find by email, waiting for a read of
    their record ids."""

    report: ReconcileReport
    unfound: list[ContactState] = field(default_factory=list)


class Reconciler:
    def __init__(
        self,
        contacts: TrackedContacts,
        reader: HubSpotReader,
        schema: PropertySchema,
        budget: ReconcileBudget,
        settings: ReconcileSettings = ReconcileSettings(),
        waker: FlushWaker | None = None,
        lane_of: Callable[[str], int] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        lists: ListsCheck | None = None,
    ) -> None:
        """``lists``: the audiences' lists' check (None: lists are not kept)."""
        self._contacts = contacts
        self._reader = reader
        self._schema = schema
        self._budget = budget
        self._settings = settings
        self._waker = waker
        self._lane_of = lane_of
        self._clock = clock
        self._monotonic = monotonic
        self._lists = lists

    def run(
        self,
        *,
        dry_run: bool = False,
        cursor: str | None = None,
        emails: Collection[str] | None = None,
        deadline: float | None = None,
        max_contacts: int | None = None,
        progress: Callable[[ReconcileReport], None] | None = None,
    ) -> ReconcileReport:
        """Check the contacts named by ``emails`` (normalized; untracked ones are not counted), or
        else walk the tracked contacts from ``cursor``, until ``deadline`` (on ``monotonic``),
        ``max_contacts`` checked, or the budget holds. ``dry_run``: find, store nothing, write
        nothing. ``progress`` is called after each page. The report's cursor is where the walk
        goes on (None: it is complete, or the run named its contacts)."""
        run = _Pass(ReconcileReport(dry_run=dry_run, started_at_ms=self._now_ms()))
        if self._lists is not None:
            run.report.membership = MembershipDrift()
        if emails is not None:
            self._check_named(emails, run, deadline, progress)
        else:
            self._walk(cursor, run, deadline, max_contacts, progress)
        self._resolve(run, everything=True)
        run.report.ended_at_ms = self._now_ms()
        return run.report

    def _walk(
        self,
        cursor: str | None,
        run: _Pass,
        deadline: float | None,
        max_contacts: int | None,
        progress: Callable[[ReconcileReport], None] | None,
    ) -> None:
        report = run.report
        position = cursor
        while True:
            report.stopped_by = self._held(deadline)
            if report.stopped_by is not None:
                break
            states, after = self._gather(position)
            if not self._check(states, run):
                break  # HubSpot stopped it: these contacts are checked again next time
            position = after
            if progress is not None:
                progress(report)
            if report.stopped:
                break  # a read of record ids was stopped: its contacts wait for the next walk
            if position is None or (max_contacts is not None and report.checked >= max_contacts):
                break
        report.cursor = position

    def _gather(self, position: str | None) -> tuple[list[ContactState], str | None]:
        """Pages from ``position`` until they hold a full read's worth of contacts to check (a
        scan's page counts every item it reads: markers, audiences, pending contacts), so a read
        by email carries 100 whatever else the table holds."""
        size = self._settings.page_size
        gathered: list[ContactState] = []
        wanted = 0
        while True:
            states, position = self._contacts.page(position, size - wanted)
            gathered.extend(states)
            wanted += sum(1 for state in states if not state.pending and _checkable(state.confirmed))
            if position is None or wanted >= size:
                return gathered, position

    def _check_named(
        self,
        emails: Collection[str],
        run: _Pass,
        deadline: float | None,
        progress: Callable[[ReconcileReport], None] | None,
    ) -> None:
        wanted = list(dict.fromkeys(normalize_email(email) for email in emails))
        size = self._settings.page_size
        for start in range(0, len(wanted), size):
            # A few named contacts (an operator's, the journal's) are not held by live traffic:
            # the journal's offset would never advance under steady traffic.
            run.report.stopped_by = self._held(deadline, named=True)
            if run.report.stopped_by is not None:
                return
            part = wanted[start : start + size]
            states = self._contacts.read(part)
            if not self._check([states[email] for email in part if email in states], run):
                return
            if progress is not None:
                progress(run.report)

    def _held(self, deadline: float | None, named: bool = False) -> str | None:
        if deadline is not None and self._monotonic() >= deadline:
            return "deadline"
        reason = self._budget.hold()
        return None if named and reason == BACKLOG else reason

    def _check(self, states: Sequence[ContactState], run: _Pass) -> bool:
        """Check one page by email; False when HubSpot stopped it (nothing of it was stored). The
        contacts HubSpot did not find by email wait for a read of their record ids, 100 a call."""
        # A contact pending is written by a flush now: the next walk checks it.
        pending = sum(1 for state in states if state.pending)
        candidates = [state for state in states if not state.pending and _checkable(state.confirmed)]
        if candidates and not self._check_by_email(candidates, run):
            return False
        run.report.checked += len(states)
        run.report.skipped += pending
        self._resolve(run, everything=False)
        return True

    def _check_by_email(self, candidates: Sequence[ContactState], run: _Pass) -> bool:
        properties = _properties_to_read(candidates, self._settings.rules)
        emails = [state.email for state in candidates]
        outcome = self._guarded(
            lambda: self._reader.by_email(emails, properties), run.report, len(candidates)
        )
        if not isinstance(outcome, dict):
            return outcome is _PASSED_OVER
        found: dict[str, HubSpotRecord] = outcome
        # One left deleted stays so unless HubSpot finds its email again (restored): no id read.
        unfound = [
            state
            for state in candidates
            if state.email not in found and state.confirmed is not None and state.confirmed.status != DELETED
        ]
        run.unfound.extend(unfound)
        missing = {state.email for state in unfound}
        self._settle([state for state in candidates if state.email not in missing], found, run.report)
        return True

    def _resolve(self, run: _Pass, everything: bool) -> None:
        """Read the record ids of contacts HubSpot did not find by email, in calls of 100: the
        record an id answers to now (merged, or its email changed), else its archived record;
        an id known neither way is erased. A read HubSpot stops leaves them to the next walk."""
        size = self._settings.page_size
        while run.unfound and (everything or len(run.unfound) >= size):
            chunk, run.unfound = run.unfound[:size], run.unfound[size:]
            seen = self._by_id(chunk, run.report)
            if seen is _PASSED_OVER:
                continue  # counted as skipped; the other contacts are read
            if not isinstance(seen, dict):
                # Stopped (``stopped_by`` says why): the contacts left wait for the next walk.
                run.report.skipped += len(chunk) + len(run.unfound)
                run.unfound = []
                return
            self._settle(chunk, seen, run.report)

    def _by_id(
        self, chunk: Sequence[ContactState], report: ReconcileReport
    ) -> dict[str, HubSpotRecord] | object:
        """The records the chunk's ids answer to (live, else archived), or what ``_guarded``
        answered for a read that did not answer."""
        properties = _properties_to_read(chunk, self._settings.rules)
        # Several contacts may answer to one record (merged into it): an id lists them all.
        ids: dict[str, list[str]] = {}
        for state in chunk:
            if state.confirmed is not None and state.confirmed.hubspot_id:
                ids.setdefault(state.confirmed.hubspot_id, []).append(state.email)
        found: dict[str, HubSpotRecord] = {}
        if not ids:
            return found
        live = self._guarded(
            lambda: self._reader.by_id(list(ids), properties, archived=False), report, len(chunk)
        )
        if not isinstance(live, dict):
            return live
        found.update({email: live[i] for i, emails in ids.items() if i in live for email in emails})
        gone = [record_id for record_id in ids if record_id not in live]
        if gone:
            archived = self._guarded(
                lambda: self._reader.by_id(gone, properties, archived=True), report, len(chunk)
            )
            if not isinstance(archived, dict):
                return archived
            found.update(
                {
                    email: replace(archived[i], archived=True)
                    for i in gone
                    if i in archived
                    for email in ids[i]
                }
            )
        return found

    def _guarded(
        self, read: Callable[[], dict[str, HubSpotRecord]], report: ReconcileReport, contacts: int
    ) -> dict[str, HubSpotRecord] | object:
        """One read, counted: its answer, ``_STOPPED`` (the daily limit, HubSpot failing: the run
        stops) or ``_PASSED_OVER`` (HubSpot can never answer it: its ``contacts`` are skipped)."""
        try:
            answer = read()
        except DailyLimitReached:  # refused before sending
            report.stopped_by = "daily_limit"
            return _STOPPED
        except HubSpotError as exc:
            self._spent(report)
            if exc.kind is ErrorKind.PERMANENT:
                # The same read would fail at every walk: passed over, not allowed to stop each one.
                logger.error(
                    "reconcile passed over a read HubSpot cannot answer", extra={"error": str(exc)[:500]}
                )
                report.skipped += contacts
                return _PASSED_OVER
            logger.warning("reconcile stopped: HubSpot failed", extra={"error": str(exc)[:500]})
            report.stopped_by = "hubspot"
            return _STOPPED
        self._spent(report)
        return answer

    def _settle(
        self, states: Sequence[ContactState], seen: Mapping[str, HubSpotRecord], report: ReconcileReport
    ) -> None:
        """Compare and repair contacts whose HubSpot record (or its absence) is known."""
        if not states:
            return
        now_ms = self._now_ms()
        definitions = self._definitions(states)
        sharing = self._sharing(states, seen)
        repairs: list[tuple[Repair, Finding | None]] = [
            self._compare(state, seen.get(state.email), definitions, now_ms, sharing) for state in states
        ]
        stored = self._store(repairs, report, now_ms)
        if self._lists is not None and report.membership is not None:
            self._check_lists(self._lists, report.membership, states, seen, stored, report, now_ms)

    def _check_lists(
        self,
        lists: ListsCheck,
        drift: MembershipDrift,
        states: Sequence[ContactState],
        seen: Mapping[str, HubSpotRecord],
        stored: set[str],
        report: ReconcileReport,
        now_ms: int,
    ) -> None:
        """The lists of the contacts HubSpot holds live under the record id the ledger knows (a
        contact whose record changed is written by its new id first), as stored (one that moved
        on meanwhile is checked by the next walk)."""
        contacts: list[ListedContact] = []
        for state in states:
            record, entry = seen.get(state.email), state.confirmed
            if (
                state.email in stored
                and record is not None
                and not record.archived
                and entry is not None
                and entry.listed
                and entry.hubspot_id == record.id
            ):
                contacts.append(ListedContact(state.email, record.id, entry))
        if not contacts:
            return
        try:
            lists.check(
                contacts, drift, dry_run=report.dry_run, now_ms=now_ms, spent=lambda: self._spent(report)
            )
        except MembershipsUnread as exc:
            report.stopped_by = exc.reason

    def _spent(self, report: ReconcileReport) -> None:
        report.calls += 1
        self._budget.spent(1)

    def _definitions(self, candidates: Sequence[ContactState]) -> Mapping[str, Mapping[str, Any]]:
        rules = self._settings.rules
        names = {name for state in candidates if state.confirmed for name in _synced(state.confirmed, rules)}
        try:
            return self._schema.definitions_for(names)
        except HubSpotError:
            return {}  # compared as strings: a spelling HubSpot changed looks edited, and is rewritten

    def _sharing(
        self, candidates: Sequence[ContactState], seen: Mapping[str, HubSpotRecord]
    ) -> dict[str, LedgerEntry]:
        """The confirmed states of every tracked contact answering to a record that answers to
        several (a merge's survivor: its email and its additional emails)."""
        emails: set[str] = set()
        for state in candidates:
            record = seen.get(state.email)
            if record is not None and not record.archived:
                answering = record.emails | {state.email}
                if len(answering) > 1:
                    emails |= answering
        if not emails:
            return {}
        known = {state.email: state for state in candidates if state.email in emails}
        known.update(self._contacts.read(sorted(emails - set(known))))
        return {email: state.confirmed for email, state in known.items() if state.confirmed is not None}

    def _compare(
        self,
        state: ContactState,
        record: HubSpotRecord | None,
        definitions: Mapping[str, Mapping[str, Any]],
        now_ms: int,
        sharing: Mapping[str, LedgerEntry],
    ) -> tuple[Repair, Finding | None]:
        entry = state.confirmed
        assert entry is not None
        if record is None or record.archived:
            return self._gone(state, entry, record, now_ms)
        answering = record.emails | {state.email}
        rivals = [other for email, other in sharing.items() if email != state.email and email in answering]
        drift = self._drift(entry, record, definitions, rivals)
        kind: DriftKind | None = DriftKind.EDITED if drift.found else None
        repaired = entry
        if entry.status == DELETED:
            kind = DriftKind.RESTORED
            repaired = replace(repaired, status=SYNCED, updated_at_ms=now_ms)
        # The record answering for the contact has another primary email (merged into another
        # record; or its email was changed): from now on it is written by record id.
        elsewhere = record.email is not None and record.email != state.email
        if record.id != entry.hubspot_id or elsewhere != entry.written_by_id:
            if elsewhere or entry.hubspot_id in record.merged_ids:
                kind = DriftKind.MERGED
            # Otherwise it was deleted and created again under the same email: followed silently.
            repaired = replace(repaired, hubspot_id=record.id, hubspot_state=MERGED if elsewhere else None)
        if drift.changes:
            repaired = self._rewrite(repaired, drift, record, now_ms)
        seen = _seen(entry, record, kind, now_ms, self._settings.rules)
        changed = repaired if repaired is not entry else None
        finding = (
            Finding(state.email, kind, sorted(drift.found), record.id, kept=sorted(drift.kept))
            if kind is not None
            else None
        )
        return Repair(state.email, state.version, seen, changed, pending=drift.to_write), finding

    def _drift(
        self,
        entry: LedgerEntry,
        record: HubSpotRecord,
        definitions: Mapping[str, Mapping[str, Any]],
        rivals: Sequence[LedgerEntry],
    ) -> _Drift:
        """What HubSpot changed of the contact's synced properties, sorted by what the rules make
        of it (a ``never`` property is not compared)."""
        rules = self._settings.rules
        drift = _Drift()
        for name, value in entry.written.items():
            rule = rules.rule_for(name)
            if rule is FieldRule.NEVER or name not in record.properties:
                continue
            seen = record.properties.get(name)
            if same_value(value, seen, definitions.get(name)) or self._outranked(entry, name, rivals, record):
                continue
            if rule is FieldRule.FILL_EMPTY and seen:
                drift.kept.append(name)  # HubSpot holds a value now: its value wins
            else:
                drift.edited.append(name)
        for name, value in entry.held.items():
            rule = rules.rule_for(name)
            if rule is FieldRule.NEVER or name not in record.properties:
                continue
            seen = record.properties.get(name)
            if rule is not FieldRule.FILL_EMPTY:
                # Held under a fill_empty rule since changed to one by which the source wins:
                # released like an emptied value, so the flusher writes the source's.
                drift.emptied.append(name)
            elif not seen:
                drift.emptied.append(name)  # empty again: the source's value fills it
            elif not same_value(value, seen, definitions.get(name)):
                drift.held_changed.append(name)
        return drift

    def _outranked(
        self, entry: LedgerEntry, name: str, rivals: Sequence[LedgerEntry], record: HubSpotRecord
    ) -> bool:
        """Another tracked contact answering to the same record (merged into it) wrote a newer
        value of the property: the record holds the newest source value, which is not drift. On
        a tie the record's primary email wins."""
        mine = self._rank(entry, name)
        for rival in rivals:
            if name not in rival.written:
                continue
            theirs = self._rank(rival, name)
            if theirs > mine or (theirs == mine and rival.email == record.email):
                return True
        return False

    def _rank(self, entry: LedgerEntry, name: str) -> tuple[int, int, int]:
        """How new the value an entry wrote to a property is: an audience status by its timestamp
        then receive order, an attribute by its receive order."""
        for audience_id, applied in entry.audiences.items():
            if audience_property_name(audience_id, self._schema.prefix) == name:
                return (applied.timestamp_ms, *applied.order)
        return (0, *entry.attribute_order.get(name, (0, 0)))

    def _gone(
        self, state: ContactState, entry: LedgerEntry, record: HubSpotRecord | None, now_ms: int
    ) -> tuple[Repair, Finding | None]:
        """Archived (``record``) or unknown to HubSpot."""
        seen = _seen(entry, None, None, now_ms, self._settings.rules)
        if entry.status == DELETED:
            return Repair(state.email, state.version, seen), None  # deleted, and left so
        if record is None:
            erased = entry.forgotten(FAILED, now_ms, reason=ERASED_REASON, hubspot_state=ERASED)
            finding = Finding(state.email, DriftKind.ERASED)
            return Repair(state.email, state.version, replace(seen, drift=DriftKind.ERASED), erased), finding
        seen = replace(seen, drift=DriftKind.DELETED)
        finding = Finding(state.email, DriftKind.DELETED, hubspot_id=record.id)
        if self._settings.deletions is DeletionPolicy.RECREATE:
            fresh = entry.forgotten(SYNCED, now_ms)
            finding.properties = sorted(entry.written)
            return Repair(state.email, state.version, seen, fresh, pending=True), finding
        return Repair(
            state.email, state.version, seen, replace(entry, status=DELETED, updated_at_ms=now_ms)
        ), finding

    def _rewrite(self, entry: LedgerEntry, drift: _Drift, record: HubSpotRecord, now_ms: int) -> LedgerEntry:
        """The confirmed state as HubSpot holds it. An edited property holds HubSpot's value and no
        longer counts as applied, so the flusher writes the newest source value again; one whose
        rule is ``fill_empty`` emptied in HubSpot is not written at all, so the flusher fills it
        as an empty one. A ``fill_empty`` property HubSpot holds another value for moves to
        ``held`` (HubSpot's value, not the connector's) and keeps its applied order, so the
        flusher does not write the source's value over it; a held value HubSpot emptied leaves
        ``held`` and its order, so the flusher fills it."""
        rules = self._settings.rules
        written = dict(entry.written)
        held = dict(entry.held)
        for name in drift.edited:
            value = record.properties.get(name)
            if value is None or (not value and rules.rule_for(name) is FieldRule.FILL_EMPTY):
                written.pop(name, None)
            else:
                written[name] = value
        for name in (*drift.kept, *drift.held_changed):
            written.pop(name, None)
            held[name] = str(record.properties.get(name))
        for name in drift.emptied:
            held.pop(name, None)
        by_property = {audience_property_name(a, self._schema.prefix): a for a in entry.audiences}
        audiences = dict(entry.audiences)
        orders = dict(entry.attribute_order)
        for name in (*drift.edited, *drift.emptied):
            audiences.pop(by_property.get(name, ""), None)
            orders.pop(name, None)
        return replace(
            entry,
            written=written,
            held=held,
            audiences=audiences,
            attribute_order=orders,
            updated_at_ms=now_ms,
        )

    def _store(
        self, repairs: Sequence[tuple[Repair, Finding | None]], report: ReconcileReport, now_ms: int
    ) -> set[str]:
        """The emails stored (a dry run's: all of them)."""
        if report.dry_run:
            for _repair, finding in repairs:
                if finding is not None:
                    report.found(finding)
            return {repair.email for repair, _finding in repairs}
        stored = self._contacts.store([repair for repair, _finding in repairs], now_ms)
        woken: set[str] = set()
        for repair, finding in repairs:
            if repair.email not in stored:
                report.skipped += 1  # changed meanwhile: the flush writes it, the next walk checks it
            if finding is None:
                continue
            if repair.email in stored:
                finding.repaired = repair.pending or finding.kind in (DriftKind.MERGED, DriftKind.RESTORED)
                if repair.pending:
                    woken.add(repair.email)
            report.found(finding)
        if woken and self._waker is not None and self._lane_of is not None:
            self._waker.wake({self._lane_of(email) for email in woken})
        return stored

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def _checkable(entry: LedgerEntry | None) -> bool:
    """A contact HubSpot is known to hold (or to have deleted), with no write in doubt; an erased
    one waits for an operator."""
    if entry is None or entry.unconfirmed_at_ms is not None or entry.erased:
        return False
    return entry.hubspot_id is not None


def _synced(entry: LedgerEntry, rules: FieldRules) -> set[str]:
    """The properties reconcile reads for a contact: those the connector wrote and those HubSpot
    holds for a ``fill_empty`` field, less those the rules leave alone (``never``: a value written
    under an older rule is left as HubSpot has it)."""
    return {name for name in (*entry.written, *entry.held) if rules.rule_for(name) is not FieldRule.NEVER}


def _properties_to_read(candidates: Sequence[ContactState], rules: FieldRules) -> list[str]:
    names = {name for state in candidates if state.confirmed for name in _synced(state.confirmed, rules)}
    return sorted(names | set(IDENTITY_PROPERTIES))


def _seen(
    entry: LedgerEntry,
    record: HubSpotRecord | None,
    drift: DriftKind | None,
    now_ms: int,
    rules: FieldRules,
) -> Seen:
    properties = (
        {name: record.properties.get(name) for name in _synced(entry, rules)} if record is not None else {}
    )
    return Seen(now_ms, record.id if record is not None else None, properties, drift)
