"""What the operator's routes answer, built from ledger data (pure)."""

from __future__ import annotations

import base64
import json
from typing import Any

from ..http_body import parse_json
from ..http_errors import InvalidInput
from ..ledger.issue_item import Issue, IssueKey
from ..ledger.keys import ISSUE_DELETED, ISSUE_EXCLUDED
from ..reconcile.model import Seen
from ..timestamps import iso_from_ms
from ..upsert.ledger import LedgerEntry


class InvalidParameter(InvalidInput):
    """A path or query parameter or a body field the route cannot use: 400 naming it."""


def _iso(ms: int | None) -> str | None:
    return iso_from_ms(ms) if ms else None


def hubspot_view(seen: Seen | None) -> dict[str, Any] | None:
    """What HubSpot was last seen to hold for the contact, or None when reconcile never read it.
    ``id`` is null when HubSpot held no live record; a property is null when it was empty there."""
    if seen is None:
        return None
    return {
        "seenAt": iso_from_ms(seen.at_ms),
        "id": seen.hubspot_id,
        "properties": dict(sorted(seen.properties.items())),
        "drift": seen.drift.value if seen.drift else None,
    }


def contact_view(
    entry: LedgerEntry, hubspot: dict[str, Any] | None = None, lists: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One contact's sync state as the ledger holds it, and what HubSpot was last seen to hold;
    ``lists`` (``operations.lists``) only when the audiences' lists are kept."""
    view = {
        "email": entry.email,
        "status": entry.status,
        "hubspotId": entry.hubspot_id,
        "lastSynced": _iso(entry.updated_at_ms),
        "lastError": entry.reason,
        "audiences": {
            audience_id: {"status": applied.status, "timestamp": _iso(applied.timestamp_ms)}
            for audience_id, applied in sorted(entry.audiences.items())
        },
        "attributes": dict(sorted(entry.written.items())),
        "pending": {
            "audiences": {
                audience_id: {
                    "status": change.status,
                    "timestamp": _iso(change.timestamp_ms),
                    "name": change.name,
                }
                for audience_id, change in sorted(entry.pending_audiences.items())
            },
            "attributes": {name: change.value for name, change in sorted(entry.pending_attributes.items())},
        },
        "warnings": dict(entry.warnings),
        "unconfirmedSince": _iso(entry.unconfirmed_at_ms),
        "hubspot": hubspot,
    }
    if lists is not None:
        view["lists"] = lists
    return view


def issue_view(issue: Issue) -> dict[str, Any]:
    """An item of the issues index: a failed, held or deleted contact (``at``: when it failed, was
    held, or was found deleted in HubSpot), or a profile excluded at ingest."""
    at = _iso(issue.at_ms)
    if issue.status == ISSUE_EXCLUDED:
        return {
            "status": ISSUE_EXCLUDED,
            "email": issue.excluded_email,
            "reason": issue.reason,
            "at": at,
            "requestId": issue.request_id,
            "index": issue.profile_index,
        }
    view: dict[str, Any] = {
        "status": issue.status,
        "email": issue.key,
        "reason": issue.reason,
        "at": at,
        "hubspotId": issue.hubspot_id,
    }
    if issue.status == ISSUE_DELETED:
        view["deletedAt"] = at
    return view


def error_kind(reason: str | None) -> str:
    """A failure reason's kind, for "last error by kind" (the reasons are the connector's own
    fixed texts, with HubSpot's message inside)."""
    text = (reason or "").lower()
    if "property limit" in text:
        return "property_limit"
    if text.startswith("audience "):
        return "audience_property"
    if text.startswith("attribute "):
        return "missing_property"
    if "hubspot rejected the contact" in text:
        return "hubspot_rejected"
    if "ledger cannot store" in text:
        return "ledger"
    return "other"


# -- the opaque cursor of GET /sync/issues --------------------------------------------------------
MAX_CURSOR_CHARACTERS = 2048
#: ``issueAt`` is an epoch in ms: anything at or past this (the year 33658) was never handed out, and
#: a number over DynamoDB's 38 digits would fail the query (a 503) instead of a 400.
MAX_CURSOR_TIME_MS = 10**15


def encode_cursor(key: IssueKey) -> str:
    document = {"k": key.key, "s": key.status, "t": key.at_ms}
    raw = json.dumps(document, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, status: str) -> IssueKey:
    """The index key a cursor stands for; InvalidParameter("cursor") for anything this API did not
    hand out for this status."""
    invalid = InvalidParameter("cursor", "cursor is not one this API returned for this status")
    if len(cursor) > MAX_CURSOR_CHARACTERS:
        raise invalid
    try:
        # A cursor is JSON this API wrote, but the caller can send anything (nesting that would
        # exhaust the decoder's recursion, numbers of any length): it is parsed as a body is.
        document = parse_json(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)), "a cursor")
    except ValueError:  # binascii.Error, text that is not ASCII, InvalidInput
        raise invalid from None
    if not isinstance(document, dict) or set(document) != {"k", "s", "t"}:
        raise invalid
    key, kind, at = document["k"], document["s"], document["t"]
    if (
        not isinstance(key, str)
        or not key
        or kind != status
        or not isinstance(at, int)
        or isinstance(at, bool)
        or not 0 <= at < MAX_CURSOR_TIME_MS
    ):
        raise invalid
    return IssueKey(key, kind, at)
