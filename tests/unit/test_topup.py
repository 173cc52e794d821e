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
    contacts_in,
    contacts_target,
    fill_target,
    hold_back,
    messages_wanted,
)


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


# The partial tail held back under a backlog: what is kept makes only full calls.


def grouped(group: str, n: int, contacts: int, receives: int = 1) -> InboundMessage:
    """Message ``n`` of ``group`` with ``contacts`` contacts of its own."""
    body = json.dumps(
        {"v": 2, "rcv": 0, "updates": [{"email": f"{group}m{n}c{i}@example.com"} for i in range(contacts)]}
    )
    return InboundMessage(f"{group}-{n}", group, body, f"h-{group}-{n}", receive_count=receives)


def kept_prefixes(batch: list[InboundMessage], held: list[str]) -> dict[str, list[str]]:
    """Each group's kept message ids, asserting that what is held back is a suffix of its group."""
    kept: dict[str, list[str]] = {}
    for group in dict.fromkeys(m.group_id for m in batch):
        ids = [m.message_id for m in batch if m.group_id == group]
        flags = [i in held for i in ids]
        assert flags == sorted(flags), f"group {group}: {flags} holds back an earlier message"
        kept[group] = [i for i in ids if i not in held]
    return kept


def test_the_partial_tail_is_held_back_as_a_suffix_of_each_group() -> None:
    # 112 contacts: group a 6 x 10, group b 4 x 10 + one of 12 (one call of 100 and one of 12).
    batch = [grouped("a", n, 10) for n in range(6)] + [grouped("b", n, 10) for n in range(4)]
    batch.append(grouped("b", 4, 12))
    held = hold_back(batch, backlog=True)
    assert contacts_in(m for m in batch if m.message_id not in held) == 100
    assert held == ["b-4"]
    kept_prefixes(batch, held)


def test_held_back_messages_are_never_earlier_than_a_kept_one_of_their_group() -> None:
    # Holding back b's first message and keeping its second would reach 200 (93 + 7 + 100):
    # forbidden, so only c's full call is kept.
    batch = [grouped("a", 0, 93), grouped("b", 0, 50), grouped("b", 1, 7), grouped("c", 0, 100)]
    held = hold_back(batch, backlog=True)
    assert kept_prefixes(batch, held) == {"a": [], "b": [], "c": ["c-0"]}


def test_the_largest_multiple_of_a_full_call_is_kept() -> None:
    batch = [grouped("a", n, 10) for n in range(15)] + [grouped("b", n, 10) for n in range(10)]
    batch.append(grouped("c", 0, 5))  # 255 contacts: 200 of them make two full calls
    held = hold_back(batch, backlog=True)
    assert contacts_in(m for m in batch if m.message_id not in held) == 200
    kept_prefixes(batch, held)


def test_full_calls_are_found_among_uneven_groups() -> None:
    batch = [grouped(g, n, 30) for g in "abc" for n in range(3)]  # 3 groups of 90
    batch += [grouped("d", 0, 20), grouped("d", 1, 15)]  # 305: only 180 + 20 makes full calls
    held = hold_back(batch, backlog=True)
    assert contacts_in(m for m in batch if m.message_id not in held) == 200
    assert kept_prefixes(batch, held)["d"] == ["d-0"]


def test_a_contact_repeated_in_its_group_counts_once() -> None:
    again = InboundMessage("a-1", "a", grouped("a", 0, 10).body, "h", 1)  # the same ten contacts
    batch = [grouped("a", 0, 10), again, grouped("b", 0, 90), grouped("c", 0, 5)]
    held = hold_back(batch, backlog=True)
    assert held == ["c-0"]  # a's repeat costs nothing and stays; c's 5 are the tail


def test_a_message_received_often_is_never_held_back_nor_its_groups_earlier_ones() -> None:
    batch = [grouped("a", n, 10) for n in range(10)]
    batch += [grouped("b", 0, 4), grouped("b", 1, 4, receives=HOLD_BACK_MAX_RECEIVES)]
    # 108 contacts; without the guard b's two messages (8 contacts) would be held back.
    assert hold_back(batch, backlog=True, max_receives=99) == ["b-0", "b-1"]
    held = hold_back(batch, backlog=True)
    assert "b-0" not in held and "b-1" not in held
    assert held == []  # 108 cannot be cut to 100 by suffixes of a (10 each): everything is written


def test_the_receive_guard_still_lets_other_groups_be_held_back() -> None:
    batch = [grouped("a", n, 10) for n in range(9)]
    batch += [grouped("b", 0, 10, receives=HOLD_BACK_MAX_RECEIVES + 2), grouped("c", 0, 7)]
    assert hold_back(batch, backlog=True) == ["c-0"]


def test_nothing_is_held_back_without_a_backlog_or_at_one_call_or_less() -> None:
    batch = [grouped("a", n, 10) for n in range(11)] + [grouped("b", 0, 5)]  # 115 contacts
    assert hold_back(batch, backlog=False) == []
    assert hold_back(batch, backlog=True) != []
    small = [grouped("a", n, 10) for n in range(9)] + [grouped("b", 0, 5)]  # 95 contacts
    assert hold_back(small, backlog=True) == []
    exact = [grouped("a", n, 10) for n in range(10)]
    assert hold_back(exact, backlog=True) == []


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


def test_only_the_contacts_that_need_a_write_are_counted_when_the_writes_are_known() -> None:
    # a: 60 unchanged contacts (no write), b: 40 + 60 to write, c: 5 to write. Counting every
    # contact, a + b's first message make "100" (40 writes); counting writes, a + b make 100.
    batch = [grouped("a", 0, 60), grouped("b", 0, 40), grouped("b", 1, 60), grouped("c", 0, 5)]
    everyone = {
        m.message_id: [f"{m.message_id}-{i}" for i in range(n)]
        for m, n in zip(batch, (60, 40, 60, 5), strict=True)
    }
    writes = {mid: emails for mid, emails in everyone.items() if not mid.startswith("a")}
    assert hold_back(batch, backlog=True) == ["b-1", "c-0"]
    assert hold_back(batch, backlog=True, writes=writes) == ["c-0"]
    assert hold_back(batch, backlog=True, writes={"b-0": everyone["b-0"]}) == []  # 40 writes: one call


def test_a_message_with_nothing_to_write_is_kept() -> None:
    batch = [grouped("a", n, 10) for n in range(10)] + [grouped("b", 0, 30), grouped("c", 0, 5)]
    writes = {m.message_id: [f"{m.message_id}-{i}" for i in range(10)] for m in batch if m.group_id == "a"}
    writes["c-0"] = ["c-0-0", "c-0-1"]
    assert hold_back(batch, backlog=True, writes=writes) == ["c-0"]  # b's unchanged 30 cost nothing


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
