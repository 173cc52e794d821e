"""Reconcile's budget: it holds for live traffic (a queue backlog, a flush under way) and once its
calls of the day reach its share of the daily budget above the reserve."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hubspot_activation.reconcile.budget import BACKLOG_MESSAGES, DailyShare, LiveTrafficBudget
from hubspot_activation.reconcile.wiring import reconcile_governor_settings
from hubspot_activation.settings import SettingsError, UpsertSettings
from hubspot_activation.upsert.flush import QueueLoad
from hubspot_activation.upsert.wiring import governor_settings

#: 2026-12-06 23:30 UTC: 00:30 the next day in Paris.
LATE = 1_796_599_800.0


@dataclass
class Counter:
    totals: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, int]] = field(default_factory=list)

    def add(self, day: str, calls: int) -> int:
        self.calls.append((day, calls))
        self.totals[day] = self.totals.get(day, 0) + calls
        return self.totals[day]

    def total(self, day: str) -> int:
        return self.totals.get(day, 0)


@dataclass
class Live:
    load: QueueLoad = field(default_factory=lambda: QueueLoad(0))
    looks: int = 0

    def queue(self) -> QueueLoad:
        self.looks += 1
        return self.load


SHARE = DailyShare(0.1, daily_limit=250_000, daily_reserve=10_000)


def budget(counter: Counter, live: Live, share: DailyShare = SHARE, now: float = LATE) -> LiveTrafficBudget:
    return LiveTrafficBudget(counter, share, live.queue, clock=lambda: now)


def test_the_daily_share_is_of_the_budget_above_the_reserve() -> None:
    assert SHARE.calls == 24_000
    assert DailyShare(1.0, 100, 100).calls == 0
    assert DailyShare(0.5, 100, 500).calls == 0  # a reserve above the limit leaves nothing


def test_nothing_holds_while_the_queue_is_empty() -> None:
    assert budget(Counter(), Live()).hold() is None


@pytest.mark.parametrize("load", [QueueLoad(BACKLOG_MESSAGES), QueueLoad(4, merging=BACKLOG_MESSAGES - 4)])
def test_updates_waiting_or_being_merged_hold_reconcile(load: QueueLoad) -> None:
    assert budget(Counter(), Live(load=load)).hold() == "backlog"


@pytest.mark.parametrize("load", [QueueLoad(1), QueueLoad(0, merging=BACKLOG_MESSAGES - 1)])
def test_a_trickle_of_live_traffic_does_not_hold_reconcile(load: QueueLoad) -> None:
    """Steady low traffic keeps a message or two in the queue: the walk must still advance."""
    assert budget(Counter(), Live(load=load)).hold() is None


def test_its_calls_of_the_day_reaching_the_share_hold_it_without_looking_at_the_queue() -> None:
    counter, live = Counter(), Live()
    spending = budget(counter, live, DailyShare(0.5, daily_limit=30, daily_reserve=10))
    assert spending.hold() is None
    for _ in range(9):
        spending.spent(1)
    assert spending.hold() is None
    spending.spent(1)
    looks = live.looks
    assert spending.hold() == "daily_share"
    assert live.looks == looks  # the share is known without a call
    assert counter.totals == {"2026-12-06": 10}


def test_calls_count_on_the_accounts_day_and_a_new_day_starts_from_its_own_count() -> None:
    counter = Counter({"2026-12-07": 23_999})
    paris = DailyShare(0.1, daily_limit=250_000, daily_reserve=10_000, timezone="Europe/Paris")
    spending = budget(counter, Live(), paris)
    assert spending.hold() is None  # its day is the 7th in Paris: 23,999 of 24,000 used
    spending.spent(1)
    assert spending.hold() == "daily_share"
    # Other callers' calls (the operator's POST /reconcile) count: the counter answers the total.
    other = budget(counter, Live(), paris)
    assert other.hold() == "daily_share"
    assert budget(counter, Live(), SHARE).hold() is None  # the 6th in UTC


def test_reconciles_governor_takes_a_tenth_of_the_window_and_the_flushs_daily_figures() -> None:
    settings = UpsertSettings(ledger_table="t", hubspot_secret_id="s", flush_lanes=4, tier_limit=190)
    governor = reconcile_governor_settings(settings)
    flush = governor_settings(settings)
    assert governor.budget == 19 and governor.share == 0.1 and governor.lanes == 1
    # It waits whenever others use more than its part of the window.
    assert governor.headroom(190) == pytest.approx(190 * 0.9 + 1)
    assert (governor.daily_limit, governor.daily_reserve, governor.account_timezone) == (
        flush.daily_limit,
        flush.daily_reserve,
        flush.account_timezone,
    )
    # Never more than the connector's own share.
    small = UpsertSettings(ledger_table="t", hubspot_secret_id="s", share=0.05)
    assert reconcile_governor_settings(small).share == 0.05


BASE = {"LEDGER_TABLE": "t", "HUBSPOT_SECRET_ID": "s"}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RECONCILE_DAILY_SHARE", "0"),
        ("RECONCILE_DAILY_SHARE", "1.5"),
        ("RECONCILE_DAILY_SHARE", "a tenth"),
        ("HUBSPOT_DELETIONS", "keep"),
        ("RECONCILE_SCHEDULE", "daily"),
        ("RECONCILE_SCHEDULE", "rate(0 days)"),
        ("RECONCILE_SCHEDULE", "rate(1 week)"),
        ("RECONCILE_SCHEDULE", "at(2026-12-07T00:00:00)"),
    ],
)
def test_reconcile_settings_refuse_values_out_of_bounds(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        UpsertSettings.from_env({**BASE, variable: value})


def test_reconcile_settings_defaults_and_bounds() -> None:
    from hubspot_activation.reconcile.model import DeletionPolicy

    default = UpsertSettings.from_env(BASE)
    assert (default.reconcile_schedule, default.reconcile_daily_share, default.deletions) == (
        "rate(1 day)",
        0.1,
        DeletionPolicy.RESPECT,
    )
    edges = UpsertSettings.from_env(
        {**BASE, "RECONCILE_DAILY_SHARE": "1", "HUBSPOT_DELETIONS": "recreate", "RECONCILE_SCHEDULE": "none"}
    )
    assert edges.reconcile_daily_share == 1.0 and edges.deletions is DeletionPolicy.RECREATE
    assert edges.reconcile_scheduled is False
    assert UpsertSettings.from_env({**BASE, "RECONCILE_DAILY_SHARE": "0.01"}).reconcile_daily_share == 0.01
