"""A contact's item and the daily call counter against DynamoDB (moto)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from hubspot_activation.ledger.contact_item import contact_item, contact_key, entry_from_item
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
    client = boto3.client("dynamodb")
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
        held={"phone": "+33 1 23 45 67 89"},
        refused_values={"website": "0f1e"},
    )
    client.put_item(TableName=table, Item=contact_item(entry, retention_seconds=86_400))
    stored = client.get_item(TableName=table, Key=contact_key(entry.email), ConsistentRead=True)["Item"]
    assert entry_from_item(stored) == entry


def test_the_daily_count_is_shared_and_atomic(table: str) -> None:
    first = DynamoDbDailyCounter(boto3.client("dynamodb"), table)
    second = DynamoDbDailyCounter(boto3.client("dynamodb"), table)
    assert first.add("2026-11-23", 10) == 10
    assert second.add("2026-11-23", 10) == 20
    item = boto3.client("dynamodb").get_item(
        TableName=table, Key={"email": {"S": "#hubspot-calls#2026-11-23"}}
    )
    assert item["Item"]["calls"]["N"] == "20" and "@" not in item["Item"]["email"]["S"]
