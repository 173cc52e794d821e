"""The sandbox's property validation rules over real HTTP: HubSpot's property-validations routes
(read and set an administrator's format rules), what the rules refuse on contact writes, and the
test hooks for what HubSpot's UI alone configures (removing a rule, conditional required)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from local.hubspot_sandbox import SandboxServer

PATHS = {
    "v3": "/crm/v3/property-validations/0-1",
    "2026-03": "/crm/property-validations/2026-03/0-1",
    "2026-09": "/crm/property-validations/2026-09/0-1",
}
OBJECTS = {"v3": "/crm/v3/objects/contacts", "2026-03": "/crm/objects/2026-03/contacts"}
OBJECTS["2026-09"] = "/crm/objects/2026-09/contacts"


class Api:
    def __init__(self, sandbox: SandboxServer, scopes: frozenset[str] | None = None) -> None:
        self.base = sandbox.url
        token = (
            sandbox.state.add_private_app_token(scopes) if scopes else sandbox.state.add_private_app_token()
        )
        self.headers = {"Authorization": f"Bearer {token}"}

    def __call__(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(method, self.base + path, json=body, headers=self.headers, timeout=5)


@pytest.fixture
def api(sandbox: SandboxServer) -> Api:
    return Api(sandbox)


@pytest.mark.parametrize("version", list(PATHS))
def test_rules_are_set_per_type_and_read_back_in_the_specs_shapes(api: Api, version: str) -> None:
    base = PATHS[version]
    assert api("GET", base).json() == {"results": []}
    put = api("PUT", f"{base}/phone/rule-type/REGEX", {"ruleArguments": [r"\+\d+"]})
    assert put.status_code == 204 and put.content == b""
    assert api("PUT", f"{base}/phone/rule-type/MAX_LENGTH", {"ruleArguments": ["20"]}).status_code == 204
    # A PUT overwrites its rule type only.
    assert api("PUT", f"{base}/phone/rule-type/REGEX", {"ruleArguments": [r"\+[0-9 ]+"]}).status_code == 204
    regex = {"ruleType": "REGEX", "ruleArguments": [r"\+[0-9 ]+"], "shouldApplyNormalization": False}
    longest = {"ruleType": "MAX_LENGTH", "ruleArguments": ["20"], "shouldApplyNormalization": False}
    assert api("GET", base).json() == {
        "results": [{"propertyName": "phone", "propertyValidationRules": [regex, longest]}]
    }
    assert api("GET", f"{base}/phone").json() == {"results": [regex, longest]}
    assert api("GET", f"{base}/phone/rule-type/REGEX").json() == regex
    assert api("GET", f"{base}/city").json() == {"results": []}


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/nope/rule-type/REGEX", {"ruleArguments": ["x"]}, 404),
        ("/phone/rule-type/SHOUTING", {"ruleArguments": ["x"]}, 400),
        ("/phone/rule-type/REGEX", {"ruleArguments": ["("]}, 400),
        ("/phone/rule-type/MIN_LENGTH", {"ruleArguments": ["many"]}, 400),
        ("/phone/rule-type/REGEX", {}, 400),
        ("/phone/rule-type/REGEX", {"ruleArguments": [5]}, 400),
    ],
)
def test_a_rule_hubspot_cannot_take_is_refused(api: Api, path: str, body: Any, status: int) -> None:
    answer = api("PUT", PATHS["2026-09"] + path, body)
    assert answer.status_code == status and answer.json()["category"] in (
        "VALIDATION_ERROR",
        "OBJECT_NOT_FOUND",
    )
    assert api("GET", PATHS["2026-09"]).json() == {"results": []}


def test_setting_a_rule_needs_the_schema_write_scope(sandbox: SandboxServer) -> None:
    reader = Api(sandbox, frozenset({"crm.objects.contacts.read"}))
    path = PATHS["2026-09"] + "/phone/rule-type/REGEX"
    assert reader("PUT", path, {"ruleArguments": ["x"]}).status_code == 403
    assert reader("GET", PATHS["2026-09"]).status_code == 200
    assert reader("GET", "/crm/property-validations/2026-09/0-2").status_code == 404


def upsert(
    api: Api, version: str, *inputs: tuple[str, dict[str, str]], traced: bool = True
) -> requests.Response:
    body = {
        "inputs": [
            {
                "id": email,
                "idProperty": "email",
                "properties": properties,
                **({"objectWriteTraceId": f"t{i}"} if traced else {}),
            }
            for i, (email, properties) in enumerate(inputs)
        ]
    }
    return api("POST", OBJECTS[version] + "/batch/upsert", body)


@pytest.mark.parametrize("version", list(OBJECTS))
def test_a_refused_input_is_one_standard_error_with_its_details_and_the_rest_is_written(
    api: Api, sandbox: SandboxServer, version: str
) -> None:
    for rule, argument in [("REGEX", r"\+[0-9 ]+"), ("MIN_LENGTH", "4")]:
        api("PUT", f"{PATHS[version]}/phone/rule-type/{rule}", {"ruleArguments": [argument]})
    api("PUT", f"{PATHS[version]}/company/rule-type/ALPHANUMERIC", {"ruleArguments": []})
    answer = upsert(
        api,
        version,
        ("ada@example.com", {"phone": "call me", "firstname": "Ada"}),
        ("bob@example.com", {"phone": "+1"}),
        ("cy@example.com", {"phone": "+33 1", "company": "Acme"}),
        ("dee@example.com", {"phone": "", "company": "A&B"}),
    )
    assert answer.status_code == (200 if version == "2026-09" else 207)
    body = answer.json()
    assert [r["objectWriteTraceId"] for r in body["results"]] == ["t2"] and body["numErrors"] == 3
    first = body["errors"][0]
    assert {key: first[key] for key in ("status", "category", "context", "links")} == {
        "status": "error",
        "category": "VALIDATION_ERROR",
        "context": {"objectWriteTraceId": ["t0"]},
        "links": {},
    }
    assert "phone" not in first["message"]  # the details say which property: not the message
    assert first["errors"] == [
        {
            "message": r'Property "phone" value does not match the pattern \+[0-9 ]+',
            "code": "REGEX",
            "context": {"propertyName": ["phone"]},
        }
    ]
    codes = [[(d["code"], d["context"]["propertyName"]) for d in e["errors"]] for e in body["errors"]]
    assert codes[1:] == [[("MIN_LENGTH", ["phone"])], [("ALPHANUMERIC", ["company"])]]
    assert set(sandbox.state.email_index) == {"cy@example.com"}


def test_without_trace_ids_a_refusal_fails_the_whole_batch_with_its_details(api: Api) -> None:
    api("PUT", PATHS["2026-09"] + "/phone/rule-type/MAX_NUMBER", {"ruleArguments": ["10"]})
    answer = upsert(api, "2026-09", ("ada@example.com", {"phone": "11"}), traced=False)
    assert answer.status_code == 400
    assert [d["code"] for d in answer.json()["errors"]] == ["MAX_NUMBER"]


def test_single_writes_and_batch_update_obey_the_rules(api: Api, sandbox: SandboxServer) -> None:
    api("PUT", PATHS["v3"] + "/phone/rule-type/MIN_NUMBER", {"ruleArguments": ["100"]})
    created = api("POST", OBJECTS["v3"], {"properties": {"email": "ada@example.com", "phone": "99"}})
    assert created.status_code == 400 and created.json()["errors"][0]["code"] == "MIN_NUMBER"
    created = api("POST", OBJECTS["v3"], {"properties": {"email": "ada@example.com", "phone": "100"}})
    contact_id = created.json()["id"]
    patched = api("PATCH", f"{OBJECTS['v3']}/{contact_id}", {"properties": {"phone": "abc"}})
    assert patched.status_code == 400 and patched.json()["errors"][0]["code"] == "MIN_NUMBER"
    updated = api(
        "POST",
        OBJECTS["v3"] + "/batch/update",
        {"inputs": [{"id": contact_id, "properties": {"phone": "5"}, "objectWriteTraceId": "t"}]},
    )
    assert updated.json()["errors"][0]["errors"][0]["context"] == {"propertyName": ["phone"]}
    assert sandbox.state.contacts[contact_id]["properties"]["phone"] == "100"


def test_an_administrator_removes_a_rule_in_hubspots_settings(api: Api, sandbox: SandboxServer) -> None:
    api("PUT", PATHS["2026-09"] + "/phone/rule-type/REGEX", {"ruleArguments": ["[0-9]+"]})
    assert upsert(api, "2026-09", ("ada@example.com", {"phone": "x"})).json()["numErrors"] == 1
    assert requests.delete(sandbox.url + "/__sandbox/property-validations/phone/REGEX", timeout=5).ok
    assert (
        requests.delete(sandbox.url + "/__sandbox/property-validations/phone/REGEX", timeout=5).status_code
        == 404
    )
    assert api("GET", PATHS["2026-09"] + "/phone").json() == {"results": []}
    assert upsert(api, "2026-09", ("ada@example.com", {"phone": "x"})).json().get("numErrors") is None


@pytest.mark.parametrize("version", list(OBJECTS))
def test_a_conditional_required_property_binds_api_writes_from_2026_09(
    api: Api, sandbox: SandboxServer, version: str
) -> None:
    hook = sandbox.url + "/__sandbox/conditional-required"
    rule = {"whenProperty": "lifecyclestage", "whenValue": "customer", "required": "company"}
    assert requests.post(hook, json=rule, timeout=5).json() == {"results": [rule]}
    api("POST", OBJECTS[version], {"properties": {"email": "known@example.com", "company": "Acme"}})
    answer = upsert(
        api,
        version,
        ("ada@example.com", {"lifecyclestage": "customer"}),
        ("known@example.com", {"lifecyclestage": "customer"}),  # holds a company already
        ("bob@example.com", {"lifecyclestage": "lead"}),
    ).json()
    if version != "2026-09":
        assert answer.get("numErrors") is None
        return
    (error,) = answer["errors"]
    assert error["context"] == {"objectWriteTraceId": ["t0"]}
    assert error["errors"] == [
        {
            "message": 'Property "company" is required when "lifecyclestage" is "customer"',
            "code": "REQUIRED_PROPERTY_MISSING",
            "context": {"propertyName": ["company"]},
        }
    ]
    assert requests.delete(hook, timeout=5).json() == {"results": []}
    assert (
        upsert(api, version, ("ada@example.com", {"lifecyclestage": "customer"})).json().get("numErrors")
        is None
    )
