"""The ``AudienceDirectory`` of the merge (resume jobs) and the flusher in DynamoDB
(``audience_item``), cached per container for a short while, so a rename or a delete takes effect
within ``max_age_seconds`` without a read per batch.

A read DynamoDB cannot serve at the moment (throttled, unreachable) raises ``LedgerUnavailable``:
the merge's batch goes back to the queue, the flush run stops with its contacts pending. A read it
refuses for good (a ValidationException, which DynamoDB answers for the whole BatchGetItem when one
key is wrong) is narrowed down to the audiences it refuses: those are reported ``unreadable`` and
only their changes wait, on their own contacts; the rest of the batch is synced."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..observability import logger
from ..upsert.audiences import AudienceMetadata
from ..upsert.ledger import LedgerUnavailable
from .audience_item import METADATA_PROJECTION, audience_key_item, item_key, metadata_from_item
from .keys import audience_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


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
        stale = [i for i in wanted if self._stale(i, now)]
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

    def _stale(self, audience_id: str, now: float) -> bool:
        """A deleted status is never served from the cache: whether a change is held or written
        follows the stored status, so a PUT that re-activated the audience is seen at once."""
        cached = self._cache.get(audience_id)
        if cached is None or now - cached[0] > self._max_age:
            return True
        return cached[1] is not None and cached[1].deleted

    def _read(self, audience_ids: list[str]) -> dict[str, AudienceMetadata]:
        try:
            return self._read_batch(audience_ids)
        except _ReadRefused as refused:
            if len(audience_ids) == 1:
                logger.error("audience metadata read refused", extra={"error": refused.reason})
                return {audience_ids[0]: AudienceMetadata(None, False, refused.reason)}
        # DynamoDB refused the request as a whole: each audience alone finds the one it refuses.
        found: dict[str, AudienceMetadata] = {}
        for audience_id in audience_ids:
            found.update(self._read([audience_id]))
        return found

    def _read_batch(self, audience_ids: list[str]) -> dict[str, AudienceMetadata]:
        by_key = {audience_key(i): i for i in audience_ids}
        request: Any = {
            self._table: {
                "Keys": [audience_key_item(i) for i in by_key.values()],
                # Strongly consistent: whether a change is held or written follows the newest PUT
                # or DELETE, not a replica a second behind.
                "ConsistentRead": True,
                **METADATA_PROJECTION,
            }
        }
        found: dict[str, AudienceMetadata] = {}
        for _attempt in range(5):
            try:
                response = self._client.batch_get_item(RequestItems=request)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code == "ValidationException":
                    raise _ReadRefused(
                        f"the ledger refuses to read the audience's metadata ({code})"
                    ) from exc
                raise LedgerUnavailable(f"DynamoDB call failed: {code or type(exc).__name__}") from exc
            except BotoCoreError as exc:
                raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
            for item in response.get("Responses", {}).get(self._table, []):
                # The key, not an id decoded from it: a hashed key cannot be read back.
                found[by_key[item_key(item)]] = metadata_from_item(item)
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return found
            time.sleep(0.05)
        raise LedgerUnavailable("DynamoDB left audience keys unprocessed")

    def forget(self, audience_ids: Iterable[str]) -> None:
        for audience_id in audience_ids:
            self._cache.pop(audience_id, None)


class _ReadRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
