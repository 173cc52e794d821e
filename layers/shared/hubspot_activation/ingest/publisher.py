"""Publishing queue messages to SQS FIFO without ever losing or reordering one."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from ..messages import QueueMessage
from ..observability import tracer

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

#: SQS accepts 1 MiB per message and per SendMessageBatch call (since 2025).
SQS_MAX_BATCH_BYTES = 1_048_576
SQS_MAX_BATCH_ENTRIES = 10


class EnqueueError(Exception):
    """Some messages could not be enqueued: the caller must retry (the ones that went through are
    deduplicated by SQS on the retry)."""

    def __init__(self, reason: str, sent: int, unsent: int) -> None:
        super().__init__(f"{reason} ({sent} messages enqueued, {unsent} not)")
        self.reason = reason
        self.sent = sent
        self.unsent = unsent


class MessagePublisher(Protocol):
    def publish(self, messages: Sequence[QueueMessage], request_id: str) -> int:
        """Enqueue every message in order per group; return the number of SQS requests made."""
        ...


class SqsFifoPublisher:
    """SendMessageBatch with per-entry failure handling.

    At most one message per group goes into a round of requests, and a group's next message is
    sent only after its previous one succeeded, so a partially failed batch can never reorder a
    contact's updates.
    """

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        max_attempts: int = 4,
        backoff_seconds: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._queue_url = queue_url
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._sleep = sleep

    @tracer.capture_method(capture_response=False, capture_error=False)
    def publish(self, messages: Sequence[QueueMessage], request_id: str) -> int:
        queues: dict[str, deque[QueueMessage]] = {}
        for message in messages:
            queues.setdefault(message.group_id, deque()).append(message)
        attempts: dict[int, int] = {}
        requests = sent = 0
        while queues:
            heads = [queue[0] for queue in queues.values()]
            failed_any = False
            for chunk in _chunks(heads):
                requests += 1
                failures = self._send(chunk, request_id)
                for position, message in enumerate(chunk):
                    reason = failures.get(position)
                    if reason is None:
                        sent += 1
                        queues[message.group_id].popleft()
                        if not queues[message.group_id]:
                            del queues[message.group_id]
                        continue
                    failed_any = True
                    attempts[id(message)] = attempts.get(id(message), 0) + 1
                    if reason.permanent or attempts[id(message)] >= self._max_attempts:
                        raise EnqueueError(reason.text, sent, len(messages) - sent)
            if failed_any:
                self._sleep(self._backoff * (2 ** (max(attempts.values()) - 1)))
        return requests

    def _send(self, chunk: Sequence[QueueMessage], request_id: str) -> dict[int, _Failure]:
        entries: list[Any] = [
            {
                "Id": f"m{position}",
                "MessageBody": message.body,
                "MessageGroupId": message.group_id,
                "MessageDeduplicationId": message.deduplication_id,
                "MessageAttributes": {"requestId": {"DataType": "String", "StringValue": request_id}},
            }
            for position, message in enumerate(chunk)
        ]
        try:
            response = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "ClientError"))
            permanent = code in _PERMANENT_CALL_ERRORS
            return {
                position: _Failure(f"SQS refused the batch: {code}", permanent)
                for position in range(len(chunk))
            }
        except BotoCoreError as exc:
            return {
                position: _Failure(f"SQS unreachable: {type(exc).__name__}", False)
                for position in range(len(chunk))
            }
        return {
            int(item["Id"][1:]): _Failure(
                f"SQS refused a message: {item.get('Code', 'unknown')}", item.get("SenderFault", False)
            )
            for item in response.get("Failed", [])
        }


@dataclass(frozen=True, slots=True)
class _Failure:
    text: str
    permanent: bool


# Configuration mistakes: retrying cannot help, and the caller is told to retry later (503) anyway.
_PERMANENT_CALL_ERRORS = frozenset(
    {
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "AccessDenied",
        "AccessDeniedException",
        "InvalidParameterValue",
        "BatchRequestTooLong",
        "TooManyEntriesInBatchRequest",
    }
)


def _chunks(messages: Sequence[QueueMessage]) -> Iterable[list[QueueMessage]]:
    chunk: list[QueueMessage] = []
    size = 0
    for message in messages:
        if chunk and (
            len(chunk) == SQS_MAX_BATCH_ENTRIES or size + message.size > SQS_MAX_BATCH_BYTES - 4096
        ):
            yield chunk
            chunk, size = [], 0
        chunk.append(message)
        size += message.size
    if chunk:
        yield chunk
