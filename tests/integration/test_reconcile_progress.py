"""Reconcile's items in the ledger (moto, the table as the template declares it): the walk's
cursor, lease and running totals, the last reconcile, and reconcile's daily count."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hubspot_activation.ledger.daily_counter import DynamoDbDailyCounter
from hubspot_activation.ledger.keys import daily_calls_key, reconcile_calls_key
from hubspot_activation.ledger.reconcile_progress import DynamoDbReconcileProgress
from hubspot_activation.reconcile.model import MAX_EXAMPLES, DriftKind, Finding, ReconcileReport
from moto import mock_aws

from tests.conftest import create_ledger_table

NOW = 1_796_000_000.0


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        create_ledger_table()
        yield boto3.client("dynamodb")


def progress(dynamodb: Any, now: float = NOW) -> DynamoDbReconcileProgress:
    return DynamoDbReconcileProgress(dynamodb, "ledger", clock=lambda: now)


def report(
    checked: int, cursor: str | None, stopped_by: str | None = None, started: int = 0, **drift: int
) -> ReconcileReport:
    found = ReconcileReport(
        checked=checked,
        calls=checked // 100 + 1,
        cursor=cursor,
        stopped_by=stopped_by,
        started_at_ms=started,
        ended_at_ms=started + 10,
    )
    for kind, count in drift.items():
        for i in range(count):
            found.found(Finding(f"{kind}{i}@example.com", DriftKind(kind), repaired=kind == "edited"))
    return found


def test_the_walks_cursor_is_stored_and_cleared(dynamodb: Any) -> None:
    store = progress(dynamodb)
    assert store.cursor() is None and store.last() is None
    store.save_cursor("Y29udGFjdEBleGFtcGxlLmNvbQ==")
    assert progress(dynamodb).cursor() == "Y29udGFjdEBleGFtcGxlLmNvbQ=="
    store.save_cursor(None)
    assert store.cursor() is None


def test_a_walk_over_several_invocations_is_one_last_reconcile_until_it_ends(dynamodb: Any) -> None:
    store = progress(dynamodb)
    store.record(report(100, "c1", "deadline", started=1_000, edited=2), "schedule")
    first = store.last()
    assert first is not None
    assert (first["checked"], first["complete"], first["source"], first["runs"]) == (
        100,
        False,
        "schedule",
        1,
    )
    store.record(report(100, "c2", "backlog", started=2_000, deleted=1), "schedule")
    store.record(report(50, None, started=3_000, edited=1), "schedule")
    last = store.last()
    assert last is not None
    assert last["checked"] == 250 and last["calls"] == 5 and last["runs"] == 3
    assert last["drift"] == {"edited": 3, "deleted": 1, "erased": 0, "merged": 0, "restored": 0}
    assert last["repaired"] == 3 and last["repairedByKind"]["edited"] == 3
    # The walk's start, its last run's end; complete, with nothing left.
    assert (last["startedAt"], last["endedAt"]) == (1_000, 3_010)
    assert last["complete"] is True and last["more"] is False and last["cursor"] is None
    assert last["at"] == int(NOW * 1000)
    # The next walk starts its own totals.
    store.record(report(100, "c1", "deadline", started=9_000), "schedule")
    again = store.last()
    assert (
        again is not None and again["checked"] == 100 and again["runs"] == 1 and again["startedAt"] == 9_000
    )


def test_a_walks_examples_stay_bounded(dynamodb: Any) -> None:
    store = progress(dynamodb)
    for piece in range(3):
        store.record(report(100, f"c{piece}", "deadline", edited=MAX_EXAMPLES), "schedule")
    last = store.last()
    assert last is not None and len(last["examples"]) == MAX_EXAMPLES and last["drift"]["edited"] == 30


def test_other_sources_are_each_their_own_last_reconcile_and_leave_the_walk_alone(dynamodb: Any) -> None:
    store = progress(dynamodb)
    store.record(report(100, "c1", "deadline", edited=1), "schedule")
    store.record(report(3, None, merged=1), "api")
    last = store.last()
    assert last is not None and (last["source"], last["checked"], last["runs"]) == ("api", 3, 1)
    # A journal poll that checked nobody (most minutes) is not a reconcile worth showing.
    store.record(report(0, None), "journal")
    assert store.last() == last
    store.record(report(2, None, deleted=1), "journal")
    journal = store.last()
    assert journal is not None and journal["source"] == "journal" and journal["drift"]["deleted"] == 1
    # The walk's totals went on meanwhile.
    store.record(report(10, None), "schedule")
    walk = store.last()
    assert walk is not None and walk["checked"] == 110 and walk["drift"]["edited"] == 1 and walk["complete"]
    with pytest.raises(ValueError, match="source"):
        store.record(report(1, None), "cron")


def test_reports_recorded_at_once_all_add_up(dynamodb: Any) -> None:
    """Another record lands between this one's read and its write: the write is refused and tried
    again on the new totals, so neither report is lost."""
    store = progress(dynamodb)
    store.record(report(100, "c1", "deadline"), "schedule")
    other = progress(dynamodb)
    real_get = dynamodb.get_item
    raced: list[bool] = []

    class Racing:
        def __getattr__(self, name: str) -> Any:
            return getattr(dynamodb, name)

        def get_item(self, **kwargs: Any) -> Any:
            item = real_get(**kwargs)
            if not raced:
                raced.append(True)
                other.record(report(7, "c9", "deadline"), "schedule")
            return item

    racing: Any = Racing()
    DynamoDbReconcileProgress(racing, "ledger", clock=lambda: NOW).record(
        report(100, "c2", "deadline"), "schedule"
    )
    last = store.last()
    assert last is not None and last["checked"] == 207 and last["runs"] == 3


def test_one_invocation_walks_at_a_time_and_a_lapsed_lease_is_taken_over(dynamodb: Any) -> None:
    store = progress(dynamodb)
    now_ms = int(NOW * 1000)
    assert store.claim("a", now_ms + 60_000, now_ms)
    assert store.claim("a", now_ms + 90_000, now_ms)  # its holder may extend it
    assert not store.claim("b", now_ms + 60_000, now_ms + 1_000)
    store.release("b")  # not its lease: nothing happens
    assert not store.claim("b", now_ms + 60_000, now_ms + 1_000)
    assert store.claim("b", now_ms + 200_000, now_ms + 90_001)  # lapsed
    store.release("a")  # a crashed holder coming back cannot free b's lease
    assert not store.claim("c", now_ms + 60_000, now_ms + 100_000)
    store.release("b")
    assert store.claim("c", now_ms + 60_000, now_ms + 100_000)
    # The lease lives on the progress item and leaves the cursor and the last report alone.
    store.save_cursor("c5")
    store.record(report(1, "c6", "deadline"), "schedule")
    store.release("c")
    assert store.cursor() == "c5" and store.last() is not None


def test_reconciles_calls_are_counted_apart_from_and_besides_the_connectors(dynamodb: Any) -> None:
    account = DynamoDbDailyCounter(dynamodb, "ledger")
    reconcile = DynamoDbDailyCounter(dynamodb, "ledger", key=reconcile_calls_key)
    assert account.add("2026-12-06", 10) == 10
    assert reconcile.total("2026-12-06") == 0
    assert reconcile.add("2026-12-06", 3) == 3
    assert account.total("2026-12-06") == 10 and reconcile.total("2026-12-06") == 3
    assert reconcile.total("2026-12-07") == 0
    for key in (daily_calls_key("2026-12-06"), reconcile_calls_key("2026-12-06")):
        item = dynamodb.get_item(TableName="ledger", Key={"email": {"S": key}})["Item"]
        assert "expiresAt" in item and "@" not in key
