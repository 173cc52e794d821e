"""Reconcile's progress in the ledger: one item (``keys.RECONCILE_PROGRESS_KEY``) holding the
scheduled walk's cursor, the lease of the invocation walking it, the walk's counts so far, and the
last reconcile's report (what ``GET /sync/status`` shows as ``lastReconcile``).

A scheduled walk spans invocations (each ends before Lambda's timeout and stores its cursor). Its
counts are added up in ``walk`` from the walk's first invocation to its last, and ``last`` is
that sum at every step, with ``complete`` false until the walk reaches its end: the operator sees
one walk's totals, never just its latest piece. A walk is complete when a run ends with no cursor
and no reason to stop (a run stopped before its first page answers no cursor too: it goes on from
the start). Other sources (``api``, ``cli``, ``journal``) page on their own: each of their reports
is the last reconcile as it is, except a journal poll that checked no contact (most minutes), which
leaves the last one in place.

Every write is conditional on the version read, so reports recorded at once add up, none lost.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..observability import logger
from ..reconcile.model import MAX_EXAMPLES, ReconcileReport
from ..upsert.ledger import LedgerUnavailable
from .conditional import conditionally
from .keys import KEY, RECONCILE_PROGRESS_KEY
from .values import Item, integer, number, string, text

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CURSOR = "cursor"
#: the scheduled walk's counts so far (JSON), while it is under way
WALK = "walk"
#: the last reconcile's report (JSON)
LAST = "last"
VERSION = "version"
WALK_OWNER = "walkOwner"
WALK_UNTIL = "walkUntil"
#: The source whose reports add up over a walk.
SCHEDULE = "schedule"
SOURCES = (SCHEDULE, "api", "cli", "journal")
#: Attempts at recording one report while other records win the race.
RECORD_ATTEMPTS = 5
_KEY: Item = {KEY: string(RECONCILE_PROGRESS_KEY)}


class _Conflict(Exception):
    pass


class DynamoDbReconcileProgress:
    def __init__(self, client: DynamoDBClient, table: str, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._table = table
        self._clock = clock

    def cursor(self) -> str | None:
        """Where the scheduled walk goes on (None: from the start)."""
        return text(self._item(), CURSOR)

    def save_cursor(self, cursor: str | None) -> None:
        if cursor is None:
            self._update("REMOVE #c", {"#c": CURSOR}, {})
        else:
            self._update("SET #c = :c", {"#c": CURSOR}, {":c": string(cursor)})

    def record(self, report: ReconcileReport, source: str) -> None:
        """Store ``report`` as the last reconcile (a scheduled walk's: added to the walk's counts)."""
        if source not in SOURCES:
            raise ValueError(f"unknown reconcile source {source!r}")
        if source == "journal" and report.checked == 0:
            return
        for _attempt in range(RECORD_ATTEMPTS):
            item = self._item()
            try:
                self._record(item, report, source)
            except _Conflict:
                continue
            return
        logger.warning("reconcile report not recorded: other records kept winning", extra={"source": source})

    def last(self) -> dict[str, Any] | None:
        """The last reconcile: its report (``ReconcileReport.as_json``), ``source``, ``at`` (epoch
        ms), ``complete`` (a walk reached its end), ``runs`` (the invocations it took)."""
        raw = text(self._item(), LAST)
        return _loads(raw)

    def claim(self, owner: str, until_ms: int, now_ms: int) -> bool:
        """Take the scheduled walk until ``until_ms``; False while another invocation holds it."""
        try:
            self._update(
                "SET #o = :o, #u = :u",
                {"#o": WALK_OWNER, "#u": WALK_UNTIL},
                {":o": string(owner), ":u": number(until_ms), ":now": number(now_ms)},
                "attribute_not_exists(#u) OR #u < :now OR #o = :o",
            )
        except _Conflict:
            return False
        return True

    def release(self, owner: str) -> None:
        # Not ours any more (it lapsed and another invocation took it): left to its holder.
        with contextlib.suppress(_Conflict):
            self._update(
                "REMOVE #o, #u", {"#o": WALK_OWNER, "#u": WALK_UNTIL}, {":o": string(owner)}, "#o = :o"
            )

    def _record(self, item: Item, report: ReconcileReport, source: str) -> None:
        version = integer(item, VERSION) or 0
        body: dict[str, Any] = {**report.as_json(), "runs": 1}
        complete = not report.more
        names = {"#v": VERSION, "#l": LAST}
        values: Item = {":next": number(version + 1)}
        sets = ["#v = :next", "#l = :l"]
        removes: list[str] = []
        if source == SCHEDULE:
            walk = _loads(text(item, WALK))
            if walk is not None:
                body = accumulate(walk, body)
            names["#w"] = WALK
            if complete:
                removes.append("#w")
            else:
                values[":w"] = string(json.dumps(body))
                sets.append("#w = :w")
        last = {**body, "source": source, "at": int(self._clock() * 1000), "complete": complete}
        values[":l"] = string(json.dumps(last))
        if version:
            values[":v"] = number(version)
            condition = "#v = :v"
        else:
            condition = "attribute_not_exists(#v)"
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        self._update(expression, names, values, condition)

    def _item(self) -> Item:
        try:
            response = self._client.get_item(TableName=self._table, Key=_KEY, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
        return dict(response.get("Item") or {})

    def _update(
        self, expression: str, names: dict[str, str], values: Item, condition: str | None = None
    ) -> None:
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": _KEY,
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
        }
        if values:
            request["ExpressionAttributeValues"] = values
        if condition:
            request["ConditionExpression"] = condition
        if not conditionally(lambda: self._client.update_item(**request)):
            raise _Conflict


def accumulate(walk: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """A walk's counts so far plus one more run's report: counts added, the first run's start, the
    latest run's end, cursor and reason to stop, the first examples."""
    total = dict(body)
    for name in ("checked", "calls", "skipped"):
        total[name] = int(walk.get(name, 0)) + int(body.get(name, 0))
    for name in ("drift", "repairedByKind"):
        before, now = walk.get(name) or {}, body.get(name) or {}
        total[name] = {kind: int(before.get(kind, 0)) + int(now.get(kind, 0)) for kind in {*before, *now}}
    total["repaired"] = sum(total["repairedByKind"].values())
    if "membershipDrift" in walk or "membershipDrift" in body:
        before, now = walk.get("membershipDrift") or {}, body.get("membershipDrift") or {}
        total["membershipDrift"] = {
            **{
                name: int(before.get(name, 0)) + int(now.get(name, 0))
                for name in ("checked", "found", "repaired", "skipped")
            },
            "examples": [*(before.get("examples") or []), *(now.get("examples") or [])][:MAX_EXAMPLES],
        }
    total["examples"] = [*(walk.get("examples") or []), *(body.get("examples") or [])][:MAX_EXAMPLES]
    total["startedAt"] = walk.get("startedAt", body.get("startedAt"))
    total["runs"] = int(walk.get("runs", 1)) + int(body.get("runs", 1))
    return total


def _loads(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    value = json.loads(raw)
    return value if isinstance(value, dict) else None
