"""The upsert use case: queue messages in, HubSpot contacts and ledger records out.

A thin shell around the planner (``plan``): it reads the ledger and the property definitions,
sends the writes the plan asks for, records the outcomes, and hands back the messages that must be
retried. It knows nothing about Lambda: the adapter turns the event into InboundMessages and the
report into ``batchItemFailures``.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..emails import scrub_emails
from ..hubspot.batch import MAX_BATCH_INPUTS, UpsertInput, UpsertResult
from ..hubspot.client import CallStats
from ..hubspot.errors import DailyLimitReached, DeadlineReached, ErrorKind, HubSpotError
from ..observability import logger
from .audiences import AudienceDirectory, AudienceMetadata
from .ledger import FAILED, Ledger, LedgerEntry, LedgerUnavailable
from .plan import (
    RETRY_BASE_SECONDS,
    Batch,
    ContactWrite,
    InboundMessage,
    Outcome,
    ambiguous_entry,
    attributes_to_define,
    audiences_to_ensure,
    coalesce,
    drop_refused_fields,
    messages_to_return,
    outcome_of,
    plan_writes,
    refers_to_unknown_property,
    retry_schedule,
    unwritten_outcome,
)
from .properties import AudienceProperty, audience_property_name
from .resume import ResumeJobs
from .schema import PropertySchema

#: Time to record outcomes after the last HubSpot call.
RECORD_MARGIN_SECONDS = 10.0
#: An audience without stored metadata is synced.
_LIVE = AudienceMetadata(None, deleted=False)


class ContactWriter(Protocol):
    """The part of the HubSpot client the service writes through."""

    def batch_upsert(
        self, inputs: Sequence[UpsertInput], deadline: float | None = None
    ) -> list[UpsertResult]:
        """``deadline``, a value of the writer's monotonic clock: the call, its retries and waits
        included, ends by then (it raises a transient HubSpotError, ``DeadlineReached`` when
        nothing was sent, rather than run past it)."""
        ...

    def stats(self) -> CallStats: ...

    @property
    def max_call_seconds(self) -> float:
        """The longest one call takes when nothing cuts it short: every retry and wait of it."""
        ...


class DeadLetters(Protocol):
    def send(self, messages: Sequence[InboundMessage]) -> set[str]:
        """Move these messages to the dead-letter queue; returns the ids that could not be moved."""
        ...


class HoldBack(Protocol):
    def __call__(
        self, messages: Sequence[InboundMessage], writes: Sequence[tuple[str, Sequence[str]]]
    ) -> set[str]:
        """Given the batch and the contacts that need a HubSpot write (email, message ids; in batch
        order), the emails whose writes wait for a later invocation so the rest make full calls."""
        ...


class HeldMarkers(Protocol):
    """The held markers of the ledger (see ``ledger.keys``): (email, audience id) pairs."""

    def mark_held(self, marks: Sequence[tuple[str, str]], now_ms: int) -> None: ...

    def unmark_held(self, marks: Sequence[tuple[str, str]]) -> None: ...


class VisibilityExtender(Protocol):
    def extend(self, messages: Sequence[InboundMessage], seconds: int) -> None:
        """Make these received messages visible again in ``seconds`` (a retry backoff, a DAILY
        limit pause, or 0: at once)."""
        ...


@dataclass
class SyncReport:
    failed_message_ids: list[str] = field(default_factory=list)
    synced: int = 0
    skipped_unchanged: int = 0
    failed: int = 0
    retried_later: int = 0
    warnings: int = 0
    hubspot_requests: int = 0
    throttled: int = 0
    #: messages that were not ours to read (moved to the dead-letter queue at once)
    undecodable: int = 0
    daily_limit_resets_at: float | None = None
    #: HubSpot's remaining burst budget after the last call (None when no call was made)
    rate_limit_remaining: int | None = None
    #: messages handed back (to be made visible at once) so the writes made full calls, and how many
    #: contacts' writes wait for them
    held_message_ids: list[str] = field(default_factory=list)
    contacts_held_back: int = 0
    #: messages handed back (made visible at once, no backoff) because the invocation, after writing
    #: others, had no time left for their contacts' calls, and how many contacts that left unwritten
    out_of_time_message_ids: list[str] = field(default_factory=list)
    contacts_out_of_time: int = 0
    #: resume jobs not due yet: message id -> seconds they go back invisible (in failed_message_ids)
    jobs_not_due: dict[str, int] = field(default_factory=dict)
    #: contacts the resume jobs of the batch queued
    contacts_resumed: int = 0
    #: email -> what happened to each contact
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def count(self) -> None:
        counts = Counter(self.outcomes.values())
        self.synced = counts[Outcome.SYNCED]
        self.skipped_unchanged = counts[Outcome.SKIPPED]
        self.failed = counts[Outcome.FAILED]
        self.retried_later = counts[Outcome.RETRY]


@dataclass
class _Invocation:
    """What one ``process`` call works on: its messages and their contacts, its deadline and what
    it has decided so far."""

    report: SyncReport
    remaining_seconds: Callable[[], float]
    messages: list[InboundMessage]
    batch: Batch
    hold_back: HoldBack | None = None
    #: emails whose writes wait for a later invocation (the hold-back's choice)
    deferred: set[str] = field(default_factory=set)
    #: emails to hand back to the queue
    retry: set[str] = field(default_factory=set)
    #: emails whose write was not started for lack of time (handed back at once)
    out_of_time: set[str] = field(default_factory=set)
    records: list[LedgerEntry] = field(default_factory=list)
    #: the ledger as the invocation read it
    previous: dict[str, LedgerEntry] = field(default_factory=dict)


def _unlimited() -> float:
    return float("inf")


class SyncService:
    def __init__(
        self,
        writer: ContactWriter,
        schema: PropertySchema,
        ledger: Ledger,
        extender: VisibilityExtender | None = None,
        clock: Callable[[], float] = time.time,
        retry_base_seconds: int = RETRY_BASE_SECONDS,
        dead_letters: DeadLetters | None = None,
        directory: AudienceDirectory | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        markers: HeldMarkers | None = None,
        resume: ResumeJobs | None = None,
    ) -> None:
        """``monotonic`` is the writer's clock, the one its calls' deadlines are read on.
        ``markers`` keeps a held marker for each audience change a contact's entry keeps pending,
        ``resume`` runs the batch's resume jobs (without them, jobs go back to the queue)."""
        self._markers = markers
        self._resume = resume
        self._dead_letters = dead_letters
        self._directory = directory
        self._writer = writer
        self._schema = schema
        self._ledger = ledger
        self._extender = extender
        self._clock = clock
        self._retry_base = retry_base_seconds
        self._monotonic = monotonic
        # Each chunk gets the client's longest call as its deadline, a second call for refused
        # fields included: the client ends its calls by then, so a chunk is started only when that
        # much time is left, plus the time to record the outcomes.
        self._call_seconds = writer.max_call_seconds

    def process(
        self,
        messages: Sequence[InboundMessage],
        remaining_seconds: Callable[[], float] | None = None,
        hold_back: HoldBack | None = None,
    ) -> SyncReport:
        """``remaining_seconds`` is the invocation's time left: no HubSpot call is started without
        enough of it, and the contacts not reached go back to the queue at once, without backoff
        (``out_of_time_message_ids``), instead of timing out; when no call had time at all, they go
        back after the transient backoff (``failed_message_ids``).
        ``hold_back`` is asked, once the ledger tells which contacts need a write, which of them
        wait so the rest make full calls; their messages go back (``held_message_ids``)."""
        run = _Invocation(
            SyncReport(), remaining_seconds or _unlimited, list(messages), coalesce(messages), hold_back
        )
        before = self._writer.stats()
        try:
            self._sync(run)
        except DailyLimitReached as exc:
            # Contacts already answered keep their outcome; the rest wait for the reset.
            run.report.daily_limit_resets_at = exc.resets_at
            run.retry.update(email for email in run.batch.contacts if email not in run.report.outcomes)
        except (HubSpotError, LedgerUnavailable) as exc:
            # Nothing is known to be recorded: hand everything back (HubSpot upserts are idempotent).
            logger.error("sync stopped; messages go back to the queue", extra={"error": str(exc)[:500]})
            run.retry.update(run.batch.contacts)
        self._run_jobs(run)
        self._finish(run, before)
        return run.report

    def _run_jobs(self, run: _Invocation) -> None:
        jobs = run.batch.jobs
        if not jobs:
            return
        if self._resume is None:
            logger.error("resume jobs received but no resume runner is configured; they go back")
            run.report.failed_message_ids.extend(jobs)
            return
        outcome = self._resume.run(jobs)
        run.report.contacts_resumed = outcome.contacts
        run.report.jobs_not_due = outcome.later
        run.report.failed_message_ids.extend(sorted(outcome.failed | outcome.held_back))

    def _finish(self, run: _Invocation, before: CallStats) -> None:
        report, messages, batch = run.report, run.messages, run.batch
        for email in run.retry:
            report.outcomes[email] = Outcome.RETRY
        report.count()
        failed = self._set_aside(messages, batch, report)
        failed.update(mid for email in run.retry for mid in batch.contacts[email].message_ids)
        failed.update(report.failed_message_ids)  # resume jobs that failed
        failed.update(report.jobs_not_due)
        report.failed_message_ids = messages_to_return(messages, failed)
        self._hand_back(run)
        self._return_out_of_time(run)
        after = self._writer.stats()
        report.hubspot_requests = after.requests - before.requests
        report.throttled = after.throttled - before.throttled
        if report.hubspot_requests:
            report.rate_limit_remaining = after.rate_limit_remaining
        if self._extender is not None:
            schedule = retry_schedule(
                messages,
                [mid for mid in report.failed_message_ids if mid not in report.jobs_not_due],
                self._retry_base,
                report.daily_limit_resets_at,
                self._clock(),
            )
            for seconds, group in schedule.items():
                self._extender.extend(group, seconds)
            late = set(report.out_of_time_message_ids)
            if late:
                self._extender.extend([m for m in messages if m.message_id in late], 0)
            for message in messages:
                if message.message_id in report.jobs_not_due:
                    self._extender.extend([message], report.jobs_not_due[message.message_id])

    def _set_aside(self, messages: Sequence[InboundMessage], batch: Batch, report: SyncReport) -> set[str]:
        """Messages that are not ours to read can never succeed: they go to the dead-letter queue
        at once instead of being retried for hours. Returns the ids that must still go back to the
        queue (no dead-letter queue configured, or it refused them)."""
        report.undecodable = len(batch.undecodable)
        if not batch.undecodable:
            return set()
        for message_id, reason in batch.undecodable.items():
            logger.error("undecodable message", extra={"messageId": message_id, "error": reason})
        if self._dead_letters is None:
            return set(batch.undecodable)
        return self._dead_letters.send([m for m in messages if m.message_id in batch.undecodable])

    def _sync(self, run: _Invocation) -> None:
        batch = run.batch
        if not batch.contacts:
            return
        ledger = self._ledger.get_many(list(batch.contacts))
        run.previous = ledger
        if batch.replay:
            # An operator fixed something (a property freed, created or allowed): see it now,
            # not when the definitions' cache expires.
            self._schema.refresh()
        audiences = self._audiences(audiences_to_ensure(batch, ledger))
        definitions = self._schema.definitions_for(attributes_to_define(batch, ledger))
        plan = plan_writes(batch, ledger, audiences, definitions, self._now_ms())
        if run.hold_back is not None:
            run.deferred = run.hold_back(run.messages, [(w.email, w.message_ids) for w in plan.writes])
        run.report.outcomes.update(plan.outcomes)
        run.records.extend(plan.records)
        try:
            self._write([w for w in plan.writes if w.email not in run.deferred], run)
        finally:
            # Whatever stopped the writes, what is known so far is recorded (a DAILY stop included).
            self._record(run)
        held = {audience_id for audience_id, prop in audiences.items() if prop.deleted}
        if held:
            self._recheck_held(run, plan.contacts, held)
        contacts = [
            contact
            for contact in plan.contacts
            if contact.email not in run.deferred and contact.email not in run.out_of_time
        ]
        run.report.warnings = sum(len(contact.warnings) for contact in contacts)
        for contact in contacts:
            if contact.warnings or contact.problems:
                self._log_contact(contact, run.report.outcomes.get(contact.email))

    def _recheck_held(self, run: _Invocation, contacts: list[ContactWrite], held: set[str]) -> None:
        """A PUT may have re-activated an audience after this batch read it as deleted, and queued
        the contacts it found holding changes before this batch recorded its own: the contacts
        holding changes of an audience active again go back to the queue, and their next pass
        writes what is now recorded."""
        assert self._directory is not None  # only a directory marks an audience deleted
        self._directory.forget(held)
        metadata = self._directory.lookup(held)
        active = {audience_id for audience_id in held if not metadata.get(audience_id, _LIVE).deleted}
        if not active:
            return
        run.retry.update(
            contact.email
            for contact in contacts
            if contact.email not in run.deferred and active.intersection(contact.pending_audiences)
        )

    @staticmethod
    def _hand_back(run: _Invocation) -> None:
        """The messages of the deferred contacts, with every later message of their group (order),
        go back unprocessed for those contacts; the contacts written from them now are skipped as
        unchanged when they return. A message already going back as failed keeps its backoff."""
        deferred = run.deferred - run.retry
        if not deferred:
            return
        report = run.report
        ids = {mid for email in deferred for mid in run.batch.contacts[email].message_ids}
        failed = set(report.failed_message_ids)
        report.held_message_ids = [
            mid
            for mid in messages_to_return(run.messages, ids)
            if mid not in failed and mid not in run.batch.undecodable
        ]
        report.contacts_held_back = len(deferred)

    def _return_out_of_time(self, run: _Invocation) -> None:
        """The messages of the contacts left unwritten for lack of time, with every later message
        of their group, go back visible at once: they did not fail, so no backoff. SQS counts
        their receive all the same (no API returns a message uncounted); their contacts go first
        in the next invocation's calls (see ``_write``), ahead of those received for the first
        time, so a shortage of time does not send the same messages back again and again toward
        the DLQ. A message already going back as failed or held back keeps that."""
        late = run.out_of_time - run.retry
        if not late:
            return
        report = run.report
        ids = {mid for email in late for mid in run.batch.contacts[email].message_ids}
        taken = {*report.failed_message_ids, *report.held_message_ids, *run.batch.undecodable}
        report.out_of_time_message_ids = [
            mid for mid in messages_to_return(run.messages, ids) if mid not in taken
        ]
        report.contacts_out_of_time = len(late)

    def _audiences(self, wanted: dict[str, str | None]) -> dict[str, AudienceProperty]:
        """The audience properties, with the metadata the operator stored: its name labels the
        property, and a deleted audience gets no property made sure of (its changes are held).
        An audience whose metadata cannot be read gets none either: its changes wait for a replay
        on its own contacts, and the rest of the batch is synced."""
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
        return {**self._schema.ensure_audiences(live), **settled} if live else settled

    def _write(self, writes: list[ContactWrite], run: _Invocation) -> None:
        # Contacts of messages received before go first: a message sent back for lack of time is
        # then written first when it returns, instead of being the tail that is sent back again.
        receives = {message.message_id: message.receive_count for message in run.messages}
        writes = sorted(writes, key=lambda w: -max((receives.get(m, 1) for m in w.message_ids), default=1))
        for start in range(0, len(writes), MAX_BATCH_INPUTS):
            chunk = writes[start : start + MAX_BATCH_INPUTS]
            if run.remaining_seconds() - RECORD_MARGIN_SECONDS < self._call_seconds:
                self._out_of_time(writes[start:], run, progressed=start > 0)
                return
            sent_ms = self._now_ms()
            try:
                results = self._upsert(chunk, self._monotonic() + self._call_seconds)
            except DailyLimitReached:
                raise
            except HubSpotError as exc:
                logger.warning(
                    "batch upsert failed; contacts go back to the queue", extra={"error": str(exc)[:500]}
                )
                run.retry.update(contact.email for contact in chunk)
                if exc.ambiguous:
                    run.records.extend(ambiguous_entry(contact, self._now_ms()) for contact in chunk)
                if exc.kind is ErrorKind.CONFIGURATION:
                    run.retry.update(contact.email for contact in writes[start + MAX_BATCH_INPUTS :])
                    return
                continue
            stop = self._settle(chunk, results, sent_ms, run)
            if isinstance(stop, DailyLimitReached):
                raise stop
            if stop is not None:
                run.retry.update(contact.email for contact in writes[start + MAX_BATCH_INPUTS :])
                return

    @staticmethod
    def _out_of_time(rest: list[ContactWrite], run: _Invocation, progressed: bool) -> None:
        """The contacts no call has time for. After some were written they go back at once, first
        in line. When the set-up alone used the time (a slow HubSpot or DynamoDB), nothing was
        written: coming back at once would meet the same slowness and burn a receive count per
        invocation toward the DLQ, so they back off like any transient failure."""
        emails = [contact.email for contact in rest]
        if progressed:
            logger.warning("time is running out; the rest of the batch goes back to the queue at once")
            run.out_of_time.update(emails)
        else:
            logger.warning("no time for a call after the set-up; the batch goes back after a backoff")
            run.retry.update(emails)

    def _settle(
        self,
        chunk: list[ContactWrite],
        results: list[UpsertResult | None],
        sent_ms: int,
        run: _Invocation,
    ) -> HubSpotError | None:
        """Take each contact's answer. A contact whose call was not made for lack of time goes back
        at once like the chunks not started; the others get their outcome and ledger entry (a
        contact left with nothing to write, None, like those the plan found nothing to write for).
        Returns an error among the answers that stops the writes (the daily limit, a configuration
        problem), after the answers before it are taken."""
        now_ms = self._now_ms()
        stop: HubSpotError | None = None
        for contact, result in zip(chunk, results, strict=True):
            if result is None:
                # HubSpot's answer to what was sent replaces any refusal recorded before.
                run.report.outcomes[contact.email], unwritten = unwritten_outcome(contact, now_ms)
                run.records.append(unwritten)
                continue
            error = result.error
            if isinstance(error, DeadlineReached):
                run.out_of_time.add(contact.email)
                continue
            if isinstance(error, DailyLimitReached) or (
                error is not None and error.kind is ErrorKind.CONFIGURATION
            ):
                stop = error
            outcome, entry = outcome_of(contact, result, sent_ms, now_ms)
            if outcome is Outcome.RETRY:
                run.retry.add(contact.email)
            else:
                run.report.outcomes[contact.email] = outcome
            if entry is not None:
                run.records.append(entry)
        return stop

    def _upsert(self, chunk: list[ContactWrite], deadline: float) -> list[UpsertResult | None]:
        """The chunk's call, then one for the contacts whose refused fields were dropped and that
        have something left to write, both ending by ``deadline``. A contact left with nothing gets
        None: sent again it would be created with its email alone, or written nothing. A failure of
        the first call raises (nothing of the chunk is known to be written); a failure of the
        second becomes its contacts' answers, so the first call's answers are kept and recorded."""
        first = self._writer.batch_upsert([UpsertInput(c.email, c.properties) for c in chunk], deadline)
        results: list[UpsertResult | None] = list(first)
        dropped = [
            index
            for index, (contact, result) in enumerate(zip(chunk, first, strict=True))
            if drop_refused_fields(contact, result)
        ]
        if any(refers_to_unknown_property(first[index]) for index in dropped):
            # Every write of this invocation is planned already: re-reading the definitions now
            # would spend the chunk's deadline on a call none of them waits for. The next read does.
            self._schema.expire()
        again = [index for index in dropped if chunk[index].properties]
        for index in set(dropped) - set(again):
            results[index] = None
        if again:
            try:
                retried = self._writer.batch_upsert(
                    [UpsertInput(chunk[i].email, chunk[i].properties) for i in again], deadline
                )
            except HubSpotError as failure:
                retried = [UpsertResult(chunk[i].email, error=failure) for i in again]
            for index, result in zip(again, retried, strict=True):
                results[index] = result
        return results

    def _record(self, run: _Invocation) -> None:
        """Store the outcomes. An entry the ledger cannot hold fails that contact alone, with the
        reason, instead of sending the whole batch back (and its good contacts to the DLQ).
        The held markers follow the entries: one is stored before the entry that keeps its change
        and deleted after the entry that no longer does, so an entry never keeps a change no
        marker lists (a marker left without a change only makes a resume queue that contact for
        nothing)."""
        marks, unmarks = self._marker_changes(run)
        if marks and self._markers is not None:
            self._markers.mark_held(marks, self._now_ms())
        refused = self._ledger.put_many(run.records)
        if unmarks and self._markers is not None:
            self._markers.unmark_held([mark for mark in unmarks if mark[0] not in refused])
        if not refused:
            return
        for email in refused:
            logger.error("ledger refused a contact's state", extra={"contactHash": contact_hash(email)})
            run.retry.discard(email)
            run.report.outcomes[email] = Outcome.FAILED
        # What can be recorded of them: that they failed, and why.
        self._ledger.put_many(
            [
                LedgerEntry(email, FAILED, reason=reason, updated_at_ms=self._now_ms())
                for email, reason in refused.items()
            ]
        )

    @staticmethod
    def _marker_changes(run: _Invocation) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(email, audience id) pairs whose marker the recorded entries add and remove."""
        newest = {entry.email: entry for entry in run.records}
        marks: list[tuple[str, str]] = []
        unmarks: list[tuple[str, str]] = []
        for email, entry in newest.items():
            previous = run.previous.get(email)
            before = set(previous.pending_audiences) if previous is not None else set()
            after = set(entry.pending_audiences)
            # Every kept change, not only the new ones: idempotent, and an entry recorded again
            # gets back a marker a failed write lost (or one written before markers existed).
            marks.extend((email, audience_id) for audience_id in sorted(after))
            unmarks.extend((email, audience_id) for audience_id in sorted(before - after))
        return marks, unmarks

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    @staticmethod
    def _log_contact(contact: ContactWrite, outcome: Outcome | None) -> None:
        logger.info(
            "contact synced with warnings" if outcome is Outcome.SYNCED else "contact not fully synced",
            extra={
                "contactHash": contact_hash(contact.email),
                "warnings": {name: scrub_emails(text) for name, text in contact.warnings.items()},
                "problems": [scrub_emails(text) for text in contact.problems],
            },
        )


def contact_hash(email: str) -> str:
    """Logs identify a contact without writing its email address."""
    return hashlib.sha256(email.encode("utf-8")).hexdigest()[:16]


__all__ = ["ContactWriter", "InboundMessage", "SyncReport", "SyncService", "VisibilityExtender"]
