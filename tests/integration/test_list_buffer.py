"""List buffers in the ledger (moto, the table as the template declares it): each record's newest
membership change wins whatever order changes arrive in, duplicates change nothing, a drain takes
out exactly what it sent while changes keep arriving, and a shard item stays within its bound."""

from __future__ import annotations

import contextlib
import itertools
import random
from collections.abc import Iterator, Sequence
from typing import Any

import boto3
import pytest
from hubspot_activation.ledger.keys import (
    DUE_AT,
    KEY,
    LIST_PENDING_PARTITION,
    PENDING_PARTITION,
    PENDING_PARTITIONS,
    list_buffer_key,
    list_lease_key,
    pending_partition_value,
)
from hubspot_activation.ledger.list_buffer import MAX_BYTES, DynamoDbListBuffer, shard_of
from hubspot_activation.lists.model import BufferFull, MembershipResult, Toggle
from hubspot_activation.lists.ports import DueLists, ListBuffer
from hubspot_activation.lists.service import ListDrain
from moto import mock_aws

from tests.conftest import create_ledger_table

NOW = 1_796_000_000_000
AUDIENCE = "aud-1"


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        create_ledger_table()
        yield boto3.client("dynamodb")


def buffer(dynamodb: Any, **options: Any) -> DynamoDbListBuffer:
    return DynamoDbListBuffer(dynamodb, "ledger", **options)


def add(record_id: str, *rank: int) -> Toggle:
    return Toggle(record_id, True, rank)


def remove(record_id: str, *rank: int) -> Toggle:
    return Toggle(record_id, False, rank)


def drain_into(store: DynamoDbListBuffer, members: set[str], now_ms: int = NOW) -> list[Toggle]:
    """What a drain does: read, apply to the list (``members``, in order), take out what was sent."""
    sent = store.read(AUDIENCE)
    for toggle in sent:
        (members.add if toggle.member else members.discard)(toggle.record_id)
    store.settle(AUDIENCE, sent, now_ms)
    return sent


def item(dynamodb: Any, audience_id: str, shard: int) -> dict[str, Any]:
    key = {KEY: {"S": list_buffer_key(audience_id, shard)}}
    return dict(dynamodb.get_item(TableName="ledger", Key=key, ConsistentRead=True).get("Item") or {})


def dynamodb_size(value: dict[str, Any]) -> int:
    """An attribute value's size by DynamoDB's documented rules (numbers counted at their most)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode("utf-8"))
    if kind == "N":
        return 21
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + dynamodb_size(v) + 1 for k, v in inner.items())
    raise AssertionError(f"unexpected attribute type {kind}")


def item_size(stored: dict[str, Any]) -> int:
    return sum(len(name.encode("utf-8")) + dynamodb_size(value) for name, value in stored.items())


def test_keys_never_read_as_an_email_nor_as_another_items_key() -> None:
    keys = [list_buffer_key("x@y.com", 3), list_buffer_key("a" * 5000, 0), list_lease_key("x@y.com")]
    assert all("@" not in key and len(key) < 100 for key in keys)
    assert list_buffer_key("aud", 0) != list_buffer_key("aud", 1) != list_buffer_key("other", 1)
    assert not list_lease_key("aud").startswith("#list#")
    # No flusher lane ever reads a list buffer as a marker of contacts.
    assert LIST_PENDING_PARTITION not in {pending_partition_value(p) for p in range(PENDING_PARTITIONS)}


@pytest.mark.parametrize(
    "arrival",
    list(itertools.permutations([add("7", 1), remove("7", 2), add("7", 3), remove("7", 4)])),
)
def test_the_newest_change_wins_whatever_order_they_arrive_in(
    dynamodb: Any, arrival: Sequence[Toggle]
) -> None:
    store = buffer(dynamodb)
    for toggle in arrival:
        store.append(AUDIENCE, [toggle], NOW)
    assert store.read(AUDIENCE) == [remove("7", 4)]


@pytest.mark.parametrize(
    "arrival",
    list(itertools.permutations([add("7", 1), remove("7", 2), add("8", 1), add("7", 3), remove("8", 5)])),
)
def test_membership_follows_the_newest_change_when_drains_run_between_arrivals(
    dynamodb: Any, arrival: Sequence[Toggle]
) -> None:
    # A drain after every arrival: an older change arriving after a newer one was sent (and taken
    # out of the changes) must not be sent afterwards.
    store = buffer(dynamodb)
    members: set[str] = set()
    for toggle in arrival:
        store.append(AUDIENCE, [toggle], NOW)
        drain_into(store, members)
    assert members == {"7"}
    assert store.read(AUDIENCE) == []


def test_an_add_and_an_exit_of_one_record_in_one_append_keep_the_newest(dynamodb: Any) -> None:
    store = buffer(dynamodb)
    store.append(AUDIENCE, [remove("7", 9), add("7", 3), add("8", 1)], NOW)
    assert store.read(AUDIENCE) == [add("8", 1), remove("7", 9)]


def test_an_add_and_an_exit_of_equal_rank_leave_the_exit_in_either_order(dynamodb: Any) -> None:
    first, second = buffer(dynamodb), buffer(dynamodb)
    first.append(AUDIENCE, [add("1", 5)], NOW)
    first.append(AUDIENCE, [remove("1", 5)], NOW)
    second.append("aud-2", [remove("1", 5)], NOW)
    second.append("aud-2", [add("1", 5)], NOW)
    assert first.read(AUDIENCE) == [remove("1", 5)]
    assert second.read("aud-2") == [remove("1", 5)]


def test_a_newer_exit_moves_the_record_from_adds_to_removes_in_one_write(dynamodb: Any) -> None:
    store = buffer(dynamodb)
    store.append(AUDIENCE, [add("7", 1)], NOW)
    before = item(dynamodb, AUDIENCE, shard_of("7", 4))
    store.append(AUDIENCE, [remove("7", 2)], NOW)
    after = item(dynamodb, AUDIENCE, shard_of("7", 4))
    assert int(after["version"]["N"]) == int(before["version"]["N"]) + 1
    assert after["changes"]["M"] == {"7": {"S": "-2"}}


def test_duplicates_change_nothing_before_or_after_they_are_sent(dynamodb: Any) -> None:
    store = buffer(dynamodb)
    rank = (NOW, NOW, 3, 1)
    store.append(AUDIENCE, [add("7", *rank), add("7", *rank)], NOW)
    shard = shard_of("7", 4)
    written = item(dynamodb, AUDIENCE, shard)
    assert store.append(AUDIENCE, [add("7", *rank)], NOW) is False
    assert item(dynamodb, AUDIENCE, shard) == written  # not even rewritten
    members: set[str] = set()
    assert drain_into(store, members) == [add("7", *rank)]
    # Replayed after the drain: already sent, nothing to send again.
    store.append(AUDIENCE, [add("7", *rank)], NOW + 1)
    assert store.read(AUDIENCE) == []


def test_a_settle_takes_out_only_what_was_sent(dynamodb: Any) -> None:
    store = buffer(dynamodb)
    store.append(AUDIENCE, [add("1", 1), add("2", 1), remove("3", 1)], NOW)
    sent = store.read(AUDIENCE)
    # Meanwhile: record 1 exits, record 4 arrives.
    store.append(AUDIENCE, [remove("1", 2), add("4", 1)], NOW + 10)
    store.settle(AUDIENCE, sent, NOW + 20)
    assert store.read(AUDIENCE) == [add("4", 1), remove("1", 2)]


class RacingClient:
    """A DynamoDB client on which, just before the first write of a settle, another writer appends
    to the same shard: the settle's conditional write loses, and it must read again."""

    def __init__(self, client: Any, race: Any) -> None:
        self._client = client
        self._race = race
        self.raced = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_item(self, **request: Any) -> Any:
        if not self.raced:
            self.raced = True
            self._race()
        return self._client.update_item(**request)


def test_a_drain_racing_an_append_loses_nothing_appended(dynamodb: Any) -> None:
    ids = [str(n) for n in range(40) if shard_of(str(n), 4) == 0][:3]
    writer = buffer(dynamodb)
    writer.append(AUDIENCE, [add(ids[0], 1), add(ids[1], 1)], NOW)
    racing = RacingClient(
        dynamodb, lambda: writer.append(AUDIENCE, [remove(ids[0], 2), add(ids[2], 1)], NOW + 5)
    )
    drainer = DynamoDbListBuffer(racing, "ledger")  # type: ignore[arg-type]
    sent = drainer.read(AUDIENCE)
    assert sent == [add(ids[0], 1), add(ids[1], 1)]
    drainer.settle(AUDIENCE, sent, NOW + 10)
    assert racing.raced
    assert writer.read(AUDIENCE) == [add(ids[2], 1), remove(ids[0], 2)]


def test_racing_appends_of_one_shard_both_land(dynamodb: Any) -> None:
    ids = [str(n) for n in range(40) if shard_of(str(n), 4) == 1][:2]
    other = buffer(dynamodb)
    racing = RacingClient(dynamodb, lambda: other.append(AUDIENCE, [add(ids[0], 1)], NOW))
    DynamoDbListBuffer(racing, "ledger").append(AUDIENCE, [add(ids[1], 1)], NOW)  # type: ignore[arg-type]
    assert racing.raced
    assert other.read(AUDIENCE) == [add(ids[0], 1), add(ids[1], 1)]


def test_the_first_change_starts_the_wait_and_a_drained_buffer_leaves_the_pending_index(
    dynamodb: Any,
) -> None:
    store = buffer(dynamodb, flush_ms=30_000)
    assert store.append(AUDIENCE, [add("1", 1)], NOW) is True
    shard = item(dynamodb, AUDIENCE, shard_of("1", 4))
    assert shard[PENDING_PARTITION] == {"S": LIST_PENDING_PARTITION}
    assert int(shard[DUE_AT]["N"]) == NOW + 30_000
    # A later change keeps the wait the first one started.
    assert store.append(AUDIENCE, [add("1", 2)], NOW + 20_000) is False
    assert int(item(dynamodb, AUDIENCE, shard_of("1", 4))[DUE_AT]["N"]) == NOW + 30_000
    assert store.due(NOW + 29_999) == []
    assert store.due(NOW + 30_000) == [AUDIENCE]
    drain_into(store, set(), NOW + 30_000)
    shard = item(dynamodb, AUDIENCE, shard_of("1", 4))
    assert PENDING_PARTITION not in shard and DUE_AT not in shard
    assert store.due(NOW + 60_000) == []


def test_a_shard_holding_its_share_of_a_chunk_is_due_at_once(dynamodb: Any) -> None:
    store = buffer(dynamodb, flush_ms=30_000, chunk_size=8, shards=1)
    store.append(AUDIENCE, [add(str(n), 1) for n in range(7)], NOW)
    assert store.due(NOW) == []
    store.append(AUDIENCE, [add("7", 1)], NOW + 5)
    assert store.due(NOW + 5) == [AUDIENCE]


def test_a_shard_past_its_bound_refuses_new_records_and_keeps_what_it_took(dynamodb: Any) -> None:
    store = buffer(dynamodb, shards=1, max_bytes=2_000)
    toggles = [add(str(10_000_000_000 + n), NOW, NOW, n) for n in range(200)]
    with pytest.raises(BufferFull) as full:
        store.append(AUDIENCE, toggles, NOW)
    kept = store.read(AUDIENCE)
    assert kept and full.value.refused
    assert {t.record_id for t in kept} | full.value.refused == {t.record_id for t in toggles}
    assert not {t.record_id for t in kept} & full.value.refused
    assert item_size(item(dynamodb, AUDIENCE, 0)) <= 2_000
    # Room again once a drain sent them.
    drain_into(store, set())
    store.append(AUDIENCE, [t for t in toggles if t.record_id in full.value.refused][:5], NOW + 1)
    assert len(store.read(AUDIENCE)) == 5


def test_sent_changes_make_room_for_new_ones_oldest_first(dynamodb: Any) -> None:
    store = buffer(dynamodb, shards=1, max_bytes=2_000)
    first = [add(str(100 + n), 1) for n in range(30)]
    store.append(AUDIENCE, first, NOW)
    drain_into(store, set(), NOW)
    fresh = [add(str(500 + n), 1) for n in range(60)]
    store.append(AUDIENCE, fresh, NOW + 1)  # no BufferFull: old sent entries gave way
    assert store.read(AUDIENCE) == sorted(fresh, key=lambda t: t.record_id)
    assert item_size(item(dynamodb, AUDIENCE, 0)) <= 2_000


def test_sent_changes_are_forgotten_after_the_memory(dynamodb: Any) -> None:
    store = buffer(dynamodb, memory_ms=60_000)
    store.append(AUDIENCE, [remove("7", 2)], NOW)
    drain_into(store, set(), NOW)
    store.append(AUDIENCE, [add("7", 1)], NOW + 59_999)
    assert store.read(AUDIENCE) == []
    # Past the memory, the contacts' own order guards: the buffer takes the change.
    store.append(AUDIENCE, [add("7", 1)], NOW + 60_000)
    assert store.read(AUDIENCE) == [add("7", 1)]
    assert "sent" not in item(dynamodb, AUDIENCE, shard_of("7", 4))


def test_the_default_bound_keeps_a_full_shard_far_below_dynamodbs_item_limit(dynamodb: Any) -> None:
    store = buffer(dynamodb, shards=1)
    # The longest ranks a contact change carries: (timestamp ms, receive ms, position, generation).
    refused: frozenset[str] = frozenset()
    start = 0
    while not refused:
        batch = [add(str(10**11 + n), NOW, NOW, n, 99) for n in range(start, start + 500)]
        start += 500
        try:
            store.append(AUDIENCE, batch, NOW)
        except BufferFull as full:
            refused = full.refused
    size = item_size(item(dynamodb, AUDIENCE, 0))
    assert MAX_BYTES - 100 < size <= MAX_BYTES < 400 * 1024
    assert len(store.read(AUDIENCE)) > 1_000


def test_a_shard_never_passes_its_bound_through_any_mix_of_appends_and_drains(dynamodb: Any) -> None:
    # Seeded, so a failure replays: records coming back with ranks of any length, partial drains.
    chance = random.Random(21)
    store = buffer(dynamodb, shards=1, max_bytes=700)
    for step in range(250):
        if chance.random() < 0.7:
            toggles = [
                Toggle(str(chance.randrange(12)), chance.random() < 0.5, rank(chance, step))
                for _ in range(chance.randrange(1, 9))
            ]
            with contextlib.suppress(BufferFull):
                store.append(AUDIENCE, toggles, NOW + step)
        else:
            waiting = store.read(AUDIENCE)
            store.settle(AUDIENCE, chance.sample(waiting, len(waiting) // 2), NOW + step)
        assert item_size(item(dynamodb, AUDIENCE, 0)) <= 700, step


def rank(chance: random.Random, step: int) -> tuple[int, ...]:
    return (step, *(chance.randrange(10**13) for _ in range(chance.randrange(0, 4))))


def test_a_change_refused_for_room_leaves_the_records_sent_change_guarding(dynamodb: Any) -> None:
    store = buffer(dynamodb, shards=1, max_bytes=1_000)
    store.append(AUDIENCE, [remove("7", 2)], NOW)
    store.settle(AUDIENCE, [remove("7", 2)], NOW)
    # Changes too large to fit even with the sent entry dropped: the sent entry stays.
    with pytest.raises(BufferFull):
        store.append(AUDIENCE, [add(f"{n:030d}", 1) for n in range(100)], NOW)
    assert "7" in item(dynamodb, AUDIENCE, 0)["sent"]["M"]
    newer = Toggle("7", True, (NOW, NOW, NOW, NOW))
    with pytest.raises(BufferFull) as full:
        store.append(AUDIENCE, [newer], NOW + 1)
    assert full.value.refused == {"7"}
    assert item(dynamodb, AUDIENCE, 0)["sent"]["M"]["7"]["S"] == f"-2@{NOW}"
    # Its contact stays pending and sends it again later; an older change arriving meanwhile is
    # still older than what was sent.
    store.append(AUDIENCE, [add("7", 1)], NOW + 2)
    assert "7" not in {toggle.record_id for toggle in store.read(AUDIENCE)}
    drain_into(store, set(), NOW + 3)
    store.append(AUDIENCE, [newer], NOW + 4)
    assert store.read(AUDIENCE) == [newer]


class MembersOf:
    """One HubSpot list's members, changed by add-and-remove."""

    def __init__(self) -> None:
        self.members: set[str] = set()
        self.calls = 0

    def add_and_remove(self, list_id: str, add: list[str], remove: list[str]) -> MembershipResult:
        self.calls += 1
        self.members = (self.members | set(add)) - set(remove)
        return MembershipResult()


def test_the_drain_over_the_ledger_buffer_sends_each_records_newest_change(dynamodb: Any) -> None:
    adapter = buffer(dynamodb, flush_ms=30_000)
    store: ListBuffer = adapter
    due: DueLists = adapter
    hubspot = MembersOf()
    drain = ListDrain(store, hubspot, chunk_size=50, clock_ms=lambda: NOW)
    store.append(AUDIENCE, [add(str(n), 1) for n in range(120)], NOW)
    store.append(AUDIENCE, [remove(str(n), 2) for n in range(0, 120, 3)], NOW)
    assert due.due(NOW) == []
    assert due.due(NOW + 30_000) == [AUDIENCE]
    report = drain.drain(AUDIENCE, "list-1")
    assert (report.calls, report.added, report.removed, report.remaining) == (3, 80, 40, 0)
    assert hubspot.members == {str(n) for n in range(120) if n % 3}
    assert due.due(NOW + 60_000) == []


def test_a_full_shard_is_due_at_once_and_keeps_when_its_oldest_change_arrived(dynamodb: Any) -> None:
    store = buffer(dynamodb, flush_ms=30_000, chunk_size=8, shards=1)
    store.append(AUDIENCE, [add(str(n), 1) for n in range(7)], NOW)
    store.append(AUDIENCE, [add("7", 1)], NOW + 5)
    assert store.due(NOW + 5) == [AUDIENCE]
    assert store.oldest(AUDIENCE) == NOW
    # A partial settle leaves the rest counted from the first arrival: it is due by age then.
    store.settle(AUDIENCE, store.read(AUDIENCE)[:4], NOW + 6)
    assert store.oldest(AUDIENCE) == NOW
    store.settle(AUDIENCE, store.read(AUDIENCE), NOW + 7)
    assert store.oldest(AUDIENCE) is None
    store.append(AUDIENCE, [add("9", 1)], NOW + 100)
    assert store.oldest(AUDIENCE) == NOW + 100
    assert store.due(NOW + 30_099) == [] and store.due(NOW + 30_100) == [AUDIENCE]
