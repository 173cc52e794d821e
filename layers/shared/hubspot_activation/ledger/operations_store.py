"""The ledger table as the operator's routes read and write it: contacts, the sparse issues index,
counts, the daily count of HubSpot calls, audience metadata and the audiences' list buffers.
Low-level DynamoDB client, no scans; every item is read and written through its kind's codec."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..reconcile.model import Seen
from ..upsert.ledger import LedgerEntry
from .audience_item import (
    LIST_CALLS,
    LIST_GENERATION,
    LIST_ID,
    LIST_LAST_ERROR,
    LIST_LAST_FLUSH_AT,
    LIST_NAME,
    AudienceRecord,
    audience_key_item,
    delete_update,
    item_key,
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
    KEY,
    LIST_PENDING_PARTITION,
    PENDING_EMAILS,
    PENDING_INDEX,
    PENDING_PARTITION,
    PENDING_PARTITIONS,
    audience_key,
    list_buffer_key,
    pending_partition_value,
)
from .list_buffer import AUDIENCE_ID, CHANGES, SHARDS, decode, shard_of
from .seen_item import seen_from_item
from .values import Item, integer, string, text

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: Pages a count reads before it stops and says it is a lower bound (each page is up to 1 MB of
#: the index, thousands of issues): keeps GET /sync/status fast whatever the backlog.
MAX_COUNT_PAGES = 10
#: Pending contacts counted before the count stops and says it is a lower bound.
MAX_PENDING_COUNTED = 10_000
#: Keys one BatchGetItem takes (DynamoDB's limit).
BATCH_GET_KEYS = 100
#: Lists GET /sync/status shows at most: their buffers' shards are read in one BatchGetItem.
MAX_LISTS_SHOWN = BATCH_GET_KEYS // SHARDS


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
class AudienceList:
    """An audience's HubSpot list as its metadata item holds it, with the lists function's
    bookkeeping (each None until that function wrote it)."""

    audience_id: str
    status: str | None
    list_id: str | None
    list_name: str | None
    list_generation: int
    last_flush_at_ms: int | None
    last_error: str | None
    calls: int | None


@dataclass(frozen=True)
class WaitingList:
    """An audience whose list buffer holds membership changes not sent yet."""

    audience_id: str
    adds: int
    removes: int
    #: its metadata (None: the audience has no item, never PUT nor given a list)
    audience: AudienceList | None


@dataclass(frozen=True)
class WaitingLists:
    lists: list[WaitingList]
    #: more lists have changes waiting than were read
    more: bool


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
        record = saved_record(audience_id, name, description, now, before)
        if before:
            # The list is the lists function's: a PUT leaves it as it was, and names it.
            record = replace(
                record,
                list_id=text(before, LIST_ID),
                list_name=text(before, LIST_NAME),
                list_generation=integer(before, LIST_GENERATION) or 0,
            )
        # New to the operator when never PUT nor DELETEd (both set createdAt): the lists function
        # may have made the item already, keeping the list of an audience only ever activated.
        return record, "createdAt" not in (before or {})

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

    # -- the audiences' HubSpot lists (AudienceTarget list or both) --------------------------------
    def list_renamed(self, audience_id: str, list_id: str, name: str) -> bool:
        """Store the name HubSpot's list now has; False when the audience's list is another one
        by now (made again by the lists function: the name goes with the list it was given)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=audience_key_item(audience_id),
                UpdateExpression="SET #n = :n",
                ConditionExpression="#l = :l",
                ExpressionAttributeNames={"#n": LIST_NAME, "#l": LIST_ID},
                ExpressionAttributeValues={":n": string(name), ":l": string(list_id)},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise StoreUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
        return True

    def audience_lists(self, audience_ids: Iterable[str]) -> dict[str, AudienceList]:
        """The list metadata of these audiences (one without an item is absent): a BatchGetItem
        per 100."""
        by_key = {audience_key(audience_id): audience_id for audience_id in dict.fromkeys(audience_ids)}
        items = self._batch_get(list(by_key), _LIST_PROJECTION)
        return {by_key[key]: _audience_list(by_key[key], item) for key, item in items.items()}

    def waiting_in_lists(self, record_id: str, audience_ids: Iterable[str]) -> set[str]:
        """The audiences whose list buffer holds a change of ``record_id`` not sent yet: the one
        shard of each buffer the record lands in, read in a BatchGetItem per 100."""
        shard = shard_of(record_id, SHARDS)
        by_key = {
            list_buffer_key(audience_id, shard): audience_id for audience_id in dict.fromkeys(audience_ids)
        }
        items = self._batch_get(list(by_key), _CHANGES_PROJECTION)
        return {by_key[key] for key, item in items.items() if record_id in item.get(CHANGES, {}).get("M", {})}

    def lists_waiting(self, max_lists: int = MAX_LISTS_SHOWN) -> WaitingLists:
        """The audiences whose list buffers hold changes not sent yet, longest due first (at most
        ``max_lists``), with the changes' count: one Query of the ``pending`` index's ``lists``
        partition, the shards it names and the audiences' items."""
        response = _guarded(
            self._client.query,
            TableName=self._table,
            IndexName=PENDING_INDEX,
            KeyConditionExpression="#p = :p",
            ExpressionAttributeNames={"#p": PENDING_PARTITION},
            ExpressionAttributeValues={":p": string(LIST_PENDING_PARTITION)},
            ScanIndexForward=True,
            Limit=max_lists * SHARDS,
        )
        keys = list(dict.fromkeys(str(item[KEY]["S"]) for item in response.get("Items", [])))
        shards = self._batch_get(keys, _CHANGES_PROJECTION)
        counts: dict[str, list[int]] = {}
        for key in keys:  # longest due first, as the index answered
            item = shards.get(key, {})
            audience_id = text(item, AUDIENCE_ID)
            if audience_id is None:
                continue  # sent and emptied since the index was read
            tally = counts.setdefault(audience_id, [0, 0])
            for record_id, value in item.get(CHANGES, {}).get("M", {}).items():
                tally[0 if decode(record_id, value["S"])[0].member else 1] += 1
        shown = list(counts)[:max_lists]
        audiences = self.audience_lists(shown)
        waiting = [
            WaitingList(
                audience_id, counts[audience_id][0], counts[audience_id][1], audiences.get(audience_id)
            )
            for audience_id in shown
            if sum(counts[audience_id])
        ]
        more = bool(response.get("LastEvaluatedKey")) or len(counts) > max_lists
        return WaitingLists(waiting, more)

    def _batch_get(self, keys: Sequence[str], projection: dict[str, Any]) -> dict[str, Item]:
        """The items of these table keys that exist, by key: strongly consistent, a BatchGetItem
        per 100 keys, what DynamoDB leaves unprocessed asked again."""
        found: dict[str, Item] = {}
        for start in range(0, len(keys), BATCH_GET_KEYS):
            request: Any = {
                self._table: {
                    "Keys": [{KEY: string(key)} for key in keys[start : start + BATCH_GET_KEYS]],
                    "ConsistentRead": True,
                    **projection,
                }
            }
            for _attempt in range(5):
                response = _guarded(self._client.batch_get_item, RequestItems=request)
                for item in response.get("Responses", {}).get(self._table, []):
                    found[item_key(item)] = item
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05)
            else:
                raise StoreUnavailable("DynamoDB left keys unprocessed")
        return found


_LIST_PROJECTION: dict[str, Any] = {
    "ProjectionExpression": "#k, #a, #s, #l, #n, #g, #f, #e, #c",
    "ExpressionAttributeNames": {
        "#k": KEY,
        "#a": "audienceId",
        "#s": "status",
        "#l": LIST_ID,
        "#n": LIST_NAME,
        "#g": LIST_GENERATION,
        "#f": LIST_LAST_FLUSH_AT,
        "#e": LIST_LAST_ERROR,
        "#c": LIST_CALLS,
    },
}
_CHANGES_PROJECTION: dict[str, Any] = {
    "ProjectionExpression": "#k, #a, #c",
    "ExpressionAttributeNames": {"#k": KEY, "#a": AUDIENCE_ID, "#c": CHANGES},
}


def _audience_list(audience_id: str, item: Item) -> AudienceList:
    """Read defensively: the bookkeeping is another function's, and an attribute of another type
    than expected reads as absent."""
    return AudienceList(
        audience_id=audience_id,
        status=text(item, "status"),
        list_id=text(item, LIST_ID),
        list_name=text(item, LIST_NAME),
        list_generation=integer(item, LIST_GENERATION) or 0,
        last_flush_at_ms=integer(item, LIST_LAST_FLUSH_AT),
        last_error=text(item, LIST_LAST_ERROR),
        calls=integer(item, LIST_CALLS),
    )
