"""In-memory stand-ins for SQS FIFO and DynamoDB, so benchmarks of the consumer measure the product
and not moto (whose ~80 ms per call would dominate every figure).

They honour what the consumer relies on and nothing more:

- ``MemoryFifo``: messages of a group in send order; a group with a message in flight (received,
  neither deleted nor made visible again) hands out nothing, to anyone; one receive returns up to 10
  messages, as many as possible from one group first (as SQS FIFO does); receive counts and a new
  receipt handle per receive; ``change_message_visibility_batch`` and ``delete_message_batch`` by
  the latest receipt handle. It is also the boto3-shaped client ``QueueTopUp`` and
  ``SqsVisibilityChanger`` call (``receive_message``, ``delete_message_batch``,
  ``change_message_visibility_batch``). No deduplication, no DLQ (no message fails in a benchmark).
- ``MemoryLedger`` and ``MemoryDailyCounter``: the ``Ledger`` and ``DailyCounter`` Protocols in dicts.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hubspot_activation.messages import QueueMessage
from hubspot_activation.upsert.ledger import LedgerEntry
from hubspot_activation.upsert.plan import InboundMessage

#: Long enough that nothing reappears during a run (the template's is 720 s).
VISIBILITY_TIMEOUT = 720.0


@dataclass
class _Stored:
    message_id: str
    group_id: str
    body: str
    receive_count: int = 0
    receipt_handle: str = ""
    invisible_until: float = 0.0


class MemoryFifo:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._groups: dict[str, deque[_Stored]] = {}
        self._by_handle: dict[str, _Stored] = {}
        self._ids = itertools.count(1)
        self._handles = itertools.count(1)
        self._rotation = 0
        self.receives = 0
        self.deleted = 0

    # --- producer ----------------------------------------------------------------------------------

    def send(self, group_id: str, body: str) -> None:
        with self._lock:
            stored = _Stored(f"m{next(self._ids)}", group_id, body)
            self._groups.setdefault(group_id, deque()).append(stored)

    def publish(self, messages: Sequence[QueueMessage], request_id: str) -> int:
        """The ``MessagePublisher`` Protocol: what ingest packed goes straight into the queue."""
        for message in messages:
            self.send(message.group_id, message.body)
        return 0

    def __len__(self) -> int:
        with self._lock:
            return sum(len(group) for group in self._groups.values())

    # --- consumer ----------------------------------------------------------------------------------

    def receive(self, max_messages: int = 10) -> list[InboundMessage]:
        with self._lock:
            self.receives += 1
            now = self._clock()
            names = list(self._groups)
            if not names:
                return []
            # Start at another group each time, so consumers do not all queue up behind one group.
            self._rotation = (self._rotation + 1) % len(names)
            taken: list[_Stored] = []
            for name in names[self._rotation :] + names[: self._rotation]:
                group = self._groups[name]
                if any(stored.invisible_until > now for stored in itertools.islice(group, 10)):
                    continue  # a message of the group is in flight: the group is locked
                for stored in itertools.islice(group, max_messages - len(taken)):
                    stored.receive_count += 1
                    stored.receipt_handle = f"r{next(self._handles)}"
                    stored.invisible_until = now + VISIBILITY_TIMEOUT
                    self._by_handle[stored.receipt_handle] = stored
                    taken.append(stored)
                if len(taken) >= max_messages:
                    break
            return [
                InboundMessage(s.message_id, s.group_id, s.body, s.receipt_handle, s.receive_count)
                for s in taken
            ]

    def delete(self, receipt_handle: str) -> bool:
        with self._lock:
            stored = self._by_handle.pop(receipt_handle, None)
            if stored is None or stored.receipt_handle != receipt_handle:
                return False
            group = self._groups[stored.group_id]
            group.remove(stored)
            if not group:
                del self._groups[stored.group_id]
            self.deleted += 1
            return True

    def change_visibility(self, receipt_handle: str, seconds: float) -> None:
        with self._lock:
            stored = self._by_handle.get(receipt_handle)
            if stored is not None:
                stored.invisible_until = self._clock() + seconds

    # --- the boto3 SQS client surface the product calls -------------------------------------------

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        received = self.receive(int(kwargs.get("MaxNumberOfMessages", 1)))
        return {
            "Messages": [
                {
                    "MessageId": m.message_id,
                    "ReceiptHandle": m.receipt_handle,
                    "Body": m.body,
                    "Attributes": {
                        "MessageGroupId": m.group_id,
                        "ApproximateReceiveCount": str(m.receive_count),
                    },
                }
                for m in received
            ]
        }

    def delete_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        successful: list[dict[str, str]] = []
        failed: list[dict[str, str]] = []
        for entry in kwargs["Entries"]:
            (successful if self.delete(entry["ReceiptHandle"]) else failed).append({"Id": entry["Id"]})
        return {"Successful": successful, "Failed": failed}

    def change_message_visibility_batch(self, **kwargs: Any) -> dict[str, Any]:
        for entry in kwargs["Entries"]:
            self.change_visibility(entry["ReceiptHandle"], float(entry["VisibilityTimeout"]))
        return {"Successful": [{"Id": entry["Id"]} for entry in kwargs["Entries"]], "Failed": []}


def sqs_event(messages: Sequence[InboundMessage]) -> dict[str, Any]:
    """The Lambda SQS event the event source would hand the function for these messages."""
    return {
        "Records": [
            {
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": {
                    "ApproximateReceiveCount": str(m.receive_count),
                    "MessageGroupId": m.group_id,
                },
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:bench.fifo",
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


class MemoryLedger:
    def __init__(self) -> None:
        self.entries: dict[str, LedgerEntry] = {}
        self._lock = threading.Lock()

    def get_many(self, emails: Sequence[str]) -> dict[str, LedgerEntry]:
        with self._lock:
            return {email: self.entries[email] for email in emails if email in self.entries}

    def put_many(self, entries: Sequence[LedgerEntry]) -> dict[str, str]:
        with self._lock:
            for entry in entries:
                self.entries[entry.email] = entry
        return {}


class MemoryDailyCounter:
    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, day: str, calls: int) -> int:
        with self._lock:
            self.totals[day] = self.totals.get(day, 0) + calls
            return self.totals[day]
