"""An in-memory SQS FIFO queue with the semantics the upsert consumer relies on, for fault tests.

What it keeps of SQS FIFO (and Lambda's SQS event source):

- messages of a group are handed out in the order they were sent; a group with a message in flight
  (received, not deleted, its visibility not yet expired) hands out nothing;
- one receive returns up to 10 messages, a group's messages consecutively;
- every receive counts (ApproximateReceiveCount) and issues a new receipt handle; only the latest
  handle deletes or changes the visibility;
- the answer of a batch is its ``batchItemFailures``: the messages not named are deleted, the named
  ones stay in flight until their visibility ends (the visibility timeout from the receive, or
  what ChangeMessageVisibility set); a raised exception fails the whole batch the same way;
- a message received ``max_receive_count`` times that comes up again moves to the dead-letter queue
  (with its group: the next message of the group is then handed out).

What it compresses: the template's visibility timeout (900 s) is six times the function's timeout,
so in AWS a batch is never handed out again while its function still runs. With a 1 s visibility
the simulator keeps that guarantee explicitly: a message stays in flight while its batch is being
processed, whatever the clock says.

What it leaves out: content deduplication (a re-sent request is sent again on purpose here, as a
caller's retry after SQS's five-minute window would be) and the 12-hour visibility cap.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hubspot_activation.upsert.plan import InboundMessage


@dataclass
class _Stored:
    message_id: str
    group_id: str
    body: str
    receive_count: int = 0
    receipt_handle: str = ""
    visible_at: float = 0.0
    #: received and its batch not answered yet: never handed out again meanwhile
    processing: bool = False


class FifoQueue:
    def __init__(
        self,
        visibility_timeout: float = 1.0,
        max_receive_count: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.visibility_timeout = visibility_timeout
        self.max_receive_count = max_receive_count
        self._clock = clock
        self._lock = threading.Lock()
        #: group -> its messages in send order (in flight ones included)
        self._groups: dict[str, list[_Stored]] = {}
        self._ids = itertools.count(1)
        self._handles = itertools.count(1)
        self.dead_letters: list[_Stored] = []
        #: sent, received, deleted, returned (failed items), crashed (whole batches failed),
        #: extended (visibility changes), released (DAILY pauses ended early), dead_lettered
        self.counts: Counter[str] = Counter()

    # --- producer ----------------------------------------------------------------------------------

    def send(self, group_id: str, body: str) -> str:
        with self._lock:
            message_id = f"m{next(self._ids)}"
            self._groups.setdefault(group_id, []).append(_Stored(message_id, group_id, body))
            self.counts["sent"] += 1
            return message_id

    # --- consumer ----------------------------------------------------------------------------------

    def receive(self, max_messages: int = 10) -> list[InboundMessage]:
        """Up to ``max_messages`` messages, oldest group head first, atomically (two consumers
        never get the same group)."""
        with self._lock:
            now = self._clock()
            batch: list[InboundMessage] = []
            heads = sorted(
                (group for group in self._groups.values() if group),
                key=lambda group: int(group[0].message_id[1:]),
            )
            for group in heads:
                if len(batch) >= max_messages:
                    break
                if any(self._in_flight(message, now) for message in group):
                    continue  # FIFO: the group waits for its message in flight
                while group and len(batch) < max_messages:
                    message = self._next_deliverable(group, batch)
                    if message is None:
                        break
                    batch.append(message)
            return batch

    def _next_deliverable(self, group: list[_Stored], batch: list[InboundMessage]) -> InboundMessage | None:
        """The group's next message not yet in this batch, moving exhausted ones to the DLQ."""
        taken = {message.message_id for message in batch}
        for message in list(group):
            if message.message_id in taken:
                continue
            if message.receive_count >= self.max_receive_count:
                group.remove(message)
                self.dead_letters.append(message)
                self.counts["dead_lettered"] += 1
                continue
            message.receive_count += 1
            message.receipt_handle = f"rh{next(self._handles)}"
            message.visible_at = self._clock() + self.visibility_timeout
            message.processing = True
            self.counts["received"] += 1
            return InboundMessage(
                message.message_id,
                message.group_id,
                message.body,
                message.receipt_handle,
                message.receive_count,
            )
        return None

    @staticmethod
    def _in_flight(message: _Stored, now: float) -> bool:
        return message.processing or message.visible_at > now

    def extend(self, messages: Sequence[InboundMessage], seconds: int) -> None:
        """The service's VisibilityExtender: ChangeMessageVisibility per message, by receipt handle."""
        with self._lock:
            now = self._clock()
            for inbound in messages:
                stored = self._current(inbound)
                if stored is not None:
                    stored.visible_at = now + seconds
                    self.counts["extended"] += 1

    def answer(self, messages: Sequence[InboundMessage], failed_ids: Sequence[str]) -> None:
        """The batch response: failed items stay in flight until their visibility ends, the rest
        is deleted."""
        failed = set(failed_ids)
        with self._lock:
            for inbound in messages:
                stored = self._current(inbound)
                if stored is None:
                    continue
                stored.processing = False
                if inbound.message_id in failed:
                    self.counts["returned"] += 1
                else:
                    self._groups[stored.group_id].remove(stored)
                    self.counts["deleted"] += 1

    def crash(self, messages: Sequence[InboundMessage]) -> None:
        """The function raised: the whole batch comes back after its visibility."""
        with self._lock:
            self.counts["crashed"] += 1
            for inbound in messages:
                stored = self._current(inbound)
                if stored is not None:
                    stored.processing = False
                    self.counts["returned"] += 1

    def _current(self, inbound: InboundMessage) -> _Stored | None:
        for stored in self._groups.get(inbound.group_id, ()):
            if stored.message_id == inbound.message_id:
                return stored if stored.receipt_handle == inbound.receipt_handle else None
        return None

    # --- operator ----------------------------------------------------------------------------------

    def release_paused(self, longer_than: float = 30.0) -> int:
        """Make messages paused for longer than ``longer_than`` seconds visible now: what the
        passing of a DAILY pause (until the account's midnight) looks like, compressed."""
        with self._lock:
            now = self._clock()
            released = 0
            for group in self._groups.values():
                for message in group:
                    if not message.processing and message.visible_at > now + longer_than:
                        message.visible_at = now
                        released += 1
            self.counts["released"] += released
            return released

    def redrive(self, message_ids: Sequence[str] | None = None) -> int:
        """Move dead letters back to the end of their groups (an operator's DLQ redrive)."""
        with self._lock:
            chosen = [m for m in self.dead_letters if message_ids is None or m.message_id in message_ids]
            for message in chosen:
                self.dead_letters.remove(message)
                message.receive_count = 0
                message.visible_at = 0.0
                self._groups.setdefault(message.group_id, []).append(message)
            return len(chosen)

    def backlog(self) -> int:
        """Messages not yet deleted nor dead-lettered."""
        with self._lock:
            return sum(len(group) for group in self._groups.values())
