"""The top-up's stopping rule: it asks SQS for just enough messages to reach the next multiple of
a full HubSpot call, so a receive does not carry the batch a few contacts past it."""

from __future__ import annotations

import json
from typing import Any

from hubspot_activation.upsert.plan import InboundMessage
from hubspot_activation.upsert.topup import QueueTopUp, fill_target, messages_wanted


def message(n: int, contacts: int) -> InboundMessage:
    body = json.dumps(
        {"v": 2, "rcv": 0, "updates": [{"email": f"m{n}c{i}@example.com"} for i in range(contacts)]}
    )
    return InboundMessage(message_id=f"m{n}", group_id=f"g{n % 8}", body=body, receipt_handle=f"h{n}")


class Queue:
    """A queue of messages of ``contacts`` contacts each, recording how many each receive asked for."""

    def __init__(self, contacts: int, size: int = 500) -> None:
        self.contacts = contacts
        self.left = size
        self.asked: list[int] = []
        self.sent = 0

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        count = min(kwargs["MaxNumberOfMessages"], self.left)
        self.asked.append(kwargs["MaxNumberOfMessages"])
        self.left -= count
        out = []
        for _ in range(count):
            self.sent += 1
            m = message(1000 + self.sent, self.contacts)
            out.append({"MessageId": m.message_id, "ReceiptHandle": m.receipt_handle, "Body": m.body})
        return {"Messages": out}


def test_fill_target_is_the_next_multiple_of_a_full_call() -> None:
    assert [fill_target(n) for n in (1, 100, 101, 250)] == [100, 100, 200, 300]


def test_messages_wanted_closes_the_gap_without_overshooting() -> None:
    assert messages_wanted(90, 1.0) == 90
    assert messages_wanted(4, 2.0) == 2
    assert messages_wanted(5, 2.0) == 3
    assert messages_wanted(1, 125.0) == 1  # a large message: one is enough


def test_one_contact_messages_fill_exactly_one_call() -> None:
    queue = Queue(contacts=1)
    extra = QueueTopUp(queue, "q", max_messages=200).fill([message(i, 1) for i in range(10)])  # type: ignore[arg-type]
    assert len(extra) == 90
    assert queue.asked == [10] * 9


def test_the_last_receive_asks_for_only_what_is_missing() -> None:
    queue = Queue(contacts=2)
    batch = [message(i, 2) for i in range(3)] + [message(9, 1)]  # 7 contacts
    extra = QueueTopUp(queue, "q", max_messages=200).fill(batch)  # type: ignore[arg-type]
    # 93 contacts missing at ~1.75 per message, then 2 per message: never more than 100.
    assert 7 + 2 * len(extra) in (100, 101)
    assert queue.asked[-1] < 10
