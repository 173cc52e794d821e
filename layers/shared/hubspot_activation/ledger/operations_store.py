"""The ledger table as the operator's routes read and write it: contacts, the sparse issues index,
counts, the daily count of HubSpot calls and audience metadata. Low-level DynamoDB client, no
scans; every item is read and written through its kind's codec."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..reconcile.model import Seen
from ..upsert.ledger import LedgerEntry
from .audience_item import (
    AudienceRecord,
    audience_key_item,
    delete_update,
    record_from_item,
    resume_queued_update,
    save_update,
    saved_record,
)
from .contact_item import contact_key, entry_from_item
from .daily_calls_item import calls_from_item, daily_calls_key_item, held_at_from_item
from .issue_item import Issue, IssueKey, issue_from_item, key_attributes, key_from_attributes
from .keys import (
    ISSUE_STATUS,
    ISSUES_INDEX,
    PENDING_EMAILS,
    PENDING_INDEX,
    PENDING_PARTITION,
    PENDING_PARTITIONS,
    pending_partition_value,
)
from .seen_item import seen_from_item
from .values import string

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: Pages a count reads before it stops and says it is a lower bound (each page is up to 1 MB of
#: the index, thousands of issues): keeps GET /sync/status fast whatever the backlog.
MAX_COUNT_PAGES = 10
#: Pending contacts counted before the count stops and says it is a lower bound.
MAX_PENDING_COUNTED = 10_000


class StoreUnavailable(Exception):
    """DynamoDB could not be read or written: the route answers 503."""


@dataclass(frozen=True)
class Count:
    value: int
    #: False when the count stopped after MAX_COUNT_PAGES: the real number is higher
    exact: bool


@dataclass(frozen=True)
class StoredContact:
    entry: LedgerEntry
    #: what HubSpot was last seen to hold (None: reconcile never read the contact)
    seen: Seen | None


@dataclass(frozen=True)
class DailyCalls:
    """The day's item of the shared count of HubSpot calls."""

    calls: int
    #: when HubSpot's 10-second window last held the flush that day (epoch ms; None: not that day)
    held_at_ms: int | None = None


@dataclass(frozen=True)
class IssuePage:
    items: list[Issue]
    #: the index key to continue after (None: this was the last page)
    last_key: IssueKey | None


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

    def _index_query(self, status: str, **options: Any) -> dict[str, Any]:
        """A Query of one status of the issues index."""
        return {
            "TableName": self._table,
            "IndexName": ISSUES_INDEX,
            "KeyConditionExpression": "#s = :s",
            "ExpressionAttributeNames": {"#s": ISSUE_STATUS},
            "ExpressionAttributeValues": {":s": string(status)},
            **options,
        }

    def contact(self, email: str) -> StoredContact | None:
        item = _guarded(
            self._client.get_item, TableName=self._table, Key=contact_key(email), ConsistentRead=True
        ).get("Item")
        return StoredContact(entry_from_item(item), seen_from_item(item)) if item else None

    def issues(self, status: str, limit: int, start_key: IssueKey | None) -> IssuePage:
        """One page of the index, newest first. DynamoDB may return fewer than ``limit`` items with
        a key to continue; the page is filled from the following ones so a page is full when more
        exist."""
        items: list[dict[str, Any]] = []
        key = key_attributes(start_key) if start_key else None
        while True:
            kwargs = self._index_query(status, ScanIndexForward=False, Limit=limit - len(items))
            if key:
                kwargs["ExclusiveStartKey"] = key
            page = _guarded(self._client.query, **kwargs)
            items.extend(page.get("Items", []))
            key = page.get("LastEvaluatedKey")
            if not key or len(items) >= limit:
                return IssuePage(
                    [issue_from_item(item) for item in items], key_from_attributes(key) if key else None
                )

    def count_issues(self, status: str, max_pages: int = MAX_COUNT_PAGES) -> Count:
        """Exact from the sparse index (Select=COUNT reads only the index), up to ``max_pages``."""
        total = 0
        key: Any = None
        for _page in range(max_pages):
            kwargs = self._index_query(status, Select="COUNT")
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

    def daily_calls(self, day: str) -> DailyCalls:
        item = _guarded(self._client.get_item, TableName=self._table, Key=daily_calls_key_item(day)).get(
            "Item"
        )
        return DailyCalls(calls_from_item(item), held_at_from_item(item))

    def pending_contacts(self, max_contacts: int = MAX_PENDING_COUNTED) -> Count:
        """The contacts the pending markers list (the ``pending`` index, every partition), up to
        ``max_contacts``. A marker is deleted only once all its contacts are settled, so a
        contact written meanwhile may still be counted: an upper bound of the contacts waiting
        for the flush, and ``exact: false`` past ``max_contacts``."""
        emails: set[str] = set()
        for partition in range(PENDING_PARTITIONS):
            key: Any = None
            while True:
                kwargs: dict[str, Any] = {
                    "TableName": self._table,
                    "IndexName": PENDING_INDEX,
                    "KeyConditionExpression": "#p = :p",
                    "ExpressionAttributeNames": {"#p": PENDING_PARTITION, "#e": PENDING_EMAILS},
                    "ExpressionAttributeValues": {":p": string(pending_partition_value(partition))},
                    "ProjectionExpression": "#e",
                }
                if key:
                    kwargs["ExclusiveStartKey"] = key
                page = _guarded(self._client.query, **kwargs)
                for item in page.get("Items", []):
                    emails.update(item.get(PENDING_EMAILS, {}).get("SS", []))
                if len(emails) > max_contacts:
                    return Count(max_contacts, False)
                key = page.get("LastEvaluatedKey")
                if not key:
                    break
        return Count(len(emails), True)

    def audience(self, audience_id: str) -> AudienceRecord | None:
        item = _guarded(
            self._client.get_item,
            TableName=self._table,
            Key=audience_key_item(audience_id),
            ConsistentRead=True,
        ).get("Item")
        return record_from_item(item) if item else None

    def save_audience(
        self, audience_id: str, name: str, description: str | None
    ) -> tuple[AudienceRecord, bool]:
        """Create or update (and re-activate) an audience; True when it did not exist before. The
        record's ``resume_due`` says whether this PUT must queue a resume job."""
        now = int(self._clock() * 1000)
        response = _guarded(
            self._client.update_item,
            TableName=self._table,
            **save_update(audience_id, name, description, now),
        )
        before = response.get("Attributes")
        return saved_record(audience_id, name, description, now, before), not before

    def resume_queued(self, record: AudienceRecord) -> None:
        """The PUT that saved ``record`` queued its resume job."""
        try:
            self._client.update_item(TableName=self._table, **resume_queued_update(record))
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
            self._client.update_item, TableName=self._table, **delete_update(audience_id, now)
        )
        return record_from_item(response["Attributes"])
