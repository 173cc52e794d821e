"""A contact's sync state (``LedgerEntry``) as one item of the ledger table, keyed by its
normalized email.

A failed contact, or one holding changes of a deleted audience, carries the sparse ``issues``
index's attributes; any later write of the contact with neither leaves them out, which takes it off
the list.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..upsert.ledger import (
    FAILED,
    SYNCED,
    UNORDERED,
    AppliedAudience,
    LedgerEntry,
    Order,
    PendingAttribute,
    PendingAudience,
)
from .issue_item import issue_attributes
from .keys import ISSUE_FAILED, ISSUE_HELD, KEY
from .values import Item, string


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
        "warnings": {"M": {name: {"S": text[:500]} for name, text in entry.warnings.items()}}
        if entry.warnings
        else None,
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
    elif entry.holds_changes:
        item.update(issue_attributes(ISSUE_HELD, entry.updated_at_ms))
    return item


def _order_value(order: Order) -> dict[str, Any]:
    return {"L": [{"N": str(part)} for part in order]}


def _order(value: Mapping[str, Any] | None) -> Order:
    parts = [int(Decimal(part["N"])) for part in (value or {}).get("L", [])]
    return (parts[0], parts[1]) if len(parts) == 2 else UNORDERED


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
    """A contact's ledger item (as DynamoDB's low-level API returns it) as a LedgerEntry."""

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
    )
