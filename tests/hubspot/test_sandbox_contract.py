"""The sandbox answers as HubSpot documents: status codes, headers and body fields the client relies
on, checked with plain `requests` calls shaped like HubSpot's documentation examples (a client this
project did not write)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from local.hubspot_sandbox import SandboxServer

UPSERT_PATHS = {
    "v3": "/crm/v3/objects/contacts/batch/upsert",
    "2026-03": "/crm/objects/2026-03/contacts/batch/upsert",
    "2026-09": "/crm/objects/2026-09/contacts/batch/upsert",
}
PROPERTY_PATHS = {
    "v3": "/crm/v3/properties/contacts",
    "2026-03": "/crm/properties/2026-03/contacts",
    "2026-09": "/crm/properties/2026-09/contacts",
}
UPSERT_OBJECT_REQUIRED = {"id", "new", "properties", "createdAt", "updatedAt", "archived"}
BATCH_REQUIRED = {"status", "results", "startedAt", "completedAt"}
STANDARD_ERROR_REQUIRED = {"status", "category", "message", "context", "errors", "links"}
ERROR_REQUIRED = {"category", "correlationId", "message"}


@pytest.fixture
def api(sandbox: SandboxServer) -> tuple[str, dict[str, str]]:
    return sandbox.url, {
        "Authorization": f"Bearer {sandbox.state.add_private_app_token()}",
        "Content-Type": "application/json",
    }


@pytest.mark.parametrize("version", list(UPSERT_PATHS))
def test_documented_upsert_example(api: tuple[str, dict[str, str]], version: str) -> None:
    base, headers = api
    body = {
        "inputs": [
            {
                "idProperty": "email",
                "id": "Bcooper@Biglytics.net",
                "properties": {"phone": "(877) 929-0687", "company": "Biglytics"},
            }
        ]
    }
    response = requests.post(base + UPSERT_PATHS[version], json=body, headers=headers, timeout=5)
    assert response.status_code == 200
    document = response.json()
    assert set(document) >= BATCH_REQUIRED and document["status"] == "COMPLETE"
    (result,) = document["results"]
    assert set(result) >= UPSERT_OBJECT_REQUIRED
    assert result["new"] is True and result["properties"]["email"] == "bcooper@biglytics.net"
    for header in (
        "X-HubSpot-RateLimit-Max",
        "X-HubSpot-RateLimit-Remaining",
        "X-HubSpot-RateLimit-Interval-Milliseconds",
        "X-HubSpot-RateLimit-Daily",
        "X-HubSpot-RateLimit-Daily-Remaining",
    ):
        assert response.headers[header].isdigit()


@pytest.mark.parametrize(("version", "status"), [("v3", 207), ("2026-03", 207), ("2026-09", 200)])
def test_multi_status_with_trace_ids(api: tuple[str, dict[str, str]], version: str, status: int) -> None:
    base, headers = api
    body = {
        "inputs": [
            {
                "idProperty": "email",
                "id": "ok@example.com",
                "properties": {"firstname": "Ok"},
                "objectWriteTraceId": "1",
            },
            {
                "idProperty": "email",
                "id": "bad@example.com",
                "properties": {"missing": "x"},
                "objectWriteTraceId": "2",
            },
        ]
    }
    response = requests.post(base + UPSERT_PATHS[version], json=body, headers=headers, timeout=5)
    assert response.status_code == status  # the 2026-09 spec documents 200 with errors inside it
    document = response.json()
    assert document["numErrors"] == 1
    (error,) = document["errors"]
    assert set(error) >= STANDARD_ERROR_REQUIRED
    assert error["context"]["objectWriteTraceId"] == ["2"]
    assert "PROPERTY_DOESNT_EXIST" in error["message"]
    assert [r["objectWriteTraceId"] for r in document["results"]] == ["1"]


def post_upsert(api: tuple[str, dict[str, str]], inputs: list[dict[str, Any]]) -> requests.Response:
    base, headers = api
    return requests.post(base + UPSERT_PATHS["v3"], json={"inputs": inputs}, headers=headers, timeout=5)


def test_whole_request_errors(api: tuple[str, dict[str, str]], sandbox: SandboxServer) -> None:
    no_trace = post_upsert(
        api,
        [
            {"idProperty": "email", "id": "a@example.com", "properties": {"missing": "x"}},
            {"idProperty": "email", "id": "b@example.com", "properties": {"firstname": "B"}},
        ],
    )
    assert no_trace.status_code == 400 and set(no_trace.json()) >= ERROR_REQUIRED
    assert sandbox.state.contacts == {}  # nothing written
    duplicate = post_upsert(
        api,
        [
            {"idProperty": "email", "id": "a@example.com", "properties": {}},
            {"idProperty": "email", "id": "A@example.com", "properties": {}},
        ],
    )
    assert duplicate.status_code == 400
    assert duplicate.json()["message"].startswith("Duplicate IDs found in batch input")
    assert duplicate.json()["context"] == {"ids": ["a@example.com"]}
    too_many = post_upsert(
        api, [{"idProperty": "email", "id": f"u{i}@example.com", "properties": {}} for i in range(101)]
    )
    assert too_many.status_code == 400 and too_many.json()["category"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    ("kind", "value", "stored"),
    [
        ("date", "2026-11-22", "2026-11-22"),
        ("date", "1795305600000", "2026-11-22"),
        ("date", "1795305600001", None),
        ("date", "22/11/2026", None),
        ("datetime", "2026-11-22T10:00:00Z", "2026-11-22T10:00:00.000Z"),
        ("datetime", "1795341600000", "2026-11-22T10:00:00.000Z"),
        ("datetime", "yesterday", None),
        ("bool", "true", "true"),
        ("bool", "yes", None),
        ("number", "17", "17"),
        ("number", "1e3", "1e3"),
        ("number", "seventeen", None),
    ],
)
def test_value_types(
    api: tuple[str, dict[str, str]], sandbox: SandboxServer, kind: str, value: str, stored: str | None
) -> None:
    base, headers = api
    field = "bool" if kind == "bool" else "number" if kind == "number" else "date"
    spec: dict[str, Any] = {
        "name": f"my_{kind}",
        "label": kind,
        "type": kind,
        "fieldType": {"bool": "booleancheckbox"}.get(kind, field),
        "groupName": "contactinformation",
    }
    if kind == "bool":
        spec["options"] = [
            {"label": "Yes", "value": "true", "hidden": False},
            {"label": "No", "value": "false", "hidden": False},
        ]
    assert (
        requests.post(base + PROPERTY_PATHS["v3"], json=spec, headers=headers, timeout=5).status_code == 201
    )
    response = post_upsert(
        api, [{"idProperty": "email", "id": "t@example.com", "properties": {f"my_{kind}": value}}]
    )
    if stored is None:
        assert response.status_code == 400
    else:
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["properties"][f"my_{kind}"] == stored


def test_auth_and_scope_errors(sandbox: SandboxServer) -> None:
    base = sandbox.url
    missing = requests.get(base + PROPERTY_PATHS["v3"], timeout=5)
    assert missing.status_code == 401 and missing.json()["category"] == "INVALID_AUTHENTICATION"
    read_only = sandbox.state.add_private_app_token(frozenset({"crm.objects.contacts.read"}))
    forbidden = requests.post(
        base + UPSERT_PATHS["v3"],
        json={"inputs": []},
        headers={"Authorization": f"Bearer {read_only}"},
        timeout=5,
    )
    assert forbidden.status_code == 403
    assert forbidden.json()["category"] == "MISSING_SCOPES"
    assert forbidden.json()["errors"][0]["context"]["requiredGranularScopes"] == [
        "crm.objects.contacts.write"
    ]


def test_429_bodies_and_headers(api: tuple[str, dict[str, str]], sandbox: SandboxServer) -> None:
    sandbox.state.config.ten_second_limit = 2
    statuses = [post_upsert(api, []).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    throttled = post_upsert(api, [])
    body = throttled.json()
    assert body["policyName"] == "TEN_SECONDLY_ROLLING" and body["errorType"] == "RATE_LIMIT"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert throttled.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    sandbox.state.config.ten_second_limit = 100
    sandbox.state.config.daily_limit = sandbox.state.daily_used
    daily = post_upsert(api, []).json()
    assert daily["policyName"] == "DAILY" and daily["message"] == "You have reached your daily limit."


def test_oauth_token_endpoint(sandbox: SandboxServer) -> None:
    client_id, client_secret, refresh = sandbox.state.add_oauth_app()
    for path in ("/oauth/v1/token", "/oauth/2026-03/token"):
        response = requests.post(
            sandbox.url + path,
            data={
                "grant_type": "refresh_token",
                "client_id": client_id,
                "client_secret": client_secret,
                "refresh_token": refresh,
            },
            timeout=5,
        )
        assert response.status_code == 200
        assert {"access_token", "refresh_token", "expires_in", "token_type", "token_use"} <= set(
            response.json()
        )
        upsert = requests.post(
            sandbox.url + UPSERT_PATHS["2026-09"],
            json={"inputs": []},
            timeout=5,
            headers={"Authorization": f"Bearer {response.json()['access_token']}"},
        )
        assert upsert.status_code == 200
        assert "X-HubSpot-RateLimit-Daily" not in upsert.headers  # not sent for OAuth tokens
    bad = requests.post(
        sandbox.url + "/oauth/2026-03/token",
        data={
            "grant_type": "refresh_token",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": "x",
        },
        timeout=5,
    )
    assert (
        bad.status_code == 400
        and bad.json()["status"] == "BAD_REFRESH_TOKEN"
        and bad.json()["error"] == "invalid_grant"
    )


def test_property_rules(api: tuple[str, dict[str, str]], sandbox: SandboxServer) -> None:
    base, headers = api

    def create(**spec: Any) -> requests.Response:
        body = {
            "name": "my_prop",
            "label": "Mine",
            "type": "string",
            "fieldType": "text",
            "groupName": "contactinformation",
            **spec,
        }
        return requests.post(base + PROPERTY_PATHS["2026-03"], json=body, headers=headers, timeout=5)

    assert create(name="Bad-Name").status_code == 400
    assert create(name="hs_reserved").status_code == 400
    assert create(fieldType="number").status_code == 400
    assert create(groupName="nowhere").status_code == 400
    assert create().status_code == 201
    exists = create()
    assert exists.status_code == 409 and set(exists.json()) >= ERROR_REQUIRED
    group = requests.post(
        base + PROPERTY_PATHS["v3"] + "/groups",
        json={"name": "audiences", "label": "Audiences"},
        headers=headers,
        timeout=5,
    )
    assert group.status_code == 201
    assert (
        requests.get(base + "/crm/limits/2026-03/custom-properties", headers=headers, timeout=5).json()[
            "overallUsage"
        ]
        == 1
    )


def test_inspection_and_configuration_endpoints(
    api: tuple[str, dict[str, str]], sandbox: SandboxServer
) -> None:
    base, _headers = api
    post_upsert(api, [{"idProperty": "email", "id": "a@example.com", "properties": {"firstname": "A"}}])
    state = requests.get(base + "/__sandbox/state", timeout=5).json()
    assert state["contacts"][0]["properties"]["firstname"] == "A"
    assert state["requests"] == {"POST batch_upsert": 1}
    configured = requests.post(base + "/__sandbox/config", json={"ten_second_limit": 190}, timeout=5)
    assert configured.json()["ten_second_limit"] == 190
    assert requests.post(base + "/__sandbox/config", json={"nope": 1}, timeout=5).status_code == 400


@pytest.mark.parametrize(("version", "multi_status"), [("v3", 207), ("2026-03", 207), ("2026-09", 200)])
def test_batch_create_and_update(api: tuple[str, dict[str, str]], version: str, multi_status: int) -> None:
    base, headers = api
    objects = UPSERT_PATHS[version].removesuffix("/upsert")
    created = requests.post(
        base + objects + "/create",
        headers=headers,
        timeout=5,
        json={
            "inputs": [
                {"properties": {"email": "new@example.com", "firstname": "New"}, "objectWriteTraceId": "c1"}
            ]
        },
    )
    assert created.status_code == 201
    (record,) = created.json()["results"]
    conflict = requests.post(
        base + objects + "/create",
        headers=headers,
        timeout=5,
        json={
            "inputs": [
                {"properties": {"email": "NEW@example.com"}, "objectWriteTraceId": "c2"},
                {"properties": {"email": "other@example.com"}, "objectWriteTraceId": "c3"},
            ]
        },
    )
    assert conflict.status_code == multi_status
    assert conflict.json()["errors"][0]["category"] == "CONFLICT"
    updated = requests.post(
        base + objects + "/update",
        headers=headers,
        timeout=5,
        json={
            "inputs": [
                {"id": record["id"], "properties": {"lastname": "Updated"}, "objectWriteTraceId": "u1"},
                {"id": "999999", "properties": {"lastname": "Ghost"}, "objectWriteTraceId": "u2"},
            ]
        },
    )
    assert updated.status_code == multi_status
    assert updated.json()["results"][0]["properties"]["lastname"] == "Updated"
    assert updated.json()["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    by_email = requests.post(
        base + objects + "/update",
        headers=headers,
        timeout=5,
        json={"inputs": [{"id": "new@example.com", "idProperty": "email", "properties": {"lastname": "X"}}]},
    )
    assert by_email.status_code == 400
    assert "non-unique email" in by_email.json()["message"]


def test_tier_presets(sandbox: SandboxServer) -> None:
    response = requests.post(sandbox.url + "/__sandbox/config", json={"tier": "professional"}, timeout=5)
    assert (response.json()["ten_second_limit"], response.json()["daily_limit"]) == (190, 625_000)
    assert (
        requests.post(sandbox.url + "/__sandbox/config", json={"tier": "platinum"}, timeout=5).status_code
        == 400
    )


CONTACT_PATHS = {
    "v3": "/crm/v3/objects/contacts",
    "2026-03": "/crm/objects/2026-03/contacts",
    "2026-09": "/crm/objects/2026-09/contacts",
}
ALWAYS_RETURNED = {"hs_object_id", "createdate", "lastmodifieddate"}
VALUE_WITH_TIMESTAMP_REQUIRED = {"value", "timestamp", "sourceType"}


def seeded_contact(api: tuple[str, dict[str, str]], **properties: str) -> str:
    """The record id of ada@example.com after an upsert of ``properties``."""
    response = post_upsert(api, [{"idProperty": "email", "id": "ada@example.com", "properties": properties}])
    assert response.status_code == 200, response.text
    contact_id: str = response.json()["results"][0]["id"]
    return contact_id


@pytest.mark.parametrize("version", list(CONTACT_PATHS))
@pytest.mark.parametrize(
    "query",
    [
        "properties=firstname&properties=lastname&properties=city",  # what HubSpot's clients send
        "properties=firstname,lastname,city",  # what HubSpot's guides write
        "properties=firstname,lastname&properties=city",
        "properties=firstname&properties=%20lastname%20,,city&properties=",
        "properties=firstname%2Clastname%2Ccity",
    ],
)
def test_single_read_takes_properties_repeated_comma_separated_and_mixed(
    api: tuple[str, dict[str, str]], version: str, query: str
) -> None:
    base, headers = api
    contact_id = seeded_contact(api, firstname="Ada", lastname="Lovelace", city="London", company="AE")
    for key in (contact_id, "ada@example.com?idProperty=email"):
        separator = "&" if "?" in key else "?"
        url = f"{base}{CONTACT_PATHS[version]}/{key}{separator}{query}"
        response = requests.get(url, headers=headers, timeout=5)
        assert response.status_code == 200, response.text
        properties = response.json()["properties"]
        assert set(properties) == {"firstname", "lastname", "city", *ALWAYS_RETURNED}
        assert (properties["firstname"], properties["lastname"], properties["city"]) == (
            "Ada",
            "Lovelace",
            "London",
        )


def test_single_read_without_properties_and_with_unknown_ones(api: tuple[str, dict[str, str]]) -> None:
    base, headers = api
    contact_id = seeded_contact(api, firstname="Ada", company="AE")
    url = f"{base}{CONTACT_PATHS['v3']}/{contact_id}"
    everything = requests.get(url, headers=headers, timeout=5).json()
    assert {"firstname", "company", "email"} <= set(everything["properties"])
    assert "propertiesWithHistory" not in everything and "associations" not in everything
    unknown = requests.get(url + "?properties=nope&properties=firstname", headers=headers, timeout=5)
    assert unknown.status_code == 200  # names HubSpot has nothing for are ignored
    assert set(unknown.json()["properties"]) == {"firstname", *ALWAYS_RETURNED}


@pytest.mark.parametrize("version", list(CONTACT_PATHS))
def test_single_read_properties_with_history(api: tuple[str, dict[str, str]], version: str) -> None:
    base, headers = api
    contact_id = seeded_contact(api, firstname="Ada", city="London")
    seeded_contact(api, firstname="Augusta", city="London")
    response = requests.get(
        f"{base}{CONTACT_PATHS[version]}/{contact_id}"
        "?propertiesWithHistory=firstname&propertiesWithHistory=city,missing&properties=lastname",
        headers=headers,
        timeout=5,
    )
    assert response.status_code == 200, response.text
    history = response.json()["propertiesWithHistory"]
    assert set(history) == {"firstname", "city"}  # "missing" has no value, so it is left out
    assert [entry["value"] for entry in history["firstname"]] == ["Augusta", "Ada"]  # newest first
    assert [entry["value"] for entry in history["city"]] == ["London"]  # unchanged: one version
    for entries in history.values():
        assert all(set(entry) >= VALUE_WITH_TIMESTAMP_REQUIRED for entry in entries)
        assert all(entry["timestamp"].endswith("Z") for entry in entries)


@pytest.mark.parametrize("version", list(CONTACT_PATHS))
def test_single_read_associations_in_both_forms(api: tuple[str, dict[str, str]], version: str) -> None:
    base, headers = api
    contact_id = seeded_contact(api, firstname="Ada")
    url = f"{base}{CONTACT_PATHS[version]}/{contact_id}"
    for query in ("associations=companies&associations=deals", "associations=companies,deals"):
        response = requests.get(f"{url}?{query}", headers=headers, timeout=5)
        assert response.status_code == 200
        assert response.json()["associations"] == {}  # the sandbox keeps no associations


def test_batch_read_returns_properties_with_history(api: tuple[str, dict[str, str]]) -> None:
    base, headers = api
    seeded_contact(api, firstname="Ada")
    seeded_contact(api, firstname="Augusta")
    response = requests.post(
        base + CONTACT_PATHS["v3"] + "/batch/read",
        headers=headers,
        timeout=5,
        json={
            "idProperty": "email",
            "properties": ["firstname"],
            "propertiesWithHistory": ["firstname"],
            "inputs": [{"id": "ada@example.com"}],
        },
    )
    assert response.status_code == 200
    (result,) = response.json()["results"]
    assert [v["value"] for v in result["propertiesWithHistory"]["firstname"]] == ["Augusta", "Ada"]


@pytest.mark.parametrize("version", list(PROPERTY_PATHS))
def test_list_properties_reads_archived_in_any_case(api: tuple[str, dict[str, str]], version: str) -> None:
    base, headers = api
    url = base + PROPERTY_PATHS[version]

    def names(query: str) -> set[str]:
        response = requests.get(url + query, headers=headers, timeout=5)
        assert response.status_code == 200
        return {p["name"] for p in response.json()["results"]}

    assert "email" in names("") and names("") == names("?archived=false") == names("?archived=False")
    assert names("?archived=true") == names("?archived=True") == set()  # nothing is archived


def test_applied_error_writes_first_and_then_answers_5xx(
    api: tuple[str, dict[str, str]], sandbox: SandboxServer
) -> None:
    base, headers = api
    sandbox.state.config.applied_error_rate = 1.0
    answer = post_upsert(api, [{"idProperty": "email", "id": "a@example.com", "properties": {"city": "X"}}])
    assert answer.status_code == 502 and answer.json()["category"] == "INTERNAL_ERROR"
    # The write went through although the answer says otherwise: a client must treat it as ambiguous.
    (contact,) = sandbox.state.contacts.values()
    assert contact["properties"]["city"] == "X"
    # Reads are never "applied then failed".
    assert requests.get(base + PROPERTY_PATHS["v3"], headers=headers, timeout=5).status_code == 200
    assert sandbox.state.faults["applied_error"] == 1
    sandbox.state.config.applied_error_rate = 0.0
    sandbox.state.config.error_rate = 1.0
    refused = post_upsert(api, [{"idProperty": "email", "id": "b@example.com", "properties": {"city": "Y"}}])
    assert refused.status_code == 502 and "b@example.com" not in sandbox.state.email_index
    assert requests.get(base + "/__sandbox/state", timeout=5).json()["faults"] == {
        "applied_error": 1,
        "error": 1,
    }


def test_a_revoked_token_answers_401_and_is_counted(sandbox: SandboxServer) -> None:
    old = sandbox.state.add_private_app_token()
    new = sandbox.state.add_private_app_token()
    assert sandbox.state.revoke_token(old) and not sandbox.state.revoke_token(old)
    statuses = [
        requests.get(
            sandbox.url + PROPERTY_PATHS["v3"], headers={"Authorization": f"Bearer {token}"}, timeout=5
        ).status_code
        for token in (old, new)
    ]
    assert statuses == [401, 200] and sandbox.state.faults["auth"] == 1
