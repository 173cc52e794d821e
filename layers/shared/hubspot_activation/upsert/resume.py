"""Resume jobs: the merge function's side of ``PUT /audiences/{id}`` re-activating a deleted audience.

A job (``messages.ResumeJob``, its own FIFO group per audience) reads one page of the ``held``
index for its audience, queues each contact an update of source ``resume`` in the contact's own
group, and sends the next page's job with the cursor; after the last page, a sweep job due later
reads the index once more. A job finding the audience deleted again stops. A job received before
it is due goes back invisible until then. Why: docs/architecture.md ("Resume jobs").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from ..messages import (
    RESUME_SOURCE,
    QueueMessage,
    ResumeJob,
    requeue_messages,
)
from ..observability import logger
from .audiences import AudienceDirectory
from .ledger import LedgerUnavailable

#: Contacts one job queues: about a second of index reads and SQS sends.
RESUME_PAGE_SIZE = 500
#: How long after its last page a job reads the index again (DynamoDB's global secondary indexes
#: usually catch up within a second).
RESUME_SWEEP_SECONDS = 60


class QueueSender(Protocol):
    def publish(self, messages: Sequence[QueueMessage], request_id: str) -> int:
        """Send every message, in order within each group; raise when any could not be sent (a job
        sent again resends them all, and SQS drops the duplicates)."""
        ...


class HeldIndex(Protocol):
    def held_contacts(self, audience_id: str, limit: int, cursor: str | None) -> tuple[list[str], str | None]:
        """One page of the contacts holding changes of the audience, and the next page's cursor."""
        ...


@dataclass
class JobOutcome:
    #: job message ids that go back to the queue (after the transient backoff)
    failed: set[str] = field(default_factory=set)
    #: job message id -> seconds until it is due (goes back invisible that long)
    later: dict[str, int] = field(default_factory=dict)
    #: job message ids behind an early or failed job of their group, not run: they go back with it
    #: (run, a job would continue before the one ahead of it, and both would send the same pages)
    held_back: set[str] = field(default_factory=set)
    #: contacts queued
    contacts: int = 0


class ResumeJobs:
    def __init__(
        self,
        index: HeldIndex,
        directory: AudienceDirectory,
        publisher: QueueSender,
        shard_count: int,
        sweep_seconds: int = RESUME_SWEEP_SECONDS,
        page_size: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._index = index
        self._directory = directory
        self._publisher = publisher
        self._shard_count = shard_count
        self._sweep_seconds = sweep_seconds
        self._page_size = page_size or RESUME_PAGE_SIZE
        self._clock = clock

    def run(self, jobs: Mapping[str, ResumeJob]) -> JobOutcome:
        """Run the jobs in their order (message order within each group)."""
        outcome = JobOutcome()
        blocked: set[str] = set()
        for message_id, job in jobs.items():
            if job.group_id in blocked:
                outcome.held_back.add(message_id)
                continue
            now_ms = int(self._clock() * 1000)
            if job.due_ms > now_ms:
                outcome.later[message_id] = max(1, math.ceil((job.due_ms - now_ms) / 1000))
                blocked.add(job.group_id)
                continue
            try:
                outcome.contacts += self._run(message_id, job, now_ms)
            except Exception as exc:  # LedgerUnavailable, an SQS failure: the job is tried again
                level = logger.warning if isinstance(exc, LedgerUnavailable) else logger.exception
                level("resume job failed; it goes back to the queue", extra={"error": str(exc)[:300]})
                outcome.failed.add(message_id)
                blocked.add(job.group_id)
        return outcome

    def _run(self, message_id: str, job: ResumeJob, now_ms: int) -> int:
        # The stored status, not a cached one: a job that finds the audience deleted again stops.
        self._directory.forget([job.audience_id])
        metadata = self._directory.lookup([job.audience_id]).get(job.audience_id)
        if metadata is not None and (metadata.deleted or metadata.unreadable):
            logger.info("resume job stopped: the audience is deleted again or unreadable")
            return 0
        emails, cursor = self._index.held_contacts(job.audience_id, self._page_size, job.cursor)
        # Nonces from the job's message id: a job received twice (its delete failed) sends the same
        # messages, which SQS drops as duplicates within its 5-minute window.
        self._queue_contacts(emails, f"{message_id}:contacts", now_ms)
        follow_up: ResumeJob | None
        if cursor is not None:
            follow_up = replace(job, cursor=cursor, due_ms=0)
        elif not job.sweep:
            due_ms = now_ms + self._sweep_seconds * 1000
            follow_up = ResumeJob(job.audience_id, None, sweep=True, due_ms=due_ms)
        else:
            follow_up = None
        if follow_up is not None:
            self._publisher.publish([follow_up.message(f"{message_id}:next", now_ms)], message_id)
        return len(emails)

    def _queue_contacts(self, emails: list[str], nonce: str, now_ms: int) -> None:
        if not emails:
            return
        messages = requeue_messages(emails, RESUME_SOURCE, nonce, self._shard_count, now_ms)
        self._publisher.publish(messages, nonce)
