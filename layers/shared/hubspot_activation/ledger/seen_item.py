"""What reconcile last saw HubSpot hold for a contact, as the contact's item keeps it (``SEEN``,
``SEEN_AT``, ``SEEN_ID``, ``SEEN_DRIFT``; written by ``reconcile_store``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..reconcile.model import DriftKind, Seen
from .keys import SEEN, SEEN_AT, SEEN_DRIFT, SEEN_ID
from .values import integer, text


def seen_from_item(item: Mapping[str, Any]) -> Seen | None:
    """None when reconcile never read the contact (or its drift is a kind this code does not know,
    which is read as none)."""
    at_ms = integer(item, SEEN_AT)
    if at_ms is None:
        return None
    values = (item.get(SEEN) or {}).get("M") or {}
    drift = text(item, SEEN_DRIFT)
    kinds = {kind.value: kind for kind in DriftKind}
    return Seen(
        at_ms=at_ms,
        hubspot_id=text(item, SEEN_ID),
        properties={name: str(value["S"]) if "S" in value else None for name, value in values.items()},
        drift=kinds.get(drift) if drift else None,
    )
