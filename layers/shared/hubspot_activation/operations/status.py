"""``GET /sync/status``: how the sync is doing, from cheap reads only (no table scan).

Exact: failed and excluded (counts of the sparse issues index, up to a bound; ``exact: false``
beyond it), the HubSpot calls counted today. Approximate, and named so in the answer: the number
of contacts the ledger tracks and those in sync (DynamoDB's ItemCount, refreshed about every six
hours), the queues' depths (SQS's own approximate counts) and the oldest message's age
(CloudWatch, null when it has no recent datapoint or cannot be read).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ..ledger.keys import ISSUE_EXCLUDED, ISSUE_FAILED
from ..ledger.operations_store import OperationsStore
from .queues import QueueReader
from .views import error_kind, issue_view

#: The newest issues read for "last error by kind".
RECENT_ISSUES = 50


@dataclass(frozen=True)
class StatusSettings:
    queue_url: str
    queue_name: str
    dead_letter_url: str
    daily_limit: int
    daily_reserve: int
    account_timezone: str = "UTC"


class StatusService:
    def __init__(
        self,
        store: OperationsStore,
        queues: QueueReader,
        settings: StatusSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._queues = queues
        self._settings = settings
        self._clock = clock

    def status(self) -> dict[str, Any]:
        failed = self._store.count_issues(ISSUE_FAILED)
        excluded = self._store.count_issues(ISSUE_EXCLUDED)
        items = self._store.approximate_item_count()
        # ItemCount also counts exclusions, audiences and daily counters: subtracting the exact
        # issue counts keeps the estimate honest, never negative.
        tracked = None if items is None else max(0, items - excluded.value)
        queue = self._queues.depth(self._settings.queue_url)
        dlq = self._queues.depth(self._settings.dead_letter_url) if self._settings.dead_letter_url else None
        return {
            "contacts": {
                "tracked": tracked,
                "inSync": None if tracked is None else max(0, tracked - failed.value),
                "failed": failed.value,
                "failedExact": failed.exact,
                "excluded": excluded.value,
                "excludedExact": excluded.exact,
            },
            "queue": {
                **(queue.to_json() if queue else {"visible": None, "inFlight": None, "delayed": None}),
                "pending": None if queue is None else queue.visible + queue.in_flight + queue.delayed,
                "oldestMessageAgeSeconds": self._queues.oldest_age_seconds(self._settings.queue_name),
            },
            "deadLetterQueue": dlq.to_json() if dlq else None,
            "lastErrorByKind": self._last_errors(),
            "hubspotBudget": self._budget(),
            "approximate": [
                "contacts.tracked",
                "contacts.inSync",
                "queue (SQS approximate counts)",
                "queue.oldestMessageAgeSeconds (CloudWatch, null without a recent datapoint)",
                "deadLetterQueue",
            ],
        }

    def _last_errors(self) -> dict[str, Any]:
        kinds: dict[str, Any] = {}
        for item in self._store.issues(ISSUE_FAILED, RECENT_ISSUES, None).items:
            view = issue_view(item)
            kinds.setdefault(error_kind(view["reason"]), view)
        newest_exclusion = self._store.issues(ISSUE_EXCLUDED, 1, None).items
        if newest_exclusion:
            kinds["excluded"] = issue_view(newest_exclusion[0])
        return kinds

    def _budget(self) -> dict[str, Any]:
        zone = ZoneInfo(self._settings.account_timezone)
        day = datetime.fromtimestamp(self._clock(), tz=zone).date().isoformat()
        used = self._store.daily_calls(day)
        usable = max(0, self._settings.daily_limit - self._settings.daily_reserve)
        return {
            "day": day,
            "timezone": self._settings.account_timezone,
            # Consumers reserve calls in small blocks, so this runs slightly ahead of the real count.
            "used": used,
            "limit": self._settings.daily_limit,
            "reserve": self._settings.daily_reserve,
            "remaining": max(0, usable - used),
        }
