"""Packing ContactUpdates into SQS FIFO messages, and publishing them without ever losing one.

All updates of one contact land in one message group (``c<crc32(email) mod shards>``) so the
consumer sees them in order and never concurrently; many updates share a message so a
1,000-profile request costs a couple of SQS calls, not a thousand.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from .model import ContactUpdate

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MESSAGE_FORMAT_VERSION = 1
#: SQS accepts 1 MiB per message and per SendMessageBatch call (since 2025).
SQS_MAX_BATCH_BYTES = 1_048_576
SQS_MAX_BATCH_ENTRIES = 10
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024
_ENVELOPE_OVERHEAD = len('{"v":1,"updates":[]}')


def shard_of(email: str, shard_count: int) -> str:
    """The FIFO message group of a contact; stable across deployments for a given shard count."""
    return f"c{zlib.crc32(email.encode('utf-8')) % shard_count}"


def encode_update(update: ContactUpdate) -> str:
    return json.dumps(update.to_json(), separators=(",", ":"), ensure_ascii=False)


def message_body(encoded_updates: Sequence[str]) -> str:
    return '{"v":%d,"updates":[%s]}' % (MESSAGE_FORMAT_VERSION, ",".join(encoded_updates))  # noqa: UP031


def decode_message(body: str) -> list[ContactUpdate]:
    document = json.loads(body)
    if not isinstance(document, dict) or document.get("v") != MESSAGE_FORMAT_VERSION:
        raise ValueError(f"unsupported message format: {str(document)[:80]}")
    return [ContactUpdate.from_json(item) for item in document["updates"]]


def fits_in_message(encoded_update: str, max_message_bytes: int) -> bool:
    return len(encoded_update.encode("utf-8")) + _ENVELOPE_OVERHEAD <= max_message_bytes


@dataclass(frozen=True, slots=True)
class QueueMessage:
    group_id: str
    body: str
    update_count: int

    @property
    def deduplication_id(self) -> str:
        """A caller's retry of the same request packs to the same bodies, which SQS then drops."""
        return hashlib.sha256(self.body.encode("utf-8")).hexdigest()

    @property
    def size(self) -> int:
        return len(self.body.encode("utf-8"))


def pack(
    updates: Iterable[ContactUpdate], shard_count: int, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> list[QueueMessage]:
    """Group updates by shard, keeping request order inside each shard, into messages of at most
    ``max_message_bytes``. Every update must already fit on its own (see ``fits_in_message``)."""
    return pack_encoded(((u.email, encode_update(u)) for u in updates), shard_count, max_message_bytes)


def pack_encoded(
    updates: Iterable[tuple[str, str]], shard_count: int, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> list[QueueMessage]:
    """``pack`` for updates already encoded, as (email, encoded update) pairs."""
    pending: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    messages: list[QueueMessage] = []
    for email, encoded in updates:
        if not fits_in_message(encoded, max_message_bytes):
            raise ValueError(f"an update of {len(encoded)} bytes does not fit in one message")
        group = shard_of(email, shard_count)
        size = len(encoded.encode("utf-8")) + 1  # the separating comma
        if group in pending and sizes[group] + size > max_message_bytes:
            messages.append(QueueMessage(group, message_body(pending[group]), len(pending[group])))
            del pending[group]
        if group not in pending:
            pending[group], sizes[group] = [], _ENVELOPE_OVERHEAD
        pending[group].append(encoded)
        sizes[group] += size
    messages.extend(QueueMessage(group, message_body(items), len(items)) for group, items in pending.items())
    return messages


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
