"""The tracked contacts as reconcile walks, reads and repairs them (``reconcile.ports.TrackedContacts``).

A repair is one conditional update of the contact's item: what HubSpot was seen to hold (``SEEN``
attributes, reconcile's own), the confirmed state it found (the flusher's attributes, as the flusher
writes them), and, for a contact HubSpot must be written again, the pending attribute and a marker.
It is conditional on the version read and on the contact not being pending, so it never overwrites a
merge's newer state or a flush under way; a contact that moved on is checked by the next walk.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..reconcile.model import InvalidCursor, Repair, Seen
from ..upsert.ledger import LedgerUnavailable
from ..upsert.state import ContactState
from .contact_item import PENDING_SINCE, VERSION, state_from_item
from .contact_state import WRITE_WORKERS, DynamoDbContactStates, _Conflict, _expression, _Refused
from .keys import KEY, MAX_KEY_BYTES, SEEN, SEEN_AT, SEEN_DRIFT, SEEN_ID
from .values import Item, number, string


class DynamoDbTrackedContacts(DynamoDbContactStates):
    def page(self, cursor: str | None, limit: int) -> tuple[list[ContactState], str | None]:
        """A scan of about ``limit`` items (contacts are keyed by their email, the only keys with
        ``@``); the cursor is the last key read, encoded."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "Limit": limit,
            "FilterExpression": "contains(#k, :at)",
            "ExpressionAttributeNames": {"#k": KEY},
            "ExpressionAttributeValues": {":at": string("@")},
            # A stale image of a contact a flush just settled (a flush's record does not move the
            # version) would pass a repair's condition and overwrite what the flush recorded.
            "ConsistentRead": True,
        }
        if cursor is not None:
            request["ExclusiveStartKey"] = {KEY: string(decode_cursor(cursor))}
        try:
            response = self._client.scan(**request)
        except (ClientError, BotoCoreError) as exc:
            raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
        states = [state_from_item(item) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return states, encode_cursor(str(last[KEY]["S"])) if last else None

    def store(self, repairs: Sequence[Repair], now_ms: int) -> set[str]:
        # The markers first: a contact made pending that no marker lists would wait for a source
        # update; a marker listing a contact whose repair did not go through is passed over by
        # the flusher (it reads the contact's state first).
        pending = [repair.email for repair in repairs if repair.pending]
        if pending:
            self._mark_pending(pending, now_ms, now_ms)
        with ThreadPoolExecutor(max_workers=WRITE_WORKERS) as pool:
            outcomes = list(pool.map(lambda repair: self._store_one(repair, now_ms), repairs))
        return {repair.email for repair, ok in zip(repairs, outcomes, strict=True) if ok}

    def _store_one(self, repair: Repair, now_ms: int) -> bool:
        names: dict[str, str] = {"#v": VERSION, "#p": PENDING_SINCE}
        values: Item = {}
        sets, removes = _seen_clauses(repair.seen, names, values)
        if repair.entry is not None:
            more_sets, more_removes = self._confirmed_clauses(repair.entry, names, values)
            sets.extend(more_sets)
            removes.extend(more_removes)
        if repair.pending:
            values[":now"] = number(now_ms)
            sets.append("#p = :now")
        if repair.version:
            values[":read"] = number(repair.version)
            condition = "#v = :read AND attribute_not_exists(#p)"
        else:
            condition = "attribute_not_exists(#v) AND attribute_not_exists(#p) AND attribute_exists(#k)"
            names["#k"] = KEY
        try:
            self._update(repair.email, _expression(sets, removes), names, values, condition)
        except _Conflict:
            return False
        except _Refused:
            return False
        return True


def _seen_clauses(seen: Seen, names: dict[str, str], values: Item) -> tuple[list[str], list[str]]:
    names.update({"#sn": SEEN, "#sa": SEEN_AT, "#si": SEEN_ID, "#sd": SEEN_DRIFT})
    values[":sn"] = {
        "M": {
            name: ({"NULL": True} if value is None else string(value))
            for name, value in seen.properties.items()
        }
    }
    values[":sa"] = number(seen.at_ms)
    sets = ["#sn = :sn", "#sa = :sa"]
    removes = []
    if seen.hubspot_id is not None:
        values[":si"] = string(seen.hubspot_id)
        sets.append("#si = :si")
    else:
        removes.append("#si")
    if seen.drift is not None:
        values[":sd"] = string(seen.drift.value)
        sets.append("#sd = :sd")
    else:
        removes.append("#sd")
    return sets, removes


#: Marks a cursor as one this store gave out. The key after it may be any item's (a page's scan
#: can end on a marker or a lease, not only on a contact).
_CURSOR_TAG = "w1."


def encode_cursor(key: str) -> str:
    return _CURSOR_TAG + base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii")


def decode_cursor(cursor: str) -> str:
    refused = InvalidCursor("cursor is not one a reconcile answered with")
    if not cursor.startswith(_CURSOR_TAG):
        raise refused
    try:
        key = base64.urlsafe_b64decode(cursor[len(_CURSOR_TAG) :].encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise refused from None
    if not key or len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise refused
    return key
