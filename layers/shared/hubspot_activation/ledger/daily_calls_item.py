"""The connector's count of HubSpot calls for one day (the account's date), one item per day,
expiring a few days after the day's first call."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from .keys import KEY, daily_calls_key
from .values import Item, integer, number, string

CALLS = "calls"
#: When HubSpot's 10-second window last held the flush's requests (epoch ms).
HELD_AT = "heldAt"
#: The item lives this long after the day's first call: long past the day in any time zone.
RETENTION_SECONDS = 3 * 86_400


def daily_calls_key_item(day: str, key: Callable[[str], str] = daily_calls_key) -> Item:
    return {KEY: string(key(day))}


def add_calls_update(
    day: str, calls: int, now_seconds: int, key: Callable[[str], str] = daily_calls_key
) -> dict[str, Any]:
    """The UpdateItem arguments (less the table) that count ``calls`` more for ``day`` on the
    item ``key`` names (the connector's calls; ``keys.reconcile_calls_key``: reconcile's) and
    answer the day's new total."""
    return {
        "Key": daily_calls_key_item(day, key),
        "UpdateExpression": "ADD calls :n SET expiresAt = if_not_exists(expiresAt, :expires)",
        "ExpressionAttributeValues": {
            ":n": number(calls),
            ":expires": number(now_seconds + RETENTION_SECONDS),
        },
        "ReturnValues": "UPDATED_NEW",
    }


def total_from_update(attributes: Mapping[str, Any]) -> int:
    """The day's total from the attributes ``add_calls_update`` returns."""
    return int(Decimal(attributes[CALLS]["N"]))


def calls_from_item(item: Mapping[str, Any] | None) -> int:
    """The day's total from its item (0 when it has none: no call counted that day)."""
    return (integer(item, CALLS) or 0) if item else 0


def held_update(day: str, at_ms: int, now_seconds: int) -> dict[str, Any]:
    """The UpdateItem arguments (less the table) that record ``at_ms`` as the day's latest hold by
    HubSpot's 10-second window (a later hold recorded meanwhile is kept)."""
    return {
        "Key": daily_calls_key_item(day),
        "UpdateExpression": "SET heldAt = :at, expiresAt = if_not_exists(expiresAt, :expires)",
        "ConditionExpression": "attribute_not_exists(heldAt) OR heldAt < :at",
        "ExpressionAttributeValues": {
            ":at": number(at_ms),
            ":expires": number(now_seconds + RETENTION_SECONDS),
        },
    }


def held_at_from_item(item: Mapping[str, Any] | None) -> int | None:
    """When HubSpot's 10-second window last held the flush that day (None: not that day)."""
    return integer(item, HELD_AT) if item else None
