"""The operations routes' pure parts: the opaque issues cursor, error kinds, the contact view."""

from __future__ import annotations

import base64
import json

import pytest
from hubspot_activation.ledger.issue_item import IssueKey
from hubspot_activation.ledger.keys import (
    AUDIENCE_PREFIX,
    MAX_KEY_BYTES,
    audience_key,
    exclusion_key,
)
from hubspot_activation.operations.views import (
    InvalidParameter,
    contact_view,
    decode_cursor,
    encode_cursor,
    error_kind,
)
from hubspot_activation.upsert.ledger import AppliedAudience, LedgerEntry, PendingAttribute

from tests.builders import is_contact_key

KEY = IssueKey("ada@example.com", "failed", 1795000000000)


def test_a_cursor_round_trips_to_the_index_key() -> None:
    cursor = encode_cursor(KEY)
    assert "ada" not in cursor  # opaque, not the key in clear
    assert decode_cursor(cursor, "failed") == KEY


def test_a_cursor_is_the_same_document_whatever_version_handed_it_out() -> None:
    # Cursors handed out by a running deployment keep working after an update.
    document = b'{"k":"ada@example.com","s":"failed","t":1795000000000}'
    handed_out = base64.urlsafe_b64encode(document).decode("ascii").rstrip("=")
    assert encode_cursor(KEY) == handed_out and decode_cursor(handed_out, "failed") == KEY


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!!",
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(json.dumps({"k": "a@b.co", "s": "failed"}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({"k": "a@b.co", "s": "failed", "t": "1"}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({"k": "", "s": "failed", "t": 1}).encode()).decode(),
        "A" * 5000,
        # Over DynamoDB's 38 digits (a ValidationException, so a 503, if it reached the query),
        # negative, or beyond any epoch in milliseconds this API hands out.
        base64.urlsafe_b64encode(json.dumps({"k": "a@b.co", "s": "failed", "t": 10**40}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({"k": "a@b.co", "s": "failed", "t": -1}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({"k": "a@b.co", "s": "failed", "t": 10**15}).encode()).decode(),
    ],
)
def test_a_cursor_this_api_did_not_hand_out_is_refused_naming_the_field(cursor: str) -> None:
    with pytest.raises(InvalidParameter) as refused:
        decode_cursor(cursor, "failed")
    assert refused.value.field == "cursor"


def test_a_cursor_of_one_status_is_refused_for_the_other() -> None:
    with pytest.raises(InvalidParameter):
        decode_cursor(encode_cursor(KEY), "excluded")


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("audience gold: HubSpot's custom property limit is reached; no property", "property_limit"),
        ("audience gold: HubSpot refused the audience property: bad", "audience_property"),
        ("HubSpot rejected the contact (VALIDATION_ERROR): email: INVALID_EMAIL", "hubspot_rejected"),
        ("the ledger cannot store this contact's state (ValidationException)", "ledger"),
        (None, "other"),
    ],
)
def test_failure_reasons_have_a_kind(reason: str | None, kind: str) -> None:
    assert error_kind(reason) == kind


def test_the_contact_view_shows_state_pending_items_and_times() -> None:
    entry = LedgerEntry(
        "ada@example.com",
        "failed",
        hubspot_id="101",
        audiences={"gold": AppliedAudience("realized", 1_795_000_000_000)},
        written={"firstname": "Ada"},
        pending_attributes={"tier": PendingAttribute("gold")},
        reason="audience vip: no room",
        updated_at_ms=1_795_000_001_000,
    )
    view = contact_view(entry)
    assert (
        view["status"] == "failed"
        and view["hubspotId"] == "101"
        and view["lastError"] == "audience vip: no room"
    )
    assert view["audiences"] == {"gold": {"status": "realized", "timestamp": "2026-11-18T11:06:40.000Z"}}
    assert view["attributes"] == {"firstname": "Ada"} and view["pending"]["attributes"] == {"tier": "gold"}
    assert view["lastSynced"] == "2026-11-18T11:06:41.000Z"


#: Ids a caller may send: short ones, ones that look like other keys, and ones whose percent-encoded
#: key would pass DynamoDB's 2,048 bytes (256 CJK characters, 171 emoji, 683 "@").
AUDIENCE_IDS = [
    "gold",
    "a@b.com",
    "50%/off",
    "#hubspot-calls#2026-01-01",
    "#sha256#" + "0" * 64,
    "会" * 256,
    "\U0001f600" * 171,
    "@" * 683,
    "@" * 682,
]


@pytest.mark.parametrize("audience_id", AUDIENCE_IDS)
def test_no_key_of_another_item_kind_can_be_an_email(audience_id: str) -> None:
    key = audience_key(audience_id)
    assert not is_contact_key(key) and key.startswith(AUDIENCE_PREFIX)
    assert len(key.encode("utf-8")) <= MAX_KEY_BYTES and audience_key(audience_id) == key
    assert not is_contact_key(exclusion_key("req@x", 3))


def test_every_audience_id_has_its_own_storable_key() -> None:
    ids = [*AUDIENCE_IDS, "会" * 255, "会" * 255 + "社", "\U0001f600" * 170]
    keys = {audience_key(audience_id) for audience_id in ids}
    assert len(keys) == len(ids)
    # An id that fits keeps the percent-encoded key it always had; only longer ones are hashed.
    assert audience_key("50%/off") == AUDIENCE_PREFIX + "50%25%2Foff"
    longest = "@" * ((MAX_KEY_BYTES - len(AUDIENCE_PREFIX)) // 3)
    assert audience_key(longest) == AUDIENCE_PREFIX + "%40" * len(longest)
    assert "%40" not in audience_key(longest + "@")
