"""Audience ids of any length on the local stack, whose DynamoDB refuses an over-long key on reads
as well as writes (``local.dynamodb_limits``): ingest, the merge and flush functions and the
audience routes store and read every id a caller may send, and an audience the ledger cannot read
holds back only its own changes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests
from moto.dynamodb.exceptions import MockValidationException
from moto.dynamodb.models import DynamoDBBackend

from local import stack as local_stack

#: Within the routes' 256 characters, but 2,304 and 2,052 bytes once percent-encoded in a key.
CJK_ID = "会" * 256
EMOJI_ID = "\U0001f600" * 171
#: Longer than any route accepts, as only ingest does: 2,100 bytes spelled out, 6,300 encoded.
LONG_ASCII_ID = "segment/" + "x" * 2092
GOOD_CONTACTS = 40
HELD_BACK_AT_MOST_SECONDS = 120


@pytest.fixture
def stack() -> Iterator[local_stack.LocalStack]:
    # Five deliveries, as the template allows at least: on failure the batch reaches the DLQ in
    # seconds (as in production after twenty), instead of the test waiting for twenty backoffs.
    started = local_stack.start(parameters={"MaxReceiveCount": 5})
    yield started
    started.stop()


def call(stack: local_stack.LocalStack, method: str, path: str, body: Any = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {stack.ingest_token}"}
    return requests.request(method, f"{stack.api.url}{path}", json=body, headers=headers, timeout=30)


def answer(stack: local_stack.LocalStack, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    response = call(stack, method, path, body)
    assert response.status_code == status, response.text[:500]
    return response.json()


def member(email: str, audiences: dict[str, str]) -> dict[str, Any]:
    return {
        "email": email,
        "attributes": {"firstname": email.split("@")[0]},
        "audiences": {
            audience_id: {"status": "realized", "timestamp": "2026-11-20T10:00:00Z", "name": name}
            for audience_id, name in audiences.items()
        },
    }


def send_and_drain(stack: local_stack.LocalStack, profiles: list[dict[str, Any]]) -> dict[str, Any]:
    accepted: dict[str, Any] = answer(stack, "POST", "/activations", {"profiles": profiles}, status=202)
    assert local_stack.drain(stack, show=False, timeout=HELD_BACK_AT_MOST_SECONDS)
    return accepted


def hubspot_contact(stack: local_stack.LocalStack, email: str) -> dict[str, str]:
    assert stack.sandbox is not None
    state = stack.sandbox.state
    assert email in state.email_index, f"{email} is not in HubSpot"
    return dict(state.contacts[state.email_index[email]]["properties"])


def audience_property(stack: local_stack.LocalStack, audience_id: str) -> dict[str, Any]:
    """The HubSpot property of an audience, found by the id in its description (its internal name
    is the product's business, not this test's)."""
    assert stack.sandbox is not None
    (found,) = [
        spec
        for spec in stack.sandbox.state.properties.values()
        if str(spec.get("description", "")).endswith(f"audience {audience_id} (synced by hubspot-activation)")
    ]
    return found


def good_profiles() -> list[dict[str, Any]]:
    return [member(f"good{i}@example.com", {"gold": "Gold"}) for i in range(GOOD_CONTACTS)]


def assert_good_contacts_synced(stack: local_stack.LocalStack) -> None:
    assert stack.sandbox is not None
    in_hubspot = sum(f"good{i}@example.com" in stack.sandbox.state.email_index for i in range(GOOD_CONTACTS))
    dead_letters = local_stack.dead_letters(stack)
    assert (in_hubspot, dead_letters) == (GOOD_CONTACTS, 0), "good contacts in HubSpot, dead letters"
    gold = audience_property(stack, "gold")["name"]
    for i in range(GOOD_CONTACTS):
        properties = hubspot_contact(stack, f"good{i}@example.com")
        assert properties["firstname"] == f"good{i}" and properties[gold] == "realized"


@pytest.mark.parametrize("audience_id", [LONG_ASCII_ID, EMOJI_ID], ids=["2100-ascii", "171-emoji"])
def test_an_audience_id_too_long_for_a_spelled_out_key_is_synced_with_every_other_contact(
    stack: local_stack.LocalStack, audience_id: str
) -> None:
    profiles = [*good_profiles(), member("long@example.com", {audience_id: "Long one", "gold": "Gold"})]
    accepted = send_and_drain(stack, profiles)
    assert accepted["accepted"] == GOOD_CONTACTS + 1 and accepted["excludedCount"] == 0
    assert_good_contacts_synced(stack)
    # The long audience is synced as well, labelled with its name, and reads back under its id.
    prop = audience_property(stack, audience_id)
    assert prop["label"] == "Long one"
    assert hubspot_contact(stack, "long@example.com")[prop["name"]] == "realized"
    view = answer(stack, "GET", "/contacts/long@example.com")
    assert view["status"] == "synced" and view["audiences"][audience_id]["status"] == "realized"


@pytest.mark.parametrize("audience_id", [CJK_ID, EMOJI_ID], ids=["256-cjk", "171-emoji"])
def test_the_audience_routes_store_every_id_they_accept_and_the_flush_reads_it_back(
    stack: local_stack.LocalStack, audience_id: str
) -> None:
    path = "/audiences/" + quote(audience_id, safe="")
    created = answer(stack, "PUT", path, {"name": "Stored name", "description": "long id"}, status=201)
    assert created["externalAudienceId"] == audience_id and created["audienceId"] == audience_id
    # The same item again: an update (200), not a second audience.
    renamed = answer(stack, "PUT", path, {"name": "Renamed"})
    assert renamed["audienceId"] == audience_id and renamed["description"] == "long id"
    send_and_drain(stack, [member("ada@example.com", {audience_id: "Name in the payload"})])
    prop = audience_property(stack, audience_id)
    assert prop["label"] == "Renamed"  # the flush read the stored metadata under the id's key
    assert hubspot_contact(stack, "ada@example.com")[prop["name"]] == "realized"

    deleted = answer(stack, "DELETE", path)
    assert deleted["audienceId"] == audience_id and deleted["status"] == "deleted"
    exited = member("ada@example.com", {})
    exited["audiences"] = {audience_id: {"status": "exited", "timestamp": "2026-11-21T10:00:00Z"}}
    send_and_drain(stack, [exited])
    assert hubspot_contact(stack, "ada@example.com")[prop["name"]] == "realized"  # not synced: deleted
    view = answer(stack, "GET", "/contacts/ada@example.com")
    assert "deleted" in view["warnings"][f"audience {audience_id}"]
    # One character over the route's limit is still a 400 naming the id.
    too_long = "/audiences/" + quote(audience_id + "会" * (257 - len(audience_id)), safe="")
    assert answer(stack, "PUT", too_long, {"name": "x"}, status=400)["field"] == "id"


REFUSED_AUDIENCE = "refused-by-the-ledger"


@pytest.fixture
def ledger_refusing_one_audience(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB refusing to read any key that names one audience, as it refuses the whole
    BatchGetItem for one bad key: a per-audience fault the flush cannot retry away."""
    original = DynamoDBBackend.get_item

    def get_item(self: DynamoDBBackend, table_name: str, keys: dict[str, Any], *args: Any) -> Any:
        if any(REFUSED_AUDIENCE in str(value) for value in keys.values()):
            raise MockValidationException("One or more parameter values were invalid: refused for the test")
        return original(self, table_name, keys, *args)

    monkeypatch.setattr(DynamoDBBackend, "get_item", get_item)


@pytest.mark.usefixtures("ledger_refusing_one_audience")
def test_an_audience_the_ledger_refuses_to_read_holds_back_only_its_own_change(
    stack: local_stack.LocalStack,
) -> None:
    profiles = [*good_profiles(), member("ada@example.com", {REFUSED_AUDIENCE: "Refused", "gold": "Gold"})]
    send_and_drain(stack, profiles)
    assert_good_contacts_synced(stack)
    # Ada is synced but for the refused audience, whose change waits (failed, replayable) with why.
    ada = hubspot_contact(stack, "ada@example.com")
    assert ada["firstname"] == "ada" and ada[audience_property(stack, "gold")["name"]] == "realized"
    view = answer(stack, "GET", "/contacts/ada@example.com")
    assert view["status"] == "failed" and REFUSED_AUDIENCE in view["pending"]["audiences"]
    assert "ValidationException" in view["lastError"]
    assert view["audiences"]["gold"]["status"] == "realized"
