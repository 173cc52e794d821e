"""Audience metadata as the consumer reads it (written by the operations routes): the stored name
labels the audience's property, and a deleted audience's changes are held in the ledger, not
written (with a warning on the contact). Cached per container for a short while, so a rename
or a delete takes effect within ``max_age_seconds`` without a read per batch."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from ..ledger_keys import KEY, audience_id_of, audience_key
from .ledger import LedgerUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class AudienceMetadata:
    name: str | None
    deleted: bool


class AudienceDirectory(Protocol):
    def lookup(self, audience_ids: Iterable[str]) -> dict[str, AudienceMetadata]:
        """The metadata of the audiences that have some (the others are absent)."""
        ...

    def forget(self, audience_ids: Iterable[str]) -> None:
        """Drop these audiences from the cache: their next lookup reads the store."""
        ...


class DynamoDbAudienceDirectory:
    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        max_age_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._table = table
        self._max_age = max_age_seconds
        self._clock = clock
        #: audience id -> (when read, its metadata or None when it has none)
        self._cache: dict[str, tuple[float, AudienceMetadata | None]] = {}

    def lookup(self, audience_ids: Iterable[str]) -> dict[str, AudienceMetadata]:
        now = self._clock()
        wanted = list(dict.fromkeys(audience_ids))
        stale = [i for i in wanted if i not in self._cache or now - self._cache[i][0] > self._max_age]
        for start in range(0, len(stale), 100):
            chunk = stale[start : start + 100]
            found = self._read(chunk)
            for audience_id in chunk:
                self._cache[audience_id] = (now, found.get(audience_id))
        result = {}
        for audience_id in wanted:
            metadata = self._cache[audience_id][1]
            if metadata is not None:
                result[audience_id] = metadata
        return result

    def _read(self, audience_ids: list[str]) -> dict[str, AudienceMetadata]:
        request: Any = {
            self._table: {
                "Keys": [{KEY: {"S": audience_key(i)}} for i in audience_ids],
                "ProjectionExpression": "#k, #n, #s",
                "ExpressionAttributeNames": {"#k": KEY, "#n": "name", "#s": "status"},
            }
        }
        found: dict[str, AudienceMetadata] = {}
        for _attempt in range(5):
            try:
                response = self._client.batch_get_item(RequestItems=request)
            except (ClientError, BotoCoreError) as exc:
                raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
            for item in response.get("Responses", {}).get(self._table, []):
                name = item.get("name", {}).get("S")
                deleted = item.get("status", {}).get("S") == "deleted"
                found[audience_id_of(str(item[KEY]["S"]))] = AudienceMetadata(name, deleted)
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return found
            time.sleep(0.05)
        raise LedgerUnavailable("DynamoDB left audience keys unprocessed")

    def forget(self, audience_ids: Iterable[str]) -> None:
        for audience_id in audience_ids:
            self._cache.pop(audience_id, None)
