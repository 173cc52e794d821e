"""The ledger table's layout beyond one item per contact, shared by every function that reads or
writes it (ingest stores exclusions, upsert records failures, operations reads both).

Contacts are keyed by their lower-cased email. Every other item kind has a key without ``@`` (an
audience id is percent-encoded), so no key of another kind can ever be an email: the daily count of
HubSpot calls, an exclusion at ingest, an audience's metadata.

The ``issues`` index is sparse: only items with ``issueStatus`` are in it - contacts whose last
outcome failed, contacts holding changes of an audience deleted when they arrived, and exclusions.
Querying one status newest first is cheap and exact, and a contact that later syncs is rewritten
without the attribute, which takes it out of the index.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

KEY = "email"
ISSUES_INDEX = "issues"
#: The index's partition key: ``failed``, ``held`` or ``excluded``.
ISSUE_STATUS = "issueStatus"
#: The index's sort key: when the issue arose (epoch ms).
ISSUE_AT = "issueAt"
ISSUE_FAILED = "failed"
ISSUE_EXCLUDED = "excluded"
ISSUE_HELD = "held"
ISSUE_STATUSES = (ISSUE_FAILED, ISSUE_HELD, ISSUE_EXCLUDED)
#: DynamoDB's time-to-live attribute (epoch seconds).
EXPIRES_AT = "expiresAt"

DAILY_CALLS_PREFIX = "#hubspot-calls#"
EXCLUDED_PREFIX = "#excluded#"
AUDIENCE_PREFIX = "#audience#"


def daily_calls_key(day: str) -> str:
    return DAILY_CALLS_PREFIX + day


def exclusion_key(content_id: str, index: int) -> str:
    """``content_id`` is a hash of the request body (a retry of the same body rewrites the same
    items); quoted anyway, so no value can make the key read as an email."""
    return f"{EXCLUDED_PREFIX}{quote(content_id, safe='')}#{index}"


def audience_key(audience_id: str) -> str:
    """An audience id may be anything (even contain ``@``): percent-encoded, it can never read as
    an email."""
    return AUDIENCE_PREFIX + quote(audience_id, safe="")


def audience_id_of(key: str) -> str:
    return unquote(key.removeprefix(AUDIENCE_PREFIX))


def is_contact_key(key: str) -> bool:
    return "@" in key
