"""The ledger in DynamoDB: one item per contact, keyed by the normalized email."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..observability import tracer
from .ledger import SYNCED, AppliedAudience, LedgerEntry, LedgerUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class DynamoDbLedger:
    """One item per contact, keyed by the normalized email. Items expire ``retention_days`` after
    their last change (a contact that comes back later is simply synced again)."""

    def __init__(
        self, client: DynamoDBClient, table: str, retention_days: int = 400, max_attempts: int = 5
    ) -> None:
        self._client = client
        self._table = table
        self._retention_seconds = retention_days * 86_400
        self._max_attempts = max_attempts

    @tracer.capture_method(capture_response=False, capture_error=False)
    def get_many(self, emails: Sequence[str]) -> dict[str, LedgerEntry]:
        found: dict[str, LedgerEntry] = {}
        unique = list(dict.fromkeys(emails))
        for start in range(0, len(unique), 100):
            keys: list[Any] = [{"email": {"S": email}} for email in unique[start : start + 100]]
            request = {self._table: {"Keys": keys, "ConsistentRead": True}}
            for response in self._until_processed(self._client.batch_get_item, request, "UnprocessedKeys"):
                for item in response.get("Responses", {}).get(self._table, []):
                    entry = _from_item(item)
                    found[entry.email] = entry
        return found

    @tracer.capture_method(capture_response=False, capture_error=False)
    def put_many(self, entries: Sequence[LedgerEntry]) -> None:
        for start in range(0, len(entries), 25):
            writes: list[Any] = [
                {"PutRequest": {"Item": self._to_item(e)}} for e in entries[start : start + 25]
            ]
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
            except (ClientError, BotoCoreError) as exc:
                raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
            yield response
            request = dict(response.get(unprocessed) or {})
            if not request:
                return
            time.sleep(0.05 * 2**attempt)
        raise LedgerUnavailable(f"DynamoDB left {unprocessed} after {self._max_attempts} attempts")

    def _to_item(self, entry: LedgerEntry) -> dict[str, Any]:
        item: dict[str, Any] = {
            "email": {"S": entry.email},
            "status": {"S": entry.status},
            "updatedAt": {"N": str(entry.updated_at_ms)},
            "expiresAt": {"N": str(entry.updated_at_ms // 1000 + self._retention_seconds)},
            "audiences": {
                "M": {
                    audience_id: {
                        "M": {"status": {"S": applied.status}, "ts": {"N": str(applied.timestamp_ms)}}
                    }
                    for audience_id, applied in entry.audiences.items()
                }
            },
            "written": {"M": {name: {"S": value} for name, value in entry.written.items()}},
        }
        if entry.hubspot_id:
            item["hubspotId"] = {"S": entry.hubspot_id}
        if entry.reason:
            item["reason"] = {"S": entry.reason[:2000]}
        if entry.rejected:
            item["rejected"] = {"S": entry.rejected}
        if entry.warnings:
            item["warnings"] = {"M": {name: {"S": text[:500]} for name, text in entry.warnings.items()}}
        return item


def _from_item(item: Mapping[str, Any]) -> LedgerEntry:
    def text(name: str) -> str | None:
        value = item.get(name)
        return str(value["S"]) if value else None

    audiences = {
        audience_id: AppliedAudience(str(value["M"]["status"]["S"]), int(Decimal(value["M"]["ts"]["N"])))
        for audience_id, value in (item.get("audiences", {}).get("M") or {}).items()
    }
    written = {name: str(value["S"]) for name, value in (item.get("written", {}).get("M") or {}).items()}
    warnings = {name: str(value["S"]) for name, value in (item.get("warnings", {}).get("M") or {}).items()}
    return LedgerEntry(
        email=str(item["email"]["S"]),
        status=text("status") or SYNCED,
        hubspot_id=text("hubspotId"),
        audiences=audiences,
        written=written,
        reason=text("reason"),
        warnings=warnings,
        updated_at_ms=int(Decimal(item.get("updatedAt", {}).get("N", "0"))),
        rejected=text("rejected"),
    )
