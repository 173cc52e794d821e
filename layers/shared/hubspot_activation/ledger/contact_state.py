"""Contacts' desired and confirmed states in DynamoDB (``contact_item``), the pending markers
(``keys``: the pending index lists markers of contacts, not contacts), and the flusher lanes' leases.

Every write that can race another is conditional: a merge writes the desired state only if the
version it read is still the item's (else it reads again and merges again), and a flush settles a
contact (takes it out of the pending index) only if no merge moved the version on during the
write; its confirmed state is stored either way. The merge's and the flush's writes set disjoint
attributes, so neither ever undoes the other.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..observability import logger, tracer
from ..upsert.ledger import FAILED, LedgerEntry, LedgerUnavailable
from ..upsert.plan import PendingContact, merge_desired
from ..upsert.state import ContactState, MergeResult, PendingPage, PendingRef, Recording
from .conditional import conditionally
from .contact_item import (
    ATTEMPTS,
    PENDING_ATTRIBUTES,
    PENDING_SINCE,
    RETRY_AT,
    VERSION,
    confirmed_update,
    contact_key,
    desired_update,
    marker_from_item,
    pending_marker_item,
    state_from_item,
)
from .contact_ledger import DynamoDbLedger, ItemRefused
from .keys import (
    DUE_AT,
    KEY,
    PENDING_INDEX,
    PENDING_PARTITION,
    flush_lease_key,
    pending_marker_key,
    pending_partition,
    pending_partition_value,
)
from .lease_item import acquire_lease, release_lease
from .values import Item, number, string

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: A merge that keeps losing the race for a contact's item (another merge of the same contact
#: writing at the same moment) gives up after this many reads; its message goes back to the queue.
MAX_MERGE_ATTEMPTS = 5
#: Conditional writes are one request per item: this many at once.
WRITE_WORKERS = 8
#: Contacts one pending marker lists at most: 1,000 addresses of at most 254 bytes keep a marker
#: well within DynamoDB's 400 KB item (a batch of ten full messages can carry tens of thousands).
MARKER_CONTACTS = 1000
_REFUSED = frozenset({"ValidationException", "ItemCollectionSizeLimitExceededException"})


class _Conflict(Exception):
    """The item's version moved on since it was read."""


class DynamoDbContactStates(DynamoDbLedger):
    """The contact items' desired and confirmed states (``upsert.state.ContactStates``), on top of
    the ledger's entries and held markers. ``lanes`` is the number of flush lanes: a marker lists
    contacts of one lane.

    A flusher's instance remembers the markers its last ``pending`` read and which of their
    contacts are handled since (settled, not pending when read, or listed by a newer marker for a
    backoff); a marker whose every contact is handled is deleted after the recordings."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        retention_days: int = 400,
        max_attempts: int = 5,
        lanes: int = 1,
    ) -> None:
        super().__init__(client, table, retention_days, max_attempts)
        self._lanes = lanes
        self._lock = threading.Lock()
        #: marker key -> its contacts not handled yet
        self._open: dict[str, set[str]] = {}

    @tracer.capture_method(capture_response=False, capture_error=False)
    def read(
        self, emails: Sequence[str], now_ms: int | None = None, consistent: bool = True
    ) -> dict[str, ContactState]:
        """Given ``now_ms`` (a flusher's read), a contact in a backoff that has not ended counts as
        handled for the markers read: its backoff has a marker of its own."""
        found: dict[str, ContactState] = {}
        unique = list(dict.fromkeys(emails))
        for start in range(0, len(unique), 100):
            keys: list[Any] = [contact_key(email) for email in unique[start : start + 100]]
            request = {self._table: {"Keys": keys, "ConsistentRead": consistent}}
            for response in self._until_processed(self._client.batch_get_item, request, "UnprocessedKeys"):
                for item in response.get("Responses", {}).get(self._table, []):
                    state = state_from_item(item)
                    found[state.email] = state
        self._handled(email for email in unique if not _open_for(found.get(email), now_ms))
        self._sweep()
        return found

    @tracer.capture_method(capture_response=False, capture_error=False)
    def merge(self, contacts: Sequence[PendingContact], now_ms: int) -> MergeResult:
        result = MergeResult()
        # Eventually consistent, at half the price: a stale item fails the conditional write, and
        # that contact alone is read again, strongly consistent, and merged again.
        states = self.read([contact.email for contact in contacts], consistent=False)
        with ThreadPoolExecutor(max_workers=WRITE_WORKERS) as pool:
            outcomes = list(pool.map(lambda c: self._merge_one(c, states.get(c.email), now_ms), contacts))
        pending: list[str] = []
        for contact, (changed, newly_pending, refusal) in zip(contacts, outcomes, strict=True):
            if refusal is not None:
                result.refused[contact.email] = refusal
                continue
            if changed:
                result.changed.append(contact.email)
            if newly_pending:
                result.newly_pending.append(contact.email)
            state = states.get(contact.email)
            if state is not None and state.due_ms is not None:
                continue  # in a backoff: its marker is due when the backoff ends
            if changed or (state is not None and state.pending):
                # A contact pending already gets listed again too: a merge that crashed before its
                # marker was stored left it pending and listed nowhere.
                pending.append(contact.email)
        self._mark_pending(pending, now_ms, now_ms)
        return result

    def _mark_pending(self, emails: Sequence[str], due_ms: int, now_ms: int) -> None:
        """One marker per lane for these contacts (one per ``MARKER_CONTACTS`` of them), due at
        ``due_ms``."""
        by_lane: dict[int, list[str]] = defaultdict(list)
        for email in dict.fromkeys(emails):
            by_lane[pending_partition(email) % self._lanes].append(email)
        groups = [
            (lane, members[start : start + MARKER_CONTACTS])
            for lane, members in by_lane.items()
            for start in range(0, len(members), MARKER_CONTACTS)
        ]
        expires = now_ms // 1000 + self._retention_seconds
        # A lane's markers go to the partition of its number: a run reads one partition.
        markers = [
            pending_marker_item(pending_marker_key(lane, group, due_ms), lane, group, due_ms, expires)
            for lane, group in groups
        ]
        for start in range(0, len(markers), 25):
            try:
                self._write(markers[start : start + 25])
            except ItemRefused as refusal:  # a marker of MARKER_CONTACTS addresses fits an item
                raise LedgerUnavailable(refusal.reason) from refusal

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
            if state is not None and state.pending:
                return True, False, None
            return True, True, None
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
    def pending(self, partitions: Sequence[int], due_by_ms: int, limit: int) -> PendingPage:
        """The contacts of the markers due, oldest marker first, whole markers until ``limit``."""
        found = self._each_partition(partitions, due_by_ms, limit)
        markers = [marker for markers_read, _exhausted in found for marker in markers_read]
        complete = all(exhausted for _markers_read, exhausted in found)
        markers.sort(key=lambda marker: marker[1])
        refs: dict[str, PendingRef] = {}
        opened: dict[str, set[str]] = {}
        with self._lock:
            for key, due_ms, emails in markers:
                if len(refs) >= limit:
                    complete = False
                    break
                # A marker read before keeps only its contacts not handled since: a round is
                # complete when fewer than ``limit`` contacts are open, however long the markers.
                still_open = self._open[key] if key in self._open else set(emails)
                if not still_open:
                    continue
                opened[key] = still_open
                for email in sorted(still_open):
                    refs.setdefault(email, PendingRef(email, due_ms))
            # Markers read and found handled in full are kept until they are deleted.
            self._open = {**{k: v for k, v in self._open.items() if not v}, **opened}
        return PendingPage(list(refs.values()), complete)

    def next_due(self, partitions: Sequence[int]) -> int | None:
        earliest = [
            marker[1] for found, _exhausted in self._each_partition(partitions, None, 1) for marker in found
        ]
        return min(earliest, default=None)

    def _each_partition(
        self, partitions: Sequence[int], due_by_ms: int | None, limit: int
    ) -> list[tuple[list[tuple[str, int, list[str]]], bool]]:
        """The partitions' markers, read at once (a query each), and whether each read them all."""
        if len(partitions) == 1:
            return [self._query_markers(partitions[0], due_by_ms, limit)]
        with ThreadPoolExecutor(max_workers=min(len(partitions), WRITE_WORKERS)) as pool:
            return list(pool.map(lambda p: self._query_markers(p, due_by_ms, limit), partitions))

    def _query_markers(
        self, partition: int, due_by_ms: int | None, limit: int
    ) -> tuple[list[tuple[str, int, list[str]]], bool]:
        """A partition's markers due, oldest first, until they list ``limit`` contacts still open
        (as far as this reader knows), and whether there are no more."""
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
        markers: list[tuple[str, int, list[str]]] = []
        contacts = 0
        while True:
            try:
                response = self._client.query(**request)
            except (ClientError, BotoCoreError) as exc:
                raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
            for item in response.get("Items", []):
                marker = marker_from_item(item)
                markers.append(marker)
                with self._lock:
                    known = self._open.get(marker[0])
                contacts += len(known) if known is not None else len(marker[2])
            last = response.get("LastEvaluatedKey")
            if not last:
                return markers, True
            if contacts >= limit:
                return markers, False
            request["ExclusiveStartKey"] = last

    def _handled(self, emails: Any) -> None:
        """Note these contacts as handled in the markers read."""
        with self._lock:
            handled = set(emails)
            for open_emails in self._open.values():
                open_emails -= handled

    def _sweep(self) -> None:
        """Delete the markers read whose every contact is handled."""
        with self._lock:
            done = [key for key, open_emails in self._open.items() if not open_emails]
        if done:
            self._delete_markers(done)

    def _delete_markers(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._open.pop(key, None)
        for start in range(0, len(keys), 25):
            deletes: list[Any] = [
                {"DeleteRequest": {"Key": {KEY: string(key)}}} for key in keys[start : start + 25]
            ]
            try:
                self._send(deletes)
            except ItemRefused as refusal:
                logger.error("ledger refused to delete pending markers", extra={"error": refusal.reason})

    @tracer.capture_method(capture_response=False, capture_error=False)
    def record(self, recordings: Sequence[Recording], now_ms: int) -> dict[str, str]:
        """Then the contacts kept pending for a backoff get a marker due when it ends, and the
        markers whose every contact is handled are deleted."""
        with ThreadPoolExecutor(max_workers=WRITE_WORKERS) as pool:
            outcomes = list(pool.map(lambda r: self._record_one(r, now_ms), recordings))
        later: dict[int, list[str]] = defaultdict(list)
        for recording, (handled, _refusal) in zip(recordings, outcomes, strict=True):
            if handled and not recording.settled and recording.due_ms is not None:
                later[recording.due_ms].append(recording.email)
        for due_ms, emails in later.items():
            self._mark_pending(emails, due_ms, now_ms)
        self._handled(r.email for r, (handled, _refusal) in zip(recordings, outcomes, strict=True) if handled)
        self._sweep()
        return {r.email: reason for r, (_h, reason) in zip(recordings, outcomes, strict=True) if reason}

    def _record_one(self, recording: Recording, now_ms: int) -> tuple[bool, str | None]:
        """(whether the contact is handled: settled, failed or kept pending with its own marker,
        the reason the store refused it)."""
        try:
            if recording.settled:
                try:
                    self._settle(recording)
                except _Conflict:
                    # A merge changed what is wanted during the write: what HubSpot now holds is
                    # recorded, and the contact stays pending for the newer state.
                    if recording.entry is not None:
                        self._confirm(recording.entry, recording.email)
                    return False, None
            else:
                try:
                    self._keep_pending(recording)
                except _Conflict:
                    return True, None  # settled meanwhile: nothing to keep pending
        except _Refused as refusal:
            self._record_failure(recording.email, refusal.reason, now_ms)
            return True, refusal.reason
        return True, None

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
        names: dict[str, str] = {"#due": RETRY_AT, "#n": ATTEMPTS}
        values: Item = {":due": number(recording.due_ms or 0), ":n": number(recording.attempts)}
        sets = ["#due = :due", "#n = :n"]
        removes: list[str] = []
        if recording.entry is not None:
            more_sets, removes = self._confirmed_clauses(recording.entry, names, values)
            sets.extend(more_sets)
        # Only while it is still pending: a contact another flush settled meanwhile stays settled.
        names["#p"] = PENDING_SINCE
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
        return acquire_lease(self._client, self._table, flush_lease_key(lane), owner, until_ms, now_ms)

    def ask_again(self, lane: int, now_ms: int) -> bool:
        return conditionally(
            lambda: self._client.update_item(
                TableName=self._table,
                Key={KEY: string(flush_lease_key(lane))},
                UpdateExpression="SET #a = :t",
                ConditionExpression="attribute_exists(#k) AND #u >= :now",
                ExpressionAttributeNames={"#k": KEY, "#u": "until", "#a": "again"},
                ExpressionAttributeValues={":now": number(now_ms), ":t": {"BOOL": True}},
            )
        )

    def release(self, lane: int, owner: str) -> bool:
        released = release_lease(self._client, self._table, flush_lease_key(lane), owner)
        if released is None:
            # Not ours any more, or unreachable: it expires on its own. Run again, in case a
            # wake-up asked for it: a run too many finds nothing and ends.
            logger.warning("could not release a flush lane")
            return True
        return bool(released.get("again", {}).get("BOOL"))


def _open_for(state: ContactState | None, now_ms: int | None) -> bool:
    """Whether a contact a marker lists still waits on that marker."""
    if state is None or not state.pending:
        return False
    return now_ms is None or state.due_ms is None or state.due_ms <= now_ms


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
