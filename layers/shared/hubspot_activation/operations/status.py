"""``GET /sync/status``: how the sync is doing, from cheap reads only (no table scan).

Exact: failed, excluded and deleted (counts of the sparse issues index, up to a bound; ``exact:
false`` beyond it), the HubSpot calls counted today. Approximate, and named so in the answer: the
number of contacts the ledger tracks and those in sync (DynamoDB's ItemCount, refreshed about
every six hours, less the items known not to be contacts), the contacts waiting for the flush (the
pending markers' contacts: one written meanwhile may still be listed), the queues' depths (SQS's
own approximate counts) and the oldest message's age (CloudWatch, null when it has no recent
datapoint or cannot be read). ``fieldRules`` shows the rules in force (the deployment's
``FieldRules``). With the audiences' lists kept (``AudienceTarget`` list or both), ``lists``
shows the lists with membership changes waiting to be sent (``operations.lists``); those changes
count as updates waiting.

``state`` says what the sync does now, as HubSpot's own data sync names it:

- ``in_progress``: updates wait (on the queue, being merged, or pending for the flush);
- ``queued_daily_limit``: they wait, and today's count of HubSpot calls reached the daily limit
  less the reserve: the flush resumes after the account's midnight;
- ``queued_rate_limit``: they wait, and HubSpot's 10-second window held the flush within the last
  ``RATE_LIMIT_RECENT_SECONDS`` (a 429, or HubSpot's Remaining header down to the headroom the
  governor keeps for the other integrations);
- ``active_and_listening``: nothing waits;
- ``no_active_sync``: nothing waits and nothing was ever synced (no contact known, no HubSpot call
  today, no issue, no reconcile).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..field_rules import FieldRules
from ..hubspot.governor import account_day
from ..ledger.keys import ISSUE_DELETED, ISSUE_EXCLUDED, ISSUE_FAILED
from ..ledger.operations_store import Count, DailyCalls, OperationsStore
from ..timestamps import iso_from_ms
from .lists import AudienceLists
from .queues import QueueReader
from .reconcile import ReconcileHistory
from .views import error_kind, issue_view

#: The newest issues read for "last error by kind".
RECENT_ISSUES = 50
#: A hold by HubSpot's 10-second window this recent still explains a backlog (the flush records
#: a hold at most every 10 seconds).
RATE_LIMIT_RECENT_SECONDS = 30

NO_ACTIVE_SYNC = "no_active_sync"
IN_PROGRESS = "in_progress"
ACTIVE_AND_LISTENING = "active_and_listening"
QUEUED_RATE_LIMIT = "queued_rate_limit"
QUEUED_DAILY_LIMIT = "queued_daily_limit"


@dataclass(frozen=True)
class StatusSettings:
    queue_url: str
    queue_name: str
    dead_letter_url: str
    daily_limit: int
    daily_reserve: int
    account_timezone: str = "UTC"
    field_rules: FieldRules = field(default_factory=FieldRules)


class StatusService:
    def __init__(
        self,
        store: OperationsStore,
        queues: QueueReader,
        settings: StatusSettings,
        clock: Callable[[], float] = time.time,
        reconciles: ReconcileHistory | None = None,
        lists: AudienceLists | None = None,
    ) -> None:
        self._store = store
        self._lists = lists
        self._queues = queues
        self._settings = settings
        self._clock = clock
        self._reconciles = reconciles

    def status(self) -> dict[str, Any]:
        failed = self._store.count_issues(ISSUE_FAILED)
        excluded = self._store.count_issues(ISSUE_EXCLUDED)
        deleted = self._store.count_issues(ISSUE_DELETED)
        pending = self._store.pending_contacts()
        items = self._store.approximate_item_count()
        # ItemCount also counts exclusions, pending markers, audiences and daily counters:
        # subtracting what is counted exactly keeps the estimate closer, never negative.
        tracked = None if items is None else max(0, items - excluded.value)
        queue = self._queues.depth(self._settings.queue_url)
        dlq = self._queues.depth(self._settings.dead_letter_url) if self._settings.dead_letter_url else None
        queued = None if queue is None else queue.visible + queue.in_flight + queue.delayed
        day, calls = self._today()
        last_reconcile = self._reconciles.last() if self._reconciles else None
        lists = self._lists.waiting() if self._lists is not None else None
        waiting = (queued or 0) + pending.value
        if lists is not None:
            waiting += lists["pendingAdds"] + lists["pendingRemoves"]
        not_in_sync = failed.value + deleted.value + pending.value
        answer = {
            "state": self._state(waiting, calls, tracked, failed, deleted, last_reconcile),
            "backlog": {"queued": queued, "pendingContacts": pending.value, "pendingExact": pending.exact},
            "contacts": {
                "tracked": tracked,
                # Neither failed, nor deleted in HubSpot, nor waiting for the flush.
                "inSync": None if tracked is None else max(0, tracked - not_in_sync),
                "failed": failed.value,
                "failedExact": failed.exact,
                "excluded": excluded.value,
                "excludedExact": excluded.exact,
                "deleted": deleted.value,
                "deletedExact": deleted.exact,
            },
            "queue": {
                **(queue.to_json() if queue else {"visible": None, "inFlight": None, "delayed": None}),
                "pending": queued,
                "oldestMessageAgeSeconds": self._queues.oldest_age_seconds(self._settings.queue_name),
            },
            "deadLetterQueue": dlq.to_json() if dlq else None,
            "lastErrorByKind": self._last_errors(),
            "hubspotBudget": self._budget(day, calls),
            "lastReconcile": last_reconcile,
            "fieldRules": {
                "rules": self._settings.field_rules.as_json(),
                "note": "a property without a rule is overwrite; audience properties are always overwrite",
            },
            "approximate": [
                "contacts.tracked (DynamoDB's ItemCount: refreshed about every six hours)",
                "contacts.inSync",
                "backlog.pendingContacts (an upper bound)",
                "queue (SQS approximate counts)",
                "queue.oldestMessageAgeSeconds (CloudWatch, null without a recent datapoint)",
                "deadLetterQueue",
            ],
        }
        if lists is not None:
            answer["lists"] = lists
        return answer

    def _state(
        self,
        waiting: int,
        calls: DailyCalls,
        tracked: int | None,
        failed: Count,
        deleted: Count,
        last_reconcile: dict[str, Any] | None,
    ) -> str:
        if waiting:
            if calls.calls >= self._usable():
                return QUEUED_DAILY_LIMIT
            now_ms = int(self._clock() * 1000)
            if calls.held_at_ms is not None and now_ms - calls.held_at_ms <= RATE_LIMIT_RECENT_SECONDS * 1000:
                return QUEUED_RATE_LIMIT
            return IN_PROGRESS
        ever = bool(tracked) or calls.calls > 0 or failed.value > 0 or deleted.value > 0
        return ACTIVE_AND_LISTENING if ever or last_reconcile else NO_ACTIVE_SYNC

    def _last_errors(self) -> dict[str, Any]:
        kinds: dict[str, Any] = {}
        for item in self._store.issues(ISSUE_FAILED, RECENT_ISSUES, None).items:
            view = issue_view(item)
            kinds.setdefault(error_kind(view["reason"]), view)
        newest_exclusion = self._store.issues(ISSUE_EXCLUDED, 1, None).items
        if newest_exclusion:
            kinds["excluded"] = issue_view(newest_exclusion[0])
        return kinds

    def _today(self) -> tuple[str, DailyCalls]:
        day = account_day(self._clock(), self._settings.account_timezone)
        return day, self._store.daily_calls(day)

    def _usable(self) -> int:
        return max(0, self._settings.daily_limit - self._settings.daily_reserve)

    def _budget(self, day: str, calls: DailyCalls) -> dict[str, Any]:
        return {
            "day": day,
            "timezone": self._settings.account_timezone,
            # Consumers reserve calls in small blocks, so this runs slightly ahead of the real count.
            "used": calls.calls,
            "limit": self._settings.daily_limit,
            "reserve": self._settings.daily_reserve,
            "remaining": max(0, self._usable() - calls.calls),
            "rateLimitHeldAt": iso_from_ms(calls.held_at_ms) if calls.held_at_ms else None,
        }
