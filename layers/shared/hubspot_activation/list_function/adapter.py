"""The AWS side of the lists function: its Lambda events -> ``lists.runner.ListRunner``, and the
SQS adapter of ``lists.ports.ListTimer``.

- An SQS event (the timer queue's): each record's body ``{"audienceId": ...}`` names an audience
  to drain; the batch's audiences are drained in one run (several timers of one list, one drain).
  A record whose audience was not reached (no time left, the ledger failed) is
  reported in ``batchItemFailures`` and comes back (not after a run HubSpot stopped: the list stays
  due and the sweep comes back to it); an unreadable body is logged and dropped (the
  sweep drains whatever is due). The response is built here rather than by powertools'
  BatchProcessor, which handles records one by one: a batch's timers for one list share a drain.
- Any other event (the schedule's every minute): every due list is drained.
- With ``AudienceTarget=property`` no list is kept: the function answers at once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..lists.runner import ListRun, ListRunner
from ..observability import logger, metrics

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

#: The time left when Lambda gives no context (a local run).
DEFAULT_SECONDS = 300.0
#: SQS's longest message delay.
MAX_DELAY_SECONDS = 900


class SqsListTimer:
    """``ports.ListTimer``: a message to the timer queue, delayed (at most SQS's 15 minutes: a
    longer wait is cut to it, and the drain then finds the list not yet due or drains it early)."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def start(self, audience_id: str, delay_seconds: int) -> None:
        self._client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=json.dumps({"audienceId": audience_id}),
            DelaySeconds=max(0, min(MAX_DELAY_SECONDS, int(delay_seconds))),
        )


@dataclass
class ListsFunction:
    """The lists function: ``runner`` is None when the deployment keeps no lists."""

    runner: ListRunner | None

    def handle(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        metrics.add_metric(name="ListRuns", unit="Count", value=1)
        records = event.get("Records") if isinstance(event, Mapping) else None
        if self.runner is None:
            return {"batchItemFailures": []} if records is not None else {"skipped": "no lists kept"}
        remaining = (
            (lambda: context.get_remaining_time_in_millis() / 1000)
            if context is not None and hasattr(context, "get_remaining_time_in_millis")
            else (lambda: DEFAULT_SECONDS)
        )
        owner = getattr(context, "aws_request_id", None) or uuid.uuid4().hex
        if records is None:
            run = self.runner.sweep(remaining, owner)
            return self._summary(run, "schedule")
        named: dict[str, list[str]] = {}
        for record in records:
            audience_id = _audience_of(record)
            if audience_id is None:
                logger.warning(
                    "list timer without an audience dropped", extra={"messageId": record.get("messageId")}
                )
                continue
            named.setdefault(audience_id, []).append(str(record.get("messageId")))
        run = self.runner.wake(list(named), remaining, owner)
        summary = self._summary(run, "timer")
        # A run stopped by HubSpot leaves its lists due: the sweep comes back to them, a timer
        # retried sooner would only meet the same refusal.
        again = set(run.failed) | (set() if run.stopped_by else set(run.left))
        summary["batchItemFailures"] = [
            {"itemIdentifier": message_id}
            for audience_id, message_ids in named.items()
            if audience_id in again
            for message_id in message_ids
        ]
        return summary

    @staticmethod
    def _summary(run: ListRun, trigger: str) -> dict[str, Any]:
        summary: dict[str, Any] = {"trigger": trigger, **run.summary()}
        for name, value in (
            ("ListHubSpotCalls", summary["calls"]),
            ("ListMembersAdded", summary["added"]),
            ("ListMembersRemoved", summary["removed"]),
            ("ListErrors", summary["errors"]),
        ):
            metrics.add_metric(name=name, unit="Count", value=float(str(value)))
        (logger.info if run.lists or run.stopped_by else logger.debug)("lists run ended", extra=summary)
        return summary


def _audience_of(record: Mapping[str, Any]) -> str | None:
    try:
        body = json.loads(record.get("body") or "")
    except (TypeError, ValueError):
        return None
    audience_id = body.get("audienceId") if isinstance(body, dict) else None
    return audience_id if isinstance(audience_id, str) and audience_id else None
