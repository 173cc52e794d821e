"""A contact's sync state as one item of the ledger table, keyed by its normalized email.

The item holds two states, each written by one side and never overwritten by the other: the
*confirmed* one (``LedgerEntry``: what HubSpot was last confirmed to hold, the outcome, what is
kept for a replay), written by the flusher attribute by attribute (``confirmed_update``); the
*desired* one (``desired``, with its ``version``) and the pending attributes, written by the merge
(``desired_update``). A failed or held contact carries the ``issues`` index's attributes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..model import AudienceChange, AudienceStatus
from ..upsert.ledger import (
    DELETED,
    FAILED,
    SYNCED,
    UNORDERED,
    AppliedAudience,
    LedgerEntry,
    ListedAudience,
    Order,
    PendingAttribute,
    PendingAudience,
)
from ..upsert.plan import OrderedChange, PendingContact
from ..upsert.state import ContactState
from .issue_item import issue_attributes
from .keys import (
    DUE_AT,
    EXPIRES_AT,
    ISSUE_AT,
    ISSUE_DELETED,
    ISSUE_FAILED,
    ISSUE_HELD,
    ISSUE_STATUS,
    KEY,
    PENDING_EMAILS,
    PENDING_PARTITION,
    pending_partition_value,
)
from .values import Item, integer, number, string

DESIRED = "desired"
#: the audiences' statuses handed to their lists (``LedgerEntry.listed``)
LISTED = "listed"
VERSION = "version"
PENDING_SINCE = "pendingSince"
#: When a contact in backoff may be written again (epoch ms).
RETRY_AT = "retryAt"
ATTEMPTS = "attempts"
REPLAY = "replay"
#: What the flusher's recording of a settled contact removes: what only a pending contact carries.
PENDING_ATTRIBUTES = (PENDING_SINCE, RETRY_AT, ATTEMPTS, REPLAY)
#: The confirmed state's attributes that only some entries carry: a recording removes those its
#: entry leaves out.
_OPTIONAL_CONFIRMED = (
    "hubspotId",
    "reason",
    "rejected",
    "unconfirmedAt",
    "warnings",
    "pendingAudiences",
    "pendingAttributes",
    "hubspotState",
    "held",
    "refusedValues",
    LISTED,
    ISSUE_STATUS,
    ISSUE_AT,
)


def contact_key(email: str) -> Item:
    return {KEY: string(email)}


def contact_item(entry: LedgerEntry, retention_seconds: int) -> Item:
    """The item expires ``retention_seconds`` after the entry's last change."""
    item: Item = {
        "email": {"S": entry.email},
        "status": {"S": entry.status},
        "updatedAt": {"N": str(entry.updated_at_ms)},
        "expiresAt": {"N": str(entry.updated_at_ms // 1000 + retention_seconds)},
        "audiences": {
            "M": {
                audience_id: _audience_value(applied.status, applied.timestamp_ms, applied.order)
                for audience_id, applied in entry.audiences.items()
            }
        },
        "written": {"M": {name: {"S": value} for name, value in entry.written.items()}},
        "attributeOrder": {"M": {name: _order_value(o) for name, o in entry.attribute_order.items()}},
    }
    optional: dict[str, Any] = {
        "hubspotId": {"S": entry.hubspot_id} if entry.hubspot_id else None,
        "reason": {"S": entry.reason[:2000]} if entry.reason else None,
        "rejected": {"S": entry.rejected} if entry.rejected else None,
        "unconfirmedAt": {"N": str(entry.unconfirmed_at_ms)} if entry.unconfirmed_at_ms else None,
        "hubspotState": {"S": entry.hubspot_state} if entry.hubspot_state else None,
        "warnings": {"M": {name: {"S": text[:500]} for name, text in entry.warnings.items()}}
        if entry.warnings
        else None,
        "held": _strings_value(entry.held),
        "refusedValues": _strings_value(entry.refused_values),
        LISTED: listed_value(entry.listed),
        "pendingAudiences": _pending_audiences_value(entry.pending_audiences),
        "pendingAttributes": {
            "M": {
                name: {"M": {"value": {"S": json.dumps(p.value)}, "order": _order_value(p.order)}}
                for name, p in entry.pending_attributes.items()
            }
        }
        if entry.pending_attributes
        else None,
    }
    item.update({name: value for name, value in optional.items() if value is not None})
    if entry.status == FAILED:
        item.update(issue_attributes(ISSUE_FAILED, entry.updated_at_ms))
    elif entry.status == DELETED:
        item.update(issue_attributes(ISSUE_DELETED, entry.updated_at_ms))
    elif entry.holds_changes:
        item.update(issue_attributes(ISSUE_HELD, entry.updated_at_ms))
    return item


def _strings_value(values: Mapping[str, str]) -> dict[str, Any] | None:
    return {"M": {name: {"S": value} for name, value in values.items()}} if values else None


def _order_value(order: Order) -> dict[str, Any]:
    return {"L": [{"N": str(part)} for part in order]}


def _order(value: Mapping[str, Any] | None) -> Order:
    parts = [int(Decimal(part["N"])) for part in (value or {}).get("L", [])]
    return (parts[0], parts[1]) if len(parts) == 2 else UNORDERED


def listed_value(listed: Mapping[str, ListedAudience]) -> dict[str, Any] | None:
    """``LISTED``: audience id -> {status, ts, order, gen}."""
    if not listed:
        return None
    return {
        "M": {
            audience_id: {
                "M": {
                    "status": {"S": handed.status},
                    "ts": {"N": str(handed.timestamp_ms)},
                    "order": _order_value(handed.order),
                    "gen": {"N": str(handed.generation)},
                }
            }
            for audience_id, handed in listed.items()
        }
    }


def listed_from_item(item: Mapping[str, Any]) -> dict[str, ListedAudience]:
    return {
        audience_id: ListedAudience(
            str(value["M"]["status"]["S"]),
            int(Decimal(value["M"]["ts"]["N"])),
            _order(value["M"].get("order")),
            int(Decimal(value["M"]["gen"]["N"])),
        )
        for audience_id, value in _map(item, LISTED).items()
    }


def _pending_audiences_value(pending: Mapping[str, PendingAudience]) -> dict[str, Any] | None:
    if not pending:
        return None
    return {
        "M": {
            audience_id: _audience_value(change.status, change.timestamp_ms, change.order, change.name)
            for audience_id, change in pending.items()
        }
    }


def _audience_value(status: str, timestamp_ms: int, order: Order, name: str | None = None) -> dict[str, Any]:
    fields = {"status": {"S": status}, "ts": {"N": str(timestamp_ms)}, "order": _order_value(order)}
    if name:
        fields["name"] = {"S": name}
    return {"M": fields}


def _map(item: Mapping[str, Any], name: str) -> dict[str, Any]:
    return dict((item.get(name) or {}).get("M") or {})


def entry_from_item(item: Mapping[str, Any]) -> LedgerEntry:
    """A contact's confirmed state (as DynamoDB's low-level API returns the item) as a LedgerEntry."""

    def text(name: str) -> str | None:
        value = item.get(name)
        return str(value["S"]) if value else None

    audiences = {
        audience_id: AppliedAudience(
            str(value["M"]["status"]["S"]),
            int(Decimal(value["M"]["ts"]["N"])),
            _order(value["M"].get("order")),
        )
        for audience_id, value in _map(item, "audiences").items()
    }
    pending_audiences = {
        audience_id: PendingAudience(
            str(value["M"]["status"]["S"]),
            int(Decimal(value["M"]["ts"]["N"])),
            _order(value["M"].get("order")),
            str(value["M"]["name"]["S"]) if "name" in value["M"] else None,
        )
        for audience_id, value in _map(item, "pendingAudiences").items()
    }
    pending_attributes = {
        name: PendingAttribute(json.loads(value["M"]["value"]["S"]), _order(value["M"].get("order")))
        for name, value in _map(item, "pendingAttributes").items()
    }
    unconfirmed = item.get("unconfirmedAt")
    return LedgerEntry(
        email=str(item["email"]["S"]),
        status=text("status") or SYNCED,
        hubspot_id=text("hubspotId"),
        audiences=audiences,
        written={name: str(value["S"]) for name, value in _map(item, "written").items()},
        attribute_order={name: _order(value) for name, value in _map(item, "attributeOrder").items()},
        pending_audiences=pending_audiences,
        pending_attributes=pending_attributes,
        reason=text("reason"),
        warnings={name: str(value["S"]) for name, value in _map(item, "warnings").items()},
        updated_at_ms=int(Decimal(item.get("updatedAt", {}).get("N", "0"))),
        rejected=text("rejected"),
        unconfirmed_at_ms=int(Decimal(unconfirmed["N"])) if unconfirmed else None,
        hubspot_state=text("hubspotState"),
        held={name: str(value["S"]) for name, value in _map(item, "held").items()},
        refused_values={name: str(value["S"]) for name, value in _map(item, "refusedValues").items()},
        listed=listed_from_item(item),
    )


def confirmed_update(entry: LedgerEntry, retention_seconds: int) -> tuple[Item, list[str]]:
    """The confirmed state's attributes to set, and those to remove (what this entry leaves out),
    leaving the desired state and the pending index's attributes as they are."""
    item = contact_item(entry, retention_seconds)
    item.pop(KEY)
    return item, [name for name in _OPTIONAL_CONFIRMED if name not in item]


def _desired_audience_value(ordered: OrderedChange) -> dict[str, Any]:
    change = ordered.change
    value = _audience_value(change.status.value, change.timestamp_ms, ordered.order, change.name)
    if ordered.name_rank is not None:
        # The name came from an older change: its rank decides against a name merged later.
        value["M"]["nameTs"] = {"N": str(ordered.name_rank[0])}
        value["M"]["nameOrder"] = _order_value(ordered.name_rank[1])
    return value


def desired_value(desired: PendingContact) -> dict[str, Any]:
    return {
        "M": {
            "audiences": {
                "M": {
                    audience_id: _desired_audience_value(ordered)
                    for audience_id, ordered in desired.audiences.items()
                }
            },
            "attributes": {
                "M": {
                    name: {"M": {"value": {"S": json.dumps(value)}, "order": _order_value(order)}}
                    for name, (value, order) in desired.attributes.items()
                }
            },
        }
    }


def desired_update(
    desired: PendingContact, version: int, now_ms: int, retention_seconds: int, replay: bool
) -> tuple[str, dict[str, str], Item]:
    """The merge's write: the new desired state and version, the item's expiry, and when the
    contact became pending (kept as it is when the contact is pending already). Returns the update
    expression, its names and its values."""
    names = {"#d": DESIRED, "#v": VERSION, "#e": EXPIRES_AT, "#s": PENDING_SINCE}
    values: Item = {
        ":d": desired_value(desired),
        ":v": number(version),
        ":e": number(now_ms // 1000 + retention_seconds),
        ":now": number(now_ms),
    }
    expression = "SET #d = :d, #v = :v, #e = :e, #s = if_not_exists(#s, :now)"
    if replay:
        names["#r"] = REPLAY
        values[":r"] = {"BOOL": True}
        expression += ", #r = :r"
    return expression, names, values


def _desired_from_item(email: str, item: Mapping[str, Any]) -> PendingContact | None:
    value = item.get(DESIRED)
    if not value:
        return None
    fields = value.get("M") or {}
    desired = PendingContact(email, "")
    for audience_id, change in ((fields.get("audiences") or {}).get("M") or {}).items():
        parts = change["M"]
        desired.audiences[audience_id] = OrderedChange(
            AudienceChange(
                audience_id,
                AudienceStatus(str(parts["status"]["S"])),
                int(Decimal(parts["ts"]["N"])),
                str(parts["name"]["S"]) if "name" in parts else None,
            ),
            _order(parts.get("order")),
            (int(Decimal(parts["nameTs"]["N"])), _order(parts.get("nameOrder")))
            if "nameTs" in parts
            else None,
        )
    for name, attribute in ((fields.get("attributes") or {}).get("M") or {}).items():
        parts = attribute["M"]
        desired.attributes[name] = (json.loads(parts["value"]["S"]), _order(parts.get("order")))
    return desired


def state_from_item(item: Mapping[str, Any]) -> ContactState:
    """A contact's item as its ``ContactState``: an item the flusher never recorded (the merge
    created it) has no confirmed state yet."""
    email = str(item[KEY]["S"])
    replay = item.get(REPLAY)
    return ContactState(
        email=email,
        confirmed=entry_from_item(item) if "status" in item else None,
        desired=_desired_from_item(email, item),
        version=integer(item, VERSION) or 0,
        pending_since_ms=integer(item, PENDING_SINCE),
        due_ms=integer(item, RETRY_AT),
        attempts=integer(item, ATTEMPTS) or 0,
        replay=bool(replay and replay.get("BOOL")),
    )


def pending_marker_item(key: str, partition: int, emails: list[str], due_ms: int, expires_at: int) -> Item:
    """A pending marker (see ``keys``): the contacts, their partition and when they are due."""
    return {
        KEY: string(key),
        PENDING_PARTITION: string(pending_partition_value(partition)),
        DUE_AT: number(due_ms),
        PENDING_EMAILS: {"SS": sorted(set(emails))},
        EXPIRES_AT: number(expires_at),
    }


def marker_from_item(item: Mapping[str, Any]) -> tuple[str, int, list[str]]:
    """A marker as its index returns it: (key, due, contacts)."""
    return (
        str(item[KEY]["S"]),
        integer(item, DUE_AT) or 0,
        [str(email) for email in (item.get(PENDING_EMAILS) or {}).get("SS", [])],
    )
