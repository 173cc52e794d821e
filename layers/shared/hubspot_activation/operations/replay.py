"""``POST /replay``: re-apply failed contacts after the operator fixed the cause, and move dead
letters back to the queue - both through the sync's normal path, so the ledger's ordering rules
decide and a replay never rolls a contact back.

A failed contact is replayed by queueing an update with no change of its own (source ``replay``) in
the contact's FIFO group: the merge makes what the ledger keeps pending again, and the flusher reads
HubSpot's property definitions afresh and sends a write HubSpot refused once more. The work of one
call is bounded (API Gateway answers 504 after 30 s): what is left is reported with ``more`` and a
cursor to continue from.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..ingest.publisher import MessagePublisher
from ..ledger.issue_item import IssueKey
from ..ledger.keys import ISSUE_FAILED
from ..ledger.operations_store import OperationsStore
from ..messages import REPLAY_SOURCE, ResumeJob, requeue_messages
from .dead_letters import DeadLetterMover, MoveReport
from .queues import QueueReader
from .views import decode_cursor, encode_cursor


@dataclass(frozen=True)
class ReplayLimits:
    max_contacts: int = 1000
    max_dead_letters: int = 500
    #: wall time one call may spend (API Gateway gives up after 30 s)
    budget_seconds: float = 20.0
    page_size: int = 100


@dataclass
class _Contacts:
    emails: list[str]
    cursor: str | None


class ReplayService:
    def __init__(
        self,
        store: OperationsStore,
        publisher: MessagePublisher,
        dead_letters: DeadLetterMover | None,
        queues: QueueReader,
        dead_letter_url: str,
        shard_count: int,
        limits: ReplayLimits | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._dead_letters = dead_letters
        self._queues = queues
        self._dead_letter_url = dead_letter_url
        self._shard_count = shard_count
        self._limits = limits or ReplayLimits()
        self._clock = clock
        self._monotonic = monotonic

    def replay(self, dry_run: bool, cursor: str | None, request_id: str) -> dict[str, Any]:
        deadline = self._monotonic() + self._limits.budget_seconds
        start_key = decode_cursor(cursor, ISSUE_FAILED) if cursor else None
        contacts = self._contacts(ISSUE_FAILED, start_key, deadline)
        dlq = self._queues.depth(self._dead_letter_url) if self._dead_letter_url else None
        waiting = dlq.visible if dlq else 0
        answer: dict[str, Any] = {
            "dryRun": dry_run,
            "failedContacts": {"count": len(contacts.emails), "emails": contacts.emails},
            "cursor": contacts.cursor,
        }
        if dry_run:
            answer["deadLetters"] = {"count": waiting, "approximate": True}
            answer["more"] = contacts.cursor is not None
            return answer
        answer["failedContacts"]["messages"] = self._enqueue(contacts.emails, request_id)
        moved = self._move_dead_letters(deadline)
        answer["deadLetters"] = moved.to_json()
        answer["more"] = contacts.cursor is not None or moved.more
        return answer

    def queue_resume(self, audience_id: str, request_id: str) -> dict[str, Any]:
        """Queue one resume job for a re-activated audience (see ``upsert.resume``): the consumer
        pages through the contacts holding its changes, whatever their number, and writes them
        through the normal path. The PUT itself reads nothing and calls nothing more."""
        now_ms = int(self._clock() * 1000)
        self._publisher.publish([ResumeJob(audience_id).message(request_id, now_ms)], request_id)
        return {"queued": True}

    def _contacts(self, status: str, start_key: IssueKey | None, deadline: float) -> _Contacts:
        emails: list[str] = []
        key = start_key
        while len(emails) < self._limits.max_contacts and self._monotonic() < deadline:
            size = min(self._limits.page_size, self._limits.max_contacts - len(emails))
            page = self._store.issues(status, size, key)
            emails.extend(issue.key for issue in page.items)
            key = page.last_key
            if key is None:
                return _Contacts(emails, None)
        return _Contacts(emails, encode_cursor(key) if key else None)

    def _enqueue(self, emails: list[str], request_id: str) -> int:
        if not emails:
            return 0
        now_ms = int(self._clock() * 1000)
        messages = requeue_messages(emails, REPLAY_SOURCE, request_id, self._shard_count, now_ms)
        self._publisher.publish(messages, request_id)
        return len(messages)

    def _move_dead_letters(self, deadline: float) -> MoveReport:
        if self._dead_letters is None:
            return MoveReport()
        return self._dead_letters.move_back(self._limits.max_dead_letters, deadline)
