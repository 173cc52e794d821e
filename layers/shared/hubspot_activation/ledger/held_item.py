"""Held markers (see ``keys``): one item per contact and audience whose change the contact's entry
keeps, in the sparse ``held`` index under the audience's digest, and the index's pages as a resume
job reads them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .keys import EXPIRES_AT, HELD_AUDIENCE, HELD_EMAIL, HELD_INDEX, KEY, audience_digest, held_marker_key
from .values import Item, number, string, text


def held_marker_item(audience_id: str, email: str, expires_at: int) -> Item:
    """``expires_at`` (epoch s): a marker expires with the contact's entry."""
    return {
        KEY: string(held_marker_key(audience_id, email)),
        HELD_AUDIENCE: string(audience_digest(audience_id)),
        HELD_EMAIL: string(email),
        "audienceId": string(audience_id),
        EXPIRES_AT: number(expires_at),
    }


def held_marker_key_item(audience_id: str, email: str) -> Item:
    return {KEY: string(held_marker_key(audience_id, email))}


def held_query(audience_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    """The Query arguments (less the table) for one page of an audience's markers from ``cursor``."""
    query: dict[str, Any] = {
        "IndexName": HELD_INDEX,
        "KeyConditionExpression": "#a = :a",
        "ExpressionAttributeNames": {"#a": HELD_AUDIENCE},
        "ExpressionAttributeValues": {":a": string(audience_digest(audience_id))},
        "Limit": limit,
    }
    if cursor:
        query["ExclusiveStartKey"] = json.loads(cursor)
    return query


def held_page(response: Mapping[str, Any]) -> tuple[list[str], str | None]:
    """The emails of a Query's page, and the cursor of the next page (None: this was the last).
    The cursor is DynamoDB's own key, as JSON: it only ever travels in the queue's job messages."""
    emails = [email for item in response.get("Items", []) if (email := text(item, HELD_EMAIL))]
    last = response.get("LastEvaluatedKey")
    return emails, json.dumps(last, sort_keys=True, separators=(",", ":")) if last else None
