"""List buffers (``keys.list_buffer_key``): the membership changes of one audience's HubSpot list
waiting for a drain, in ``shards`` items per list. A record always lands in the shard of its id
(crc32 modulo ``shards``), so its newest change lives in exactly one item and the order of two
changes is decided there, whatever order they arrive in.

One shard item::

    email             "#list#<audience digest>#<shard>"
    audienceId        the audience id (the drain finds its list by it)
    version           bumped by every write; every write is conditional on the version read
    changes           map record id -> "<+|-><rank>"           the newest change, not sent yet
    sent              map record id -> "<+|-><rank>@<sent ms>"  the newest change sent, for a while
    pendingPartition  "lists", and
    dueAt             epoch ms the changes are due: both only while ``changes`` is not empty
                      (the sparse ``pending`` index then lists the shard)
    firstAt           epoch ms the shard last went from nothing waiting to a change waiting,
                      while ``changes`` is not empty: no change waiting arrived before it, so a
                      list is due by age (``oldest`` + ListFlushSeconds) at the latest when every
                      change waiting has waited its ListFlushSeconds. ``dueAt`` may be earlier (a
                      shard holding its share of a chunk is due at once) or later (a backoff).

``+`` adds, ``-`` removes; a rank is its integers joined by ``.``. A record is in at most one of
the two maps. A change newer (``Toggle.precedence``) than the record's kept or sent one replaces it
(an add and a removal of one record are one entry: moving an id from adds to removes is one
write); an older or equal one is dropped. The drain's ``settle`` moves exactly what HubSpot applied
from ``changes`` to ``sent``, and only where the entry is still the one sent.

``sent`` remembers a record's newest sent change ``memory_ms`` (Lambda's longest run, by default):
a stale change computed before a newer one was merged can only arrive within that window, and is
then dropped. Past it, the contacts' own ``listed`` order guards (their conditional recording).

Size: DynamoDB bills a write by the item's size and refuses items past 400 KB. A shard item is
kept within ``max_bytes`` (64 KB by default: at most 64 WCU a write, about 1,000 changes a shard,
4,000 a list, 8 chunks of 500): expired ``sent`` entries go first, then the oldest ``sent`` ones
when dropping them makes room; a change that still does not fit is refused (``BufferFull``, the
record's sent entry kept) and its contact stays pending until a drain makes room: back-pressure
long before the item limit. A shard's size is counted as it changes, not recomputed per change.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..lists.model import Appended, BufferFull, Rank, Toggle
from ..upsert.ledger import LedgerUnavailable
from .conditional import conditionally
from .keys import DUE_AT, KEY, LIST_PENDING_PARTITION, PENDING_INDEX, PENDING_PARTITION, list_buffer_key
from .values import Item, integer, number, string, text

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

AUDIENCE_ID = "audienceId"
VERSION = "version"
CHANGES = "changes"
SENT = "sent"
FIRST_AT = "firstAt"
#: Items a list's changes spread over (more shards: more room, more reads per drain).
SHARDS = 4
#: A shard item's bound (bytes, as DynamoDB counts them).
MAX_BYTES = 64 * 1024
#: How long a sent change keeps older ones out: Lambda's longest run (15 minutes).
MEMORY_MS = 15 * 60 * 1000
#: Conditional writes of one shard that lose the race to other writers before giving up.
WRITE_ATTEMPTS = 8
#: What DynamoDB counts for a number at most, and for a map or list besides its elements.
_NUMBER_BYTES = 21
_MAP_BYTES = 3


@dataclass
class _Shard:
    """A shard item as read, changed in memory, written back conditional on ``version``."""

    audience_id: str
    key: str
    version: int = 0
    due_ms: int | None = None
    first_ms: int | None = None
    changes: dict[str, Toggle] = field(default_factory=dict)
    #: record id -> (the change sent, when)
    sent: dict[str, tuple[Toggle, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, audience_id: str, key: str, item: Mapping[str, Any]) -> _Shard:
        changes = {
            rid: decode(rid, value["S"])[0] for rid, value in item.get(CHANGES, {}).get("M", {}).items()
        }
        sent: dict[str, tuple[Toggle, int]] = {}
        for rid, value in item.get(SENT, {}).get("M", {}).items():
            toggle, at = decode(rid, value["S"])
            sent[rid] = (toggle, at or 0)
        return cls(
            audience_id,
            key,
            integer(item, VERSION) or 0,
            integer(item, DUE_AT),
            integer(item, FIRST_AT),
            changes,
            sent,
        )

    def newest(self, record_id: str) -> Toggle | None:
        if record_id in self.changes:
            return self.changes[record_id]
        kept = self.sent.get(record_id)
        return kept[0] if kept else None

    def size(self) -> int:
        """The item's size as DynamoDB counts it, from above."""
        total = len(KEY) + len(self.key) + len(AUDIENCE_ID) + len(self.audience_id.encode("utf-8"))
        total += len(VERSION) + _NUMBER_BYTES + len(PENDING_PARTITION) + len(LIST_PENDING_PARTITION)
        total += len(DUE_AT) + _NUMBER_BYTES + len(FIRST_AT) + _NUMBER_BYTES
        total += (
            len(CHANGES) + _MAP_BYTES + sum(_entry_bytes(rid, encode(t)) for rid, t in self.changes.items())
        )
        total += len(SENT) + _MAP_BYTES
        return total + sum(_entry_bytes(rid, encode(t, at)) for rid, (t, at) in self.sent.items())

    def forget_expired(self, now_ms: int, memory_ms: int) -> None:
        self.sent = {rid: kept for rid, kept in self.sent.items() if kept[1] + memory_ms > now_ms}

    def make_room(self, size: int, max_bytes: int) -> int:
        """Drop the oldest sent entries until an item of ``size`` bytes fits in ``max_bytes``; the
        size then. When dropping them all would not be enough, none is dropped (they keep older
        changes out) and the size stays past the bound."""
        if size <= max_bytes:
            return size
        entries = sorted(
            ((at, rid, _entry_bytes(rid, encode(toggle, at))) for rid, (toggle, at) in self.sent.items()),
        )
        if size - sum(length for _at, _rid, length in entries) > max_bytes:
            return size
        for _at, rid, length in entries:
            del self.sent[rid]
            size -= length
            if size <= max_bytes:
                break
        return size


def encode(toggle: Toggle, sent_ms: int | None = None) -> str:
    value = ("+" if toggle.member else "-") + ".".join(str(part) for part in toggle.rank)
    return value if sent_ms is None else f"{value}@{sent_ms}"


def decode(record_id: str, value: str) -> tuple[Toggle, int | None]:
    rank_text, _, at = value[1:].partition("@")
    rank: Rank = tuple(int(part) for part in rank_text.split(".")) if rank_text else ()
    return Toggle(record_id, value[0] == "+", rank), int(at) if at else None


def shard_of(record_id: str, shards: int) -> int:
    return zlib.crc32(record_id.encode("utf-8")) % shards


def _entry_bytes(record_id: str, value: str) -> int:
    # A map element: its name, its value and a byte of DynamoDB's own.
    return len(record_id.encode("utf-8")) + len(value.encode("utf-8")) + 1


class DynamoDbListBuffer:
    """``lists.ports.ListBuffer`` in the ledger table. ``flush_ms``: how long the first change of an
    empty shard waits for more (ListFlushSeconds); ``chunk_size``: a shard holding its share of a
    chunk (``chunk_size / shards`` changes) is due at once."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        *,
        flush_ms: int = 30_000,
        chunk_size: int = 500,
        shards: int = SHARDS,
        max_bytes: int = MAX_BYTES,
        memory_ms: int = MEMORY_MS,
    ) -> None:
        self._client = client
        self._table = table
        self._flush_ms = flush_ms
        self._full = max(1, chunk_size // shards)
        self._shards = shards
        self._max_bytes = max_bytes
        self._memory_ms = memory_ms

    def append(self, audience_id: str, toggles: Sequence[Toggle], now_ms: int) -> bool:
        return self.append_changes(audience_id, toggles, now_ms).started

    def append_changes(self, audience_id: str, toggles: Sequence[Toggle], now_ms: int) -> Appended:
        """``append``, also saying whether a shard now holds its share of a chunk (due at once)."""
        newest: dict[str, Toggle] = {}
        for toggle in toggles:
            known = newest.get(toggle.record_id)
            if known is None or toggle.precedence > known.precedence:
                newest[toggle.record_id] = toggle
        by_shard: dict[int, list[Toggle]] = {}
        for toggle in newest.values():
            by_shard.setdefault(shard_of(toggle.record_id, self._shards), []).append(toggle)
        started = due_now = False
        refused: set[str] = set()
        for shard, batch in sorted(by_shard.items()):
            shard_started, shard_refused, full = self._change(
                audience_id, shard, partial(self._absorb, toggles=batch, now_ms=now_ms), now_ms
            )
            started = started or shard_started
            due_now = due_now or full
            refused.update(shard_refused)
        if refused:
            raise BufferFull(audience_id, frozenset(refused))
        return Appended(started, due_now)

    def read(self, audience_id: str) -> list[Toggle]:
        changes = [
            toggle
            for shard in range(self._shards)
            for toggle in self._read(audience_id, list_buffer_key(audience_id, shard)).changes.values()
        ]
        return sorted(changes, key=lambda toggle: (toggle.precedence, toggle.record_id))

    def oldest(self, audience_id: str) -> int | None:
        """When the oldest change waiting for the list arrived at the latest (the earliest
        ``firstAt`` of its shards with changes); None when nothing waits."""
        starts = [
            shard.first_ms
            for shard in (
                self._read(audience_id, list_buffer_key(audience_id, n)) for n in range(self._shards)
            )
            if shard.changes and shard.first_ms is not None
        ]
        return min(starts) if starts else None

    def settle(self, audience_id: str, sent: Sequence[Toggle], now_ms: int) -> None:
        by_shard: dict[int, list[Toggle]] = {}
        for toggle in sent:
            by_shard.setdefault(shard_of(toggle.record_id, self._shards), []).append(toggle)
        for shard, batch in sorted(by_shard.items()):
            self._change(audience_id, shard, partial(self._take_out, sent=batch, now_ms=now_ms), now_ms)

    def postpone(self, audience_id: str, due_ms: int) -> None:
        """Set ``dueAt`` of the shards with changes to send, conditional on their version (a shard
        written meanwhile keeps the due time that write gave it)."""
        for shard in range(self._shards):
            state = self._read(audience_id, list_buffer_key(audience_id, shard))
            if not state.changes or state.due_ms == due_ms:
                continue
            conditionally(partial(self._set_due, state, due_ms))

    def _set_due(self, state: _Shard, due_ms: int) -> None:
        self._client.update_item(
            TableName=self._table,
            Key={KEY: string(state.key)},
            UpdateExpression="SET #d = :d, #v = :next",
            ConditionExpression="#v = :read",
            ExpressionAttributeNames={"#d": DUE_AT, "#v": VERSION},
            ExpressionAttributeValues={
                ":d": number(due_ms),
                ":next": number(state.version + 1),
                ":read": number(state.version),
            },
        )

    def due(self, now_ms: int, limit: int = 100) -> list[str]:
        """The audiences whose buffers are due by ``now_ms``, the longest due first (at most
        ``limit`` shards read)."""
        try:
            response = self._client.query(
                TableName=self._table,
                IndexName=PENDING_INDEX,
                KeyConditionExpression="#p = :p AND #d <= :now",
                ExpressionAttributeNames={"#p": PENDING_PARTITION, "#d": DUE_AT},
                ExpressionAttributeValues={":p": string(LIST_PENDING_PARTITION), ":now": number(now_ms)},
                ScanIndexForward=True,
                Limit=limit,
            )
        except (ClientError, BotoCoreError) as exc:
            raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
        audiences: list[str] = []
        for key in dict.fromkeys(str(item[KEY]["S"]) for item in response.get("Items", [])):
            # The index holds keys alone: the audience id is on the item.
            audience_id = text(self._get(key), AUDIENCE_ID)
            if audience_id is not None and audience_id not in audiences:
                audiences.append(audience_id)
        return audiences

    def _absorb(self, state: _Shard, toggles: Sequence[Toggle], now_ms: int) -> set[str]:
        """Take in the changes newer than what the shard knows; the record ids refused for room."""
        state.forget_expired(now_ms, self._memory_ms)
        size = state.size()
        refused: set[str] = set()
        for toggle in toggles:
            rid = toggle.record_id
            known = state.newest(rid)
            if known is not None and toggle.precedence <= known.precedence:
                continue
            # The record's one entry is replaced: its old change or sent entry makes way.
            old_sent = state.sent.pop(rid, None)
            grow = _entry_bytes(rid, encode(toggle))
            if rid in state.changes:
                grow -= _entry_bytes(rid, encode(state.changes[rid]))
            if old_sent is not None:
                grow -= _entry_bytes(rid, encode(*old_sent))
            size = state.make_room(size + grow, self._max_bytes) - grow
            if size + grow > self._max_bytes:
                refused.add(rid)
                if old_sent is not None:
                    state.sent[rid] = old_sent
                continue
            state.changes[rid] = toggle
            size += grow
        return refused

    def _take_out(self, state: _Shard, sent: Sequence[Toggle], now_ms: int) -> set[str]:
        state.forget_expired(now_ms, self._memory_ms)
        for toggle in sent:
            if state.changes.get(toggle.record_id) == toggle:
                del state.changes[toggle.record_id]
                state.sent[toggle.record_id] = (toggle, now_ms)
        # A sent entry is a few bytes longer than the change it replaces: room is made from the
        # oldest sent ones, and the changes left always fit (they did before).
        state.make_room(state.size(), self._max_bytes)
        return set()

    def _change(
        self, audience_id: str, shard: int, change: Callable[[_Shard], set[str]], now_ms: int
    ) -> tuple[bool, set[str], bool]:
        """Read the shard, change it, write it back if the version read is still its own; again on
        a race. (whether the shard had nothing to send before, the record ids refused, whether it
        holds its share of a chunk)"""
        key = list_buffer_key(audience_id, shard)
        for _attempt in range(WRITE_ATTEMPTS):
            state = self._read(audience_id, key)
            before = _Shard(
                audience_id,
                key,
                state.version,
                state.due_ms,
                state.first_ms,
                dict(state.changes),
                dict(state.sent),
            )
            refused = change(state)
            full = len(state.changes) >= self._full
            if state.changes == before.changes and state.sent == before.sent:
                return False, refused, full
            if self._write(state, before, now_ms):
                return not before.changes and bool(state.changes), refused, full
        raise LedgerUnavailable(f"a list buffer kept changing during {WRITE_ATTEMPTS} writes")

    def _write(self, state: _Shard, before: _Shard, now_ms: int) -> bool:
        names = {
            "#a": AUDIENCE_ID,
            "#v": VERSION,
            "#c": CHANGES,
            "#s": SENT,
            "#p": PENDING_PARTITION,
            "#d": DUE_AT,
            "#f": FIRST_AT,
        }
        values: Item = {":a": string(state.audience_id), ":next": number(state.version + 1)}
        sets = ["#a = :a", "#v = :next"]
        removes: list[str] = []
        for name, entries in (
            ("#c", {rid: encode(toggle) for rid, toggle in state.changes.items()}),
            ("#s", {rid: encode(toggle, at) for rid, (toggle, at) in state.sent.items()}),
        ):
            if entries:
                values[f":{name[1]}"] = {"M": {rid: string(value) for rid, value in entries.items()}}
                sets.append(f"{name} = :{name[1]}")
            else:
                removes.append(name)
        if state.changes:
            first = self._first(before, now_ms)
            due = state.due_ms if before.changes and state.due_ms is not None else first + self._flush_ms
            if len(state.changes) >= self._full:
                due = min(due, now_ms)
            values[":p"] = string(LIST_PENDING_PARTITION)
            values[":d"] = number(due)
            values[":f"] = number(first)
            sets.extend(["#p = :p", "#d = :d", "#f = :f"])
        else:
            removes.extend(["#p", "#d", "#f"])
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        if state.version:
            values[":read"] = number(state.version)
            condition = "#v = :read"
        else:
            condition = "attribute_not_exists(#v)"
        return conditionally(
            lambda: self._client.update_item(
                TableName=self._table,
                Key={KEY: string(state.key)},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        )

    def _first(self, before: _Shard, now_ms: int) -> int:
        """The shard's ``firstAt`` after a write: kept while changes wait, ``now_ms`` when the
        first one arrives. A shard written without it counts from its due time's start."""
        if not before.changes:
            return now_ms
        if before.first_ms is not None:
            return before.first_ms
        return min(now_ms, before.due_ms - self._flush_ms) if before.due_ms is not None else now_ms

    def _read(self, audience_id: str, key: str) -> _Shard:
        return _Shard.of(audience_id, key, self._get(key))

    def _get(self, key: str) -> Item:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={KEY: string(key)}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
        return dict(response.get("Item") or {})
