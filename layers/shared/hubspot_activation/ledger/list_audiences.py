"""The ledger as the lists function reads and writes it: the audience items' list attributes
(``audience_item``: the list's id, name and generation, its refill, its bookkeeping), the lease of
each list's drain (``keys.list_lease_key``), and the contacts whose newest status handed to a list
is realized (the refill's pages).

``list_flush_records`` is the reader of the per-list bookkeeping for the operator's routes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..lists.model import ListAudience, Rank
from ..upsert.ledger import LedgerUnavailable
from .audience_item import (
    DELETED,
    LIST_CALLS,
    LIST_FAILURES,
    LIST_GENERATION,
    LIST_ID,
    LIST_LAST_ERROR,
    LIST_LAST_FLUSH_AT,
    LIST_NAME,
    LIST_REFILL_AFTER,
    LIST_REFILL_GENERATION,
    ListFlushRecord,
    audience_key_item,
    item_key,
    list_flush_from_item,
)
from .conditional import conditionally
from .contact_item import LISTED, listed_from_item
from .keys import (
    DUE_AT,
    HUBSPOT_ID,
    KEY,
    LIST_PENDING_PARTITION,
    PENDING_PARTITION,
    audience_key,
    list_lease_key,
)
from .lease_item import acquire_lease, release_lease
from .values import Item, integer, number, string, text

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: The longest error text kept on the audience item.
MAX_ERROR_CHARS = 500
_REFILL_NAMES = {"#r": LIST_REFILL_GENERATION, "#a": LIST_REFILL_AFTER, "#p": PENDING_PARTITION, "#d": DUE_AT}


class DynamoDbListAudiences:
    """``lists.ports.ListAudiences`` on the audience items."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def get(self, audience_id: str) -> ListAudience | None:
        item = self._get(audience_id)
        return _audience(audience_id, item) if item else None

    def store_list(
        self, audience_id: str, list_id: str, list_name: str, replacing: str | None
    ) -> ListAudience:
        values: Item = {":id": string(list_id), ":name": string(list_name), ":aid": string(audience_id)}
        if replacing is None:
            condition = "attribute_not_exists(#l)"
        else:
            condition = "#l = :old"
            values[":old"] = string(replacing)
        conditionally(
            lambda: self._client.update_item(
                TableName=self._table,
                Key=audience_key_item(audience_id),
                UpdateExpression="SET #l = :id, #n = :name, audienceId = if_not_exists(audienceId, :aid)",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#l": LIST_ID, "#n": LIST_NAME},
                ExpressionAttributeValues=values,
            )
        )
        stored = self.get(audience_id)
        if stored is None:
            raise LedgerUnavailable("the audience item vanished while its list was stored")
        return stored

    def next_generation(self, audience_id: str, generation: int) -> int:
        bumped = conditionally(
            lambda: self._client.update_item(
                TableName=self._table,
                Key=audience_key_item(audience_id),
                UpdateExpression="SET #g = :next",
                ConditionExpression="attribute_not_exists(#g) AND :read = :zero OR #g = :read",
                ExpressionAttributeNames={"#g": LIST_GENERATION},
                ExpressionAttributeValues={
                    ":next": number(generation + 1),
                    ":read": number(generation),
                    ":zero": number(0),
                },
            )
        )
        if bumped:
            return generation + 1
        # Another run bumped it from the same generation: its bump is this one.
        return integer(self._get(audience_id), LIST_GENERATION) or generation + 1

    def start_refill(self, audience_id: str, generation: int, now_ms: int) -> None:
        self._update(
            Key=audience_key_item(audience_id),
            UpdateExpression="SET #r = :g, #p = :p, #d = :d REMOVE #a",
            ExpressionAttributeNames=_REFILL_NAMES,
            ExpressionAttributeValues={
                ":g": number(generation),
                ":p": string(LIST_PENDING_PARTITION),
                ":d": number(now_ms),
            },
        )

    def refill_from(self, audience_id: str, cursor: str | None, generation: int, now_ms: int) -> None:
        if cursor is None:
            expression = "REMOVE #r, #a, #p, #d"
            values: Item = {":g": number(generation)}
        else:
            expression = "SET #a = :a, #d = :d"
            values = {":g": number(generation), ":a": string(cursor), ":d": number(now_ms)}
        # Conditional: a newer refill (the list gone again meanwhile) keeps its own place.
        conditionally(
            lambda: self._client.update_item(
                TableName=self._table,
                Key=audience_key_item(audience_id),
                UpdateExpression=expression,
                ConditionExpression="#r = :g",
                ExpressionAttributeNames={
                    name: attribute for name, attribute in _REFILL_NAMES.items() if name in f"{expression} #r"
                },
                ExpressionAttributeValues=values,
            )
        )

    def record_flush(self, audience_id: str, now_ms: int, calls: int, error: str | None) -> int:
        names = {"#t": LIST_LAST_FLUSH_AT, "#c": LIST_CALLS, "#e": LIST_LAST_ERROR, "#f": LIST_FAILURES}
        values: Item = {":t": number(now_ms), ":c": number(calls)}
        if error is None:
            expression = "SET #t = :t ADD #c :c REMOVE #e, #f"
        else:
            expression = "SET #t = :t, #e = :e ADD #c :c, #f :one"
            values[":e"] = string(error[:MAX_ERROR_CHARS])
            values[":one"] = number(1)
        response = self._update(
            Key=audience_key_item(audience_id),
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return integer(response.get("Attributes", {}), LIST_FAILURES) or 0

    def _get(self, audience_id: str) -> Item:
        try:
            response = self._client.get_item(
                TableName=self._table, Key=audience_key_item(audience_id), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
        return dict(response.get("Item") or {})

    def _update(self, **request: Any) -> Any:
        try:
            return self._client.update_item(TableName=self._table, **request)
        except (ClientError, BotoCoreError) as exc:
            raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc


def _audience(audience_id: str, item: Item) -> ListAudience:
    refill = integer(item, LIST_REFILL_GENERATION)
    generation = integer(item, LIST_GENERATION) or 0
    return ListAudience(
        audience_id=audience_id,
        name=text(item, "name"),
        deleted=text(item, "status") == DELETED,
        list_id=text(item, LIST_ID),
        list_name=text(item, LIST_NAME),
        list_generation=generation,
        refilling=refill is not None and refill == generation,
        refill_cursor=text(item, LIST_REFILL_AFTER),
    )


def list_flush_records(
    client: DynamoDBClient, table: str, audience_ids: Iterable[str]
) -> dict[str, ListFlushRecord]:
    """The lists' bookkeeping of these audiences (strongly consistent), 100 audiences a call; an
    audience whose list was never drained is absent."""
    wanted = list(dict.fromkeys(audience_ids))
    found: dict[str, ListFlushRecord] = {}
    for start in range(0, len(wanted), 100):
        by_key = {audience_key(aid): aid for aid in wanted[start : start + 100]}
        request: Any = {
            table: {"Keys": [audience_key_item(aid) for aid in by_key.values()], "ConsistentRead": True}
        }
        for _attempt in range(5):
            try:
                response = client.batch_get_item(RequestItems=request)
            except (ClientError, BotoCoreError) as exc:
                raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
            for item in response.get("Responses", {}).get(table, []):
                record = list_flush_from_item(item)
                if record is not None:
                    found[by_key[item_key(item)]] = record
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
        else:
            raise LedgerUnavailable("DynamoDB left audience keys unprocessed")
    return found


class DynamoDbListLease:
    """``lists.ports.ListLease``: one item per list (who drains it, until when); a holder that
    crashed lets it expire."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def acquire(self, audience_id: str, owner: str, until_ms: int, now_ms: int) -> bool:
        return acquire_lease(self._client, self._table, list_lease_key(audience_id), owner, until_ms, now_ms)

    def release(self, audience_id: str, owner: str) -> None:
        release_lease(self._client, self._table, list_lease_key(audience_id), owner)


class DynamoDbRealizedMembers:
    """``lists.ports.RealizedMembers``: a scan of the contacts (the only items keyed with ``@``)
    whose ``listed`` status of the audience is realized and that HubSpot holds (``hubspotId``)."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def page(
        self, audience_id: str, cursor: str | None, limit: int
    ) -> tuple[list[tuple[str, Rank]], str | None]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "Limit": limit,
            "FilterExpression": "#l.#a.#s = :realized AND attribute_exists(#h) AND contains(#k, :at)",
            "ProjectionExpression": "#k, #h, #l.#a",
            "ExpressionAttributeNames": {
                "#k": KEY,
                "#h": HUBSPOT_ID,
                "#l": LISTED,
                "#a": audience_id,
                "#s": "status",
            },
            "ExpressionAttributeValues": {":realized": string("realized"), ":at": string("@")},
            # A stale replica could miss a contact listed just now (the flusher re-emits it anyway
            # on its generation, but the refill should not lean on that).
            "ConsistentRead": True,
        }
        if cursor is not None:
            request["ExclusiveStartKey"] = {KEY: string(json.loads(cursor))}
        try:
            response = self._client.scan(**request)
        except (ClientError, BotoCoreError) as exc:
            raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
        members: list[tuple[str, Rank]] = []
        for item in response.get("Items", []):
            listed = listed_from_item(item).get(audience_id)
            record_id = text(item, HUBSPOT_ID)
            if listed is None or record_id is None:
                continue
            members.append((record_id, (listed.timestamp_ms, *listed.order)))
        last = response.get("LastEvaluatedKey")
        return members, json.dumps(str(last[KEY]["S"])) if last else None
