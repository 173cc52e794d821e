"""``POST /reconcile``: compare what HubSpot holds with the ledger and repair the drift, on demand.

The reconciler (``reconcile.service.Reconciler``) is built on the first call: the other routes
never need the HubSpot credential. One call is bounded like ``/replay`` (API Gateway answers 504
after 30 s): it walks the tracked contacts from the cursor until its time or its number of
contacts is spent, and answers ``more`` with the cursor to call again with. A call that names its
contacts (``emails``, at most one HubSpot batch read of them) checks just those. Every outcome is
recorded (``lastReconcile`` of ``GET /sync/status``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from ..ledger.operations_store import StoreUnavailable
from ..observability import logger
from ..reconcile.adapter import publish_reconcile_metrics
from ..reconcile.model import InvalidCursor, ReconcileReport
from ..reconcile.ports import ContactReconciler
from ..upsert.ledger import LedgerUnavailable
from .views import InvalidParameter

#: Where an outcome was recorded from.
API_SOURCE = "api"


class ReconcileHistory(Protocol):
    """``ledger.reconcile_progress.DynamoDbReconcileProgress`` as the operator's routes use it."""

    def record(self, report: ReconcileReport, source: str) -> None: ...

    def last(self) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class ReconcileLimits:
    #: contacts one call checks at most (50 HubSpot reads)
    max_contacts: int = 5000
    #: emails one call may name (one HubSpot batch read)
    max_emails: int = 100
    #: wall time one call may spend (API Gateway gives up after 30 s)
    budget_seconds: float = 20.0
    #: kept of the invocation's time to record the outcome and answer
    margin_seconds: float = 3.0


class ReconcileService:
    def __init__(
        self,
        build: Callable[[], ContactReconciler],
        history: ReconcileHistory,
        limits: ReconcileLimits | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``build`` makes the reconciler (the HubSpot client with it) on the first call, once."""
        self._build = build
        self._runner: ContactReconciler | None = None
        self._history = history
        self.limits = limits or ReconcileLimits()
        self._monotonic = monotonic

    def reconcile(
        self, dry_run: bool, cursor: str | None, emails: list[str] | None, remaining_seconds: float | None
    ) -> dict[str, Any]:
        """Run one bounded call; ``remaining_seconds`` is the invocation's time left (None: not
        known, the budget alone bounds it)."""
        seconds = self.limits.budget_seconds
        if remaining_seconds is not None:
            seconds = min(seconds, remaining_seconds - self.limits.margin_seconds)
        deadline = self._monotonic() + max(0.0, seconds)
        if self._runner is None:
            self._runner = self._build()
        try:
            report = self._runner.run(
                dry_run=dry_run,
                cursor=None if emails else cursor,
                emails=emails,
                deadline=deadline,
                max_contacts=self.limits.max_contacts,
            )
        except InvalidCursor as exc:
            raise InvalidParameter("cursor", str(exc)) from None
        if not dry_run:
            publish_reconcile_metrics(report)  # the dashboard's drift, whoever ran the reconcile
        answer = report.as_json()
        answer["recorded"] = self._record(report)
        return answer

    def _record(self, report: ReconcileReport) -> bool:
        """False when the outcome could not be recorded: the work is done, the answer says so."""
        try:
            self._history.record(report, source=API_SOURCE)
        except (LedgerUnavailable, StoreUnavailable, ClientError, BotoCoreError) as exc:
            logger.warning("reconcile outcome not recorded", extra={"error": repr(exc)[:300]})
            return False
        return True
