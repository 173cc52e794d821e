"""``reconcile.ports.ReconcileBudget`` as deployed: reconcile spends only what live syncs leave.

It holds while updates wait in the queue or are being merged (a backlog of live traffic), and
once its own calls of the day reach its daily share. Contacts already merged and being written by
the flusher are left to the 10-second governor of reconcile's HubSpot client (``reconcile.wiring``):
it takes a tenth of the window and waits whenever others use more, so a flush writing at its pace
stops reconcile's reads call by call. The flush lanes' leases are no sign of live traffic: every
minute's scheduled run takes them with nothing to write, and reconcile's own repairs wake the
flusher, so holding on them would hold reconcile on itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..hubspot.governor import account_day
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
#: Queued updates (waiting or being merged) that make a backlog reconcile yields to. A trickle of
#: live traffic (a message or a few, merged within a second) does not: under steady low traffic
#: the walk would otherwise never advance, while its reads take a tenth of the window anyway.
BACKLOG_MESSAGES = 10
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
        return account_day(now, self.timezone)


class LiveTrafficBudget:
    """``counter`` counts reconcile's calls per day across every caller (the schedule's walk, the
    operator's ``POST /reconcile``, the journal poll); ``queue_load`` says what waits in the
    queue (None: not looked at)."""

    def __init__(
        self,
        counter: CallCounter,
        share: DailyShare,
        queue_load: Callable[[], QueueLoad] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._counter = counter
        self._share = share
        self._queue_load = queue_load
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
            if load.waiting + load.merging >= BACKLOG_MESSAGES:
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
