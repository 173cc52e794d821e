"""Client-side pacing that keeps this connector under HubSpot's limits.

The 10-second limit is per app and the daily limit is shared by every app of the account. Each
Lambda instance has its own governor: alone it may use the whole ``share`` of the burst limit; with
others, HubSpot's app-wide ``X-HubSpot-RateLimit-Remaining`` divides it between them, each keeping a
headroom of the other integrations' part plus the calls the others may have in flight
(``concurrency``). It keeps a reserve of the daily limit for the account's other integrations and
follows the 429 policy names.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..settings import (
    HUBSPOT_ACCOUNT_TIMEZONE,
    HUBSPOT_DAILY_LIMIT,
    HUBSPOT_DAILY_RESERVE,
    HUBSPOT_LIMIT_SHARE,
    HUBSPOT_TEN_SECOND_LIMIT,
)
from .errors import DailyLimitReached


@dataclass(frozen=True)
class GovernorSettings:
    limit_per_window: int = HUBSPOT_TEN_SECOND_LIMIT.default
    window_seconds: float = 10.0
    share: float = HUBSPOT_LIMIT_SHARE.default
    #: How many consumers run at once (the event source's MaximumConcurrency).
    concurrency: int = 1
    #: Governors that divide the share evenly between them (flush lanes): each sends at most its
    #: part in any window, so together they never overrun the share, whatever HubSpot's headers
    #: lag behind.
    lanes: int = 1
    daily_reserve: int = HUBSPOT_DAILY_RESERVE.default
    daily_limit: int = HUBSPOT_DAILY_LIMIT.default
    account_timezone: str = HUBSPOT_ACCOUNT_TIMEZONE.default

    def __post_init__(self) -> None:
        if self.limit_per_window < 1 or self.window_seconds <= 0:
            raise ValueError("limit_per_window and window_seconds must be positive")
        if not 0 < self.share <= 1:
            raise ValueError("share must be in (0, 1]")
        if self.concurrency < 1 or self.lanes < 1:
            raise ValueError("concurrency and lanes must be at least 1")
        try:
            ZoneInfo(self.account_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.account_timezone!r}") from None

    @property
    def budget(self) -> int:
        """Requests this instance may send per window: the whole share when it is alone, its
        lane's part with several lanes. With several consumers HubSpot's app-wide Remaining header
        divides the share between them."""
        return max(1, math.floor(self.limit_per_window * self.share / self.lanes))

    def headroom(self, maximum: int) -> float:
        """What must stay unused of the app's window: the other integrations' part, plus one request
        per consumer that may be in flight unseen by the latest Remaining figure."""
        return maximum * (1 - self.share) + self.concurrency


class DailyCounter(Protocol):
    def add(self, day: str, calls: int) -> int:
        """Count ``calls`` more for ``day``; returns the day's total across every consumer."""
        ...


#: Calls reserved from the shared daily count at a time: one counter update per this many calls.
DAILY_BLOCK = 10


@dataclass
class _Call:
    """One request of ours: when it was sent, and when its answer came (None while in flight).
    HubSpot counts it on arrival, which is after ``sent`` and before ``answered``."""

    sent: float
    answered: float | None = None

    def arrived_by(self, margin: float) -> float:
        """The latest HubSpot can have counted it: before its answer; while it is in flight,
        network transit is assumed to stay within ``margin`` of sending."""
        return self.sent + margin if self.answered is None else self.answered


class RateGovernor:
    def __init__(
        self,
        settings: GovernorSettings,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        daily_counter: DailyCounter | None = None,
        on_held: Callable[[], None] | None = None,
    ) -> None:
        """``on_held`` is told each time HubSpot's 10-second window holds the requests (a 429, or
        the Remaining header down to the headroom), outside the governor's lock: ``GET
        /sync/status`` shows a backlog that waits for it as queued by the rate limit."""
        self.settings = settings
        self._daily_counter = daily_counter
        self._on_held = on_held
        self._daily_allowance = 0
        self._daily_day = ""
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._sent: deque[_Call] = deque()
        self._paused_until = 0.0
        self._daily_stop_until: float | None = None
        self._lock = threading.Lock()
        #: the request each thread sent last, which the answer it observes belongs to
        self._current = threading.local()
        # Arrival at HubSpot is a little later than our send time: keep a margin on the window.
        self._margin = settings.window_seconds * 0.02 + 0.02
        self.waited_seconds = 0.0
        self.throttled = 0
        #: HubSpot's X-HubSpot-RateLimit-Remaining on the latest answer (None before any)
        self.last_remaining: int | None = None

    def acquire(self) -> None:
        """Block until a request may be sent; raise DailyLimitReached when the daily budget is spent."""
        self._count_daily()
        while True:
            with self._lock:
                if self._daily_stop_until is not None:
                    if self._wall_clock() < self._daily_stop_until:
                        raise DailyLimitReached("daily API budget used up", resets_at=self._daily_stop_until)
                    self._daily_stop_until = None
                now = self._clock()
                wait = self._wait_locked(now)
                if wait <= 0:
                    call = _Call(now)
                    self._sent.append(call)
                    self._current.call = call
                    return
            self.waited_seconds += wait
            self._sleep(wait)

    def ready_in(self) -> float:
        """Seconds until a request could be sent (0: now)."""
        with self._lock:
            return max(0.0, self._wait_locked(self._clock()))

    def _wait_locked(self, now: float) -> float:
        """How long the next request must wait: a pause, or our own budget's window (lock held)."""
        self._forget_left(now)
        wait = self._paused_until - now
        if len(self._sent) >= self.settings.budget:
            wait = max(wait, self._leaves(self._sent[0]) - now)
        return wait

    def _leaves(self, call: _Call) -> float:
        """When ``call`` has surely left HubSpot's rolling window."""
        return call.arrived_by(self._margin) + self.settings.window_seconds

    def _forget_left(self, now: float) -> None:
        while self._sent and self._leaves(self._sent[0]) <= now:
            self._sent.popleft()

    def _count_daily(self) -> None:
        """Count this call in the connector's shared daily total (in blocks, to spare the counter),
        and stop until the account's midnight once the total reaches the limit less the reserve:
        without this an OAuth app, which gets no daily header, could spend the whole shared limit."""
        if self._daily_counter is None:
            return
        now = self._wall_clock()
        with self._lock:
            if self._daily_stop_until is not None and now < self._daily_stop_until:
                raise DailyLimitReached("daily API budget used up", resets_at=self._daily_stop_until)
        day = account_day(now, self.settings.account_timezone)
        with self._lock:
            if day != self._daily_day:
                self._daily_day, self._daily_allowance = day, 0
            if self._daily_allowance > 0:
                self._daily_allowance -= 1
                return
        total = self._daily_counter.add(day, DAILY_BLOCK)
        budget = self.settings.daily_limit - self.settings.daily_reserve
        if total > budget + DAILY_BLOCK - 1:
            resets_at = next_daily_reset(now, self.settings.account_timezone)
            with self._lock:
                self._daily_stop_until = resets_at
            raise DailyLimitReached(
                f"the connector's daily budget ({budget} calls) is used up", resets_at=resets_at
            )
        with self._lock:
            self._daily_allowance = min(DAILY_BLOCK, budget - (total - DAILY_BLOCK)) - 1

    def observe(self, headers: Mapping[str, str]) -> None:
        """Slow down from HubSpot's headers before it refuses (other apps share the window too)."""
        remaining = _int(headers.get("X-HubSpot-RateLimit-Remaining"))
        maximum = _int(headers.get("X-HubSpot-RateLimit-Max")) or self.settings.limit_per_window
        interval_ms = _int(headers.get("X-HubSpot-RateLimit-Interval-Milliseconds"))
        interval = interval_ms / 1000 if interval_ms else self.settings.window_seconds
        observed: _Call | None = getattr(self._current, "call", None)
        self._current.call = None
        held = False
        with self._lock:
            if observed is not None:
                observed.answered = self._clock()
            if remaining is not None:
                self.last_remaining = remaining
                headroom = self.settings.headroom(maximum)
                if remaining <= headroom:
                    held = True
                    self._paused_until = max(
                        self._paused_until,
                        self._slot_frees_at(observed, remaining, headroom, maximum, interval),
                    )
            daily_remaining = _int(headers.get("X-HubSpot-RateLimit-Daily-Remaining"))
            if daily_remaining is not None and daily_remaining <= self.settings.daily_reserve:
                self._daily_stop_until = next_daily_reset(self._wall_clock(), self.settings.account_timezone)
        if held:
            self._held()

    def _held(self) -> None:
        if self._on_held is not None:
            self._on_held()

    def _slot_frees_at(
        self, observed: _Call | None, remaining: int, headroom: float, maximum: int, interval: float
    ) -> float:
        """When the window is down to its headroom, send again only when one of our own requests
        that ``remaining`` counted leaves it: each consumer then reuses only slots it frees itself,
        so together they keep the window full and never overrun it, however many there are.

        Only requests still in the window when the observed one arrived count: one of ours that
        left before that freed a slot the window has already refilled (any consumer may send
        while it is above the headroom), and reusing it again would overrun the share by every
        request that left within the arrival margin. A consumer with nothing counted waits for
        roughly the slots it would eat into."""
        now = self._clock()
        self._forget_left(now)
        counted_after = (observed.arrived_by(self._margin) if observed is not None else now) - interval
        counted = [self._leaves(call) for call in self._sent if call.sent > counted_after]
        if counted:
            return min(counted)
        deficit = headroom - remaining + 1
        return now + interval * deficit / maximum

    def on_throttled(self, policy_name: str | None, headers: Mapping[str, str]) -> float:
        """React to a 429. Returns how long the caller should wait before retrying (the governor
        also holds every other request that long); raises DailyLimitReached for the daily limit."""
        self.throttled += 1
        if policy_name == "DAILY":
            resets_at = next_daily_reset(self._wall_clock(), self.settings.account_timezone)
            with self._lock:
                self._daily_stop_until = resets_at
            raise DailyLimitReached(
                "HubSpot daily limit reached", resets_at=resets_at, status=429, policy_name="DAILY"
            )
        with self._lock:
            wait = self._throttle_wait(policy_name, headers)
            self._paused_until = max(self._paused_until, self._clock() + wait)
        self._held()
        return wait

    def _throttle_wait(self, policy_name: str | None, headers: Mapping[str, str]) -> float:
        """As long as the headers say, and no longer: HubSpot's window is rolling, so a slot frees
        as soon as the oldest request in it is an interval old. Of the requests in the window we
        know our own: once our oldest has aged out, at least one slot is free. With none of ours in
        it (other apps filled it), one slot's share of the interval."""
        retry_after = _float(headers.get("Retry-After"))
        if retry_after is not None and retry_after >= 0:
            return retry_after
        if policy_name == "SECONDLY":  # search's per-second limit
            return 1.0
        interval_ms = _int(headers.get("X-HubSpot-RateLimit-Interval-Milliseconds"))
        interval = interval_ms / 1000 if interval_ms else self.settings.window_seconds
        maximum = _int(headers.get("X-HubSpot-RateLimit-Max")) or self.settings.limit_per_window
        remaining = _int(headers.get("X-HubSpot-RateLimit-Remaining"))
        one_slot = interval / max(1, maximum)
        if remaining is not None and remaining > 0:
            return one_slot  # the window has room again: a short pause is all that is needed
        now = self._clock()
        in_window = [call.sent for call in self._sent if call.sent > now - interval]
        if not in_window:
            return one_slot
        return max(one_slot, in_window[0] + interval + self._margin - now)


def account_day(now: float, timezone: str = "UTC") -> str:
    """The account's calendar day at ``now`` (epoch seconds), ``YYYY-MM-DD``: what the daily limit
    and every per-day count are kept by."""
    return datetime.fromtimestamp(now, tz=ZoneInfo(timezone)).date().isoformat()


def next_daily_reset(now: float, timezone: str = "UTC") -> float:
    """The next midnight in the account's time zone, as epoch seconds."""
    moment = datetime.fromtimestamp(now, tz=ZoneInfo(timezone))
    midnight = (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.timestamp()


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
