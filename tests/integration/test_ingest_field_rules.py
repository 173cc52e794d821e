"""The field rules through the ingest function's handler (settings from its environment, as the
template passes ``FieldRules``): what reaches the queue and the 202's ``skippedByRule``, for both
shapes AEP sends."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hubspot_activation.messages import decode_message

from local.functions import load_function
from tests.conftest import INGEST_TOKEN, FakeContext, drain, http_api_event

AUTH = {"authorization": f"Bearer {INGEST_TOKEN}"}
GOLD = "a1b2c3d4-0000-4000-8000-000000000001"
RULES = {"lastname": "unless_blank", "firstname": "always", "phone": "fill_empty", "lifecyclestage": "never"}
#: property -> its path in a raw XDM export (``lifecyclestage`` through a custom mapping entry)
XDM_PATH = {
    "city": "workAddress.city",
    "lastname": "person.name.lastName",
    "firstname": "person.name.firstName",
    "phone": "mobilePhone.number",
    "lifecyclestage": "_acme.lifecycleStage",
}
ABSENT = object()
CELLS: dict[str, Any] = {
    "value": "V",
    "blank": "",
    "null": None,
    "value-null": {"value": None},
    "empty-object": {},
    "absent": ABSENT,
}
#: property -> cell -> what the queue carries (missing: no change)
EXPECTED: dict[str, dict[str, Any]] = {
    "city": {"value": "V", "blank": ""},
    "lastname": {"value": "V"},
    "firstname": {"value": "V", "blank": "", "null": "", "value-null": "", "empty-object": ""},
    "phone": {"value": "V"},
    "lifecyclestage": {},
}

Handler = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture
def invoke(aws_resources: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Handler]:
    monkeypatch.setenv("FIELD_RULES", json.dumps(RULES))
    monkeypatch.setenv("ATTRIBUTE_MAPPING", json.dumps({"_acme.lifecycleStage": "lifecyclestage"}))
    module = load_function("ingest")
    module._api.cache_clear()

    def call(event: dict[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = module.lambda_handler(event, FakeContext())
        return response

    yield call
    module._api.cache_clear()


def xdm_profile(email: str, raw: Any) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "identityMap": {"Email": [{"id": email}]},
        "segmentMembership": {"ups": {GOLD: {"status": "realized"}}},
    }
    if raw is not ABSENT:
        for path in XDM_PATH.values():
            *parents, leaf = path.split(".")
            node = profile
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = raw
    return profile


def sdk_profile(email: str, raw: Any) -> dict[str, Any]:
    return {
        "identities": [{"type": "email", "id": email}],
        "AdobeExperiencePlatformSegments": {"add": [GOLD]},
        "attributes": {} if raw is ABSENT else dict.fromkeys(XDM_PATH, raw),
    }


SHAPES = {"xdm": xdm_profile, "sdk": sdk_profile}


def test_rules_decide_what_is_queued_and_the_answer_counts_what_they_dropped(
    invoke: Handler, aws_resources: dict[str, str]
) -> None:
    profiles = [
        make(f"{shape}-{cell}@example.com", raw)
        for shape, make in SHAPES.items()
        for cell, raw in CELLS.items()
    ]
    response = invoke(http_api_event({"profiles": profiles}, AUTH))
    assert response["statusCode"] == 202, response
    body = json.loads(response["body"])
    assert body["accepted"] == len(profiles) and body["excludedCount"] == 0
    assert "warnings" not in body  # a rule at work is counted, not warned per contact
    # Per shape: never drops the value and the blank, unless_blank and fill_empty the blank.
    assert body["skippedByRule"] == {"never": 4, "unless_blank": 2, "fill_empty": 2}
    queued = {
        update.email: update.attributes
        for message in drain(aws_resources["QUEUE_URL"])
        for update in decode_message(message["Body"])
    }
    for shape in SHAPES:
        for cell in CELLS:
            wanted = {prop: cells[cell] for prop, cells in EXPECTED.items() if cell in cells}
            assert queued[f"{shape}-{cell}@example.com"] == wanted, (shape, cell)
    # A request no rule dropped anything of does not mention the rules.
    quiet = invoke(http_api_event(sdk_profile("ada@example.com", ABSENT), AUTH))
    assert quiet["statusCode"] == 202 and "skippedByRule" not in json.loads(quiet["body"])
