"""The ledger and the daily call counter against DynamoDB (moto)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from hubspot_activation.ledger.contact_ledger import DynamoDbLedger
from hubspot_activation.ledger.daily_counter import DynamoDbDailyCounter
from hubspot_activation.upsert.ledger import (
    AppliedAudience,
    LedgerEntry,
    PendingAttribute,
    PendingAudience,
)
from moto import mock_aws

from tests.conftest import create_ledger_table


@pytest.fixture
def table() -> Iterator[str]:
    with mock_aws():
        create_ledger_table()
        yield "ledger"


def test_every_field_round_trips(table: str) -> None:
    ledger = DynamoDbLedger(boto3.client("dynamodb"), table)
    entry = LedgerEntry(
        "ada@example.com",
        "failed",
        hubspot_id="101",
        audiences={"gold": AppliedAudience("realized", 5, (1_795_000_000_000, 3))},
        written={"city": "Paris", "aud_gold": "realized"},
        attribute_order={"city": (1_795_000_000_000, 3)},
        pending_audiences={"cart": PendingAudience("exited", 7, (1_795_000_000_001, 0), "Cart")},
        pending_attributes={"loyalty_tier": PendingAttribute(2.5, (1_795_000_000_001, 0))},
        reason="no room",
        warnings={"age": "not a number"},
        updated_at_ms=1_795_000_000_500,
        rejected="abc",
        unconfirmed_at_ms=1_795_000_000_400,
    )
    assert ledger.put_many([entry]) == {}
    assert ledger.get_many(["ada@example.com"]) == {"ada@example.com": entry}


def test_an_item_dynamodb_cannot_hold_is_refused_alone(table: str) -> None:
    ledger = DynamoDbLedger(boto3.client("dynamodb"), table)
    good = [LedgerEntry(f"user{i}@example.com", "synced") for i in range(30)]
    bad = LedgerEntry("bad@example.com", "synced", audiences={"x": AppliedAudience("realized", 10**300)})
    refused = ledger.put_many([*good[:10], bad, *good[10:]])
    assert list(refused) == ["bad@example.com"] and "cannot store" in refused["bad@example.com"]
    assert len(ledger.get_many([entry.email for entry in [*good, bad]])) == 30


def test_the_daily_count_is_shared_and_atomic(table: str) -> None:
    first = DynamoDbDailyCounter(boto3.client("dynamodb"), table)
    second = DynamoDbDailyCounter(boto3.client("dynamodb"), table)
    assert first.add("2026-11-23", 10) == 10
    assert second.add("2026-11-23", 10) == 20
    item = boto3.client("dynamodb").get_item(
        TableName=table, Key={"email": {"S": "#hubspot-calls#2026-11-23"}}
    )
    assert item["Item"]["calls"]["N"] == "20" and "@" not in item["Item"]["email"]["S"]
