"""Drive an SQS handler the way Lambda's SQS event source mapping does, against moto.

Up to ``batch_size`` messages per invocation (FIFO group order and locking kept by SQS: the local
queue receives like SQS FIFO, see ``local.sqs_fifo``), records shaped like Lambda's,
``batchItemFailures`` honoured (successes deleted, failures left to reappear), a raised error
failing the whole batch, and the queue's redrive policy moving messages to the DLQ after
maxReceiveCount (on receive, as SQS does).

The messages are received with the queue's own visibility timeout, as the event source does, so
they stay locked for the whole invocation however long it takes. Only a failed record's return is
shortened (``visibility_timeout`` after the invocation instead of the queue's 15 minutes), so a
local retry is seen in seconds; a record whose visibility the function set itself (its retry
backoff, a DAILY pause) keeps what the function set.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from .api_server import LocalContext

logger = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class PollerStats:
    invocations: int = 0
    records: int = 0
    failed_records: int = 0
    errors: int = 0
    deleted: int = 0


def _watch_visibility_changes(poller: EventSourcePoller) -> None:
    """Note the messages whose visibility the function itself changes (retry backoff, DAILY pause):
    their return is the function's choice, not the shortened timeout's. Clients made by
    boto3.client() share this session."""

    def record(params: dict[str, Any], **_: Any) -> None:
        for entry in params.get("Entries") or [params]:
            if "ReceiptHandle" in entry:
                poller.visibility_set.add(entry["ReceiptHandle"])

    session = boto3._get_default_session()
    session.events.register("provide-client-params.sqs.ChangeMessageVisibilityBatch", record)
    session.events.register("provide-client-params.sqs.ChangeMessageVisibility", record)


@dataclass
class EventSourcePoller:
    sqs: Any
    queue_url: str
    queue_arn: str
    handler: Handler
    batch_size: int = 10
    #: Seconds until a failed record reappears (the queue's visibility timeout in AWS); the local
    #: stack shortens it so a retry is seen in seconds rather than minutes.
    visibility_timeout: int = 900
    #: The function's Timeout from the template: what its context reports as time left.
    function_timeout: float = 150.0
    stats: PollerStats = field(default_factory=PollerStats)
    #: receipt handles whose visibility the function itself changed during the invocation
    visibility_set: set[str] = field(default_factory=set)
    function_name: str = "merge"

    def __post_init__(self) -> None:
        _watch_visibility_changes(self)

    def poll_once(self) -> int:
        """One receive + invoke; returns how many records were handed to the function."""
        self.visibility_set.clear()
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [self._record(m) for m in messages]}
        by_id = {m["MessageId"]: m for m in messages}
        self.stats.invocations += 1
        self.stats.records += len(messages)
        try:
            result = self.handler(
                event,
                LocalContext(
                    function_name=self.function_name,
                    aws_request_id=str(uuid.uuid4()),
                    timeout_seconds=self.function_timeout,
                ),
            )
            failed = {item["itemIdentifier"] for item in (result or {}).get("batchItemFailures", [])}
            if not failed <= set(by_id):
                raise ValueError("batchItemFailures names a message that was not in the batch")
        except Exception:
            # Lambda treats an error (or a bad response) as a failure of the whole batch.
            logger.exception("the %s function failed; the whole batch will be retried", self.function_name)
            self.stats.errors += 1
            failed = set(by_id)
        self.stats.failed_records += len(failed)
        returned = [
            by_id[message_id]["ReceiptHandle"]
            for message_id in failed
            if by_id[message_id]["ReceiptHandle"] not in self.visibility_set
        ]
        for start in range(0, len(returned), 10):
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": self.visibility_timeout}
                    for i, handle in enumerate(returned[start : start + 10])
                ],
            )
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start : start + 10])
                ],
            )
        self.stats.deleted += len(done)
        return len(messages)

    def pending(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def drain(self, timeout: float = 120.0, on_progress: Callable[[int], None] | None = None) -> bool:
        """Poll until the queue is empty (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            handled = self.poll_once()
            left = self.pending()
            if on_progress is not None and handled:
                on_progress(left)
            if left == 0:
                return True
            if not handled:
                time.sleep(0.2)
        return False

    def run(self, stop: threading.Event, idle_seconds: float = 0.2) -> None:
        """Poll until ``stop`` is set, like the event source mapping, which never stops on an empty
        queue. An error of the poll itself (moto restarting, a dropped connection) is logged and
        polling goes on: a consumer that dies silently would look like an empty queue."""
        while not stop.is_set():
            try:
                handled = self.poll_once()
            except Exception:
                logger.exception("polling the queue failed; trying again")
                handled = 0
            if not handled:
                stop.wait(idle_seconds)

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        attributes = message.get("Attributes", {})
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": {
                "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                "SentTimestamp": attributes.get("SentTimestamp", str(int(time.time() * 1000))),
                "SenderId": attributes.get("SenderId", "AIDAIENQZJOLO23YVJ4VO"),
                "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", ""),
                "SequenceNumber": attributes.get("SequenceNumber", ""),
                "MessageGroupId": attributes.get("MessageGroupId", ""),
                "MessageDeduplicationId": attributes.get("MessageDeduplicationId", ""),
            },
            "messageAttributes": {
                name: {
                    "stringValue": value.get("StringValue"),
                    "dataType": value.get("DataType"),
                    "stringListValues": [],
                    "binaryListValues": [],
                }
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": hashlib.md5(message["Body"].encode(), usedforsecurity=False).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": "us-east-1",
        }
