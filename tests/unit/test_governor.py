"""The rate governor on a fake clock: pacing, header-driven slowdown, 429 policies, daily reserve."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hubspot_activation.hubspot.errors import DailyLimitReached
from hubspot_activation.hubspot.governor import GovernorSettings, RateGovernor, next_daily_reset


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_000.0
        self.wall = datetime(2026, 11, 22, 15, 0, tzinfo=UTC).timestamp()

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds


def governor(clock: FakeTime, **settings: Any) -> RateGovernor:
    return RateGovernor(
        GovernorSettings(**settings),
        clock=lambda: clock.now,
        sleep=clock.sleep,
        wall_clock=lambda: clock.wall,
    )


def test_one_consumer_alone_may_use_the_whole_share() -> None:
    assert GovernorSettings(limit_per_window=190, share=0.8, concurrency=4).budget == 152
    assert GovernorSettings(limit_per_window=100, share=0.001, concurrency=50).budget == 1
    # Flush lanes divide the share: each sends its part.
    assert GovernorSettings(limit_per_window=100, share=0.8, lanes=4).budget == 20
    assert GovernorSettings(limit_per_window=190, share=0.8, lanes=3).budget == 50
    assert GovernorSettings(limit_per_window=100, share=0.01, lanes=4).budget == 1
    # What stays unused of the window: the other integrations' part and one request per consumer.
    assert GovernorSettings(limit_per_window=100, share=0.8, concurrency=4).headroom(100) == pytest.approx(24)
    bad: dict[str, Any]
    for bad in (
        {"share": 0},
        {"share": 1.5},
        {"concurrency": 0},
        {"limit_per_window": 0},
        {"account_timezone": "Mars/Base"},
    ):
        with pytest.raises(ValueError):  # noqa: PT011 - each names its own field
            GovernorSettings(**bad)


def test_requests_are_paced_to_the_budget_per_rolling_window() -> None:
    clock = FakeTime()
    rate = governor(clock, limit_per_window=100, window_seconds=10, share=0.5)
    sent_at = []
    for _ in range(150):
        rate.acquire()
        sent_at.append(clock.now)
    for index in range(len(sent_at)):
        in_window = [t for t in sent_at if sent_at[index] - 10 < t <= sent_at[index]]
        assert len(in_window) <= 50
    assert sent_at[49] == sent_at[0]  # the first 50 go at once
    assert sent_at[50] - sent_at[0] >= 10  # the 51st waits for the window
    assert sent_at[149] - sent_at[0] < 2 * 10.3 + 0.1  # and no longer than needed


def test_low_remaining_header_waits_until_our_own_oldest_request_leaves_the_window() -> None:
    clock = FakeTime()
    rate = governor(clock, limit_per_window=100, window_seconds=10, share=0.8, concurrency=2)
    rate.acquire()
    rate.observe({"X-HubSpot-RateLimit-Remaining": "60", "X-HubSpot-RateLimit-Max": "100"})
    clock.now += 4
    rate.acquire()
    low = {
        "X-HubSpot-RateLimit-Remaining": "5",
        "X-HubSpot-RateLimit-Max": "100",
        "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
    }
    rate.observe(low)
    started = clock.now
    rate.acquire()
    # Our request of 4 s ago frees its slot in about 6 s: we reuse only the slots we free.
    assert 6 <= clock.now - started <= 6.5
    rate.observe({"X-HubSpot-RateLimit-Remaining": "60", "X-HubSpot-RateLimit-Max": "100"})
    before = clock.now
    rate.acquire()
    assert clock.now == before  # plenty left: no pause


def test_low_remaining_reuses_only_our_requests_it_counted() -> None:
    """A request of ours that may have left the window before the low Remaining was counted freed
    a slot that the window has already refilled: taking it again would overrun the share."""
    clock = FakeTime()
    rate = governor(clock, limit_per_window=100, window_seconds=10, share=0.8, concurrency=2)
    rate.acquire()  # sent at 1000, answered at 1005: HubSpot counted it in between
    clock.now += 5
    rate.observe({"X-HubSpot-RateLimit-Remaining": "60", "X-HubSpot-RateLimit-Max": "100"})
    clock.now = 1010.1
    rate.acquire()  # sent at 1010.1: our request of 1000 may be gone, and its slot reused
    clock.now += 0.01
    rate.observe(
        {
            "X-HubSpot-RateLimit-Remaining": "20",
            "X-HubSpot-RateLimit-Max": "100",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        }
    )
    rate.acquire()
    # Not when the old request leaves (by 1015), but when the one just counted surely does.
    assert clock.now == pytest.approx(1010.11 + 10)


def test_low_remaining_with_nothing_of_ours_in_the_window_waits_for_the_slots_it_would_take() -> None:
    clock = FakeTime()
    rate = governor(clock, limit_per_window=100, window_seconds=10, share=0.8, concurrency=2)
    rate.observe(
        {
            "X-HubSpot-RateLimit-Remaining": "5",
            "X-HubSpot-RateLimit-Max": "100",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        }
    )
    started = clock.now
    rate.acquire()
    assert clock.now - started == pytest.approx(10 * (22 - 5 + 1) / 100)


def test_ten_secondly_429_holds_every_request_until_our_oldest_request_leaves_the_window() -> None:
    clock = FakeTime()
    rate = governor(clock)
    rate.acquire()
    clock.now += 8
    headers = {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000", "X-HubSpot-RateLimit-Remaining": "0"}
    wait = rate.on_throttled("TEN_SECONDLY_ROLLING", headers)
    # The window is rolling: our request of 8 s ago frees its slot in about 2 s, not 10.
    assert 2 <= wait <= 2.5
    before = clock.now
    rate.acquire()
    assert clock.now - before == pytest.approx(wait)
    assert rate.throttled == 1


def test_a_429_with_none_of_our_requests_in_the_window_waits_one_slot() -> None:
    clock = FakeTime()
    rate = governor(clock)
    headers = {
        "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        "X-HubSpot-RateLimit-Max": "100",
        "X-HubSpot-RateLimit-Remaining": "0",
    }
    assert rate.on_throttled("TEN_SECONDLY_ROLLING", headers) == pytest.approx(0.1)
    assert rate.on_throttled("TEN_SECONDLY_ROLLING", {**headers, "Retry-After": "3"}) == 3


def test_daily_429_stops_until_midnight_in_the_account_time_zone() -> None:
    clock = FakeTime()
    rate = governor(clock, account_timezone="America/New_York")
    with pytest.raises(DailyLimitReached) as raised:
        rate.on_throttled("DAILY", {})
    # 15:00 UTC is 10:00 in New York: the reset is at 05:00 UTC the next day
    assert raised.value.resets_at == datetime(2026, 11, 23, 5, 0, tzinfo=UTC).timestamp()
    with pytest.raises(DailyLimitReached):
        rate.acquire()
    clock.wall = raised.value.resets_at + 1
    rate.acquire()


def test_daily_reserve_from_headers() -> None:
    clock = FakeTime()
    rate = governor(clock, daily_reserve=1000)
    rate.acquire()
    rate.observe({"X-HubSpot-RateLimit-Daily-Remaining": "1001"})
    rate.acquire()
    rate.observe({"X-HubSpot-RateLimit-Daily-Remaining": "1000"})
    with pytest.raises(DailyLimitReached):
        rate.acquire()


def test_next_daily_reset_utc() -> None:
    noon = datetime(2026, 11, 22, 12, 0, tzinfo=UTC).timestamp()
    assert next_daily_reset(noon) == datetime(2026, 11, 23, tzinfo=UTC).timestamp()


def test_the_latest_remaining_header_is_kept_for_the_metric() -> None:
    rate = governor(FakeTime())
    assert rate.last_remaining is None
    rate.observe({"X-HubSpot-RateLimit-Remaining": "87"})
    rate.observe({})
    assert rate.last_remaining == 87


class SharedCounter:
    """The daily count in the ledger table, as every consumer sees it."""

    def __init__(self, used: int = 0) -> None:
        self.totals: dict[str, int] = {}
        self.used = used
        self.updates = 0

    def add(self, day: str, calls: int) -> int:
        self.updates += 1
        self.totals[day] = self.totals.get(day, self.used) + calls
        return self.totals[day]


def test_the_daily_reserve_holds_without_any_daily_header_as_for_oauth_apps() -> None:
    clock = FakeTime()
    counter = SharedCounter()
    settings = GovernorSettings(limit_per_window=10_000, daily_limit=1_000, daily_reserve=900)
    consumers = [
        RateGovernor(settings, lambda: clock.now, clock.sleep, lambda: clock.wall, daily_counter=counter)
        for _ in range(3)
    ]
    sent = 0
    stopped: DailyLimitReached | None = None
    for _ in range(1_000):
        try:
            consumers[sent % 3].acquire()  # no header ever says anything about the day
        except DailyLimitReached as exc:
            stopped = exc
            break
        sent += 1
    assert stopped is not None
    assert sent <= 100 and sent >= 100 - 3 * 10  # the budget, less what other consumers reserved
    assert counter.updates <= 3 + sent // 10 + 3  # one counter update per block of calls
    assert stopped.resets_at == datetime(2026, 11, 23, 0, 0, tzinfo=UTC).timestamp()
    clock.wall = stopped.resets_at + 1  # a new day in the account's time zone: a new budget
    consumers[0].acquire()


def test_hubspots_window_holding_the_requests_is_told_and_the_governors_own_pace_is_not() -> None:
    clock = FakeTime()
    held: list[float] = []
    paced = RateGovernor(
        GovernorSettings(limit_per_window=100, share=0.5),
        clock=lambda: clock.now,
        sleep=clock.sleep,
        wall_clock=lambda: clock.wall,
        on_held=lambda: held.append(clock.now),
    )
    for _ in range(120):  # past its own budget of 50 a window: it waits, HubSpot held nothing
        paced.acquire()
        paced.observe({"X-HubSpot-RateLimit-Remaining": "90", "X-HubSpot-RateLimit-Max": "100"})
    assert held == []
    paced.acquire()
    paced.observe({"X-HubSpot-RateLimit-Remaining": "40", "X-HubSpot-RateLimit-Max": "100"})
    assert len(held) == 1  # down to the headroom the other integrations keep
    paced.on_throttled(None, {"Retry-After": "1"})
    assert len(held) == 2  # a 429
