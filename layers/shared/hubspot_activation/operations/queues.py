"""The queues as the operator's routes see them: depths and the age of the oldest message (from
CloudWatch). Moving dead letters back is ``dead_letters``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
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
