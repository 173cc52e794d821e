"""The top-up's stopping rule: it asks SQS for just enough messages to reach the next multiple of
a full HubSpot call, so a receive does not carry the batch a few contacts past it."""

from __future__ import annotations

import json
from typing import Any

from hubspot_activation.upsert.plan import InboundMessage
from hubspot_activation.upsert.topup import (
    HOLD_BACK_MAX_RECEIVES,
    QueueTopUp,
    TopUp,
    contacts_target,
    defer_tail,
    fill_target,
    messages_wanted,
)


def contacts_in(messages: list[InboundMessage]) -> int:
    """How many distinct contacts the messages carry."""
    return len({update["email"] for m in messages for update in json.loads(m.body)["updates"]})


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
    extra = QueueTopUp(queue, "q", max_messages=200).top_up([message(i, 1) for i in range(10)]).messages  # type: ignore[arg-type]
    assert len(extra) == 90
    assert queue.asked == [10] * 9


def test_the_last_receive_asks_for_only_what_is_missing() -> None:
    queue = Queue(contacts=2)
    batch = [message(i, 2) for i in range(3)] + [message(9, 1)]  # 7 contacts
    extra = QueueTopUp(queue, "q", max_messages=200).top_up(batch).messages  # type: ignore[arg-type]
    # 93 contacts missing at ~1.75 per message, then 2 per message: never more than 100.
    assert 7 + 2 * len(extra) in (100, 101)
    assert queue.asked[-1] < 10


# The partial tail held back under a backlog: what is kept makes only full calls.


def grouped(group: str, n: int, contacts: int, receives: int = 1) -> InboundMessage:
    """Message ``n`` of ``group`` with ``contacts`` contacts of its own."""
    body = json.dumps(
        {"v": 2, "rcv": 0, "updates": [{"email": f"{group}m{n}c{i}@example.com"} for i in range(contacts)]}
    )
    return InboundMessage(f"{group}-{n}", group, body, f"h-{group}-{n}", receive_count=receives)


def writes_of(batch: list[InboundMessage], skip: frozenset[str] = frozenset()) -> list[tuple[str, list[str]]]:
    """Every contact of the batch as a write (email, its message ids), in first-seen order."""
    found: dict[str, list[str]] = {}
    for m in batch:
        for update in json.loads(m.body)["updates"]:
            if update["email"] not in skip:
                found.setdefault(update["email"], []).append(m.message_id)
    return list(found.items())


def test_the_partial_tail_of_the_writes_waits() -> None:
    # 112 writes: one call of 100 and 12 that wait, the last ones of the batch.
    batch = [grouped("a", n, 10) for n in range(6)] + [grouped("b", n, 10) for n in range(4)]
    batch.append(grouped("b", 4, 12))
    writes = writes_of(batch)
    deferred = defer_tail(batch, writes)
    assert deferred == {email for email, _ in writes[100:]}


def test_a_message_split_between_written_and_waiting_contacts() -> None:
    # 105 writes in messages of 15: the last message's last 5 wait, its other 10 are written now.
    batch = [grouped(g, n, 15) for g in "abc" for n in range(2)] + [grouped("d", 0, 15)]
    writes = writes_of(batch)
    deferred = defer_tail(batch, writes)
    assert len(deferred) == 5 and all(
        writes_by == ["d-0"] for email, writes_by in writes if email in deferred
    )
    assert len(writes) - len(deferred) == 100


def test_only_the_contacts_that_need_a_write_count() -> None:
    batch = [grouped("a", 0, 60), grouped("b", 0, 40), grouped("b", 1, 60), grouped("c", 0, 5)]
    unchanged = frozenset(f"am0c{i}@example.com" for i in range(60))
    assert defer_tail(batch, writes_of(batch, unchanged)) == {f"cm0c{i}@example.com" for i in range(5)}
    assert (
        defer_tail(batch, writes_of(batch, unchanged | {f"cm0c{i}@example.com" for i in range(5)})) == set()
    )


def test_a_contact_repeated_in_its_group_is_one_write() -> None:
    again = InboundMessage("a-1", "a", grouped("a", 0, 10).body, "h", 1)  # the same ten contacts
    batch = [grouped("a", 0, 10), again, grouped("b", 0, 90), grouped("c", 0, 5)]
    writes = writes_of(batch)
    assert len(writes) == 105
    assert defer_tail(batch, writes) == {f"cm0c{i}@example.com" for i in range(5)}


def test_a_message_received_often_is_never_sent_back_nor_are_earlier_ones_of_its_group() -> None:
    batch = [grouped("a", n, 10) for n in range(10)]
    batch += [grouped("b", 0, 4), grouped("b", 1, 4, receives=HOLD_BACK_MAX_RECEIVES)]
    writes = writes_of(batch)  # 108: b's 8 would wait without the guard
    assert defer_tail(batch, writes, max_receives=99) == {email for email, _ in writes[100:]}
    # With it, b's contacts stay (their wait would send back b-1), and a's last 8 wait instead.
    deferred = defer_tail(batch, writes)
    assert len(deferred) == 8 and all(email.startswith("am9") for email in deferred)


def test_nothing_waits_at_one_call_or_less_full_calls_or_a_tail_that_cannot_wait_whole() -> None:
    small = [grouped("a", n, 10) for n in range(9)] + [grouped("b", 0, 5)]  # 95 writes
    assert defer_tail(small, writes_of(small)) == set()
    exact = [grouped("a", n, 10) for n in range(20)]
    assert defer_tail(exact, writes_of(exact)) == set()
    # 105 writes, b's all received often: c's 5, in a group of their own, still wait.
    guarded = [grouped("b", n, 10, receives=HOLD_BACK_MAX_RECEIVES) for n in range(10)] + [grouped("c", 0, 5)]
    assert defer_tail(guarded, writes_of(guarded)) == {f"cm0c{i}@example.com" for i in range(5)}
    stuck = [grouped("b", n, 10) for n in range(9)] + [grouped("b", 9, 15, receives=HOLD_BACK_MAX_RECEIVES)]
    assert defer_tail(stuck, writes_of(stuck)) == set()  # every wait would send b-9 back


def test_the_top_up_reports_a_backlog_only_when_it_stopped_at_its_target() -> None:
    start = [message(i, 3) for i in range(10)]  # 30 contacts
    full = QueueTopUp(Queue(contacts=3), "q", max_messages=200).top_up(start)  # type: ignore[arg-type]
    assert full.backlog and contacts_in([*start, *full.messages]) >= 100
    drained = QueueTopUp(Queue(contacts=3, size=5), "q", max_messages=200).top_up(start)  # type: ignore[arg-type]
    assert not drained.backlog and len(drained.messages) == 5
    capped = QueueTopUp(Queue(contacts=1), "q", max_messages=20).top_up(start)  # type: ignore[arg-type]
    assert capped.backlog and len(capped.messages) == 20
    nothing = QueueTopUp(Queue(contacts=3), "q").top_up(start[:0])  # type: ignore[arg-type]
    assert nothing == TopUp()


def test_a_short_last_receive_is_no_backlog_even_past_the_target() -> None:
    start = [message(i, 1) for i in range(10)]
    # Asked for ten, the queue had three, of 50 contacts each: past the target, but drained.
    last = QueueTopUp(Queue(contacts=50, size=3), "q", max_messages=200).top_up(start)  # type: ignore[arg-type]
    assert len(last.messages) == 3 and contacts_in([*start, *last.messages]) > 100
    assert not last.backlog


def test_the_contacts_target_grows_when_only_a_share_needs_a_write() -> None:
    assert [contacts_target(n) for n in (0, 40, 100, 130)] == [0, 100, 0, 200]
    # Half unchanged: about 100 writes need about 200 contacts, with a margin for the estimate.
    assert contacts_target(40, write_share=0.5) == 220
    assert contacts_target(130, write_share=0.5) == 220
    assert contacts_target(500, write_share=0.5) == 660  # 250 writes -> 300, plus the margin
    assert contacts_target(10, write_share=0.01) == 550  # never more than five times a full call
    assert contacts_target(900, write_share=0.5) == 1000  # a large batch is topped up to ten calls at most
    assert contacts_target(1500, write_share=0.5) == 1500


def test_the_top_up_receives_more_when_half_the_contacts_are_unchanged() -> None:
    start = [message(i, 10) for i in range(4)]  # 40 contacts
    whole = QueueTopUp(Queue(contacts=10), "q", max_messages=200).top_up(start)  # type: ignore[arg-type]
    half = QueueTopUp(Queue(contacts=10), "q", max_messages=200).top_up(start, write_share=0.5)  # type: ignore[arg-type]
    assert contacts_in([*start, *whole.messages]) == 100
    assert contacts_in([*start, *half.messages]) == 220 and half.backlog
