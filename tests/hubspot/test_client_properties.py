"""Properties, groups and limits through the client, against the sandbox, for every API version."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hubspot_activation.hubspot.client import HubSpotClient
from hubspot_activation.hubspot.errors import PropertyLimitReached

from local.hubspot_sandbox import SandboxServer


def audience_property(name: str, label: str = "Gold members") -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "enumeration",
        "fieldType": "select",
        "groupName": "audiences",
        "options": [
            {"label": "Realized", "value": "realized", "hidden": False, "displayOrder": 0},
            {"label": "Exited", "value": "exited", "hidden": False, "displayOrder": 1},
        ],
    }


def test_group_and_properties_created_in_one_call_and_exists_is_success(client: HubSpotClient) -> None:
    client.ensure_group("audiences", "Audiences")
    client.ensure_group("audiences", "Audiences")  # already there: fine
    assert "audiences" in {group["name"] for group in client.list_groups()}
    first = client.create_properties([audience_property("aud_a"), audience_property("aud_b")])
    assert [p["name"] for p in first.created] == ["aud_a", "aud_b"] and not first.failed
    assert client.requests_sent == 4
    again = client.create_properties([audience_property("aud_a"), audience_property("aud_c")])
    assert again.existing == ["aud_a"] and [p["name"] for p in again.created] == ["aud_c"]
    listed = {p["name"]: p for p in client.list_properties()}
    assert [o["value"] for o in listed["aud_c"]["options"]] == ["realized", "exited"]
    assert listed["email"]["type"] == "string"


def test_invalid_property_definitions_fail_alone(client: HubSpotClient) -> None:
    client.ensure_group("audiences", "Audiences")
    bad_name = audience_property("Bad Name")
    bad_pair = {**audience_property("aud_pair"), "type": "number"}
    outcome = client.create_properties([bad_name, bad_pair, audience_property("aud_ok")])
    assert set(outcome.failed) == {"Bad Name", "aud_pair"}
    assert [p["name"] for p in outcome.created] == ["aud_ok"]


def test_property_limit_is_a_clear_configuration_error(client: HubSpotClient, sandbox: SandboxServer) -> None:
    sandbox.state.config.custom_property_limit = 2
    client.ensure_group("audiences", "Audiences")
    with pytest.raises(PropertyLimitReached) as raised:
        client.create_properties([audience_property(f"aud_{i}") for i in range(3)])
    assert "maximum number of custom properties" in raised.value.message
    assert sandbox.state.custom_property_count() == 2


def test_label_update(client: HubSpotClient, sandbox: SandboxServer) -> None:
    client.ensure_group("audiences", "Audiences")
    client.create_properties([audience_property("aud_x", label="aud_x")])
    updated = client.update_property("aud_x", {"label": "Cart abandoners"})
    assert updated["label"] == "Cart abandoners"
    assert sandbox.state.properties["aud_x"]["label"] == "Cart abandoners"


def test_many_properties_are_chunked_by_100(make_client: Callable[..., HubSpotClient]) -> None:
    client = make_client()
    client.ensure_group("audiences", "Audiences")
    outcome = client.create_properties([audience_property(f"aud_{i}") for i in range(150)])
    assert len(outcome.created) == 150
    assert client.requests_sent == 3
