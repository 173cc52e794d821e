"""Keeping ingest's exclusions for the operator's issues list (``GET /sync/issues?status=excluded``).

Stored after the request was queued, and never at the cost of the answer: the caller's 202 (with
every exclusion listed) is what counts, and AEP gives up after 2 s. What is really done: at most
``MAX_STORED_PER_REQUEST`` items, in BatchWriteItem calls of 25, one after the other; each call is a
single attempt (the client is built with ``total_max_attempts=1`` and short connect/read timeouts,
see ``ingest.api``); the first call that fails or leaves items unprocessed ends the step (no retry),
and no call starts once ``STORE_BUDGET_SECONDS`` have passed. So the step costs at most the budget
plus one call's timeouts. What was not stored is counted in the ``ExclusionsNotStored`` metric and a
log line (counts, no addresses) - a valid request never turns into a 5xx because of the operator's
list.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from ..ledger_keys import EXPIRES_AT, ISSUE_AT, ISSUE_EXCLUDED, ISSUE_STATUS, KEY, exclusion_key
from ..model import Exclusion
from ..observability import tracer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: Exclusions kept per request, like the answer's list: bounds the writes (4 batch calls) whatever
#: the request; the rest are counted in the answer and the ProfilesExcluded metric.
MAX_STORED_PER_REQUEST = 100
_BATCH = 25
#: No BatchWriteItem call starts after this long (the last one may still take its timeouts).
STORE_BUDGET_SECONDS = 0.3


class ExclusionStore(Protocol):
    def store(
        self, exclusions: Sequence[Exclusion], request_id: str, received_ms: int, content_id: str
    ) -> int:
        """Keep the exclusions; returns how many could not be stored (never raises).

        Items are keyed by ``content_id`` (a hash of the request body) and the profile's index, not
        by the request id: a caller's retry of the same body rewrites the same items."""
        ...


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
        items = [self._item(item, request_id, received_ms, expires, content_id) for item in kept]
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

    def _item(
        self, exclusion: Exclusion, request_id: str, received_ms: int, expires: int, content_id: str
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            KEY: {"S": exclusion_key(content_id, exclusion.index)},
            ISSUE_STATUS: {"S": ISSUE_EXCLUDED},
            # The index sorts newest first; within a request, by position (received_ms is shared).
            ISSUE_AT: {"N": str(received_ms)},
            "profileIndex": {"N": str(exclusion.index)},
            "reason": {"S": exclusion.reason},
            "requestId": {"S": request_id},
            EXPIRES_AT: {"N": str(expires)},
        }
        if exclusion.email:
            item["excludedEmail"] = {"S": exclusion.email}
        return item


class NoExclusionStore:
    """Where no table is configured (tests, a bare ingest): nothing is kept."""

    def store(
        self, exclusions: Sequence[Exclusion], request_id: str, received_ms: int, content_id: str
    ) -> int:
        return 0
