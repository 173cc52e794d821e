"""Ingest's ``ExclusionStore`` in DynamoDB: one ``exclusion_item`` per excluded profile.

Never at the cost of the caller's answer (AEP gives up after 2 s). What is really done: at most
``MAX_STORED_PER_REQUEST`` items, in BatchWriteItem calls of 25, one after the other; each call is a
single attempt (the ingest function's client is built with ``total_max_attempts=1`` and short
connect/read timeouts, see ``ingest.api``); the first call that fails or leaves items unprocessed
ends the step (no retry), and no call starts once ``STORE_BUDGET_SECONDS`` have passed. So the step
costs at most the budget plus one call's timeouts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..model import Exclusion
from ..observability import tracer
from .exclusion_item import exclusion_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: Exclusions kept per request, like the answer's list: bounds the writes (4 batch calls) whatever
#: the request; the rest are counted in the answer and the ProfilesExcluded metric.
MAX_STORED_PER_REQUEST = 100
_BATCH = 25
#: No BatchWriteItem call starts after this long (the last one may still take its timeouts).
STORE_BUDGET_SECONDS = 0.3


class DynamoDbExclusionStore:
    """One item per exclusion in the ledger table, in the sparse ``issues`` index, expiring after
    ``retention_days``."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        retention_days: int = 30,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        budget_seconds: float = STORE_BUDGET_SECONDS,
    ) -> None:
        self._client = client
        self._table = table
        self._retention_seconds = retention_days * 86_400
        self._clock = clock
        self._monotonic = monotonic
        self._budget = budget_seconds

    @tracer.capture_method(capture_response=False, capture_error=False)
    def store(
        self, exclusions: Sequence[Exclusion], request_id: str, received_ms: int, content_id: str
    ) -> int:
        deadline = self._monotonic() + self._budget
        kept = list(exclusions[:MAX_STORED_PER_REQUEST])
        expires = int(self._clock()) + self._retention_seconds
        items = [exclusion_item(item, request_id, received_ms, expires, content_id) for item in kept]
        stored = 0
        for start in range(0, len(items), _BATCH):
            if self._monotonic() >= deadline:
                break
            chunk = items[start : start + _BATCH]
            written = self._write(chunk)
            stored += written
            if written < len(chunk):
                # DynamoDB is slow, throttling or down: another call would most likely fail too,
                # and the answer's time matters more than the list.
                break
        return len(items) - stored

    def _write(self, items: list[dict[str, Any]]) -> int:
        """One BatchWriteItem call; how many of ``items`` it stored."""
        request: Any = {self._table: [{"PutRequest": {"Item": item}} for item in items]}
        try:
            response = self._client.batch_write_item(RequestItems=request)
        except (ClientError, BotoCoreError):
            return 0
        left = response.get("UnprocessedItems") or {}
        return len(items) - len(left.get(self._table, []))
