"""The sandbox's Lists API answers as HubSpot's Lists specs (v3, 2026-03, 2026-09) describe it: the
paths, the request bodies it takes and refuses, the status codes, and the required fields of each
answer, checked with plain `requests` calls (a client this project did not write). The field sets
below are the specs' ``required`` lists, copied by hand."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from local.hubspot_sandbox import SandboxServer

LISTS = {"v3": "/crm/v3/lists", "2026-03": "/crm/lists/2026-03", "2026-09": "/crm/lists/2026-09"}
UPSERT = {
    "v3": "/crm/v3/objects/contacts/batch/upsert",
    "2026-03": "/crm/objects/2026-03/contacts/batch/upsert",
    "2026-09": "/crm/objects/2026-09/contacts/batch/upsert",
}
#: PublicObjectList
LIST_REQUIRED = {"listId", "listVersion", "name", "objectTypeId", "processingStatus", "processingType"}
#: MembershipsUpdateResponse (the specs' spelling, "recordsIdsAdded", is HubSpot's own)
MEMBERSHIPS_UPDATE_REQUIRED = {"recordIdsMissing", "recordIdsRemoved", "recordsIdsAdded"}
#: BatchResponseRecordIdWithMemberships
BATCH_REQUIRED = {"completedAt", "results", "startedAt", "status"}
#: RecordIdWithMemberships
RECORD_REQUIRED = {"objectTypeId", "recordId", "recordListMemberships"}
#: RecordListMembership in 2026-03 and 2026-09 (v3 requires only listId and listVersion)
MEMBERSHIP_REQUIRED = {"firstAddedTimestamp", "lastAddedTimestamp", "listId", "listVersion"}
STANDARD_ERROR_REQUIRED = {"category", "context", "errors", "links", "message", "status"}
ERROR_REQUIRED = {"category", "correlationId", "message"}
MULTI_STATUS = {"v3": 207, "2026-03": 207, "2026-09": 200}

Api = tuple[str, dict[str, str]]


@pytest.fixture
def api(sandbox: SandboxServer) -> Api:
    return sandbox.url, {
        "Authorization": f"Bearer {sandbox.state.add_private_app_token()}",
        "Content-Type": "application/json",
    }


def call(api: Api, method: str, path: str, body: Any = None, **params: str) -> requests.Response:
    base, headers = api
    return requests.request(method, base + path, json=body, params=params, headers=headers, timeout=5)


def create(api: Api, version: str, name: str) -> dict[str, Any]:
    body = {"name": name, "objectTypeId": "0-1", "processingType": "MANUAL"}
    response = call(api, "POST", LISTS[version], body)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"list"}
    found: dict[str, Any] = response.json()["list"]
    return found


def contact_ids(api: Api, version: str, *emails: str) -> list[str]:
    body = {"inputs": [{"idProperty": "email", "id": email, "properties": {}} for email in emails]}
    response = call(api, "POST", UPSERT[version], body)
    assert response.status_code == 200, response.text
    return [str(result["id"]) for result in response.json()["results"]]


@pytest.mark.parametrize("version", list(LISTS))
def test_create_read_rename_delete_restore(api: Api, version: str) -> None:
    made = create(api, version, "Summer Buyers")
    assert set(made) >= LIST_REQUIRED and isinstance(made["listId"], str)
    assert (made["objectTypeId"], made["processingType"], made["size"]) == ("0-1", "MANUAL", 0)
    one = f"{LISTS[version]}/{made['listId']}"
    assert call(api, "GET", one).json() == {"list": made}
    by_name = call(api, "GET", f"{LISTS[version]}/object-type-id/0-1/name/summer%20buyers")
    assert by_name.status_code == 200 and by_name.json() == {"list": made}
    renamed = call(api, "PUT", one + "/update-list-name", listName="Winter Buyers")
    assert renamed.status_code == 200 and set(renamed.json()) == {"updatedList"}
    assert set(renamed.json()["updatedList"]) >= LIST_REQUIRED
    assert renamed.json()["updatedList"]["name"] == "Winter Buyers"
    deleted = call(api, "DELETE", one)
    assert deleted.status_code == 204 and deleted.content == b""
    for method, path in (("GET", one), ("DELETE", one), ("PUT", one + "/update-list-name?listName=X")):
        gone = call(api, method, path)
        assert gone.status_code == 404 and set(gone.json()) >= ERROR_REQUIRED
        assert gone.json()["category"] == "OBJECT_NOT_FOUND"
    restored = call(api, "PUT", one + "/restore")
    assert restored.status_code == 204 and restored.content == b""
    assert call(api, "GET", one).json()["list"]["name"] == "Winter Buyers"
    assert call(api, "PUT", one + "/restore").status_code == 400  # not deleted


@pytest.mark.parametrize("version", list(LISTS))
def test_duplicate_names_answer_400_ils_duplicate_list_names(api: Api, version: str) -> None:
    create(api, version, "Buyers")
    other = create(api, version, "Fans")
    body = {"name": "BUYERS", "objectTypeId": "0-1", "processingType": "MANUAL"}
    for response in (
        call(api, "POST", LISTS[version], body),
        call(api, "PUT", f"{LISTS[version]}/{other['listId']}/update-list-name", listName="buyers"),
    ):
        assert response.status_code == 400
        document = response.json()
        assert set(document) >= ERROR_REQUIRED and document["category"] == "VALIDATION_ERROR"
        assert document["subCategory"] == "ILS.DUPLICATE_LIST_NAMES"


def test_request_shapes_the_spec_requires(api: Api) -> None:
    for missing in ("name", "objectTypeId", "processingType"):
        body = {"name": "Buyers", "objectTypeId": "0-1", "processingType": "MANUAL"}
        del body[missing]
        assert call(api, "POST", LISTS["v3"], body).status_code == 400
    made = create(api, "v3", "Buyers")
    assert call(api, "PUT", f"{LISTS['v3']}/{made['listId']}/update-list-name").status_code == 400
    change = f"{LISTS['v3']}/{made['listId']}/memberships/add-and-remove"
    assert call(api, "PUT", change, {"recordIdsToAdd": []}).status_code == 400  # both arrays required
    assert call(api, "PUT", change, {"recordIdsToAdd": [1], "recordIdsToRemove": []}).status_code == 400
    assert call(api, "PUT", change, {"recordIdsToAdd": ["1"], "recordIdsToRemove": ["1"]}).status_code == 400
    read = LISTS["v3"] + "/records/memberships/batch/read"
    assert call(api, "POST", read, {"inputs": [{"recordId": "1"}]}).status_code == 400
    too_many = {"inputs": [{"objectTypeId": "0-1", "recordId": str(i)} for i in range(101)]}
    assert call(api, "POST", read, too_many).status_code == 400


@pytest.mark.parametrize("version", list(LISTS))
def test_add_and_remove_answers_the_specs_field_names(api: Api, version: str) -> None:
    ada, bob = contact_ids(api, version, "ada@example.com", "bob@example.com")
    made = create(api, version, "Buyers")
    change = f"{LISTS[version]}/{made['listId']}/memberships/add-and-remove"
    added = call(api, "PUT", change, {"recordIdsToAdd": [ada, bob, "424242"], "recordIdsToRemove": []})
    assert added.status_code == 200
    assert added.json() == {
        "recordsIdsAdded": [ada, bob],
        "recordIdsRemoved": [],
        "recordIdsMissing": ["424242"],
    }
    removed = call(api, "PUT", change, {"recordIdsToAdd": [], "recordIdsToRemove": [bob, "434343"]})
    assert set(removed.json()) == MEMBERSHIPS_UPDATE_REQUIRED
    assert (removed.json()["recordIdsRemoved"], removed.json()["recordIdsMissing"]) == ([bob], ["434343"])
    assert call(api, "GET", f"{LISTS[version]}/{made['listId']}").json()["list"]["size"] == 1


@pytest.mark.parametrize("version", list(LISTS))
def test_memberships_batch_read_with_and_without_errors(api: Api, version: str) -> None:
    (ada,) = contact_ids(api, version, "ada@example.com")
    made = create(api, version, "Buyers")
    change = f"{LISTS[version]}/{made['listId']}/memberships/add-and-remove"
    call(api, "PUT", change, {"recordIdsToAdd": [ada], "recordIdsToRemove": []})
    read = LISTS[version] + "/records/memberships/batch/read"
    found = call(api, "POST", read, {"inputs": [{"objectTypeId": "0-1", "recordId": ada}]})
    assert found.status_code == 200 and set(found.json()) >= BATCH_REQUIRED
    (record,) = found.json()["results"]
    assert set(record) >= RECORD_REQUIRED and record["recordId"] == ada
    (membership,) = record["recordListMemberships"]
    assert set(membership) >= MEMBERSHIP_REQUIRED and membership["listId"] == made["listId"]
    partial = call(
        api,
        "POST",
        read,
        {"inputs": [{"objectTypeId": "0-1", "recordId": ada}, {"objectTypeId": "0-1", "recordId": "424242"}]},
    )
    assert partial.status_code == MULTI_STATUS[version]
    document = partial.json()
    assert document["numErrors"] == 1 and len(document["results"]) == 1
    (error,) = document["errors"]
    assert set(error) >= STANDARD_ERROR_REQUIRED and error["category"] == "OBJECT_NOT_FOUND"
    assert error["context"]["ids"] == ["424242"]


def test_list_scopes(sandbox: SandboxServer) -> None:
    def answer(scopes: set[str], method: str, path: str, body: Any = None) -> requests.Response:
        token = sandbox.state.add_private_app_token(frozenset(scopes))
        headers = {"Authorization": f"Bearer {token}"}
        return requests.request(method, sandbox.url + path, json=body, headers=headers, timeout=5)

    body = {"name": "Buyers", "objectTypeId": "0-1", "processingType": "MANUAL"}
    made = answer({"crm.lists.write"}, "POST", LISTS["v3"], body)
    assert made.status_code == 200
    one = f"{LISTS['v3']}/{made.json()['list']['listId']}"
    refused = answer({"crm.lists.write"}, "DELETE", one)
    assert refused.status_code == 403 and refused.json()["category"] == "MISSING_SCOPES"
    assert refused.json()["errors"][0]["context"]["requiredGranularScopes"] == [
        "crm.lists.read",
        "crm.lists.write",
    ]
    assert answer({"crm.objects.contacts.write"}, "GET", one).status_code == 403
    assert answer({"crm.lists.read"}, "GET", one).status_code == 200
    assert answer({"crm.lists.read", "crm.lists.write"}, "DELETE", one).status_code == 204


def test_sandbox_hooks_delete_a_list_as_a_person_does_and_read_members(
    api: Api, sandbox: SandboxServer
) -> None:
    (ada,) = contact_ids(api, "v3", "ada@example.com")
    made = create(api, "v3", "Buyers")
    call(
        api,
        "PUT",
        f"{LISTS['v3']}/{made['listId']}/memberships/add-and-remove",
        {"recordIdsToAdd": [ada], "recordIdsToRemove": []},
    )
    hooks = sandbox.url + "/__sandbox/lists"
    assert requests.get(f"{hooks}/{made['listId']}/members", timeout=5).json() == {
        "listId": made["listId"],
        "members": [ada],
    }
    calls = dict(sandbox.state.requests)
    assert requests.delete(f"{hooks}/{made['listId']}", timeout=5).status_code == 200
    assert dict(sandbox.state.requests) == calls  # a person's act is not an API call
    assert call(api, "GET", f"{LISTS['v3']}/{made['listId']}").status_code == 404
    (summary,) = requests.get(hooks, timeout=5).json()["lists"]
    assert summary["deletedAt"] and summary["members"] == [ada]
    assert requests.delete(f"{hooks}/{made['listId']}", timeout=5).status_code == 404
    assert requests.get(f"{hooks}/99999/members", timeout=5).status_code == 404
