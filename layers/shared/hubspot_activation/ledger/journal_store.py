"""The journal poller's ports in the ledger table: its position (one item, ``journal_offset_key``)
and the contacts by HubSpot record id (the sparse ``hubspotId`` index)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..reconcile.journal import JournalPosition
from ..upsert.ledger import LedgerUnavailable
from .conditional import conditionally
from .keys import HUBSPOT_ID, HUBSPOT_ID_INDEX, KEY, journal_offset_key
from .values import integer, number, string, text

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

OFFSET = "journalOffset"
PORTAL = "portalId"
SUBSCRIBED = "subscribed"
UPDATED_AT = "updatedAt"


class DynamoDbJournalOffsets:
    """The poller's position, written only if the stored one is still the one the poll read (two
    overlapping polls cannot move it backwards)."""

    def __init__(
        self, client: DynamoDBClient, table: str, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self._table = table
        self._wall_clock = wall_clock

    def load(self) -> JournalPosition | None:
        try:
            item = self._client.get_item(
                TableName=self._table, Key={KEY: string(journal_offset_key())}, ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
        if item is None:
            return None
        return JournalPosition(text(item, OFFSET), integer(item, PORTAL) or 0, text(item, SUBSCRIBED) or "")

    def save(self, position: JournalPosition, previous: JournalPosition | None) -> bool:
        item: dict[str, Any] = {
            KEY: string(journal_offset_key()),
            PORTAL: number(position.portal_id),
            SUBSCRIBED: string(position.subscribed),
            UPDATED_AT: number(int(self._wall_clock() * 1000)),
        }
        if position.offset is not None:
            item[OFFSET] = string(position.offset)
        values: dict[str, Any] = {}
        if previous is None:
            names = {"#k": KEY}
            condition = "attribute_not_exists(#k)"
        else:
            # DynamoDB refuses a name the expression does not use.
            names = {"#p": PORTAL, "#s": SUBSCRIBED, "#o": OFFSET}
            values.update({":p": number(previous.portal_id), ":s": string(previous.subscribed)})
            condition = "#p = :p AND #s = :s AND "
            if previous.offset is None:
                condition += "attribute_not_exists(#o)"
            else:
                condition += "#o = :o"
                values[":o"] = string(previous.offset)
        request: dict[str, Any] = {
            "TableName": self._table,
            "Item": item,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
        }
        if values:
            request["ExpressionAttributeValues"] = values
        return conditionally(lambda: self._client.put_item(**request))


class DynamoDbContactIdIndex:
    """Record ids to the tracked contacts' emails: one index query per id (an event names few)."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def emails(self, ids: Collection[str]) -> set[str]:
        found: set[str] = set()
        for record_id in sorted(set(ids)):
            found.update(self._emails_of(record_id))
        return found

    def _emails_of(self, record_id: str) -> set[str]:
        found: set[str] = set()
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": HUBSPOT_ID_INDEX,
            "KeyConditionExpression": "#h = :h",
            "ExpressionAttributeNames": {"#h": HUBSPOT_ID},
            "ExpressionAttributeValues": {":h": string(record_id)},
        }
        while True:
            try:
                page = self._client.query(**request)
            except (ClientError, BotoCoreError) as exc:
                raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
            # Contact items alone are keyed by an email (other item kinds never carry hubspotId).
            found.update(email for item in page.get("Items", []) if "@" in (email := text(item, KEY) or ""))
            start = page.get("LastEvaluatedKey")
            if not start:
                return found
            request["ExclusiveStartKey"] = start
