"""The ledger table as the operator's routes read it: contacts, the sparse issues index, counts,
the daily count of HubSpot calls and audience metadata. Low-level DynamoDB client, no scans."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..ledger_keys import (
    ISSUE_AT,
    ISSUE_STATUS,
    ISSUES_INDEX,
    KEY,
    audience_key,
    daily_calls_key,
)
from ..upsert.dynamodb_ledger import entry_from_item
from ..upsert.ledger import LedgerEntry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: Pages a count reads before it stops and says it is a lower bound (each page is up to 1 MB of
#: the index, thousands of issues): keeps GET /sync/status fast whatever the backlog.
MAX_COUNT_PAGES = 10


#: An audience item's flag: its next PUT queues a resume job.
RESUME_DUE = "resumeDue"


class StoreUnavailable(Exception):
    """DynamoDB could not be read or written: the route answers 503."""


@dataclass(frozen=True)
class Count:
    value: int
    #: False when the count stopped after MAX_COUNT_PAGES: the real number is higher
    exact: bool


@dataclass(frozen=True)
class IssuePage:
    items: list[dict[str, Any]]
    #: the index key to continue after (None: this was the last page)
    last_key: dict[str, Any] | None


@dataclass(frozen=True)
class AudienceRecord:
    audience_id: str
    name: str | None
    description: str | None
    status: str
    updated_at_ms: int
    created_at_ms: int
    deleted_at_ms: int | None = None
    #: a PUT re-activated the audience and the contacts holding its changes are still to be
    #: resumed (set by a DELETE, cleared once a PUT queued the resume job)
    resume_due: bool = False


def _text(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    return str(value["S"]) if value and "S" in value else None


def _number(item: Mapping[str, Any], name: str) -> int | None:
    value = item.get(name)
    return int(Decimal(value["N"])) if value and "N" in value else None


def _guarded(call: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return call(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
        raise StoreUnavailable(f"DynamoDB call failed: {code or type(exc).__name__}") from exc


class OperationsStore:
    def __init__(self, client: DynamoDBClient, table: str, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._table = table
        self._clock = clock

    def contact(self, email: str) -> LedgerEntry | None:
        item = _guarded(
            self._client.get_item, TableName=self._table, Key={KEY: {"S": email}}, ConsistentRead=True
        ).get("Item")
        return entry_from_item(item) if item else None

    def issues(self, status: str, limit: int, start_key: Mapping[str, Any] | None) -> IssuePage:
        """One page of the index, newest first. DynamoDB may return fewer than ``limit`` items with
        a key to continue; the page is filled from the following ones so a page is full when more
        exist."""
        items: list[dict[str, Any]] = []
        key = dict(start_key) if start_key else None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": ISSUES_INDEX,
                "KeyConditionExpression": "#s = :s",
                "ExpressionAttributeNames": {"#s": ISSUE_STATUS},
                "ExpressionAttributeValues": {":s": {"S": status}},
                "ScanIndexForward": False,
                "Limit": limit - len(items),
            }
            if key:
                kwargs["ExclusiveStartKey"] = key
            page = _guarded(self._client.query, **kwargs)
            items.extend(page.get("Items", []))
            key = page.get("LastEvaluatedKey")
            if not key or len(items) >= limit:
                return IssuePage(items, key)

    def count_issues(self, status: str, max_pages: int = MAX_COUNT_PAGES) -> Count:
        """Exact from the sparse index (Select=COUNT reads only the index), up to ``max_pages``."""
        total = 0
        key: Any = None
        for _page in range(max_pages):
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": ISSUES_INDEX,
                "KeyConditionExpression": "#s = :s",
                "ExpressionAttributeNames": {"#s": ISSUE_STATUS},
                "ExpressionAttributeValues": {":s": {"S": status}},
                "Select": "COUNT",
            }
            if key:
                kwargs["ExclusiveStartKey"] = key
            page = _guarded(self._client.query, **kwargs)
            total += int(page.get("Count", 0))
            key = page.get("LastEvaluatedKey")
            if not key:
                return Count(total, True)
        return Count(total, False)

    def approximate_item_count(self) -> int | None:
        """DynamoDB's own item count: refreshed about every six hours, so only approximate."""
        table = _guarded(self._client.describe_table, TableName=self._table).get("Table", {})
        count = table.get("ItemCount")
        return int(count) if count is not None else None

    def daily_calls(self, day: str) -> int:
        item = _guarded(
            self._client.get_item, TableName=self._table, Key={KEY: {"S": daily_calls_key(day)}}
        ).get("Item")
        return (_number(item, "calls") or 0) if item else 0

    def audience(self, audience_id: str) -> AudienceRecord | None:
        item = _guarded(
            self._client.get_item,
            TableName=self._table,
            Key={KEY: {"S": audience_key(audience_id)}},
            ConsistentRead=True,
        ).get("Item")
        return _audience(item) if item else None

    def save_audience(
        self, audience_id: str, name: str, description: str | None
    ) -> tuple[AudienceRecord, bool]:
        """Create or update (and re-activate) an audience; True when it did not exist before. The
        record's ``resume_due`` says whether this PUT must queue a resume job: the audience was
        deleted, or a PUT since re-activated it without queueing one (its send failed)."""
        now = int(self._clock() * 1000)
        values: dict[str, Any] = {
            ":id": {"S": audience_id},
            ":name": {"S": name},
            ":active": {"S": "active"},
            ":now": {"N": str(now)},
        }
        update = (
            "SET audienceId = :id, #n = :name, #st = :active, updatedAt = :now, "
            "createdAt = if_not_exists(createdAt, :now)"
        )
        if description is not None:
            values[":d"] = {"S": description}
            update += ", description = :d"
        update += " REMOVE deletedAt"
        response = _guarded(
            self._client.update_item,
            TableName=self._table,
            Key={KEY: {"S": audience_key(audience_id)}},
            UpdateExpression=update,
            ExpressionAttributeNames={"#n": "name", "#st": "status"},
            ExpressionAttributeValues=values,
            ReturnValues="ALL_OLD",
        )
        before = response.get("Attributes")
        record = AudienceRecord(
            audience_id=audience_id,
            name=name,
            description=description if description is not None else (_text(before or {}, "description")),
            status="active",
            updated_at_ms=now,
            created_at_ms=(_number(before, "createdAt") or now) if before else now,
            resume_due=bool(before) and (_text(before, "status") == "deleted" or RESUME_DUE in before),
        )
        return record, not before

    def resume_queued(self, record: AudienceRecord) -> None:
        """The PUT that saved ``record`` queued its resume job. Left set when a DELETE or another
        PUT came since: the newest one decides."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={KEY: {"S": audience_key(record.audience_id)}},
                UpdateExpression="REMOVE " + RESUME_DUE,
                ConditionExpression="updatedAt = :at",
                ExpressionAttributeValues={":at": {"N": str(record.updated_at_ms)}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise StoreUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc

    def delete_audience(self, audience_id: str) -> AudienceRecord:
        """Mark the audience deleted (kept, so the consumer knows to drop its changes and a PUT can
        re-activate it); an audience never PUT is recorded as deleted too."""
        now = int(self._clock() * 1000)
        response = _guarded(
            self._client.update_item,
            TableName=self._table,
            Key={KEY: {"S": audience_key(audience_id)}},
            UpdateExpression=(
                "SET audienceId = :id, #st = :deleted, updatedAt = :now, "
                "deletedAt = if_not_exists(deletedAt, :now), createdAt = if_not_exists(createdAt, :now), "
                + RESUME_DUE
                + " = :due"
            ),
            ExpressionAttributeNames={"#st": "status"},
            ExpressionAttributeValues={
                ":id": {"S": audience_id},
                ":deleted": {"S": "deleted"},
                ":now": {"N": str(now)},
                ":due": {"BOOL": True},
            },
            ReturnValues="ALL_NEW",
        )
        return _audience(response["Attributes"])


def _audience(item: Mapping[str, Any]) -> AudienceRecord:
    return AudienceRecord(
        audience_id=_text(item, "audienceId") or "",
        name=_text(item, "name"),
        description=_text(item, "description"),
        status=_text(item, "status") or "active",
        updated_at_ms=_number(item, "updatedAt") or 0,
        created_at_ms=_number(item, "createdAt") or 0,
        deleted_at_ms=_number(item, "deletedAt"),
    )


def issue_key(item: Mapping[str, Any]) -> dict[str, Any]:
    """The index key of an item (what DynamoDB's LastEvaluatedKey holds for this index)."""
    return {name: item[name] for name in (KEY, ISSUE_STATUS, ISSUE_AT)}
