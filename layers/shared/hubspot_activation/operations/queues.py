"""The queues as the operator's routes see them: depths, the age of the oldest message (from
CloudWatch), and moving dead letters back to the main queue."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from ..observability import logger

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class QueueDepth:
    """SQS's approximate counts (SQS itself calls them approximate)."""

    visible: int
    in_flight: int
    delayed: int

    def to_json(self) -> dict[str, int]:
        return {"visible": self.visible, "inFlight": self.in_flight, "delayed": self.delayed}


class QueueReader(Protocol):
    def depth(self, queue_url: str) -> QueueDepth | None: ...

    def oldest_age_seconds(self, queue_name: str) -> float | None: ...


class SqsQueueReader:
    def __init__(
        self,
        sqs: SQSClient,
        cloudwatch: Any | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sqs = sqs
        self._cloudwatch = cloudwatch
        self._clock = clock

    def depth(self, queue_url: str) -> QueueDepth | None:
        try:
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
        except (ClientError, BotoCoreError) as exc:
            logger.warning("queue attributes unavailable", extra={"error": str(exc)[:300]})
            return None
        return QueueDepth(
            int(attributes.get("ApproximateNumberOfMessages", 0)),
            int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
            int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
        )

    def oldest_age_seconds(self, queue_name: str) -> float | None:
        """SQS's ApproximateAgeOfOldestMessage, newest datapoint of the last 15 minutes; None when
        CloudWatch has none (an idle queue publishes none) or cannot be read."""
        if self._cloudwatch is None or not queue_name:
            return None
        end = datetime.fromtimestamp(self._clock(), tz=UTC)
        try:
            response = self._cloudwatch.get_metric_data(
                MetricDataQueries=[
                    {
                        "Id": "age",
                        "MetricStat": {
                            "Metric": {
                                "Namespace": "AWS/SQS",
                                "MetricName": "ApproximateAgeOfOldestMessage",
                                "Dimensions": [{"Name": "QueueName", "Value": queue_name}],
                            },
                            "Period": 60,
                            "Stat": "Maximum",
                        },
                    }
                ],
                StartTime=end - timedelta(minutes=15),
                EndTime=end,
                ScanBy="TimestampDescending",
            )
        except (ClientError, BotoCoreError) as exc:
            logger.warning("queue age unavailable", extra={"error": str(exc)[:300]})
            return None
        for result in response.get("MetricDataResults", []):
            values = result.get("Values") or []
            if values:
                return float(values[0])
        return None


@dataclass
class MoveReport:
    moved: int = 0
    #: messages received but not moved (a send failed): they stay in the DLQ
    failed: int = 0
    #: the DLQ still had messages when the call stopped
    more: bool = False
    errors: list[str] = field(default_factory=list)


class DeadLetterMover(Protocol):
    def move_back(self, max_messages: int, deadline: float) -> MoveReport: ...


class SqsDeadLetterMover:
    """Moves DLQ messages back to the main queue: the same body and message group, a fresh
    deduplication id (the original one, or content-based deduplication, would make SQS drop a move
    made within five minutes of the message's first send), deleted from the DLQ only once the main
    queue took it. The order of moved messages does not matter: the ledger's order stamps decide,
    so an older message never overwrites a newer state."""

    def __init__(
        self,
        sqs: SQSClient,
        dead_letter_url: str,
        queue_url: str,
        clock: Callable[[], float] = time.monotonic,
        visibility_seconds: int = 60,
    ) -> None:
        self._sqs = sqs
        self._dlq = dead_letter_url
        self._queue = queue_url
        self._clock = clock
        self._visibility = visibility_seconds

    def move_back(self, max_messages: int, deadline: float) -> MoveReport:
        report = MoveReport()
        while report.moved + report.failed < max_messages:
            if self._clock() >= deadline:
                report.more = True
                return report
            try:
                received = self._sqs.receive_message(
                    QueueUrl=self._dlq,
                    MaxNumberOfMessages=min(10, max_messages - report.moved - report.failed),
                    VisibilityTimeout=self._visibility,
                    WaitTimeSeconds=0,
                    MessageSystemAttributeNames=["MessageGroupId"],
                ).get("Messages", [])
            except (ClientError, BotoCoreError) as exc:
                report.errors.append(f"could not read the dead-letter queue: {type(exc).__name__}")
                return report
            if not received:
                return report
            self._move(received, report)
        report.more = True
        return report

    def _move(self, messages: list[Any], report: MoveReport) -> None:
        entries: list[Any] = [
            {
                "Id": str(position),
                "MessageBody": message["Body"],
                "MessageGroupId": message.get("Attributes", {}).get("MessageGroupId", "replay"),
                "MessageDeduplicationId": uuid.uuid4().hex,
            }
            for position, message in enumerate(messages)
        ]
        try:
            response = self._sqs.send_message_batch(QueueUrl=self._queue, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            report.errors.append(f"could not send to the queue: {type(exc).__name__}")
            report.failed += len(messages)
            return
        failed_positions = {int(item["Id"]) for item in response.get("Failed", [])}
        sent = [
            (position, message)
            for position, message in enumerate(messages)
            if position not in failed_positions
        ]
        report.failed += len(failed_positions)
        if failed_positions:
            report.errors.append(
                f"{len(failed_positions)} message(s) could not be sent back; they stay in the DLQ"
            )
        deletes: list[Any] = [
            {"Id": str(position), "ReceiptHandle": message["ReceiptHandle"]} for position, message in sent
        ]
        if not deletes:
            return
        try:
            deleted = self._sqs.delete_message_batch(QueueUrl=self._dlq, Entries=deletes)
            undeleted = len(deleted.get("Failed", []))
        except (ClientError, BotoCoreError):
            undeleted = len(deletes)
        if undeleted:
            # Sent but still in the DLQ: a later move sends it again, which the ordering rules make
            # harmless (an update never applies twice or over a newer one).
            report.errors.append(f"{undeleted} moved message(s) could not be deleted from the DLQ")
        report.moved += len(sent)
