"""The queue simulator keeps the SQS FIFO rules the fault tests depend on (a simulator that hands a
group to two consumers would make the suite prove nothing)."""

from __future__ import annotations

import pytest

from tests.faults.fifo import FifoQueue

pytestmark = pytest.mark.faults


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_groups_in_order_ten_at_most_and_a_group_in_flight_waits(clock: Clock) -> None:
    queue = FifoQueue(visibility_timeout=1.0, clock=clock)
    ids = [queue.send("a", f"a{i}") for i in range(8)] + [queue.send("b", f"b{i}") for i in range(8)]
    first = queue.receive(10)
    assert [m.body for m in first] == [*(f"a{i}" for i in range(8)), "b0", "b1"]
    assert queue.receive(10) == []  # both groups have messages in flight
    queue.answer(first, failed_ids=[])
    second = queue.receive(10)
    assert [m.message_id for m in second] == ids[10:]
    assert all(m.receive_count == 1 for m in second)


def test_failed_items_come_back_after_their_visibility_and_successes_are_deleted(clock: Clock) -> None:
    queue = FifoQueue(visibility_timeout=1.0, clock=clock)
    for body in ("x", "y", "z"):
        queue.send("g", body)
    batch = queue.receive(10)
    queue.extend(batch[2:], 30)  # the service's backoff for the last one
    queue.answer(batch, failed_ids=[batch[1].message_id, batch[2].message_id])
    assert queue.backlog() == 2 and queue.receive(10) == []  # still invisible
    clock.now += 1.5
    assert queue.receive(10) == []  # z is invisible for 30 s, and the group waits for it
    clock.now += 30
    again = queue.receive(10)
    assert [(m.body, m.receive_count) for m in again] == [("y", 2), ("z", 2)]
    # An old receipt handle neither deletes nor extends.
    queue.answer(batch, failed_ids=[])
    assert queue.backlog() == 2


def test_a_crash_returns_the_whole_batch_and_a_message_received_too_often_goes_to_the_dlq(
    clock: Clock,
) -> None:
    queue = FifoQueue(visibility_timeout=1.0, max_receive_count=3, clock=clock)
    poison, good = queue.send("g", "poison"), queue.send("g", "good")
    for _ in range(3):
        batch = queue.receive(10)
        assert [m.message_id for m in batch] == [poison, good]
        queue.crash(batch)
        clock.now += 1.0
    # Both were received three times (a group's messages travel together): both move, in order.
    assert queue.receive(10) == []
    assert [m.message_id for m in queue.dead_letters] == [poison, good] and queue.backlog() == 0
    assert queue.redrive() == 2
    assert [(m.body, m.receive_count) for m in queue.receive(10)] == [("poison", 1), ("good", 1)]


def test_release_paused_ends_long_pauses_only(clock: Clock) -> None:
    queue = FifoQueue(visibility_timeout=1.0, clock=clock)
    queue.send("daily", "d")
    queue.send("backoff", "b")
    batch = queue.receive(10)
    queue.extend(batch[:1], 43_200)
    queue.extend(batch[1:], 5)
    queue.answer(batch, failed_ids=[m.message_id for m in batch])
    assert queue.release_paused() == 1
    assert [m.body for m in queue.receive(10)] == ["d"]
