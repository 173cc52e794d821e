"""SQS adapter of the upsert function: Lambda SQS event -> SyncService -> ``batchItemFailures``.

This and ``ingest.api`` are the only modules that know Lambda event shapes. Powertools'
BatchProcessor handles records one by one; the sync core needs the whole batch at once (to
coalesce a contact's updates and send 100 contacts per HubSpot call), so the partial-batch
response is built here, with FIFO order kept by the core.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..messages import QueueMessage
from ..observability import logger, metrics, tracer
from .plan import InboundMessage
from .service import HoldBack, SyncReport, SyncService
from .topup import MIN_WRITE_SHARE, QueueTopUp, TopUp, change_visibility, defer_tail

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


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


#: A batch with fewer contacts than this says too little about how many of the next ones will need
#: a write.
WRITE_SHARE_MIN_SAMPLE = 20


@dataclass
class UpsertConsumer:
    """What one container keeps: the service, the top-up that fills its batches, and the share of
    contacts its last batch needed to write (a re-send of mostly unchanged profiles tops up more)."""

    service: SyncService
    topup: QueueTopUp | None = None
    #: seconds until HubSpot's budget lets the next call go (0: now)
    ready_in: Callable[[], float] = lambda: 0.0
    batch_fill_seconds: int = 0
    write_share: float = 1.0

    def handle(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        messages = inbound_messages(event)
        remaining = (lambda: context.get_remaining_time_in_millis() / 1000) if context is not None else None
        topped = TopUp()
        if self.topup is not None and (remaining is None or remaining() > 30):
            # No wait while HubSpot's budget is free: a backlog fills the batch at once, and a lone
            # message is not held back. A short long-poll only when the next call would wait anyway.
            poll = min(self.batch_fill_seconds, int(self.ready_in()))
            topped = self.topup.top_up(messages, poll, self.write_share)
        extra = topped.messages
        batch = [*messages, *extra]
        report = self.service.process(batch, remaining, self._hold_back(topped.backlog))
        self._learn_write_share(report)
        held = set(report.held_message_ids)
        if held and self.topup is not None:
            # Visible at once, not after the visibility timeout; only now that this invocation's
            # writes are done, so no other consumer writes one of their contacts at the same time.
            self.topup.release([m for m in batch if m.message_id in held])
        # The service already made the messages left unwritten for lack of time visible again.
        returned = set(report.failed_message_ids) | held | set(report.out_of_time_message_ids)
        deleted = self.topup.settle(extra, returned) if self.topup is not None and extra else 0
        publish_metrics(report)
        logger.info(
            "batch processed",
            extra={
                "messages": len(messages),
                "toppedUp": len(extra),
                "toppedUpDeleted": deleted,
                "heldBack": len(report.held_message_ids),
                "contactsHeldBack": report.contacts_held_back,
                "contactsOutOfTime": report.contacts_out_of_time,
                "synced": report.synced,
                "skippedUnchanged": report.skipped_unchanged,
                "failed": report.failed,
                "retriedLater": report.retried_later,
                "hubspotRequests": report.hubspot_requests,
                "throttled": report.throttled,
                "undecodable": report.undecodable,
                "dailyLimitResetsAt": report.daily_limit_resets_at,
            },
        )
        return {
            "batchItemFailures": [
                {"itemIdentifier": message.message_id}
                for message in messages
                if message.message_id in returned
            ]
        }

    def _hold_back(self, backlog: bool) -> HoldBack | None:
        """Under a backlog, the batch's partial last call waits for the next invocation."""
        return defer_tail if self.topup is not None and backlog else None

    def _learn_write_share(self, report: SyncReport) -> None:
        contacts = len(report.outcomes)
        if contacts >= WRITE_SHARE_MIN_SAMPLE:
            written = contacts - report.skipped_unchanged
            self.write_share = max(MIN_WRITE_SHARE, written / contacts)


def publish_metrics(report: SyncReport) -> None:
    for name, value in (
        ("ContactsUpserted", report.synced),
        ("ContactsSkippedUnchanged", report.skipped_unchanged),
        ("ContactsFailed", report.failed),
        ("ContactsRetried", report.retried_later),
        ("HubSpotRequests", report.hubspot_requests),
        ("HubSpotThrottled", report.throttled),
        ("UndecodableMessages", report.undecodable),
        ("ContactsHeldBack", report.contacts_held_back),
        ("ContactsOutOfTime", report.contacts_out_of_time),
        ("ContactsResumed", report.contacts_resumed),
    ):
        metrics.add_metric(name=name, unit="Count", value=value)
    if report.rate_limit_remaining is not None:
        metrics.add_metric(name="RateLimitRemaining", unit="Count", value=report.rate_limit_remaining)
