"""The flusher: writes HubSpot from the contacts' states, 100 pending contacts a call.

A run owns a lane of the pending index and works in rounds: the contacts due, oldest first, their
states read, planned (``plan``), written in calls of 100 (several at once, overlapping the next
round) and each outcome recorded (``state.Recording``). Every call carries 100 contacts while 100
need a write; a partial call only when nothing else is pending or can still join (the queue, the
other lanes). The rules and their reasons: docs/architecture.md, "Flush" and "How a run starts".
It knows nothing about Lambda: the handler passes the lane's partitions and the time left.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Protocol

from ..field_rules import FieldRules
from ..hubspot.batch import MAX_BATCH_INPUTS, UpdateInput, UpsertInput, UpsertResult
from ..hubspot.errors import DailyLimitReached, DeadlineReached, ErrorKind, HubSpotError
from ..lists.model import BufferFull, Toggle
from ..lists.ports import ListChanges
from ..lists.target import AudienceTarget
from ..observability import logger
from ..settings import (
    FLUSH_MAX_DELAY_SECONDS,
    FLUSH_PARALLEL_CALLS,
    LIST_FLUSH_SECONDS,
    MAX_WRITE_ATTEMPTS,
    RETRY_BASE_SECONDS,
)
from .audiences import AudienceDirectory, AudienceMetadata
from .contacts_log import contact_hash, log_contact
from .ledger import FAILED, LedgerEntry, LedgerUnavailable
from .listing import HandOff, list_hand_offs
from .plan import (
    MAX_RETRY_DELAY_SECONDS,
    Batch,
    ContactWrite,
    Outcome,
    PendingContact,
    ambiguous_entry,
    attributes_to_define,
    audiences_to_ensure,
    drop_refused_fields,
    outcome_of,
    plan_writes,
    refers_to_unknown_property,
    take_hubspot_values,
    unwritten_after_read,
    unwritten_outcome,
)
from .ports import ContactReader, ContactWriter, HeldMarkers
from .properties import AudienceProperty, audience_property_name
from .schema import PropertySchema
from .state import ContactState, ContactStates, PendingRef, Recording

#: Time to record outcomes after the last HubSpot call.
RECORD_MARGIN_SECONDS = 10.0
#: An audience without stored metadata is synced.
_LIVE = AudienceMetadata(None, deleted=False)
#: How often a waiting flusher looks again (the queue's depth, the index).
POLL_SECONDS = 0.5
#: The longest a run waits for a contact in backoff to come due before it ends (the schedule
#: starts the next run).
MAX_IDLE_WAIT_SECONDS = 20.0
#: How often a run waiting for the queue's backlog to be merged looks at the queue again.
BUSY_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class FlushSettings:
    #: HubSpot calls in flight at once (HubSpot answers in 0.3-1 s: the budget needs several)
    parallel_calls: int = FLUSH_PARALLEL_CALLS.default
    #: How long a pending contact waits for the queue's backlog to be merged before it is written
    max_delay_seconds: float = FLUSH_MAX_DELAY_SECONDS.default
    #: How long a run goes on looking for work after it found none
    linger_seconds: float = 0.5
    retry_base_seconds: int = RETRY_BASE_SECONDS.default
    #: Transient failures of a contact before it is recorded as failed (replayable): with the
    #: backoff's 10-minute cap, about two and a half hours of a HubSpot outage
    max_attempts: int = MAX_WRITE_ATTEMPTS.default
    #: Contacts read per round, in calls of 100
    round_calls: int = 10
    #: How long a contact whose membership change a full list buffer refused waits before it is
    #: handed again (a full buffer is due for a drain at once: ListFlushSeconds is ample)
    list_retry_seconds: int = LIST_FLUSH_SECONDS.default


@dataclass(frozen=True)
class QueueLoad:
    """What the queue holds for the merges."""

    #: updates no merge has taken yet
    waiting: int
    #: updates being merged now (or backing off after a failed merge): their contacts may be
    #: about to join a tail
    merging: int = 0


class TailPolicy(Protocol):
    """Where a lane's tail (fewer than 100 writes, nothing else pending in its partitions) goes."""

    def hand_over(self) -> bool:
        """True: leave the tail pending for the lane that writes every lane's tails; the run ends."""
        ...

    def gather(self) -> list[int]:
        """Partitions of other lanes this run may write too from now on (their leases taken)."""
        ...

    def others_running(self) -> bool:
        """Whether, at the last ``gather``, other runs held lanes this run could not take: they
        hand their tails over when they end."""
        ...


@dataclass
class FlushReport:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    #: contacts per batch-upsert call, in the order the calls were made
    call_sizes: list[int] = field(default_factory=list)
    hubspot_requests: int = 0
    throttled: int = 0
    #: HubSpot's remaining burst budget after the run's last call (None when it made none)
    rate_limit_remaining: int | None = None
    rounds: int = 0
    daily_limit_resets_at: float | None = None
    #: the run ended with contacts due and no time left for them: the next run must follow at once
    more_pending: bool = False
    #: the run left its tail for the lane that writes every lane's tails
    handed_over: bool = False
    #: why the run stopped early (a HubSpot configuration error, the ledger unreachable)
    stopped_by: str | None = None
    warnings: int = 0

    def counts(self) -> Counter[Outcome]:
        return Counter(self.outcomes.values())


@dataclass
class _Run:
    """One run's state: the partitions it writes, where its tail goes, and its calls in flight,
    which overlap the next round's read and plan (HubSpot's answers take 0.3-1 s: a round that
    waited for its last call before reading the next would leave the budget unused meanwhile)."""

    partitions: list[int]
    tail: TailPolicy | None
    report: FlushReport
    remaining_seconds: Callable[[], float]
    pool: ThreadPoolExecutor
    #: contacts in calls not answered and recorded yet: the next rounds leave them out
    in_flight: set[str] = field(default_factory=set)
    calls: set[Future[None]] = field(default_factory=set)
    #: what stops the writes (the daily limit, HubSpot refusing the connector)
    stop: HubSpotError | None = None
    #: the last round took other lanes' partitions
    widened: bool = False
    #: since when the run's tail waits for other lanes' runs to hand theirs over (monotonic)
    tail_held_since: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_calls(self, at_most: int) -> None:
        """Until no more than ``at_most`` calls are unanswered."""
        while len(self.calls) > at_most:
            done, _ = wait(list(self.calls), return_when=FIRST_COMPLETED)
            self.calls -= done
            for call in done:
                call.result()  # a failure of the call's own code is the run's


class Flusher:
    def __init__(
        self,
        states: ContactStates,
        writer: ContactWriter,
        schema: PropertySchema,
        directory: AudienceDirectory | None = None,
        markers: HeldMarkers | None = None,
        settings: FlushSettings | None = None,
        queue_load: Callable[[], QueueLoad] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rules: FieldRules | None = None,
        reader: ContactReader | None = None,
        audience_target: AudienceTarget = AudienceTarget.PROPERTY,
        list_changes: ListChanges | None = None,
    ) -> None:
        """``queue_load`` tells what the queue holds for the merges (None: unknown, taken as
        nothing). ``monotonic`` is the writer's clock, the one its deadlines are read on.
        ``rules``: which side wins per property (none: ``overwrite`` for all); ``reader`` reads
        HubSpot for the ``fill_empty`` ones, through the writer's client (its calls are in the
        writer's ``stats``), and is required when a rule reads. ``audience_target``: where the
        audiences' statuses go; with lists, ``list_changes`` takes the membership changes."""
        if rules is not None and rules.needs_reads and reader is None:
            raise ValueError("a fill_empty rule reads HubSpot before writing: the flusher needs a reader")
        if audience_target.keeps_lists and list_changes is None:
            raise ValueError(f"AudienceTarget={audience_target.value}: the flusher needs list_changes")
        self._target = audience_target
        self._list_changes = list_changes if audience_target.keeps_lists else None
        # A run's calls are recorded in parallel, and a list's buffer takes one conditional write
        # at a time: one append at a time per flusher keeps them from racing each other.
        self._list_lock = threading.Lock()
        self._rules = rules or FieldRules()
        self._reader = reader
        self._states = states
        self._writer = writer
        self._schema = schema
        self._directory = directory
        self._markers = markers
        self._settings = settings or FlushSettings()
        self._queue_load = queue_load
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._call_seconds = writer.max_call_seconds

    def run(
        self,
        partitions: list[int],
        remaining_seconds: Callable[[], float],
        tail: TailPolicy | None = None,
    ) -> FlushReport:
        """Flush the pending contacts of ``partitions`` until none is due or the time is up.
        ``partitions`` grows with what ``tail.gather`` adds (the caller reads it afterwards)."""
        report = FlushReport()
        before = self._writer.stats()
        idle_since: float | None = None
        with ThreadPoolExecutor(max_workers=self._settings.parallel_calls) as pool:
            run = _Run(partitions, tail, report, remaining_seconds, pool)
            try:
                while remaining_seconds() - RECORD_MARGIN_SECONDS >= self._call_seconds:
                    progressed = self._step(run)
                    if self._stopped(run) or report.handed_over or report.more_pending:
                        break
                    if progressed:
                        idle_since = None
                        continue
                    if run.calls:
                        # Their answers may change what is due; looking again before all are in
                        # would read and plan the same contacts once per answer.
                        run.wait_calls(0)
                        continue
                    idle_since = idle_since if idle_since is not None else self._monotonic()
                    wait_seconds = self._idle_wait(
                        partitions, self._load().waiting > 0, self._monotonic() - idle_since
                    )
                    if wait_seconds is None:
                        break
                    self._sleep(wait_seconds)
                else:
                    run.wait_calls(0)
                    report.more_pending = self._states.next_due(partitions) is not None
            finally:
                run.wait_calls(0)
                self._stopped(run)
                after = self._writer.stats()
                report.hubspot_requests = after.requests - before.requests
                report.throttled = after.throttled - before.throttled
                if report.hubspot_requests:
                    report.rate_limit_remaining = after.rate_limit_remaining
        return report

    @staticmethod
    def _stopped(run: _Run) -> bool:
        """Whether the writes were stopped (noted in the report)."""
        report = run.report
        with run.lock:
            stop = run.stop
        if isinstance(stop, DailyLimitReached):
            report.daily_limit_resets_at = stop.resets_at
        elif stop is not None and report.stopped_by is None:
            report.stopped_by = str(stop)[:500]
        return report.daily_limit_resets_at is not None or report.stopped_by is not None

    def _step(self, run: _Run) -> bool:
        """One round over the contacts due and not in flight; False when it made no progress.
        What stops the run (a DAILY limit, a configuration error, the ledger or HubSpot's
        definitions unreachable) is noted in the report; the contacts stay pending for the next
        run."""
        load = self._load()
        busy = load.waiting > 0
        now_ms = self._now_ms()
        due_by = now_ms - int(self._settings.max_delay_seconds * 1000) if busy else now_ms
        page = self._settings.round_calls * MAX_BATCH_INPUTS
        try:
            with run.lock:
                in_flight = set(run.in_flight)
            listed = self._states.pending(run.partitions, due_by, page + len(in_flight))
            refs = [ref for ref in listed if ref.email not in in_flight]
            if not refs:
                # Nothing of its own: the lane writing every lane's tails takes the free lanes'.
                return not busy and not run.calls and self._gather(run)
            # Nothing else pending: every due contact is in this round, and no update waits or is
            # being merged - or the tail has waited twice the delay: a queue that is never empty
            # (a steady stream of updates) must not hold a tail back for good.
            settled = not busy and load.merging == 0
            waited = min(ref.due_ms for ref in refs) <= due_by - int(self._settings.max_delay_seconds * 1000)
            return self._round(run, refs, (settled or waited) and listed.complete)
        except DailyLimitReached as exc:
            run.report.daily_limit_resets_at = exc.resets_at
        except (HubSpotError, LedgerUnavailable) as exc:
            logger.error("flush run stopped; its contacts stay pending", extra={"error": str(exc)[:500]})
            run.report.stopped_by = str(exc)[:500]
        return False

    def _partial_allowed(self, run: _Run) -> bool:
        """Whether this run may make the partial call of a tail: always with one lane; with more,
        only the lane that writes every lane's tails, once no other lane's partitions are free to
        join (those it could take join first, and the next round writes them with its own) and
        no other lane runs (its tail is handed over when it ends) - waiting for those at most
        ``max_delay_seconds``."""
        if run.tail is None:
            return True
        if run.tail.hand_over():
            run.report.handed_over = True
            return False
        if self._gather(run):
            run.widened = True
            return False
        if not run.tail.others_running():
            run.tail_held_since = None
            return True
        if run.tail_held_since is None:
            run.tail_held_since = self._monotonic()
        return self._monotonic() - run.tail_held_since >= self._settings.max_delay_seconds

    def _gather(self, run: _Run) -> bool:
        """Take the partitions of the lanes whose tails this run may write; True when any."""
        if run.tail is None or run.tail.hand_over():
            return False
        extra = [p for p in run.tail.gather() if p not in run.partitions]
        run.partitions.extend(extra)
        return bool(extra)

    def _load(self) -> QueueLoad:
        return self._queue_load() if self._queue_load is not None else QueueLoad(0)

    def _idle_wait(self, partitions: Sequence[int], busy: bool, idle_for: float) -> float | None:
        """How long to wait before looking again, or None to end the run: when nothing is
        pending after lingering a moment, or when the next contact is due later than a short
        wait. While the queue holds updates a run stays for the contacts the merges make due (it
        lingers longer, and a contact is due ``max_delay_seconds`` later): a run that ended there
        would be started again by the next merged batch's wake-up, a run per batch."""
        delay_ms = int(self._settings.max_delay_seconds * 1000) if busy else 0
        next_due = self._states.next_due(partitions)
        if next_due is None:
            linger = MAX_IDLE_WAIT_SECONDS if busy else self._settings.linger_seconds
            return POLL_SECONDS if idle_for < linger else None
        wait = (next_due + delay_ms - self._now_ms()) / 1000
        if wait > MAX_IDLE_WAIT_SECONDS or idle_for > MAX_IDLE_WAIT_SECONDS:
            # Due later (the schedule's next run takes it), or the index keeps listing contacts
            # that are not pending any more (it lags the table by about a second).
            return None
        # While the queue holds updates, look again soon: once it is empty, every contact pending
        # is due at once.
        return min(max(wait, POLL_SECONDS), BUSY_POLL_SECONDS if busy else MAX_IDLE_WAIT_SECONDS)

    def _round(self, run: _Run, refs: Sequence[PendingRef], complete: bool) -> bool:
        """Flush the contacts of ``refs`` that are still pending and due; False when none was
        settled or sent (only a partial call's worth while more may come, or the index was
        behind). Its calls are left in flight once at most ``parallel_calls`` of the run's are
        unanswered: the next round is read and planned meanwhile."""
        report = run.report
        report.rounds += 1
        now_ms = self._now_ms()
        states = {
            email: state
            for email, state in self._states.read([ref.email for ref in refs], now_ms).items()
            if state.pending and (state.due_ms or 0) <= now_ms
        }
        if not states:
            return False
        batch = Batch({email: _wanted(state) for email, state in states.items()})
        confirmed = {email: s.confirmed for email, s in states.items() if s.confirmed is not None}
        try:
            if batch.replay:
                # An operator fixed something (a property freed, created or allowed): see it now,
                # not when the definitions' cache expires.
                self._schema.refresh()
            audiences, generations = self._audiences(audiences_to_ensure(batch, confirmed))
            definitions = self._schema.definitions_for(attributes_to_define(batch, confirmed))
        except HubSpotError as exc:
            return self._properties_failed(exc, states, report)
        plan = plan_writes(batch, confirmed, audiences, definitions, now_ms, self._rules)
        entries = {entry.email: entry for entry in plan.records}
        recordings: list[Recording] = []
        for email, outcome in plan.outcomes.items():
            report.outcomes[email] = outcome
            recordings.append(Recording(email, states[email].version, entries.get(email)))
        writes = plan.writes
        if len(writes) % MAX_BATCH_INPUTS and not (complete and self._partial_allowed(run)):
            writes = writes[: len(writes) // MAX_BATCH_INPUTS * MAX_BATCH_INPUTS]
        self._record(recordings, states, report, generations)
        chunks = [writes[i : i + MAX_BATCH_INPUTS] for i in range(0, len(writes), MAX_BATCH_INPUTS)]
        for chunk in chunks:
            with run.lock:
                run.in_flight.update(contact.email for contact in chunk)
            run.calls.add(run.pool.submit(self._flush_chunk, chunk, states, run, generations))
            # No more queued than the pool takes at once: the budget paces the calls, and a
            # contact queued behind it would be taken by no other run meanwhile.
            run.wait_calls(self._settings.parallel_calls)
        sent = {contact.email for contact in writes}
        self._log_contacts([contact for contact in plan.contacts if contact.email not in sent], run)
        widened, run.widened = run.widened, False
        return bool(plan.outcomes) or bool(chunks) or widened

    def _properties_failed(
        self, exc: HubSpotError, states: Mapping[str, ContactState], report: FlushReport
    ) -> bool:
        """HubSpot failed while the round made sure of its properties, so none of its contacts was
        written. The daily limit and HubSpot refusing the connector (a revoked token, a missing
        scope) stop the run, as a write's would, leaving them pending as they were; any other
        failure counts as a failed write of each (a backoff, and failed with the reason after
        ``max_attempts``)."""
        if isinstance(exc, DailyLimitReached):
            report.daily_limit_resets_at = exc.resets_at
            return False
        if exc.kind is ErrorKind.CONFIGURATION:
            logger.error("flush run stopped; its contacts stay pending", extra={"error": str(exc)[:500]})
            report.stopped_by = str(exc)[:500]
            return False
        logger.warning(
            "making sure of the properties failed; the round's contacts stay pending",
            extra={"error": str(exc)[:500]},
        )
        now_ms = self._now_ms()
        self._record(
            [self._retry(state, None, str(exc), now_ms, report) for state in states.values()], states, report
        )
        return True

    def _flush_chunk(
        self,
        chunk: list[ContactWrite],
        states: Mapping[str, ContactState],
        run: _Run,
        generations: Mapping[str, int],
    ) -> None:
        try:
            self._write_chunk(chunk, states, run, generations)
        finally:
            with run.lock:
                run.in_flight.difference_update(contact.email for contact in chunk)

    def _write_chunk(
        self,
        chunk: list[ContactWrite],
        states: Mapping[str, ContactState],
        run: _Run,
        generations: Mapping[str, int],
    ) -> None:
        """The chunk's read of what HubSpot holds for its ``fill_empty`` properties (when one of
        its contacts needs it: at most one call by email), then its write. Neither starts without
        the time for both. ``generations``: the live audiences' list generations."""
        reading = [contact for contact in chunk if contact.to_read()]
        needed = self._call_seconds * (2 if reading else 1)
        if run.stop is not None:
            return  # not started: its contacts stay pending, due as they were
        if run.remaining_seconds() - RECORD_MARGIN_SECONDS < needed:
            # Not started either; the run ends (a round would plan them again at once) and the next
            # one follows at once.
            with run.lock:
                run.report.more_pending = True
            return
        recordings: list[Recording] = []
        writing = chunk
        if reading:
            try:
                self._read_hubspot(reading, self._monotonic() + self._call_seconds)
            except HubSpotError as exc:
                failed = self._call_failed(exc, chunk, states, run, write=False)
                self._record(failed, states, run.report, generations)
                return
            writing = []
            now_ms = self._now_ms()
            for contact in chunk:
                if contact.needs_write():
                    writing.append(contact)
                    continue
                # HubSpot holds every value left to write: settled without a write, what it holds
                # kept, so the same values sent again cost no call.
                run.report.outcomes[contact.email], entry = unwritten_after_read(contact, now_ms)
                recordings.append(Recording(contact.email, states[contact.email].version, entry))
        if writing:
            recordings.extend(self._write(writing, states, run))
        self._record(recordings, states, run.report, generations)
        self._log_contacts(chunk, run)

    def _write(
        self, chunk: list[ContactWrite], states: Mapping[str, ContactState], run: _Run
    ) -> list[Recording]:
        sent_ms = self._now_ms()
        try:
            results = self._upsert(chunk, self._monotonic() + self._call_seconds)
        except HubSpotError as exc:
            return self._call_failed(exc, chunk, states, run, write=True)
        with run.lock:
            run.report.call_sizes.append(len(chunk))
        return self._settle(chunk, results, sent_ms, states, run)

    def _call_failed(
        self,
        exc: HubSpotError,
        chunk: list[ContactWrite],
        states: Mapping[str, ContactState],
        run: _Run,
        *,
        write: bool,
    ) -> list[Recording]:
        """What a failed call of the chunk means for its contacts. The daily limit and HubSpot
        refusing the connector (not these contacts) stop the run and leave them pending as they
        were; so does a call the governor held past its deadline (it was not made, nothing
        failed). Any other failure is each contact's failed attempt (a backoff); an ambiguous
        ``write`` (not a read) is recorded as such."""
        if isinstance(exc, DailyLimitReached) or exc.kind is ErrorKind.CONFIGURATION:
            self._stop(run, exc)
            return []
        if isinstance(exc, DeadlineReached):
            return []
        call = "batch upsert" if write else "batch read"
        logger.warning(f"{call} failed; its contacts stay pending", extra={"error": str(exc)[:500]})
        now_ms = self._now_ms()
        return [
            self._retry(
                states[contact.email],
                ambiguous_entry(contact, now_ms) if write and exc.ambiguous else None,
                str(exc),
                now_ms,
                run.report,
            )
            for contact in chunk
        ]

    def _read_hubspot(self, contacts: list[ContactWrite], deadline: float) -> None:
        """Read what HubSpot holds for the contacts' ``fill_empty`` properties and drop those it
        holds a value in (``take_hubspot_values``): by email, or by record id for a contact
        merged into a record with another primary email."""
        assert self._reader is not None  # the constructor requires one when a rule reads
        names = sorted({name for contact in contacts for name in contact.to_read()})
        by_email = [contact for contact in contacts if not _written_by_id(contact)]
        by_id = [contact for contact in contacts if _written_by_id(contact)]
        if by_email:
            found = self._reader.by_email([contact.email for contact in by_email], names, deadline=deadline)
            for contact in by_email:
                record = found.get(contact.email.strip().lower())
                if record is not None:
                    take_hubspot_values(contact, record.properties, record.id)
                else:
                    take_hubspot_values(contact, None)
        if by_id:
            found = self._reader.by_id([_record_id(c) for c in by_id], names, False, deadline=deadline)
            for contact in by_id:
                record = found.get(_record_id(contact))
                if record is not None:
                    take_hubspot_values(contact, record.properties, record.id)
                else:
                    take_hubspot_values(contact, None)

    @staticmethod
    def _log_contacts(contacts: Sequence[ContactWrite], run: _Run) -> None:
        """A line for each contact with an outcome that did not go as sent (a value dropped, a
        field refused)."""
        for contact in contacts:
            outcome = run.report.outcomes.get(contact.email)
            if outcome is not None and (contact.warnings or contact.problems):
                with run.lock:
                    run.report.warnings += len(contact.warnings)
                log_contact(contact, outcome)

    @staticmethod
    def _stop(run: _Run, error: HubSpotError) -> None:
        with run.lock:
            run.stop = run.stop or error

    def _settle(
        self,
        chunk: list[ContactWrite],
        results: list[UpsertResult | None],
        sent_ms: int,
        states: Mapping[str, ContactState],
        run: _Run,
    ) -> list[Recording]:
        """Each contact's answer as what to record. A contact whose call had no time left stays
        pending as it was; so does one whose answer stops the writes (the daily limit, HubSpot
        refusing the connector), which stops the rounds after the other answers are recorded."""
        report = run.report
        now_ms = self._now_ms()
        recordings: list[Recording] = []
        for contact, result in zip(chunk, results, strict=True):
            state = states[contact.email]
            if result is None:
                report.outcomes[contact.email], entry = unwritten_outcome(contact, now_ms)
                recordings.append(Recording(contact.email, state.version, entry))
                continue
            error = result.error
            if isinstance(error, DeadlineReached):
                continue
            if isinstance(error, DailyLimitReached) or (
                error is not None and error.kind is ErrorKind.CONFIGURATION
            ):
                self._stop(run, error)
                continue  # not the contact's failure: it stays pending as it was
            outcome, written = outcome_of(contact, result, sent_ms, now_ms)
            if outcome is Outcome.RETRY:
                reason = str(error) if error is not None else "HubSpot's answer is not confirmed yet"
                recordings.append(self._retry(state, written, reason, now_ms, report))
                continue
            report.outcomes[contact.email] = outcome
            recordings.append(Recording(contact.email, state.version, written))
        return recordings

    def _retry(
        self, state: ContactState, entry: LedgerEntry | None, reason: str, now_ms: int, report: FlushReport
    ) -> Recording:
        """A transient failure (or an unconfirmed write): the contact stays pending and comes due
        after a backoff that doubles with each attempt; after ``max_attempts`` it is recorded as
        failed with the reason (an operator's replay sends it again)."""
        attempts = state.attempts + 1
        if attempts >= self._settings.max_attempts:
            base = entry or state.confirmed or LedgerEntry(state.email, FAILED)
            failed = replace(
                base,
                status=FAILED,
                reason=f"HubSpot failed {attempts} times in a row: {reason}"[:1000],
                updated_at_ms=now_ms,
            )
            report.outcomes[state.email] = Outcome.FAILED
            return Recording(state.email, state.version, failed)
        report.outcomes[state.email] = Outcome.RETRY
        delay = min(MAX_RETRY_DELAY_SECONDS, self._settings.retry_base_seconds * 2 ** (attempts - 1))
        return Recording(
            state.email, state.version, entry, settled=False, due_ms=now_ms + delay * 1000, attempts=attempts
        )

    def _record(
        self,
        recordings: Sequence[Recording],
        states: Mapping[str, ContactState],
        report: FlushReport,
        generations: Mapping[str, int] | None = None,
    ) -> None:
        """Store the outcomes. An entry the ledger cannot hold fails that contact alone, with the
        reason. The held markers follow the entries: one is stored before the entry that keeps its
        change and deleted after the entry that no longer does, so an entry never keeps a change
        no marker lists. So do the lists' changes: buffered before the entry that records them
        in ``listed`` (``generations``: the live audiences' list generations; None: none known,
        nothing is handed)."""
        if not recordings:
            return
        if self._list_changes is not None and generations:
            recordings = self._hand_to_lists(recordings, states, generations)
        marks, unmarks = _marker_changes(recordings, states)
        if marks and self._markers is not None:
            self._markers.mark_held(marks, self._now_ms())
        refused = self._states.record(recordings, self._now_ms())
        if unmarks and self._markers is not None:
            self._markers.unmark_held([mark for mark in unmarks if mark[0] not in refused])
        for email in refused:
            logger.error("ledger refused a contact's state", extra={"contactHash": contact_hash(email)})
            report.outcomes[email] = Outcome.FAILED

    def _audiences(self, wanted: dict[str, str | None]) -> tuple[dict[str, AudienceProperty], dict[str, int]]:
        """The audience properties, with the metadata the operator stored: its name labels the
        property, and a deleted audience gets no property made sure of (its changes are held).
        An audience whose metadata cannot be read gets none either: its changes wait on its own
        contacts (failed, replayable), and the rest are written. With ``AudienceTarget=list`` no
        property is made sure of: a live audience's status goes to its list alone. Second: the
        live audiences' list generations when lists are kept (empty otherwise)."""
        metadata = self._directory.lookup(wanted) if self._directory is not None and wanted else {}
        settled = {
            audience_id: AudienceProperty(
                audience_id,
                audience_property_name(audience_id, self._schema.prefix),
                error=meta.unreadable,
                deleted=meta.deleted,
            )
            for audience_id, meta in metadata.items()
            if meta.deleted or meta.unreadable
        }
        live = {
            audience_id: (metadata[audience_id].name if audience_id in metadata else None) or name
            for audience_id, name in wanted.items()
            if audience_id not in settled
        }
        generations = (
            {audience_id: metadata.get(audience_id, _LIVE).list_generation for audience_id in live}
            if self._target.keeps_lists
            else {}
        )
        if not live:
            return settled, generations
        if not self._target.writes_property:
            listed = {audience_id: AudienceProperty(audience_id, "", list_only=True) for audience_id in live}
            return {**listed, **settled}, generations
        return {**self._schema.ensure_audiences(live), **settled}, generations

    def _hand_to_lists(
        self,
        recordings: Sequence[Recording],
        states: Mapping[str, ContactState],
        generations: Mapping[str, int],
    ) -> list[Recording]:
        """Buffer the membership changes the recordings' entries hold (``listing``), one append per
        audience, and the recordings with ``listed`` updated for what was buffered. A change a full
        buffer refused leaves ``listed`` as it was, and its contact pending, due again after
        ``list_retry_seconds``: handed again then, while the others are recorded as usual. A
        ledger failure raises (every contact stays pending as it was, the changes buffered are
        handed again, the same, by the next flush)."""
        assert self._list_changes is not None
        due: dict[str, dict[str, HandOff]] = {}
        for recording in recordings:
            basis = _listing_basis(recording, states)
            hand_offs = list_hand_offs(basis, generations) if basis is not None else {}
            if hand_offs:
                due[recording.email] = hand_offs
        if not due:
            return list(recordings)
        now_ms = self._now_ms()
        by_audience: dict[str, list[Toggle]] = {}
        for hand_offs in due.values():
            for audience_id, hand_off in hand_offs.items():
                by_audience.setdefault(audience_id, []).append(hand_off.toggle)
        refused: set[tuple[str, str]] = set()
        with self._list_lock:
            for audience_id, toggles in sorted(by_audience.items()):
                try:
                    self._list_changes.append(audience_id, toggles, now_ms)
                except BufferFull as full:
                    logger.warning(
                        "list buffer full; its contacts stay pending",
                        extra={"audienceId": audience_id, "refused": len(full.refused)},
                    )
                    refused.update((audience_id, record_id) for record_id in full.refused)
        retry_due_ms = now_ms + self._settings.list_retry_seconds * 1000
        return [
            _listed_recording(recording, states, due.get(recording.email), refused, retry_due_ms)
            for recording in recordings
        ]

    def _upsert(self, chunk: list[ContactWrite], deadline: float) -> list[UpsertResult | None]:
        """The chunk's call, then one for the contacts whose refused fields were dropped and that
        still have something HubSpot lacks (``needs_write``), both ending by ``deadline``. A
        contact left with nothing to send gets None. A failure of the first call raises (nothing
        of the chunk is known to be written); a failure of the second becomes its contacts'
        answers, so the first call's are kept."""
        first = self._send(chunk, deadline)
        results: list[UpsertResult | None] = list(first)
        dropped = [
            index
            for index, (contact, result) in enumerate(zip(chunk, first, strict=True))
            if drop_refused_fields(contact, result)
        ]
        if any(refers_to_unknown_property(first[index]) for index in dropped):
            self._schema.expire()
        again = [index for index in dropped if chunk[index].needs_write()]
        for index in set(dropped) - set(again):
            results[index] = None
        if again:
            try:
                retried = self._send([chunk[i] for i in again], deadline)
            except HubSpotError as failure:
                retried = [UpsertResult(chunk[i].email, error=failure) for i in again]
            for index, result in zip(again, retried, strict=True):
                results[index] = result
        return results

    def _send(self, contacts: list[ContactWrite], deadline: float) -> list[UpsertResult]:
        """One call by email; a contact merged into a record with another primary email goes by
        record id (a write by email could create a duplicate), in calls where no record appears
        twice (contacts merged into one record are written one after the other). A failure of a
        by-id call after another call was answered becomes its contacts' answers."""
        by_id = [i for i, contact in enumerate(contacts) if _written_by_id(contact)]
        if not by_id:
            return self._writer.batch_upsert([_upsert_input(c) for c in contacts], deadline)
        results: dict[int, UpsertResult] = {}
        by_email = [i for i in range(len(contacts)) if i not in set(by_id)]
        if by_email:
            answered = self._writer.batch_upsert([_upsert_input(contacts[i]) for i in by_email], deadline)
            results.update(zip(by_email, answered, strict=True))
        for call in _distinct_records(by_id, contacts):
            updates = [
                UpdateInput(_record_id(contacts[i]), contacts[i].email, contacts[i].properties) for i in call
            ]
            try:
                results.update(zip(call, self._writer.batch_update(updates, deadline), strict=True))
            except HubSpotError as failure:
                if not results:
                    raise
                results.update((i, UpsertResult(contacts[i].email, error=failure)) for i in call)
        return [results[i] for i in range(len(contacts))]

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def _upsert_input(contact: ContactWrite) -> UpsertInput:
    """A contact's upsert by email. One with no property to write (its record id is wanted, for a
    list) carries its email as its one property: the value it is upserted by, so the write
    changes nothing HubSpot holds, and the input is never one of empty properties."""
    return UpsertInput(contact.email, contact.properties or {"email": contact.email})


def _listing_basis(recording: Recording, states: Mapping[str, ContactState]) -> LedgerEntry | None:
    """The entry whose statuses a recording hands to the lists: the one it stores, or, for a
    contact settled with nothing new to store, its confirmed one (a list made again, or a target
    switched to lists, hands a contact's statuses again without any write)."""
    if recording.entry is not None:
        return recording.entry
    state = states.get(recording.email)
    return state.confirmed if recording.settled and state is not None else None


def _listed_recording(
    recording: Recording,
    states: Mapping[str, ContactState],
    hand_offs: Mapping[str, HandOff] | None,
    refused: set[tuple[str, str]],
    retry_due_ms: int,
) -> Recording:
    """The recording with ``listed`` updated for the statuses buffered; one whose change a full
    buffer refused stays pending, due at ``retry_due_ms`` (not a failed attempt)."""
    basis = _listing_basis(recording, states)
    if not hand_offs or basis is None:
        return recording
    buffered = {
        audience_id: hand_off.listed
        for audience_id, hand_off in hand_offs.items()
        if (audience_id, hand_off.toggle.record_id) not in refused
    }
    entry = replace(basis, listed={**basis.listed, **buffered}) if buffered else recording.entry
    if len(buffered) == len(hand_offs) or not recording.settled:
        return replace(recording, entry=entry)
    return replace(
        recording,
        entry=entry,
        settled=False,
        due_ms=retry_due_ms,
        attempts=states[recording.email].attempts,
    )


def _written_by_id(contact: ContactWrite) -> bool:
    return contact.previous is not None and contact.previous.written_by_id


def _distinct_records(indexes: Sequence[int], contacts: Sequence[ContactWrite]) -> list[list[int]]:
    """The contacts as calls in which no record id appears twice (HubSpot refuses such a batch)."""
    calls: list[list[int]] = []
    records: list[set[str]] = []
    for index in indexes:
        record = _record_id(contacts[index])
        for call, seen in zip(calls, records, strict=True):
            if record not in seen:
                call.append(index)
                seen.add(record)
                break
        else:
            calls.append([index])
            records.append({record})
    return calls


def _record_id(contact: ContactWrite) -> str:
    return (contact.previous.hubspot_id if contact.previous is not None else None) or ""


def _wanted(state: ContactState) -> PendingContact:
    """What the planner is asked to write for a contact: its whole desired state (what HubSpot
    already holds is skipped by the planner's ordering rules)."""
    desired = state.desired or PendingContact(state.email, "")
    return PendingContact(
        state.email, "", dict(desired.audiences), dict(desired.attributes), replay=state.replay
    )


def _marker_changes(
    recordings: Sequence[Recording], states: Mapping[str, ContactState]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(email, audience id) pairs whose held marker the recorded entries add and remove."""
    marks: list[tuple[str, str]] = []
    unmarks: list[tuple[str, str]] = []
    for recording in recordings:
        if recording.entry is None:
            continue
        state = states.get(recording.email)
        previous = state.confirmed if state is not None else None
        before = set(previous.pending_audiences) if previous is not None else set()
        after = set(recording.entry.pending_audiences)
        # Every kept change, not only the new ones: idempotent, and an entry recorded again gets
        # back a marker a failed write lost.
        marks.extend((recording.email, audience_id) for audience_id in sorted(after))
        unmarks.extend((recording.email, audience_id) for audience_id in sorted(before - after))
    return marks, unmarks
