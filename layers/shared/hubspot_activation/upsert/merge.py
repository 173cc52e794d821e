"""The merge: queue messages in, contacts' desired states out. No HubSpot call.

Each batch's updates are coalesced per contact and merged into the contact's desired state with a
conditional write (``state.ContactStates.merge``): merging is idempotent and order-insensitive, so
a duplicate, a replay, a redrive or an older message changes nothing. A contact that changed
becomes pending, and the flusher lanes it belongs to are woken. Resume jobs (a re-activated
audience) run here too; messages that are not ours to read go to the dead-letter queue at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..messages import ResumeJob
from ..observability import logger
from .ledger import LedgerUnavailable
from .plan import InboundMessage, coalesce, messages_to_return, retry_schedule
from .ports import DeadLetters, FlushWaker, VisibilityExtender
from .resume import ResumeJobs
from .state import ContactStates


@dataclass
class MergeReport:
    failed_message_ids: list[str] = field(default_factory=list)
    contacts: int = 0
    #: contacts whose desired state changed
    changed: int = 0
    #: contacts that became pending
    newly_pending: int = 0
    #: contacts whose state the ledger refused (recorded as failed)
    refused: int = 0
    undecodable: int = 0
    contacts_resumed: int = 0
    #: resume jobs not due yet: message id -> seconds they go back invisible (in failed_message_ids)
    jobs_not_due: dict[str, int] = field(default_factory=dict)


class MergeService:
    def __init__(
        self,
        states: ContactStates,
        lane_of: Callable[[str], int],
        waker: FlushWaker | None = None,
        extender: VisibilityExtender | None = None,
        dead_letters: DeadLetters | None = None,
        resume: ResumeJobs | None = None,
        retry_base_seconds: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``lane_of`` tells which flusher lane writes a contact (by email)."""
        self._states = states
        self._lane_of = lane_of
        self._waker = waker
        self._extender = extender
        self._dead_letters = dead_letters
        self._resume = resume
        self._retry_base = retry_base_seconds
        self._clock = clock

    def process(self, messages: Sequence[InboundMessage]) -> MergeReport:
        report = MergeReport()
        batch = coalesce(messages)
        failed = self._set_aside(messages, batch.undecodable, report)
        report.contacts = len(batch.contacts)
        if batch.contacts:
            try:
                result = self._states.merge(list(batch.contacts.values()), int(self._clock() * 1000))
            except LedgerUnavailable as exc:
                logger.error(
                    "merge failed; the messages go back to the queue", extra={"error": str(exc)[:500]}
                )
                failed.update(mid for contact in batch.contacts.values() for mid in contact.message_ids)
            else:
                report.changed = len(result.changed)
                report.newly_pending = len(result.newly_pending)
                report.refused = len(result.refused)
                if result.changed and self._waker is not None:
                    # Every batch that changed something wakes its lanes, not only those with
                    # contacts new to the index: a run that found the backlog still being merged
                    # ended, and the batch that empties the queue must start the next.
                    self._waker.wake({self._lane_of(email) for email in result.changed})
        if batch.jobs:
            failed.update(self._run_jobs(batch.jobs, report))
        report.failed_message_ids = messages_to_return(messages, failed)
        self._back_off(messages, report)
        return report

    def _run_jobs(self, jobs: dict[str, ResumeJob], report: MergeReport) -> set[str]:
        if self._resume is None:
            logger.error("resume jobs received but no resume runner is configured; they go back")
            return set(jobs)
        outcome = self._resume.run(jobs)
        report.contacts_resumed = outcome.contacts
        report.jobs_not_due = outcome.later
        return outcome.failed | outcome.held_back | set(outcome.later)

    def _set_aside(
        self, messages: Sequence[InboundMessage], undecodable: dict[str, str], report: MergeReport
    ) -> set[str]:
        """Messages that are not ours to read can never succeed: they go to the dead-letter queue
        at once instead of being retried for hours. Returns the ids that must still go back to the
        queue (no dead-letter queue configured, or it refused them)."""
        report.undecodable = len(undecodable)
        if not undecodable:
            return set()
        for message_id, reason in undecodable.items():
            logger.error("undecodable message", extra={"messageId": message_id, "error": reason})
        if self._dead_letters is None:
            return set(undecodable)
        return self._dead_letters.send([m for m in messages if m.message_id in undecodable])

    def _back_off(self, messages: Sequence[InboundMessage], report: MergeReport) -> None:
        """Failed messages come back after a backoff that grows with their receive count; a resume
        job not due yet comes back when it is due."""
        if self._extender is None:
            return
        returned = [mid for mid in report.failed_message_ids if mid not in report.jobs_not_due]
        schedule = retry_schedule(messages, returned, self._retry_base, None, self._clock())
        for seconds, group in schedule.items():
            self._extender.extend(group, seconds)
        for message in messages:
            if message.message_id in report.jobs_not_due:
                self._extender.extend([message], report.jobs_not_due[message.message_id])
