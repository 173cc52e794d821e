"""The AWS side of the sync: the merge function's SQS event -> ``MergeService`` ->
``batchItemFailures``, the flush function's event -> a lane's ``Flusher`` run, and the SQS and
Lambda adapters of their ports.

This and ``ingest.api`` are the only modules that know Lambda event shapes. Powertools'
BatchProcessor handles records one by one; the merge needs the whole batch at once (to coalesce a
contact's updates into one conditional write), so the partial-batch response is built here, with
FIFO order kept by the service.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..messages import QueueMessage
from ..observability import logger, metrics, tracer
from .flush import Flusher, FlushReport, QueueLoad
from .merge import MergeReport, MergeService
from .plan import InboundMessage, Outcome
from .ports import FlushWaker
from .state import FlushLease

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_sqs import SQSClient

#: SQS's most messages per batch call.
SQS_BATCH_MAX = 10


def change_visibility(
    client: SQSClient, queue_url: str, messages: Sequence[InboundMessage], seconds: int, failure: str
) -> None:
    """ChangeMessageVisibilityBatch, ten messages a call; a refused call is logged as ``failure``
    and the next chunk still tried (what SQS refuses keeps its current visibility)."""
    for start in range(0, len(messages), SQS_BATCH_MAX):
        entries: list[Any] = [
            {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": seconds}
            for i, m in enumerate(messages[start : start + SQS_BATCH_MAX])
            if m.receipt_handle
        ]
        if not entries:
            continue
        try:
            client.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            logger.warning(failure, extra={"error": str(exc)[:300]})


class SqsVisibilityChanger:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    @tracer.capture_method(capture_response=False, capture_error=False)
    def extend(self, messages: Sequence[InboundMessage], seconds: int) -> None:
        # When SQS refuses, the messages come back after the normal visibility timeout: no loss.
        change_visibility(self._client, self._queue_url, messages, seconds, "could not extend visibility")


class SqsQueueSender:
    """Sends a resume job's messages to the queue: chunk after chunk, so a group's messages keep
    their order; any message SQS did not take raises, and the job is tried again."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    @tracer.capture_method(capture_response=False, capture_error=False)
    def publish(self, messages: Sequence[QueueMessage], request_id: str) -> int:
        requests = 0
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            entries: list[Any] = [
                {
                    "Id": str(i),
                    "MessageBody": m.body,
                    "MessageGroupId": m.group_id,
                    "MessageDeduplicationId": m.deduplication_id,
                }
                for i, m in enumerate(chunk)
            ]
            requests += 1
            response = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            if response.get("Failed"):
                raise RuntimeError(f"SQS did not take {len(response['Failed'])} messages of {request_id}")
        return requests


class SqsDeadLetters:
    """Moves messages that can never be processed straight to the dead-letter queue, keeping their
    group (so an operator's redrive keeps their order) and their body untouched for inspection."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    @tracer.capture_method(capture_response=False, capture_error=False)
    def send(self, messages: Sequence[InboundMessage]) -> set[str]:
        unmoved: set[str] = set()
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            entries: list[Any] = [
                {
                    "Id": str(i),
                    "MessageBody": m.body or "(empty)",
                    "MessageGroupId": m.group_id or "undecodable",
                    "MessageDeduplicationId": m.message_id[:128],
                }
                for i, m in enumerate(chunk)
            ]
            try:
                response = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                logger.warning("could not move messages to the DLQ", extra={"error": str(exc)[:300]})
                unmoved.update(m.message_id for m in chunk)
                continue
            unmoved.update(chunk[int(item["Id"])].message_id for item in response.get("Failed", []))
        return unmoved


def inbound_messages(event: Mapping[str, Any]) -> list[InboundMessage]:
    """The event's records (Lambda's SQS event shape). Read directly rather than through
    powertools' SQSEvent: importing its data classes loads every event class of the package, about
    13 ms of each cold start for the five fields used here."""
    messages = []
    for record in event.get("Records", []):
        attributes = record.get("attributes") or {}
        messages.append(
            InboundMessage(
                message_id=record["messageId"],
                group_id=attributes.get("MessageGroupId") or "",
                body=record.get("body") or "",
                receipt_handle=record.get("receiptHandle", ""),
                receive_count=int(attributes.get("ApproximateReceiveCount") or "1"),
            )
        )
    return messages


class SqsQueueLoad:
    """What the queue holds for the merges: SQS's approximate counts of visible messages (waiting)
    and of messages in flight (being merged, or backing off after a failed merge)."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def __call__(self) -> QueueLoad:
        try:
            response = self._client.get_queue_attributes(
                QueueUrl=self._queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )
        except (ClientError, BotoCoreError) as exc:
            # Unknown is taken as empty: contacts are written at once rather than held back.
            logger.warning("could not read the queue's depth", extra={"error": type(exc).__name__})
            return QueueLoad(0)
        attributes = response.get("Attributes", {})
        return QueueLoad(
            waiting=int(attributes.get("ApproximateNumberOfMessages", "0")),
            merging=int(attributes.get("ApproximateNumberOfMessagesNotVisible", "0")),
        )


class LambdaFlushWaker:
    """Starts flush runs with asynchronous invocations of the flush function, one per lane. A lane
    being flushed already is left to its run (the new run finds the lane's lease taken and ends)."""

    def __init__(self, client: LambdaClient, function_name: str) -> None:
        self._client = client
        self._function_name = function_name

    def wake(self, lanes: Collection[int], sweep: bool = False) -> None:
        for lane in sorted(lanes):
            event: dict[str, Any] = {"lane": lane, "sweep": True} if sweep else {"lane": lane}
            try:
                self._client.invoke(
                    FunctionName=self._function_name,
                    InvocationType="Event",
                    Payload=json.dumps(event).encode("utf-8"),
                )
            except (ClientError, BotoCoreError) as exc:
                # The schedule starts a run within a minute: the contacts stay pending till then.
                logger.warning("could not wake the flusher", extra={"error": type(exc).__name__})


@dataclass
class MergeConsumer:
    """The merge function: an SQS batch in, the messages to retry out."""

    service: MergeService

    def handle(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        messages = inbound_messages(event)
        report = self.service.process(messages)
        publish_merge_metrics(report)
        logger.info(
            "batch merged",
            extra={
                "messages": len(messages),
                "contacts": report.contacts,
                "changed": report.changed,
                "newlyPending": report.newly_pending,
                "refused": report.refused,
                "undecodable": report.undecodable,
                "returned": len(report.failed_message_ids),
            },
        )
        returned = set(report.failed_message_ids)
        return {
            "batchItemFailures": [
                {"itemIdentifier": m.message_id} for m in messages if m.message_id in returned
            ]
        }


@dataclass
class LaneTails:
    """The ``TailPolicy`` of a run of lane ``lane`` of ``lanes``: lane 0 writes every lane's tail,
    taking the leases of the lanes not running; the others hand theirs to it."""

    lane: int
    lanes: int
    lease: FlushLease
    owner: str
    until_ms: int
    partitions: Callable[[int, bool], list[int]]
    clock: Callable[[], float] = time.time
    #: other lanes whose lease this run took
    taken: list[int] = field(default_factory=list)
    #: other lanes another run held at the last gather
    running: list[int] = field(default_factory=list)

    def hand_over(self) -> bool:
        return self.lane != 0

    def gather(self) -> list[int]:
        gathered: list[int] = []
        self.running = []
        for other in range(1, self.lanes):
            if other in self.taken:
                continue
            if self.lease.acquire(other, self.owner, self.until_ms, int(self.clock() * 1000)):
                self.taken.append(other)
                gathered.extend(self.partitions(other, False))
            else:
                self.running.append(other)
        return gathered

    def others_running(self) -> bool:
        return bool(self.running)

    def release(self) -> list[int]:
        """Let the taken lanes go; returns those a wake-up asked to run again meanwhile."""
        return [other for other in self.taken if self.lease.release(other, self.owner)]


@dataclass
class FlushRunner:
    """The flush function: a run of one lane under its lease. An event without a lane (the
    schedule) wakes every lane, lane 0 with a sweep of the partitions of lanes that no longer
    exist. A run that ended with contacts due and no time left, or that
    finds contacts due once it let its lane go (a merge woke it while it held the lease), starts
    the next run at once; a lane that handed its tail over wakes lane 0."""

    flusher: Flusher
    lease: FlushLease
    waker: FlushWaker
    lanes: int
    partitions: Callable[[int, bool], list[int]]
    next_due: Callable[[list[int]], int | None]
    clock: Callable[[], float] = time.time

    def handle(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        # Every invocation publishes one metric, so an invocation with nothing to do is seen too.
        metrics.add_metric(name="FlushInvocations", unit="Count", value=1)
        lane = event.get("lane") if isinstance(event, Mapping) else None
        if not isinstance(lane, int) or isinstance(lane, bool) or not 0 <= lane < self.lanes:
            self.waker.wake(range(self.lanes), sweep=True)
            return {"woke": self.lanes}
        remaining = (
            (lambda: context.get_remaining_time_in_millis() / 1000)
            if context is not None
            else (lambda: 900.0)
        )
        owner = getattr(context, "aws_request_id", None) or uuid.uuid4().hex
        now_ms = int(self.clock() * 1000)
        until_ms = now_ms + int((remaining() + 60) * 1000)
        if not self._take(lane, owner, until_ms):
            return {"lane": lane, "skipped": "another run holds the lane; it runs again after"}
        partitions = self.partitions(lane, bool(event.get("sweep")))
        tails = (
            LaneTails(lane, self.lanes, self.lease, owner, until_ms, self.partitions, self.clock)
            if self.lanes > 1
            else None
        )
        asked: list[int] = []
        try:
            report = self.flusher.run(partitions, remaining, tails)
        finally:
            if tails is not None:
                asked = tails.release()
            if self.lease.release(lane, owner):
                asked.append(lane)
        summary = self._summary(lane, report)
        # A run that found nothing due (the schedule's every minute, a wake-up for a lane already
        # written) is not worth a log line per lane and minute.
        (logger.info if report.rounds else logger.debug)("flush run ended", extra=summary)
        if report.handed_over:
            self.waker.wake([0, *asked])
        elif report.daily_limit_resets_at is None and not report.stopped_by:
            due = self.next_due(partitions)
            if report.more_pending or (due is not None and due <= int(self.clock() * 1000)):
                asked.append(lane)
            if asked:
                self.waker.wake(set(asked))
        return summary

    def _take(self, lane: int, owner: str, until_ms: int) -> bool:
        """Take the lane; False when a run holds it, which then runs again once it lets the lane
        go (what woke this run may be past the point that run looks at: a tail handed over, a
        contact merged after its last round)."""
        for _ in range(3):
            now_ms = int(self.clock() * 1000)
            if self.lease.acquire(lane, owner, until_ms, now_ms):
                return True
            if self.lease.ask_again(lane, now_ms):
                return False
        return False  # taken and let go three times over: those runs look at it

    @staticmethod
    def _summary(lane: int, report: FlushReport) -> dict[str, Any]:
        publish_flush_metrics(report)
        counts = report.counts()
        return {
            "lane": lane,
            "rounds": report.rounds,
            "calls": len(report.call_sizes),
            "contactsPerCall": report.call_sizes,
            "synced": counts[Outcome.SYNCED],
            "skippedUnchanged": counts[Outcome.SKIPPED],
            "failed": counts[Outcome.FAILED],
            "retriedLater": counts[Outcome.RETRY],
            "hubspotRequests": report.hubspot_requests,
            "throttled": report.throttled,
            "dailyLimitResetsAt": report.daily_limit_resets_at,
            "handedOver": report.handed_over,
            "stoppedBy": report.stopped_by,
        }


def publish_merge_metrics(report: MergeReport) -> None:
    for name, value in (
        ("ContactsMerged", report.changed),
        ("ContactsPending", report.newly_pending),
        ("ContactsFailed", report.refused),
        ("UndecodableMessages", report.undecodable),
        ("ContactsResumed", report.contacts_resumed),
    ):
        metrics.add_metric(name=name, unit="Count", value=value)


def publish_flush_metrics(report: FlushReport) -> None:
    counts = report.counts()
    for name, value in (
        ("ContactsUpserted", counts[Outcome.SYNCED]),
        ("ContactsSkippedUnchanged", counts[Outcome.SKIPPED]),
        ("ContactsFailed", counts[Outcome.FAILED]),
        ("ContactsRetried", counts[Outcome.RETRY]),
        ("HubSpotRequests", report.hubspot_requests),
        ("HubSpotThrottled", report.throttled),
    ):
        metrics.add_metric(name=name, unit="Count", value=value)
    if report.rate_limit_remaining is not None:
        metrics.add_metric(name="RateLimitRemaining", unit="Count", value=report.rate_limit_remaining)
