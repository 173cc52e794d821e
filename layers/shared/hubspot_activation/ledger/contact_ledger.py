"""The ledger table's DynamoDB plumbing (batched writes with retries) and the held markers of
contacts (``held_item``); ``contact_state`` keeps the contacts' states on it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..observability import logger, tracer
from ..upsert.ledger import LedgerUnavailable
from .held_item import held_marker_item, held_marker_key_item, held_page, held_query

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: DynamoDB's answer for an item it can never store (a number out of range, over 400 KB...).
_REFUSED_ITEM_ERRORS = frozenset({"ValidationException", "ItemCollectionSizeLimitExceededException"})


class DynamoDbLedger:
    """Items expire ``retention_days`` after their last change (a contact that comes back later is
    simply synced again)."""

    def __init__(
        self, client: DynamoDBClient, table: str, retention_days: int = 400, max_attempts: int = 5
    ) -> None:
        self._client = client
        self._table = table
        self._retention_seconds = retention_days * 86_400
        self._max_attempts = max_attempts

    @tracer.capture_method(capture_response=False, capture_error=False)
    def mark_held(self, marks: Sequence[tuple[str, str]], now_ms: int) -> None:
        """Store a held marker for each (email, audience id): idempotent."""
        expires = now_ms // 1000 + self._retention_seconds
        items = [held_marker_item(audience_id, email, expires) for email, audience_id in dict.fromkeys(marks)]
        for start in range(0, len(items), 25):
            try:
                self._write(items[start : start + 25])
            except ItemRefused as refusal:  # a marker is a few hundred bytes: not seen in practice
                logger.error("ledger refused held markers", extra={"error": refusal.reason})

    @tracer.capture_method(capture_response=False, capture_error=False)
    def unmark_held(self, marks: Sequence[tuple[str, str]]) -> None:
        keys = [held_marker_key_item(audience_id, email) for email, audience_id in dict.fromkeys(marks)]
        for start in range(0, len(keys), 25):
            deletes: list[Any] = [{"DeleteRequest": {"Key": key}} for key in keys[start : start + 25]]
            try:
                self._send(deletes)
            except ItemRefused as refusal:
                logger.error("ledger refused to delete held markers", extra={"error": refusal.reason})

    @tracer.capture_method(capture_response=False, capture_error=False)
    def held_contacts(self, audience_id: str, limit: int, cursor: str | None) -> tuple[list[str], str | None]:
        """One page of the contacts holding changes of the audience (by email), and the cursor of
        the next page (None: this was the last)."""
        try:
            response = self._client.query(TableName=self._table, **held_query(audience_id, limit, cursor))
        except (ClientError, BotoCoreError) as exc:
            raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
        return held_page(response)

    def _write(self, items: list[dict[str, Any]]) -> None:
        self._send([{"PutRequest": {"Item": item}} for item in items])

    def _send(self, writes: list[Any]) -> None:
        for _response in self._until_processed(
            self._client.batch_write_item, {self._table: writes}, "UnprocessedItems"
        ):
            pass

    def _until_processed(
        self, call: Callable[..., Any], request: dict[str, Any], unprocessed: str
    ) -> Iterator[Any]:
        """Batch calls leave items unprocessed under load: send those again with a backoff."""
        for attempt in range(self._max_attempts):
            try:
                response = call(RequestItems=request)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code in _REFUSED_ITEM_ERRORS:
                    raise ItemRefused(f"the ledger cannot store this contact's state ({code})") from exc
                raise LedgerUnavailable(f"DynamoDB call failed: {code or type(exc).__name__}") from exc
            except BotoCoreError as exc:
                raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
            yield response
            request = dict(response.get(unprocessed) or {})
            if not request:
                return
            time.sleep(0.05 * 2**attempt)
        raise LedgerUnavailable(f"DynamoDB left {unprocessed} after {self._max_attempts} attempts")


class ItemRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
