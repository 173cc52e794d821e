"""``reconcile.ports.ReconcileBudget`` as deployed: reconcile spends only what live syncs leave.

It holds while live traffic is under way (updates wait in the queue or are being merged, or a
flush run holds a lane), and once its own calls of the day reach its daily share. Its HubSpot
client also goes through the account-wide daily count and a 10-second governor of its own
(``reconcile.wiring``), so these holds are about leaving live syncs the budget, not about HubSpot's
limits themselves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from ..upsert.flush import QueueLoad


class CallCounter(Protocol):
    """``ledger.daily_counter.DynamoDbDailyCounter`` on reconcile's own key."""

    def add(self, day: str, calls: int) -> int:
        """Count ``calls`` more for ``day``; returns the day's total across every caller."""
        ...

    def total(self, day: str) -> int:
        """The day's total so far."""
        ...


BACKLOG = "backlog"
DAILY_SHARE = "daily_share"


@dataclass(frozen=True)
class DailyShare:
    """``share`` of the daily budget above the reserve, on the account's calendar."""

    share: float
    daily_limit: int
    daily_reserve: int
    timezone: str = "UTC"

    @property
    def calls(self) -> int:
        return math.floor(self.share * max(0, self.daily_limit - self.daily_reserve))

    def day(self, now: float) -> str:
        return datetime.fromtimestamp(now, tz=ZoneInfo(self.timezone)).date().isoformat()


class LiveTrafficBudget:
    """``counter`` counts reconcile's calls per day across every caller (the schedule's walk, the
    operator's ``POST /reconcile``, the journal poll); ``queue_load`` and ``flushing`` say whether
    live traffic is under way (None: not looked at)."""

    def __init__(
        self,
        counter: CallCounter,
        share: DailyShare,
        queue_load: Callable[[], QueueLoad] | None = None,
        flushing: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._counter = counter
        self._share = share
        self._queue_load = queue_load
        self._flushing = flushing
        self._clock = clock
        #: the day and reconcile's calls of it, as the counter last answered
        self._day = ""
        self._used = 0

    def hold(self) -> str | None:
        # The daily share first: after the day's first look it costs no call.
        if self.used_today() >= self._share.calls:
            return DAILY_SHARE
        if self._queue_load is not None:
            load = self._queue_load()
            if load.waiting or load.merging:
                return BACKLOG
        if self._flushing is not None and self._flushing():
            return BACKLOG
        return None

    def spent(self, calls: int) -> None:
        if calls > 0:
            day = self._share.day(self._clock())
            self._used, self._day = self._counter.add(day, calls), day

    def used_today(self) -> int:
        """Reconcile's calls today (the counter is read on the day's first look, then known from
        what each count answers)."""
        day = self._share.day(self._clock())
        if day != self._day:
            self._used, self._day = self._counter.total(day), day
        return self._used
