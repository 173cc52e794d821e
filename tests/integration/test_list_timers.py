"""The flusher's port to the lists (``BufferedListChanges`` over the ledger's buffer, moto): a
list's first change starts a timer of ListFlushSeconds, a shard holding its share of a chunk one
of no delay, and a change joining others none; the lists function's ``postpone`` moves a list's due time
(a backoff), and its audience items' refill keeps the audience among the due lists."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from hubspot_activation.ledger.list_audiences import DynamoDbListAudiences
from hubspot_activation.ledger.list_buffer import DynamoDbListBuffer, shard_of
from hubspot_activation.ledger.operations_store import OperationsStore
from hubspot_activation.lists.changes import BufferedListChanges
from hubspot_activation.lists.model import Toggle
from moto import mock_aws

from tests.conftest import create_ledger_table

NOW = 1_796_000_000_000
AUDIENCE = "aud-1"


@dataclass
class RecordedTimer:
    started: list[tuple[str, int]] = field(default_factory=list)

    def start(self, audience_id: str, delay_seconds: int) -> None:
        self.started.append((audience_id, delay_seconds))


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        create_ledger_table()
        yield boto3.client("dynamodb")


def same_shard(count: int, shards: int = 4) -> list[str]:
    """Record ids that all land in the shard of "1"."""
    return [
        rid for rid in (str(n) for n in range(1, 10_000)) if shard_of(rid, shards) == shard_of("1", shards)
    ][:count]


def test_a_first_change_waits_for_more_and_a_full_shard_is_sent_at_once(dynamodb: Any) -> None:
    timer = RecordedTimer()
    changes = BufferedListChanges(
        DynamoDbListBuffer(dynamodb, "ledger", flush_ms=30_000, chunk_size=12), timer, flush_seconds=30
    )
    first, second, third = same_shard(3)

    changes.append(AUDIENCE, [Toggle(first, True, (1,))], NOW)
    assert timer.started == [(AUDIENCE, 30)]
    changes.append(AUDIENCE, [Toggle(second, True, (1,))], NOW + 1)  # waits with the first
    assert timer.started == [(AUDIENCE, 30)]
    changes.append(AUDIENCE, [Toggle(third, True, (1,))], NOW + 2)  # the shard's share: 12 / 4
    assert timer.started == [(AUDIENCE, 30), (AUDIENCE, 0)]


def test_postpone_moves_a_lists_due_time_and_a_full_shard_is_due_at_once_again(dynamodb: Any) -> None:
    store = DynamoDbListBuffer(dynamodb, "ledger", flush_ms=30_000, chunk_size=8)
    first, second = same_shard(2)
    store.append(AUDIENCE, [Toggle(first, True, (1,))], NOW)
    assert store.due(NOW + 30_000) == [AUDIENCE]

    store.postpone(AUDIENCE, NOW + 120_000)

    assert store.due(NOW + 119_999) == [] and store.due(NOW + 120_000) == [AUDIENCE]
    store.append(AUDIENCE, [Toggle(second, True, (1,))], NOW + 5)
    assert store.due(NOW + 5) == [AUDIENCE]


def test_an_audience_being_refilled_is_due_until_its_refill_is_done(dynamodb: Any) -> None:
    OperationsStore(dynamodb, "ledger").save_audience(AUDIENCE, "Gold", None)
    audiences = DynamoDbListAudiences(dynamodb, "ledger")
    store = DynamoDbListBuffer(dynamodb, "ledger")

    audiences.start_refill(AUDIENCE, audiences.next_generation(AUDIENCE, 0), NOW)
    assert store.due(NOW) == [AUDIENCE]
    audiences.refill_from(AUDIENCE, '"c@example.com"', 1, NOW + 10)
    found = audiences.get(AUDIENCE)
    assert found is not None and found.refilling and found.refill_cursor == '"c@example.com"'
    audiences.refill_from(AUDIENCE, None, 0, NOW + 20)  # an older refill's end changes nothing
    assert store.due(NOW + 20) == [AUDIENCE]
    audiences.refill_from(AUDIENCE, None, 1, NOW + 30)
    found = audiences.get(AUDIENCE)
    assert found is not None and not found.refilling and store.due(NOW + 30) == []


def test_the_first_stored_list_wins_and_a_generation_is_bumped_once(dynamodb: Any) -> None:
    OperationsStore(dynamodb, "ledger").save_audience(AUDIENCE, "Gold", None)
    audiences = DynamoDbListAudiences(dynamodb, "ledger")

    assert audiences.store_list(AUDIENCE, "10", "Gold", None).list_id == "10"
    assert audiences.store_list(AUDIENCE, "11", "Gold", None).list_id == "10"  # a late creator
    assert audiences.store_list(AUDIENCE, "12", "Gold", "10").list_id == "12"  # the list made again
    assert audiences.next_generation(AUDIENCE, 0) == 1
    assert audiences.next_generation(AUDIENCE, 0) == 1  # a concurrent bump from 0 is this one
    assert audiences.next_generation(AUDIENCE, 1) == 2
    stored = OperationsStore(dynamodb, "ledger").audience(AUDIENCE)
    assert stored is not None and (stored.list_id, stored.list_name, stored.list_generation) == (
        "12",
        "Gold",
        2,
    )
    assert stored.name == "Gold" and stored.list_flush is None


def test_bookkeeping_counts_calls_keeps_the_last_error_and_the_failures_in_a_row(dynamodb: Any) -> None:
    OperationsStore(dynamodb, "ledger").save_audience(AUDIENCE, "Gold", None)
    audiences = DynamoDbListAudiences(dynamodb, "ledger")

    assert audiences.record_flush(AUDIENCE, NOW, 2, "HubSpot 502") == 1
    assert audiences.record_flush(AUDIENCE, NOW + 1, 3, "HubSpot 502") == 2
    stored = OperationsStore(dynamodb, "ledger").audience(AUDIENCE)
    assert stored is not None and stored.list_flush is not None
    assert (stored.list_flush.calls, stored.list_flush.last_error, stored.list_flush.failures) == (
        5,
        "HubSpot 502",
        2,
    )
    assert audiences.record_flush(AUDIENCE, NOW + 2, 1, None) == 0
    stored = OperationsStore(dynamodb, "ledger").audience(AUDIENCE)
    assert stored is not None and stored.list_flush is not None
    assert (stored.list_flush.last_flush_at_ms, stored.list_flush.calls, stored.list_flush.last_error) == (
        NOW + 2,
        6,
        None,
    )
