"""Storing ingest's exclusions: bounded in calls and time whatever DynamoDB does."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError, ReadTimeoutError
from hubspot_activation.ledger.exclusion_store import STORE_BUDGET_SECONDS, DynamoDbExclusionStore
from hubspot_activation.model import Exclusion

REASON = "email has no '@' between a local part and a domain"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeDynamoDb:
    """Counts BatchWriteItem calls; each one takes ``seconds`` of the fake clock and then answers
    with ``outcome`` (an exception to raise, or how many items to leave unprocessed)."""

    def __init__(self, clock: FakeClock, seconds: float = 0.01, outcome: Exception | int = 0) -> None:
        self.clock = clock
        self.seconds = seconds
        self.outcome = outcome
        self.calls: list[int] = []

    def batch_write_item(self, RequestItems: Any) -> dict[str, Any]:
        ((table, requests),) = RequestItems.items()
        self.calls.append(len(requests))
        self.clock.now += self.seconds
        if isinstance(self.outcome, Exception):
            raise self.outcome
        left = requests[: self.outcome]
        return {"UnprocessedItems": {table: left} if left else {}}


def exclusions(count: int) -> list[Exclusion]:
    return [Exclusion(index, REASON, f"broken-{index}") for index in range(count)]


def store(client: FakeDynamoDb, clock: FakeClock) -> DynamoDbExclusionStore:
    return DynamoDbExclusionStore(client, "ledger", monotonic=clock)  # type: ignore[arg-type]


def test_a_healthy_table_gets_every_kept_exclusion_in_batches_of_25() -> None:
    clock = FakeClock()
    client = FakeDynamoDb(clock)
    assert store(client, clock).store(exclusions(130), "req-1", 1_796_000_000_000, "c0ffee") == 0
    assert client.calls == [25, 25, 25, 25]  # 100 kept, like the answer's list


def test_the_first_failed_call_ends_the_step() -> None:
    clock = FakeClock()
    timeout = ReadTimeoutError(endpoint_url="http://dynamodb")
    client = FakeDynamoDb(clock, outcome=timeout)
    assert store(client, clock).store(exclusions(100), "req-1", 1_796_000_000_000, "c0ffee") == 100
    assert client.calls == [25]
    refused = ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "BatchWriteItem")
    client = FakeDynamoDb(clock, outcome=refused)
    assert store(client, clock).store(exclusions(60), "req-1", 1_796_000_000_000, "c0ffee") == 60
    assert client.calls == [25]


def test_unprocessed_items_are_not_retried_and_end_the_step() -> None:
    clock = FakeClock()
    client = FakeDynamoDb(clock, outcome=5)
    # 20 of the first 25 stored; the 5 unprocessed and the 75 after them are not.
    assert store(client, clock).store(exclusions(100), "req-1", 1_796_000_000_000, "c0ffee") == 80
    assert client.calls == [25]


def test_no_call_starts_after_the_budget() -> None:
    clock = FakeClock()
    # Every call succeeds but takes 0.2 s: the third would start after the 0.3 s budget.
    client = FakeDynamoDb(clock, seconds=0.2)
    assert STORE_BUDGET_SECONDS == 0.3
    assert store(client, clock).store(exclusions(100), "req-1", 1_796_000_000_000, "c0ffee") == 50
    assert client.calls == [25, 25]
