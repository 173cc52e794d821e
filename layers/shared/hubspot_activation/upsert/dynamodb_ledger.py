"""The ledger in DynamoDB: one item per contact, keyed by the normalized email.

The same table holds the connector's daily count of HubSpot calls (an item whose key cannot be an
email: it has no ``@``), shared by every consumer, and other item kinds (see ``ledger_keys``). A
failed contact, or one holding changes of a deleted audience, carries the sparse ``issues`` index's
attributes; any later write of the contact with neither leaves them out, which takes it off the
list.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..ledger_keys import (
    EXPIRES_AT,
    HELD_AUDIENCE,
    HELD_EMAIL,
    HELD_INDEX,
    ISSUE_AT,
    ISSUE_FAILED,
    ISSUE_HELD,
    ISSUE_STATUS,
    KEY,
    audience_digest,
    daily_calls_key,
    held_marker_key,
)
from ..observability import logger, tracer
from .ledger import (
    FAILED,
    SYNCED,
    UNORDERED,
    AppliedAudience,
    LedgerEntry,
    LedgerUnavailable,
    Order,
    PendingAttribute,
    PendingAudience,
)

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
    def put_many(self, entries: Sequence[LedgerEntry]) -> dict[str, str]:
        """A batch DynamoDB refuses as a whole is written again item by item, so one item it cannot
        hold is refused alone and the others are stored."""
        refused: dict[str, str] = {}
        for start in range(0, len(entries), 25):
            chunk = entries[start : start + 25]
            try:
                self._write([self._to_item(entry) for entry in chunk])
            except _ItemRefused:
                for entry in chunk:
                    try:
                        self._write([self._to_item(entry)])
                    except _ItemRefused as refusal:
                        refused[entry.email] = refusal.reason
        return refused

    @tracer.capture_method(capture_response=False, capture_error=False)
    def mark_held(self, marks: Sequence[tuple[str, str]], now_ms: int) -> None:
        """Store a held marker for each (email, audience id): idempotent."""
        expires = now_ms // 1000 + self._retention_seconds
        items = [held_marker_item(audience_id, email, expires) for email, audience_id in dict.fromkeys(marks)]
        for start in range(0, len(items), 25):
            try:
                self._write(items[start : start + 25])
            except _ItemRefused as refusal:  # a marker is a few hundred bytes: not seen in practice
                logger.error("ledger refused held markers", extra={"error": refusal.reason})

    @tracer.capture_method(capture_response=False, capture_error=False)
    def unmark_held(self, marks: Sequence[tuple[str, str]]) -> None:
        keys = [held_marker_key(audience_id, email) for email, audience_id in dict.fromkeys(marks)]
        for start in range(0, len(keys), 25):
            deletes: list[Any] = [
                {"DeleteRequest": {"Key": {KEY: {"S": key}}}} for key in keys[start : start + 25]
            ]
            try:
                self._send_writes(deletes)
            except _ItemRefused as refusal:
                logger.error("ledger refused to delete held markers", extra={"error": refusal.reason})

    @tracer.capture_method(capture_response=False, capture_error=False)
    def held_contacts(self, audience_id: str, limit: int, cursor: str | None) -> tuple[list[str], str | None]:
        """One page of the contacts holding changes of the audience (by email), and the cursor of
        the next page (None: this was the last)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": HELD_INDEX,
            "KeyConditionExpression": "#a = :a",
            "ExpressionAttributeNames": {"#a": HELD_AUDIENCE},
            "ExpressionAttributeValues": {":a": {"S": audience_digest(audience_id)}},
            "Limit": limit,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = json.loads(cursor)
        try:
            page = self._client.query(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
        emails = [str(item[HELD_EMAIL]["S"]) for item in page.get("Items", []) if HELD_EMAIL in item]
        last = page.get("LastEvaluatedKey")
        return emails, json.dumps(last, sort_keys=True, separators=(",", ":")) if last else None

    def _write(self, items: list[dict[str, Any]]) -> None:
        self._send_writes([{"PutRequest": {"Item": item}} for item in items])

    def _send_writes(self, writes: list[Any]) -> None:
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
                    raise _ItemRefused(f"the ledger cannot store this contact's state ({code})") from exc
                raise LedgerUnavailable(f"DynamoDB call failed: {code or type(exc).__name__}") from exc
            except BotoCoreError as exc:
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
                        "M": {
                            "status": {"S": applied.status},
                            "ts": {"N": str(applied.timestamp_ms)},
                            "order": _order_value(applied.order),
                        }
                    }
                    for audience_id, applied in entry.audiences.items()
                }
            },
            "written": {"M": {name: {"S": value} for name, value in entry.written.items()}},
            "attributeOrder": {"M": {name: _order_value(o) for name, o in entry.attribute_order.items()}},
        }
        optional: dict[str, Any] = {
            "hubspotId": {"S": entry.hubspot_id} if entry.hubspot_id else None,
            "reason": {"S": entry.reason[:2000]} if entry.reason else None,
            "rejected": {"S": entry.rejected} if entry.rejected else None,
            "unconfirmedAt": {"N": str(entry.unconfirmed_at_ms)} if entry.unconfirmed_at_ms else None,
            "warnings": {"M": {name: {"S": text[:500]} for name, text in entry.warnings.items()}}
            if entry.warnings
            else None,
            "pendingAudiences": _pending_audiences_value(entry.pending_audiences),
            "pendingAttributes": {
                "M": {
                    name: {"M": {"value": {"S": json.dumps(p.value)}, "order": _order_value(p.order)}}
                    for name, p in entry.pending_attributes.items()
                }
            }
            if entry.pending_attributes
            else None,
        }
        item.update({name: value for name, value in optional.items() if value is not None})
        if entry.status == FAILED:
            item[ISSUE_STATUS] = {"S": ISSUE_FAILED}
            item[ISSUE_AT] = {"N": str(entry.updated_at_ms)}
        elif entry.holds_changes:
            item[ISSUE_STATUS] = {"S": ISSUE_HELD}
            item[ISSUE_AT] = {"N": str(entry.updated_at_ms)}
        return item


def held_marker_item(audience_id: str, email: str, expires_at: int) -> dict[str, Any]:
    """The item saying that ``email``'s ledger entry keeps a change of ``audience_id`` (see
    ``ledger_keys``): in the sparse ``held`` index under the audience's digest."""
    return {
        KEY: {"S": held_marker_key(audience_id, email)},
        HELD_AUDIENCE: {"S": audience_digest(audience_id)},
        HELD_EMAIL: {"S": email},
        "audienceId": {"S": audience_id},
        EXPIRES_AT: {"N": str(expires_at)},
    }


class _ItemRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _order_value(order: Order) -> dict[str, Any]:
    return {"L": [{"N": str(part)} for part in order]}


def _order(value: Mapping[str, Any] | None) -> Order:
    parts = [int(Decimal(part["N"])) for part in (value or {}).get("L", [])]
    return (parts[0], parts[1]) if len(parts) == 2 else UNORDERED


def _pending_audiences_value(pending: Mapping[str, PendingAudience]) -> dict[str, Any] | None:
    if not pending:
        return None
    return {
        "M": {
            audience_id: {
                "M": {
                    "status": {"S": change.status},
                    "ts": {"N": str(change.timestamp_ms)},
                    "order": _order_value(change.order),
                    **({"name": {"S": change.name}} if change.name else {}),
                }
            }
            for audience_id, change in pending.items()
        }
    }


def _map(item: Mapping[str, Any], name: str) -> dict[str, Any]:
    return dict((item.get(name) or {}).get("M") or {})


def entry_from_item(item: Mapping[str, Any]) -> LedgerEntry:
    """A contact's ledger item (as DynamoDB's low-level API returns it) as a LedgerEntry."""
    return _from_item(item)


def _from_item(item: Mapping[str, Any]) -> LedgerEntry:
    def text(name: str) -> str | None:
        value = item.get(name)
        return str(value["S"]) if value else None

    audiences = {
        audience_id: AppliedAudience(
            str(value["M"]["status"]["S"]),
            int(Decimal(value["M"]["ts"]["N"])),
            _order(value["M"].get("order")),
        )
        for audience_id, value in _map(item, "audiences").items()
    }
    pending_audiences = {
        audience_id: PendingAudience(
            str(value["M"]["status"]["S"]),
            int(Decimal(value["M"]["ts"]["N"])),
            _order(value["M"].get("order")),
            str(value["M"]["name"]["S"]) if "name" in value["M"] else None,
        )
        for audience_id, value in _map(item, "pendingAudiences").items()
    }
    pending_attributes = {
        name: PendingAttribute(json.loads(value["M"]["value"]["S"]), _order(value["M"].get("order")))
        for name, value in _map(item, "pendingAttributes").items()
    }
    unconfirmed = item.get("unconfirmedAt")
    return LedgerEntry(
        email=str(item["email"]["S"]),
        status=text("status") or SYNCED,
        hubspot_id=text("hubspotId"),
        audiences=audiences,
        written={name: str(value["S"]) for name, value in _map(item, "written").items()},
        attribute_order={name: _order(value) for name, value in _map(item, "attributeOrder").items()},
        pending_audiences=pending_audiences,
        pending_attributes=pending_attributes,
        reason=text("reason"),
        warnings={name: str(value["S"]) for name, value in _map(item, "warnings").items()},
        updated_at_ms=int(Decimal(item.get("updatedAt", {}).get("N", "0"))),
        rejected=text("rejected"),
        unconfirmed_at_ms=int(Decimal(unconfirmed["N"])) if unconfirmed else None,
    )


class DynamoDbDailyCounter:
    """The connector's HubSpot calls of the day, counted atomically across every consumer (HubSpot
    tells OAuth apps nothing about the daily limit, so the connector must count for itself)."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    @tracer.capture_method(capture_response=False, capture_error=False)
    def add(self, day: str, calls: int) -> int:
        """Count ``calls`` more for ``day`` (the account's date); returns the day's total."""
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key={"email": {"S": daily_calls_key(day)}},
                UpdateExpression="ADD calls :n SET expiresAt = if_not_exists(expiresAt, :expires)",
                ExpressionAttributeValues={
                    ":n": {"N": str(calls)},
                    ":expires": {"N": str(int(time.time()) + 3 * 86_400)},
                },
                ReturnValues="UPDATED_NEW",
            )
        except (ClientError, BotoCoreError) as exc:
            raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
        return int(Decimal(response["Attributes"]["calls"]["N"]))
