"""A profile excluded at ingest, as one item of the ledger table in the ``issues`` index."""

from __future__ import annotations

from ..model import Exclusion
from .keys import EXPIRES_AT, ISSUE_AT, ISSUE_EXCLUDED, ISSUE_STATUS, KEY, exclusion_key
from .values import Item, number, string

EXCLUDED_EMAIL = "excludedEmail"
PROFILE_INDEX = "profileIndex"
REQUEST_ID = "requestId"


def exclusion_item(
    exclusion: Exclusion, request_id: str, received_ms: int, expires: int, content_id: str
) -> Item:
    """``expires`` is the item's time to live (epoch seconds)."""
    item: Item = {
        KEY: string(exclusion_key(content_id, exclusion.index)),
        ISSUE_STATUS: string(ISSUE_EXCLUDED),
        # The index sorts newest first; within a request, by position (received_ms is shared).
        ISSUE_AT: number(received_ms),
        PROFILE_INDEX: number(exclusion.index),
        "reason": string(exclusion.reason),
        REQUEST_ID: string(request_id),
        EXPIRES_AT: number(expires),
    }
    if exclusion.email:
        item[EXCLUDED_EMAIL] = string(exclusion.email)
    return item
