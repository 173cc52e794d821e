"""The reconcile function: its Lambda events -> the reconciler's walk, or the journal's poll.

- Any event but the journal's (the schedule's, a walk's continuation, an operator's invoke) goes on
  with the scheduled walk from its stored cursor, under the walk's lease (one invocation walks at a
  time), until the invocation's time left less a margin. While live traffic holds it (``backlog``)
  it waits and goes on within the invocation. A walk that ran out of time, or that live traffic
  still holds, is continued at once by an asynchronous invocation of the function itself: a walk of
  a large ledger spans many invocations, and waiting for the next schedule (a day by default) would
  stretch it over weeks. A walk stopped by its daily share or HubSpot's daily limit is left to the
  next schedule: nothing can go on before the day turns. A walk stopped by HubSpot failing is
  left to the next schedule too, so a HubSpot outage does not keep a chain of invocations going.
- ``{"journal": true}`` (a schedule every minute): when the credential can read HubSpot's webhooks
  journal (an OAuth app), the journal is read from its stored offset and the contacts it names are
  reconciled; a journal that lost events asks for a walk.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from ..observability import logger, metrics
from .model import DriftKind, ReconcileReport
from .ports import ContactReconciler

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

#: What a run records as its source (``ledger.reconcile_progress``).
SCHEDULE_SOURCE = "schedule"
JOURNAL_SOURCE = "journal"
#: Reasons to stop after which the walk goes on at once (in another invocation).
CONTINUED_AFTER = frozenset({"deadline", "backlog"})
#: A journal poll ends within this, so the next minute's poll does not overlap it.
JOURNAL_SECONDS = 50.0
#: The time left when Lambda gives no context (a local run).
DEFAULT_SECONDS = 900.0


class Progress(Protocol):
    """``ledger.reconcile_progress.DynamoDbReconcileProgress``."""

    def cursor(self) -> str | None: ...

    def save_cursor(self, cursor: str | None) -> None: ...

    def record(self, report: ReconcileReport, source: str) -> None: ...

    def claim(self, owner: str, until_ms: int, now_ms: int) -> bool: ...

    def release(self, owner: str) -> None: ...


class JournalOutcome(Protocol):
    """What one journal poll found (``reconcile.journal.JournalReport``)."""

    @property
    def reconcile(self) -> ReconcileReport | None: ...

    @property
    def more(self) -> bool: ...

    @property
    def full_walk_needed(self) -> bool: ...

    def as_json(self) -> dict[str, Any]: ...


class JournalPoll(Protocol):
    def poll(self, deadline: float) -> JournalOutcome: ...


class LambdaSelfInvoker:
    """Starts the function's next invocation asynchronously with ``event``."""

    def __init__(self, client: LambdaClient, function_name: str, event: Mapping[str, Any]) -> None:
        self._client = client
        self._function_name = function_name
        self._payload = json.dumps(dict(event)).encode("utf-8")

    def __call__(self) -> None:
        try:
            self._client.invoke(
                FunctionName=self._function_name, InvocationType="Event", Payload=self._payload
            )
        except (ClientError, BotoCoreError) as exc:
            # The walk's cursor is stored: the next schedule goes on from it.
            logger.warning("could not continue the reconcile walk", extra={"error": type(exc).__name__})


@dataclass
class ReconcileRunner:
    reconciler: ContactReconciler
    progress: Progress
    #: starts the next invocation of the walk (None: the next schedule goes on)
    continuation: Callable[[], None] | None = None
    #: the journal's poller, built on the first journal event (None: no journal)
    journal: Callable[[], JournalPoll] | None = None
    #: why the journal cannot be read now (None: it can)
    journal_off: Callable[[], str | None] = lambda: None
    #: time kept back from the invocation's end: a page under way (its HubSpot calls with their
    #: retries) and the records after it
    margin_seconds: float = 60.0
    #: how long a walk held by live traffic waits before it looks again
    backlog_wait_seconds: float = 10.0
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def handle(self, event: Any, context: Any = None) -> dict[str, Any]:
        remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else DEFAULT_SECONDS
        deadline = self.monotonic() + max(0.0, remaining - self.margin_seconds)
        if isinstance(event, Mapping) and event.get("journal") is True:
            return self._journal(min(deadline, self.monotonic() + JOURNAL_SECONDS))
        owner = getattr(context, "aws_request_id", None) or uuid.uuid4().hex
        now_ms = int(self.clock() * 1000)
        # The lease outlives the invocation a little: a crashed holder lets it lapse on its own.
        if not self.progress.claim(owner, now_ms + int((remaining + 60) * 1000), now_ms):
            logger.info("reconcile walk skipped: another invocation walks")
            return {"skipped": "another invocation walks"}
        try:
            reports = self._walk(deadline)
        finally:
            self.progress.release(owner)
        return self._walk_ended(reports)

    def _walk(self, deadline: float) -> list[ReconcileReport]:
        cursor = self.progress.cursor()
        reports: list[ReconcileReport] = []
        while True:
            report = self.reconciler.run(cursor=cursor, deadline=deadline)
            reports.append(report)
            if report.cursor != cursor:
                self.progress.save_cursor(report.cursor)
            cursor = report.cursor
            if report.checked or report.calls or _complete(report):
                self.progress.record(report, SCHEDULE_SOURCE)
                publish_reconcile_metrics(report)
            if report.stopped_by != "backlog" or self.monotonic() + self.backlog_wait_seconds >= deadline:
                return reports
            self.sleep(self.backlog_wait_seconds)

    def _walk_ended(self, reports: list[ReconcileReport]) -> dict[str, Any]:
        last = reports[-1]
        complete = _complete(last)
        continued = not complete and last.stopped_by in CONTINUED_AFTER and self.continuation is not None
        if continued and self.continuation is not None:
            self.continuation()
        summary = {
            **_totals(reports),
            "source": SCHEDULE_SOURCE,
            "complete": complete,
            "stoppedBy": last.stopped_by,
            "continued": continued,
        }
        logger.info("reconcile run ended", extra=summary)
        return summary

    def _journal(self, deadline: float) -> dict[str, Any]:
        reason = self.journal_off() if self.journal is not None else "no journal poller"
        if reason is not None or self.journal is None:
            # Every minute: not worth a line at INFO when the credential cannot read the journal.
            logger.debug("journal not polled", extra={"reason": reason})
            return {"journal": "off", "reason": reason}
        poller = self.journal()
        outcomes: list[JournalOutcome] = []
        reports: list[ReconcileReport] = []
        while True:
            outcome = poller.poll(deadline)
            outcomes.append(outcome)
            if outcome.reconcile is not None:
                reports.append(outcome.reconcile)
                self.progress.record(outcome.reconcile, JOURNAL_SOURCE)
                publish_reconcile_metrics(outcome.reconcile)
            if not outcome.more or self.monotonic() >= deadline:
                break
        walk = any(outcome.full_walk_needed for outcome in outcomes)
        if walk and self.continuation is not None:
            self.continuation()
        summary = {
            **_totals(reports),
            "source": JOURNAL_SOURCE,
            "polls": len(outcomes),
            "journal": outcomes[-1].as_json(),
            "walkStarted": walk and self.continuation is not None,
        }
        (logger.info if reports or walk else logger.debug)("reconcile journal polled", extra=summary)
        return summary


def _complete(report: ReconcileReport) -> bool:
    """The walk reached its end (a run stopped before its first page has no cursor either, and
    has more)."""
    return not report.more


def _totals(reports: list[ReconcileReport]) -> dict[str, Any]:
    drift: dict[str, int] = {kind.value: 0 for kind in DriftKind}
    repaired: dict[str, int] = {kind.value: 0 for kind in DriftKind}
    for report in reports:
        for kind in DriftKind:
            drift[kind.value] += report.drift.get(kind, 0)
            repaired[kind.value] += report.repaired.get(kind, 0)
    totals: dict[str, Any] = {
        "runs": len(reports),
        "checked": sum(report.checked for report in reports),
        "drift": drift,
        "repaired": sum(repaired.values()),
        "repairedByKind": repaired,
        "calls": sum(report.calls for report in reports),
        "skipped": sum(report.skipped for report in reports),
    }
    lists = [report.membership for report in reports if report.membership is not None]
    if lists:
        totals["membershipDrift"] = {
            name: sum(getattr(drift, name) for drift in lists)
            for name in ("checked", "found", "repaired", "skipped")
        }
    return totals


def publish_reconcile_metrics(report: ReconcileReport) -> None:
    """``ContactsReconciled``, and ``DriftDetected`` / ``DriftRepaired`` per kind found (dimension
    ``Kind``; a kind not found publishes nothing; ``membership``: the audiences' lists)."""
    metrics.add_metric(name="ContactsReconciled", unit="Count", value=report.checked)
    for name, counts in (("DriftDetected", report.drift), ("DriftRepaired", report.repaired)):
        for kind in DriftKind:
            if counts.get(kind, 0):
                _kind_metric(name, kind.value, counts[kind])
    if report.membership is not None:
        for name, value in (
            ("DriftDetected", report.membership.found),
            ("DriftRepaired", report.membership.repaired),
        ):
            if value:
                _kind_metric(name, MEMBERSHIP_KIND, value)


#: The ``Kind`` of the audiences' lists' drift in the metrics.
MEMBERSHIP_KIND = "membership"


def _kind_metric(name: str, kind: str, value: int) -> None:
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    # A metric of its own: a dimension added to the shared Metrics would apply to all of them.
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=value,
        namespace=metrics.namespace,
        default_dimensions={"service": metrics.service or ""},
    ) as metric:
        metric.add_dimension(name="Kind", value=kind)
