"""What happens to contacts in HubSpot behind a client's back, as the sandbox does it over HTTP:
a person's edit (PATCH), batch reads by email, deletion (archive) and restore, GDPR erasure with
its blocklist, and merges. Field names and status codes are those of HubSpot's contacts spec."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from local.hubspot_sandbox import RestoreRefused, SandboxServer

CONTACT_PATHS = {
    "v3": "/crm/v3/objects/contacts",
    "2026-03": "/crm/objects/2026-03/contacts",
    "2026-09": "/crm/objects/2026-09/contacts",
}
#: SimplePublicObject's required fields
OBJECT_REQUIRED = {"id", "properties", "createdAt", "updatedAt", "archived"}
BATCH_REQUIRED = {"status", "results", "startedAt", "completedAt"}
STANDARD_ERROR_REQUIRED = {"status", "category", "message", "context", "errors", "links"}
ERROR_FIELDS = {"status", "message", "correlationId", "category"}
ALWAYS_RETURNED = {"hs_object_id", "createdate", "lastmodifieddate"}
#: a batch answer with errors: 207 Multi-Status, except 2026-09, which documents only 200
MULTI_STATUS = {"v3": 207, "2026-03": 207, "2026-09": 200}

Api = tuple[str, dict[str, str]]


@pytest.fixture
def api(sandbox: SandboxServer) -> Api:
    return sandbox.url, {
        "Authorization": f"Bearer {sandbox.state.add_private_app_token()}",
        "Content-Type": "application/json",
    }


def call(api: Api, method: str, path: str, body: Any = None) -> requests.Response:
    base, headers = api
    return requests.request(method, base + path, json=body, headers=headers, timeout=5)


def upsert(api: Api, version: str, email: str, **properties: str) -> dict[str, Any]:
    """The one result of a batch upsert by email."""
    body = {"inputs": [{"idProperty": "email", "id": email, "properties": properties}]}
    response = call(api, "POST", CONTACT_PATHS[version] + "/batch/upsert", body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["results"][0]
    return result


def read_by_email(
    api: Api, version: str, emails: list[str], properties: list[str], query: str = ""
) -> requests.Response:
    body = {
        "idProperty": "email",
        "properties": properties,
        "propertiesWithHistory": [],
        "inputs": [{"id": email} for email in emails],
    }
    return call(api, "POST", CONTACT_PATHS[version] + "/batch/read" + query, body)


def assert_error(response: requests.Response, status: int, category: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) >= ERROR_FIELDS and body["status"] == "error" and body["category"] == category
    return body


def event_types(sandbox: SandboxServer, contact_id: str) -> list[str]:
    return [e["subscriptionType"] for e in sandbox.state.events if e["objectId"] == contact_id]


# --- a person's edit ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", list(CONTACT_PATHS))
def test_patch_edits_one_contact_by_id_and_by_email(api: Api, sandbox: SandboxServer, version: str) -> None:
    contact_id = upsert(api, version, "ada@example.com", firstname="Ada", city="London")["id"]
    path = CONTACT_PATHS[version]

    by_id = call(api, "PATCH", f"{path}/{contact_id}", {"properties": {"firstname": "Augusta"}})
    assert by_id.status_code == 200, by_id.text
    document = by_id.json()
    assert set(document) >= OBJECT_REQUIRED and document["id"] == contact_id
    assert document["archived"] is False and document["properties"]["firstname"] == "Augusta"

    by_email = call(api, "PATCH", f"{path}/ADA@example.com?idProperty=email", {"properties": {"city": ""}})
    assert by_email.status_code == 200, by_email.text
    assert by_email.json()["properties"]["city"] == ""  # an empty string clears a value

    read = call(api, "GET", f"{path}/{contact_id}?propertiesWithHistory=firstname")
    assert [v["value"] for v in read.json()["propertiesWithHistory"]["firstname"]] == ["Augusta", "Ada"]
    changes = [
        (e["propertyName"], e["propertyValue"])
        for e in sandbox.state.events
        if e["subscriptionType"] == "contact.propertyChange"
    ]
    assert changes[-2:] == [("firstname", "Augusta"), ("city", "")]


@pytest.mark.parametrize("version", list(CONTACT_PATHS))
def test_patch_refuses_what_an_upsert_refuses_and_writes_nothing(
    api: Api, sandbox: SandboxServer, version: str
) -> None:
    contact_id = upsert(api, version, "ada@example.com", firstname="Ada")["id"]
    other_id = upsert(api, version, "bob@example.com", firstname="Bob")["id"]
    path = f"{CONTACT_PATHS[version]}/{contact_id}"

    unknown = assert_error(
        call(api, "PATCH", path, {"properties": {"nope": "x", "firstname": "Z"}}), 400, "VALIDATION_ERROR"
    )
    problems = json.loads(unknown["message"].removeprefix("Property values were not valid: "))
    assert [(p["name"], p["error"]) for p in problems] == [("nope", "PROPERTY_DOESNT_EXIST")]
    read_only = assert_error(
        call(api, "PATCH", path, {"properties": {"hs_merged_object_ids": "1"}}), 400, "VALIDATION_ERROR"
    )
    assert "READ_ONLY_VALUE" in read_only["message"]
    bad_enum = call(api, "PATCH", path, {"properties": {"lifecyclestage": "wizard"}})
    assert_error(bad_enum, 400, "VALIDATION_ERROR")
    taken = call(api, "PATCH", path, {"properties": {"email": "bob@example.com"}})
    assert other_id in assert_error(taken, 409, "CONFLICT")["message"]
    assert_error(
        call(api, "PATCH", f"{CONTACT_PATHS[version]}/999999", {"properties": {}}), 404, "OBJECT_NOT_FOUND"
    )

    assert sandbox.state.contacts[contact_id]["properties"]["firstname"] == "Ada"
    assert sandbox.state.email_index == {"ada@example.com": contact_id, "bob@example.com": other_id}


# --- batch read by email -------------------------------------------------------------------------


@pytest.mark.parametrize("version", list(CONTACT_PATHS))
def test_batch_read_by_email_reports_missing_ones_in_one_error(
    api: Api, sandbox: SandboxServer, version: str
) -> None:
    ada = upsert(api, version, "ada@example.com", firstname="Ada", city="London")["id"]
    gone = upsert(api, version, "gone@example.com", firstname="Gone")["id"]
    assert call(api, "DELETE", f"{CONTACT_PATHS[version]}/{gone}").status_code == 204

    response = read_by_email(
        api, version, ["Ada@Example.com", "nobody@example.com", "gone@example.com"], ["firstname"]
    )
    assert response.status_code == MULTI_STATUS[version], response.text
    document = response.json()
    assert set(document) >= BATCH_REQUIRED | {"numErrors", "errors"} and document["status"] == "COMPLETE"
    (found,) = document["results"]
    assert set(found) >= OBJECT_REQUIRED and found["id"] == ada
    assert set(found["properties"]) == {"firstname", *ALWAYS_RETURNED}  # only what was asked for
    (error,) = document["errors"]
    assert document["numErrors"] == 1 and set(error) >= STANDARD_ERROR_REQUIRED
    assert (error["status"], error["category"]) == ("error", "OBJECT_NOT_FOUND")
    assert error["context"] == {"ids": ["nobody@example.com", "gone@example.com"]}

    sandbox.state.config.update({"group_missing_reads": False})
    split = read_by_email(api, version, ["nobody@example.com", "gone@example.com"], ["firstname"]).json()
    assert split["results"] == [] and split["numErrors"] == 2
    assert [e["context"]["ids"] for e in split["errors"]] == [["nobody@example.com"], ["gone@example.com"]]

    everyone = read_by_email(api, version, ["ada@example.com"], ["firstname"])
    assert everyone.status_code == 200 and "errors" not in everyone.json()


@pytest.mark.parametrize("version", list(CONTACT_PATHS))
def test_batch_read_with_archived_true_returns_only_deleted_contacts(api: Api, version: str) -> None:
    upsert(api, version, "ada@example.com", firstname="Ada")
    gone = upsert(api, version, "gone@example.com", firstname="Gone")["id"]
    call(api, "DELETE", f"{CONTACT_PATHS[version]}/{gone}")

    document = read_by_email(
        api, version, ["ada@example.com", "gone@example.com"], ["firstname"], "?archived=true"
    ).json()
    (found,) = document["results"]
    assert found["id"] == gone and found["archived"] is True and found["archivedAt"].endswith("Z")
    assert document["errors"][0]["context"] == {"ids": ["ada@example.com"]}
    by_id = call(
        api,
        "POST",
        CONTACT_PATHS[version] + "/batch/read?archived=true",
        {"properties": [], "propertiesWithHistory": [], "inputs": [{"id": gone}]},
    )
    assert by_id.status_code == 200 and by_id.json()["results"][0]["id"] == gone


def test_batch_read_refuses_a_non_unique_id_property(api: Api) -> None:
    body = {"idProperty": "firstname", "properties": [], "propertiesWithHistory": [], "inputs": [{"id": "x"}]}
    assert_error(call(api, "POST", CONTACT_PATHS["v3"] + "/batch/read", body), 400, "VALIDATION_ERROR")


# --- deletion and restore -----------------------------------------------------------------------


@pytest.mark.parametrize("version", list(CONTACT_PATHS))
def test_deleted_contact_is_invisible_and_an_upsert_creates_a_new_one(
    api: Api, sandbox: SandboxServer, version: str
) -> None:
    path = CONTACT_PATHS[version]
    old = upsert(api, version, "ada@example.com", firstname="Ada")["id"]

    deleted = call(api, "DELETE", f"{path}/{old}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert call(api, "DELETE", f"{path}/{old}").status_code == 204  # again: still 204
    assert_error(call(api, "GET", f"{path}/{old}"), 404, "OBJECT_NOT_FOUND")
    assert_error(call(api, "GET", f"{path}/ada@example.com?idProperty=email"), 404, "OBJECT_NOT_FOUND")
    assert_error(call(api, "PATCH", f"{path}/{old}", {"properties": {"city": "X"}}), 404, "OBJECT_NOT_FOUND")
    archived = call(api, "GET", f"{path}/{old}?archived=true").json()
    assert archived["archived"] is True and archived["properties"]["firstname"] == "Ada"

    update = call(
        api,
        "POST",
        path + "/batch/update",
        {"inputs": [{"id": old, "properties": {"city": "X"}, "objectWriteTraceId": "t1"}]},
    )
    assert update.status_code == MULTI_STATUS[version]
    assert update.json()["errors"][0]["category"] == "OBJECT_NOT_FOUND"

    again = upsert(api, version, "ada@example.com", city="Paris")
    assert again["new"] is True and again["id"] != old
    assert sandbox.state.contacts[again["id"]]["properties"].get("firstname") is None  # a new record
    events = event_types(sandbox, old)
    assert (events[0], events[-1], events.count("contact.deletion")) == (
        "contact.creation",
        "contact.deletion",
        1,
    )


@pytest.mark.parametrize("version", list(CONTACT_PATHS))
def test_batch_archive(api: Api, sandbox: SandboxServer, version: str) -> None:
    ids = [upsert(api, version, f"p{i}@example.com", firstname="P")["id"] for i in range(3)]
    body = {"inputs": [{"id": ids[0]}, {"id": ids[1]}, {"id": "424242"}]}
    response = call(api, "POST", CONTACT_PATHS[version] + "/batch/archive", body)
    assert response.status_code == 204 and response.content == b""
    assert set(sandbox.state.contacts) == {ids[2]} and set(sandbox.state.archived) == set(ids[:2])
    assert_error(
        call(api, "POST", CONTACT_PATHS[version] + "/batch/archive", {"inputs": [{}]}),
        400,
        "VALIDATION_ERROR",
    )


def test_restore_brings_the_same_record_back_unless_its_email_was_taken(
    api: Api, sandbox: SandboxServer
) -> None:
    path = CONTACT_PATHS["v3"]
    ada = upsert(api, "v3", "ada@example.com", firstname="Ada")["id"]
    bob = upsert(api, "v3", "bob@example.com", firstname="Bob")["id"]
    call(api, "POST", path + "/batch/archive", {"inputs": [{"id": ada}, {"id": bob}]})

    sandbox.state.restore(ada)
    read = call(api, "GET", f"{path}/ada@example.com?idProperty=email").json()
    assert read["id"] == ada and read["archived"] is False and "archivedAt" not in read
    assert read["properties"]["firstname"] == "Ada"
    assert event_types(sandbox, ada)[-2:] == ["contact.deletion", "contact.restore"]

    newer = upsert(api, "v3", "bob@example.com", firstname="Robert")["id"]
    with pytest.raises(RestoreRefused):
        sandbox.state.restore(bob)
    base, headers = api
    refused = requests.post(f"{base}/__sandbox/restore", json={"id": bob}, headers=headers, timeout=5)
    assert refused.status_code == 409
    assert sandbox.state.email_index["bob@example.com"] == newer and bob in sandbox.state.archived
    with pytest.raises(KeyError):
        sandbox.state.restore(ada)  # not deleted


# --- GDPR delete -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", list(CONTACT_PATHS))
def test_gdpr_delete_erases_and_blocklists_the_email(api: Api, sandbox: SandboxServer, version: str) -> None:
    path = CONTACT_PATHS[version]
    ada = upsert(api, version, "ada@example.com", firstname="Ada")["id"]

    erased = call(api, "POST", path + "/gdpr-delete", {"objectId": ada})
    assert erased.status_code == 204 and erased.content == b""
    assert_error(call(api, "GET", f"{path}/{ada}"), 404, "OBJECT_NOT_FOUND")
    assert_error(call(api, "GET", f"{path}/{ada}?archived=true"), 404, "OBJECT_NOT_FOUND")  # not restorable
    assert event_types(sandbox, ada)[-2:] == ["contact.privacyDeletion", "contact.deletion"]

    refused = call(
        api,
        "POST",
        path + "/batch/upsert",
        {
            "inputs": [
                {"idProperty": "email", "id": "ADA@example.com", "properties": {}, "objectWriteTraceId": "a"},
                {"idProperty": "email", "id": "bob@example.com", "properties": {}, "objectWriteTraceId": "b"},
            ]
        },
    )
    assert refused.status_code == MULTI_STATUS[version], refused.text
    (error,) = refused.json()["errors"]
    assert set(error) >= STANDARD_ERROR_REQUIRED and error["category"] == "VALIDATION_ERROR"
    assert error["context"] == {"objectWriteTraceId": ["a"]}
    (problem,) = json.loads(error["message"].removeprefix("Property values were not valid: "))
    assert (problem["name"], problem["error"]) == ("email", "INVALID_EMAIL")
    assert set(sandbox.state.email_index) == {"bob@example.com"}
    created = call(api, "POST", path, {"properties": {"email": "ada@example.com"}})
    assert_error(created, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize("version", list(CONTACT_PATHS))
def test_gdpr_delete_by_email(api: Api, sandbox: SandboxServer, version: str) -> None:
    path = CONTACT_PATHS[version]
    ada = upsert(api, version, "ada@example.com", firstname="Ada")["id"]
    by_email = call(
        api, "POST", path + "/gdpr-delete", {"objectId": "Ada@Example.com", "idProperty": "email"}
    )
    assert by_email.status_code == 204 and ada not in sandbox.state.contacts
    # An address that names no contact is blocklisted all the same.
    unknown = call(
        api, "POST", path + "/gdpr-delete", {"objectId": "never@example.com", "idProperty": "email"}
    )
    assert unknown.status_code == 204
    assert sandbox.state.blocklist == {"ada@example.com", "never@example.com"}
    assert_error(call(api, "POST", path + "/gdpr-delete", {"objectId": "999999"}), 404, "OBJECT_NOT_FOUND")
    assert_error(call(api, "POST", path + "/gdpr-delete", {}), 400, "VALIDATION_ERROR")


# --- merge -------------------------------------------------------------------------------------


def merged_pair(api: Api, version: str) -> tuple[str, str, dict[str, Any]]:
    """Ada (primary) merged with Augusta; returns both old ids and the merge's answer."""
    ada = upsert(api, version, "ada@example.com", firstname="Ada", city="London")["id"]
    augusta = upsert(api, version, "augusta@example.com", firstname="Augusta", company="AE")["id"]
    response = call(
        api, "POST", CONTACT_PATHS[version] + "/merge", {"primaryObjectId": ada, "objectIdToMerge": augusta}
    )
    assert response.status_code == 200, response.text
    return ada, augusta, response.json()


@pytest.mark.parametrize("version", list(CONTACT_PATHS))
def test_merge_gives_a_new_record_that_old_ids_resolve_to(
    api: Api, sandbox: SandboxServer, version: str
) -> None:
    path = CONTACT_PATHS[version]
    ada, augusta, merged = merged_pair(api, version)
    assert set(merged) >= OBJECT_REQUIRED and merged["id"] not in (ada, augusta)
    properties = merged["properties"]
    assert (properties["email"], properties["firstname"]) == ("ada@example.com", "Ada")  # primary wins
    assert (properties["city"], properties["company"]) == ("London", "AE")  # the other fills gaps
    assert properties["hs_additional_emails"] == "augusta@example.com"
    assert set(properties["hs_merged_object_ids"].split(";")) == {ada, augusta}
    assert properties["hs_object_id"] == merged["id"]

    for old in (ada, augusta):
        read = call(api, "GET", f"{path}/{old}")
        assert read.status_code == 200 and read.json()["id"] == merged["id"]
    batch = call(
        api,
        "POST",
        path + "/batch/read",
        {"properties": ["firstname"], "propertiesWithHistory": [], "inputs": [{"id": augusta}]},
    )
    assert batch.status_code == 200 and batch.json()["results"][0]["id"] == merged["id"]
    patched = call(api, "PATCH", f"{path}/{augusta}", {"properties": {"city": "Paris"}})
    assert patched.json()["id"] == merged["id"]
    assert set(sandbox.state.contacts) == {merged["id"]}
    (event,) = [e for e in sandbox.state.events if e["subscriptionType"] == "contact.merge"]
    assert (event["objectId"], event["primaryObjectId"], event["mergedObjectIds"]) == (
        merged["id"],
        ada,
        [augusta],
    )


@pytest.mark.parametrize("version", list(CONTACT_PATHS))
def test_merged_email_is_not_matched_by_default(api: Api, sandbox: SandboxServer, version: str) -> None:
    _, _, merged = merged_pair(api, version)
    missing = read_by_email(api, version, ["augusta@example.com"], ["firstname"])
    assert missing.status_code == MULTI_STATUS[version] and missing.json()["results"] == []
    assert_error(
        call(api, "GET", f"{CONTACT_PATHS[version]}/augusta@example.com?idProperty=email"),
        404,
        "OBJECT_NOT_FOUND",
    )
    duplicate = upsert(api, version, "augusta@example.com", firstname="Again")
    assert duplicate["new"] is True and duplicate["id"] != merged["id"]
    assert len(sandbox.state.contacts) == 2


@pytest.mark.parametrize("version", list(CONTACT_PATHS))
def test_merged_email_matches_the_surviving_record_when_switched_on(
    api: Api, sandbox: SandboxServer, version: str
) -> None:
    base, headers = api
    switched = requests.post(
        f"{base}/__sandbox/config", json={"additional_emails_match": True}, headers=headers, timeout=5
    )
    assert switched.status_code == 200 and switched.json()["additional_emails_match"] is True
    _, _, merged = merged_pair(api, version)
    found = read_by_email(api, version, ["augusta@example.com"], ["firstname"])
    assert found.status_code == 200 and found.json()["results"][0]["id"] == merged["id"]
    landed = upsert(api, version, "augusta@example.com", firstname="Again")
    assert landed["new"] is False and landed["id"] == merged["id"]
    contact = sandbox.state.contacts[merged["id"]]["properties"]
    assert (contact["email"], contact["firstname"]) == ("ada@example.com", "Again")  # primary kept
    assert len(sandbox.state.contacts) == 1
    conflict = call(api, "POST", CONTACT_PATHS[version], {"properties": {"email": "augusta@example.com"}})
    assert_error(conflict, 409, "CONFLICT")


def test_merge_refusals(api: Api) -> None:
    path = CONTACT_PATHS["v3"] + "/merge"
    ada = upsert(api, "v3", "ada@example.com", firstname="Ada")["id"]
    bob = upsert(api, "v3", "bob@example.com", firstname="Bob")["id"]
    assert_error(
        call(api, "POST", path, {"primaryObjectId": ada, "objectIdToMerge": ada}), 400, "VALIDATION_ERROR"
    )
    assert_error(call(api, "POST", path, {"primaryObjectId": ada}), 400, "VALIDATION_ERROR")
    assert_error(
        call(api, "POST", path, {"primaryObjectId": ada, "objectIdToMerge": "999999"}),
        404,
        "OBJECT_NOT_FOUND",
    )
    call(api, "DELETE", f"{CONTACT_PATHS['v3']}/{bob}")
    assert_error(
        call(api, "POST", path, {"primaryObjectId": ada, "objectIdToMerge": bob}), 404, "OBJECT_NOT_FOUND"
    )


def test_merging_a_merged_record_again_keeps_every_old_id_resolving(api: Api) -> None:
    path = CONTACT_PATHS["v3"]
    ada, augusta, first = merged_pair(api, "v3")
    carol = upsert(api, "v3", "carol@example.com", firstname="Carol")["id"]
    second = call(api, "POST", path + "/merge", {"primaryObjectId": carol, "objectIdToMerge": ada}).json()
    assert set(second["properties"]["hs_merged_object_ids"].split(";")) == {ada, augusta, carol, first["id"]}
    assert set(second["properties"]["hs_additional_emails"].split(";")) == {
        "ada@example.com",
        "augusta@example.com",
    }
    for old in (ada, augusta, carol, first["id"]):
        assert call(api, "GET", f"{path}/{old}").json()["id"] == second["id"]
