"""Contacts' desired and confirmed states in DynamoDB (``contact_item``), the pending index, and the
flusher lanes' leases.

Every write that can race another is conditional: a merge writes the desired state only if the
version it read is still the item's (else it reads again and merges again), and a flush settles a
contact (takes it out of the pending index) only if no merge moved the version on during the
write; its confirmed state is stored either way. The merge's and the flush's writes set disjoint
attributes, so neither ever undoes the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..observability import logger, tracer
from ..upsert.ledger import FAILED, LedgerEntry, LedgerUnavailable
from ..upsert.plan import PendingContact, merge_desired
from ..upsert.state import ContactState, MergeResult, PendingRef, Recording
from .contact_item import (
    ATTEMPTS,
    PENDING_ATTRIBUTES,
    VERSION,
    confirmed_update,
    contact_key,
    desired_update,
    state_from_item,
)
from .contact_ledger import DynamoDbLedger
from .keys import (
    DUE_AT,
    KEY,
    PENDING_INDEX,
    PENDING_PARTITION,
    flush_lease_key,
    pending_partition_value,
)
from .values import Item, integer, number, string

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: A merge that keeps losing the race for a contact's item (another merge of the same contact
#: writing at the same moment) gives up after this many reads; its message goes back to the queue.
MAX_MERGE_ATTEMPTS = 5
#: Conditional writes are one request per item: this many at once.
WRITE_WORKERS = 8
_REFUSED = frozenset({"ValidationException", "ItemCollectionSizeLimitExceededException"})


class _Conflict(Exception):
    """The item's version moved on since it was read."""


class DynamoDbContactStates(DynamoDbLedger):
    """The contact items' desired and confirmed states (``upsert.state.ContactStates``), on top of
    the ledger's entries and held markers."""

    def __init__(
        self, client: DynamoDBClient, table: str, retention_days: int = 400, max_attempts: int = 5
    ) -> None:
        super().__init__(client, table, retention_days, max_attempts)

    @tracer.capture_method(capture_response=False, capture_error=False)
    def read(self, emails: Sequence[str]) -> dict[str, ContactState]:
        found: dict[str, ContactState] = {}
        unique = list(dict.fromkeys(emails))
        for start in range(0, len(unique), 100):
            keys: list[Any] = [contact_key(email) for email in unique[start : start + 100]]
            request = {self._table: {"Keys": keys, "ConsistentRead": True}}
            for response in self._until_processed(self._client.batch_get_item, request, "UnprocessedKeys"):
                for item in response.get("Responses", {}).get(self._table, []):
                    state = state_from_item(item)
                    found[state.email] = state
        return found

    @tracer.capture_method(capture_response=False, capture_error=False)
    def merge(self, contacts: Sequence[PendingContact], now_ms: int) -> MergeResult:
        result = MergeResult()
        states = self.read([contact.email for contact in contacts])
        with ThreadPoolExecutor(max_workers=WRITE_WORKERS) as pool:
            outcomes = list(pool.map(lambda c: self._merge_one(c, states.get(c.email), now_ms), contacts))
        for contact, (changed, newly_pending, refusal) in zip(contacts, outcomes, strict=True):
            if refusal is not None:
                result.refused[contact.email] = refusal
            if changed:
                result.changed.append(contact.email)
            if newly_pending:
                result.newly_pending.append(contact.email)
        return result

    def _merge_one(
        self, incoming: PendingContact, state: ContactState | None, now_ms: int
    ) -> tuple[bool, bool, str | None]:
        """(changed, newly pending, the reason the store refused it)."""
        for _attempt in range(MAX_MERGE_ATTEMPTS):
            merged = merge_desired(state.desired if state is not None else None, incoming)
            if merged is None and not (incoming.touched and state is not None):
                return False, False, None
            desired = (
                merged or (state.desired if state is not None else None) or PendingContact(incoming.email, "")
            )
            version = state.version if state is not None else 0
            try:
                self._write_desired(desired, version, now_ms, incoming.replay)
            except _Conflict:
                state = self.read([incoming.email]).get(incoming.email)
                continue
            except _Refused as refusal:
                self._record_failure(incoming.email, refusal.reason, now_ms)
                return False, False, refusal.reason
            return True, state is None or not state.pending, None
        raise LedgerUnavailable(f"a contact's state kept changing during {MAX_MERGE_ATTEMPTS} merges")

    def _write_desired(self, desired: PendingContact, version: int, now_ms: int, replay: bool) -> None:
        expression, names, values = desired_update(
            desired, version + 1, now_ms, self._retention_seconds, replay
        )
        if version:
            condition = "#v = :read"
            values[":read"] = number(version)
        else:
            condition = "attribute_not_exists(#v)"
        self._update(desired.email, expression, names, values, condition)

    @tracer.capture_method(capture_response=False, capture_error=False)
    def pending(self, partitions: Sequence[int], due_by_ms: int, limit: int) -> list[PendingRef]:
        refs: list[PendingRef] = []
        for partition in partitions:
            refs.extend(self._query_pending(partition, due_by_ms, limit))
        refs.sort(key=lambda ref: ref.due_ms)
        return refs[:limit]

    def next_due(self, partitions: Sequence[int]) -> int | None:
        earliest = [ref.due_ms for p in partitions for ref in self._query_pending(p, None, 1)]
        return min(earliest, default=None)

    def _query_pending(self, partition: int, due_by_ms: int | None, limit: int) -> list[PendingRef]:
        values: Item = {":p": string(pending_partition_value(partition))}
        names = {"#p": PENDING_PARTITION}
        condition = "#p = :p"
        if due_by_ms is not None:
            condition += " AND #due <= :due"
            values[":due"] = number(due_by_ms)
            names["#due"] = DUE_AT
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": PENDING_INDEX,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": True,
        }
        refs: list[PendingRef] = []
        while len(refs) < limit:
            request["Limit"] = limit - len(refs)
            try:
                response = self._client.query(**request)
            except (ClientError, BotoCoreError) as exc:
                raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
            refs.extend(
                PendingRef(str(item[KEY]["S"]), integer(item, DUE_AT) or 0)
                for item in response.get("Items", [])
            )
            last = response.get("LastEvaluatedKey")
            if not last:
                break
            request["ExclusiveStartKey"] = last
        return refs

    @tracer.capture_method(capture_response=False, capture_error=False)
    def record(self, recordings: Sequence[Recording], now_ms: int) -> dict[str, str]:
        with ThreadPoolExecutor(max_workers=WRITE_WORKERS) as pool:
            refusals = list(pool.map(lambda r: self._record_one(r, now_ms), recordings))
        return {r.email: reason for r, reason in zip(recordings, refusals, strict=True) if reason}

    def _record_one(self, recording: Recording, now_ms: int) -> str | None:
        try:
            if recording.settled:
                try:
                    self._settle(recording)
                except _Conflict:
                    # A merge changed what is wanted during the write: what HubSpot now holds is
                    # recorded, and the contact stays pending for the newer state.
                    if recording.entry is not None:
                        self._confirm(recording.entry, recording.email)
            else:
                # Another flush settled it meanwhile (a conflict): it stays settled.
                with suppress(_Conflict):
                    self._keep_pending(recording)
        except _Refused as refusal:
            self._record_failure(recording.email, refusal.reason, now_ms)
            return refusal.reason
        return None

    def _settle(self, recording: Recording) -> None:
        names: dict[str, str] = {"#v": VERSION}
        values: Item = {":read": number(recording.version)}
        sets: list[str] = []
        removes: list[str] = []
        if recording.entry is not None:
            sets, removes = self._confirmed_clauses(recording.entry, names, values)
        for index, name in enumerate(PENDING_ATTRIBUTES):
            names[f"#q{index}"] = name
            removes.append(f"#q{index}")
        condition = "#v = :read" if recording.version else "attribute_not_exists(#v)"
        self._update(recording.email, _expression(sets, removes), names, values, condition)

    def _confirm(self, entry: LedgerEntry, email: str) -> None:
        names: dict[str, str] = {}
        values: Item = {}
        sets, removes = self._confirmed_clauses(entry, names, values)
        self._update(email, _expression(sets, removes), names, values, "attribute_exists(#k)", {"#k": KEY})

    def _keep_pending(self, recording: Recording) -> None:
        names: dict[str, str] = {"#due": DUE_AT, "#n": ATTEMPTS}
        values: Item = {":due": number(recording.due_ms or 0), ":n": number(recording.attempts)}
        sets = ["#due = :due", "#n = :n"]
        removes: list[str] = []
        if recording.entry is not None:
            more_sets, removes = self._confirmed_clauses(recording.entry, names, values)
            sets.extend(more_sets)
        # Only while it is still pending: a contact another flush settled meanwhile stays settled.
        names["#p"] = PENDING_PARTITION
        self._update(recording.email, _expression(sets, removes), names, values, "attribute_exists(#p)")

    def _confirmed_clauses(
        self, entry: LedgerEntry, names: dict[str, str], values: Item
    ) -> tuple[list[str], list[str]]:
        attributes, absent = confirmed_update(entry, self._retention_seconds)
        sets = []
        for index, (name, value) in enumerate(attributes.items()):
            names[f"#c{index}"] = name
            values[f":c{index}"] = value
            sets.append(f"#c{index} = :c{index}")
        removes = []
        for index, name in enumerate(absent):
            names[f"#o{index}"] = name
            removes.append(f"#o{index}")
        return sets, removes

    def _record_failure(self, email: str, reason: str, now_ms: int) -> None:
        """What can be stored of a contact whose state the ledger refused (an item past 400 KB):
        that it failed, and why, settled, and nothing else of its confirmed state changed."""
        entry = LedgerEntry(email, FAILED, reason=reason, updated_at_ms=now_ms)
        names: dict[str, str] = {}
        values: Item = {}
        attributes, _absent = confirmed_update(entry, self._retention_seconds)
        sets = []
        for index, name in enumerate(("status", "reason", "updatedAt", "issueStatus", "issueAt")):
            names[f"#f{index}"] = name
            values[f":f{index}"] = attributes[name]
            sets.append(f"#f{index} = :f{index}")
        removes = []
        for index, name in enumerate(PENDING_ATTRIBUTES):
            names[f"#q{index}"] = name
            removes.append(f"#q{index}")
        try:
            self._update(email, _expression(sets, removes), names, values, None)
        except (_Refused, _Conflict):
            logger.error("ledger refused even the failure of a contact's state")

    def _update(
        self,
        email: str,
        expression: str,
        names: Mapping[str, str],
        values: Item,
        condition: str | None,
        extra_names: Mapping[str, str] | None = None,
    ) -> None:
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": contact_key(email),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": {**names, **(extra_names or {})},
        }
        if values:
            request["ExpressionAttributeValues"] = values
        if condition:
            request["ConditionExpression"] = condition
        try:
            self._client.update_item(**request)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "ConditionalCheckFailedException":
                raise _Conflict from exc
            if code in _REFUSED:
                raise _Refused(f"the ledger cannot store this contact's state ({code})") from exc
            raise LedgerUnavailable(f"DynamoDB call failed: {code or type(exc).__name__}") from exc
        except BotoCoreError as exc:
            raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc


class DynamoDbFlushLease:
    """One item per flusher lane: who holds it, until when. A holder that crashed lets it expire."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def acquire(self, lane: int, owner: str, until_ms: int, now_ms: int) -> bool:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    KEY: string(flush_lease_key(lane)),
                    "owner": string(owner),
                    "until": number(until_ms),
                    "expiresAt": number(until_ms // 1000 + 86_400),
                },
                ConditionExpression="attribute_not_exists(#k) OR #u < :now OR #o = :me",
                ExpressionAttributeNames={"#k": KEY, "#u": "until", "#o": "owner"},
                ExpressionAttributeValues={":now": number(now_ms), ":me": string(owner)},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
        except BotoCoreError as exc:
            raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
        return True

    def release(self, lane: int, owner: str) -> None:
        try:
            self._client.delete_item(
                TableName=self._table,
                Key={KEY: string(flush_lease_key(lane))},
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":me": string(owner)},
            )
        except (ClientError, BotoCoreError) as exc:
            # Not ours any more, or unreachable: it expires on its own.
            logger.warning("could not release a flush lane", extra={"error": type(exc).__name__})


def _expression(sets: Sequence[str], removes: Sequence[str]) -> str:
    parts = []
    if sets:
        parts.append("SET " + ", ".join(sets))
    if removes:
        parts.append("REMOVE " + ", ".join(removes))
    return " ".join(parts)


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
