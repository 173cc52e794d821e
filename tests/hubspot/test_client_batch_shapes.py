"""What batch read and batch update send and how they take HubSpot's answers, in the shapes of
HubSpot's contacts spec (``BatchReadInputSimplePublicObjectId``, ``SimplePublicObjectBatchInput``,
``BatchResponseSimplePublicObject[WithErrors]``, ``StandardError``), including answers the sandbox
does not give: errors naming only ``context.ids``, results without their trace id, a 200 with
errors outside 2026-09, a whole-call 404."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import responses
from hubspot_activation.hubspot.batch import UpdateInput
from hubspot_activation.hubspot.client import HubSpotClient, RetryPolicy, new_session
from hubspot_activation.hubspot.credentials import StaticTokenCredentials
from hubspot_activation.hubspot.errors import ErrorKind, HubSpotError
from hubspot_activation.hubspot.governor import GovernorSettings, RateGovernor
from hubspot_activation.hubspot.versions import ApiVersion

from tests.hubspot.conftest import TokenSecret

BASE = "https://api.example.test"
OBJECTS = {
    ApiVersion.V3: "/crm/v3/objects/contacts",
    ApiVersion.V2026_03: "/crm/objects/2026-03/contacts",
    ApiVersion.V2026_09: "/crm/objects/2026-09/contacts",
}
#: BatchReadInputSimplePublicObjectId's required fields
READ_REQUIRED = {"inputs", "properties", "propertiesWithHistory"}


def build(version: ApiVersion) -> HubSpotClient:
    return HubSpotClient(
        StaticTokenCredentials(TokenSecret({"accessToken": "pat-test"})),
        RateGovernor(GovernorSettings(limit_per_window=100, window_seconds=10, daily_reserve=0)),
        version,
        base_url=BASE,
        session=new_session(),
        retry=RetryPolicy(max_attempts=2, base_backoff_seconds=0.0),
        sleep=lambda _seconds: None,
    )


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mocked:
        yield mocked


def record(contact_id: str, archived: bool = False, **properties: str | None) -> dict[str, Any]:
    """A SimplePublicObject."""
    return {
        "id": contact_id,
        "properties": {"hs_object_id": contact_id, **properties},
        "createdAt": "2026-11-01T10:00:00.000Z",
        "updatedAt": "2026-11-02T10:00:00.000Z",
        "archived": archived,
    }


def standard_error(category: str, message: str, **context: list[str]) -> dict[str, Any]:
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": context,
        "errors": [],
        "links": {},
    }


def batch(results: list[dict[str, Any]], errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": "2026-12-01T10:00:00.000Z",
        "completedAt": "2026-12-01T10:00:00.100Z",
    }
    if errors:
        body.update(numErrors=len(errors), errors=errors)
    return body


NOT_FOUND = "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid."


def sent(mock: responses.RequestsMock, index: int = 0) -> tuple[str, dict[str, Any]]:
    call = mock.calls[index]
    body = call.request.body
    assert body is not None
    return str(call.request.url), json.loads(body)


# --- batch read ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", list(ApiVersion))
def test_read_by_email_sends_the_documented_body_and_archived_false(
    mock: responses.RequestsMock, version: ApiVersion
) -> None:
    mock.post(BASE + OBJECTS[version] + "/batch/read", json=batch([record("1", email="a@example.com")]))
    build(version).batch_read(["a@example.com"], ["email", "aud_x"], id_property="email")
    url, body = sent(mock)
    assert url.endswith("/batch/read?archived=false")
    assert set(body) == READ_REQUIRED | {"idProperty"}
    assert body == {
        "inputs": [{"id": "a@example.com"}],
        "properties": ["email", "aud_x"],
        "propertiesWithHistory": [],
        "idProperty": "email",
    }


def test_read_by_id_sends_no_id_property_and_archived_true_when_asked(mock: responses.RequestsMock) -> None:
    mock.post(BASE + OBJECTS[ApiVersion.V3] + "/batch/read", json=batch([]))
    build(ApiVersion.V3).batch_read(["11", "12"], ["email"], archived=True)
    url, body = sent(mock)
    assert url.endswith("?archived=true")
    assert set(body) == READ_REQUIRED and body["inputs"] == [{"id": "11"}, {"id": "12"}]


@pytest.mark.parametrize("status", [207, 200], ids=["multi-status", "200-with-errors"])
def test_a_read_with_missing_keys_is_taken_alike_as_207_and_as_200(
    mock: responses.RequestsMock, status: int
) -> None:
    answer = batch(
        [record("11", email="a@example.com"), record("13", email="c@example.com")],
        [standard_error("OBJECT_NOT_FOUND", NOT_FOUND, ids=["12", "14"])],
    )
    mock.post(BASE + OBJECTS[ApiVersion.V3] + "/batch/read", json=answer, status=status)
    outcome = build(ApiVersion.V3).batch_read(["11", "12", "13", "14"], ["email"])
    assert [(r.id, r.properties["email"]) for r in outcome.records] == [
        ("11", "a@example.com"),
        ("13", "c@example.com"),
    ]
    assert outcome.missing == ["12", "14"] and outcome.failed == {}


def test_missing_emails_are_reported_as_they_were_asked(mock: responses.RequestsMock) -> None:
    answer = batch([], [standard_error("OBJECT_NOT_FOUND", NOT_FOUND, ids=["ada@example.com"])])
    mock.post(BASE + OBJECTS[ApiVersion.V2026_09] + "/batch/read", json=answer)
    outcome = build(ApiVersion.V2026_09).batch_read(["Ada@Example.com"], ["email"], id_property="email")
    assert outcome.missing == ["Ada@Example.com"]


def test_empty_values_archived_records_and_other_errors_are_kept_apart(mock: responses.RequestsMock) -> None:
    answer = batch(
        [record("11", archived=True, email="a@example.com", aud_x=None)],
        [standard_error("VALIDATION_ERROR", "something else went wrong", ids=["12"])],
    )
    mock.post(BASE + OBJECTS[ApiVersion.V3] + "/batch/read", json=answer, status=207)
    outcome = build(ApiVersion.V3).batch_read(["11", "12"], ["email", "aud_x"], archived=True)
    (found,) = outcome.records
    assert found.archived and found.properties["aud_x"] is None
    assert outcome.missing == [] and list(outcome.failed) == ["12"]
    assert outcome.failed["12"].kind is ErrorKind.PERMANENT and not outcome.failed["12"].not_found


def test_a_failed_read_is_retried_and_then_raised(mock: responses.RequestsMock) -> None:
    mock.post(BASE + OBJECTS[ApiVersion.V3] + "/batch/read", json={"message": "boom"}, status=502)
    client = build(ApiVersion.V3)
    with pytest.raises(HubSpotError) as raised:
        client.batch_read(["11"], ["email"])
    assert raised.value.kind is ErrorKind.RETRYABLE and client.requests_sent == 2 == len(mock.calls)


# --- batch update --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", list(ApiVersion))
def test_update_sends_record_ids_with_trace_ids_and_no_id_property(
    mock: responses.RequestsMock, version: ApiVersion
) -> None:
    mock.post(BASE + OBJECTS[version] + "/batch/update", json=batch([]))
    build(version).batch_update([UpdateInput("11", "a@example.com", {"aud_x": "true"})])
    _url, body = sent(mock)
    (item,) = body["inputs"]
    assert set(item) == {"id", "properties", "objectWriteTraceId"}
    assert (item["id"], item["properties"]) == ("11", {"aud_x": "true"})


def test_update_answers_without_trace_ids_are_matched_by_record_id(mock: responses.RequestsMock) -> None:
    answer = batch(
        [record("11", aud_x="true")],
        [standard_error("OBJECT_NOT_FOUND", NOT_FOUND, ids=["12"])],
    )
    mock.post(BASE + OBJECTS[ApiVersion.V3] + "/batch/update", json=answer, status=207)
    results = build(ApiVersion.V3).batch_update(
        [
            UpdateInput("12", "gone@example.com", {"aud_x": "true"}),
            UpdateInput("11", "kept@example.com", {"aud_x": "true"}),
            UpdateInput("13", "lost@example.com", {"aud_x": "true"}),
        ]
    )
    gone, kept, lost = results
    assert kept.ok and kept.contact_id == "11" and kept.email == "kept@example.com"
    assert gone.error is not None and gone.error.not_found and gone.error.kind is ErrorKind.PERMANENT
    assert gone.email == "gone@example.com"
    # Neither a result nor an error: its fate is unknown.
    assert lost.error is not None and lost.error.kind is ErrorKind.RETRYABLE and lost.error.ambiguous


def test_a_whole_call_404_on_update_raises_rather_than_marking_every_record_missing(
    mock: responses.RequestsMock,
) -> None:
    mock.post(
        BASE + OBJECTS[ApiVersion.V3] + "/batch/update",
        json={"status": "error", "category": "OBJECT_NOT_FOUND", "message": "resource not found"},
        status=404,
    )
    client = build(ApiVersion.V3)
    with pytest.raises(HubSpotError) as raised:
        client.batch_update(
            [UpdateInput("11", "a@example.com", {"x": "1"}), UpdateInput("12", "b@example.com", {"x": "1"})]
        )
    assert raised.value.status == 404 and len(mock.calls) == 1
