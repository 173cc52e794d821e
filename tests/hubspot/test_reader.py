"""Reconcile's reader: contacts by email and by record id against the sandbox, for every API
version, and the answers only a mocked HubSpot gives (records that match no key)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import responses
from hubspot_activation.hubspot.batch import UpsertInput
from hubspot_activation.hubspot.client import HubSpotClient
from hubspot_activation.hubspot.errors import ErrorKind, HubSpotError
from hubspot_activation.hubspot.reader import HubSpotContactReader
from hubspot_activation.hubspot.versions import ApiVersion
from hubspot_activation.reconcile.ports import HubSpotReader

from local.hubspot_sandbox import SandboxServer
from tests.hubspot.test_client_batch_shapes import (
    BASE,
    NOT_FOUND,
    OBJECTS,
    batch,
    build,
    record,
    standard_error,
)


def seed(client: HubSpotClient, **cities: str) -> dict[str, str]:
    """Contacts ``email=city``; their record ids by email."""
    results = client.batch_upsert([UpsertInput(email, {"city": city}) for email, city in cities.items()])
    return {r.email: str(r.contact_id) for r in results}


def reader_for(client: HubSpotClient) -> HubSpotReader:
    reader: HubSpotReader = HubSpotContactReader(client)
    return reader


def test_by_email_keys_by_the_lower_cased_email_and_leaves_out_the_missing(client: HubSpotClient) -> None:
    ids = seed(client, **{"ada@example.com": "Paris", "bob@example.com": "Oslo"})
    before = client.requests_sent
    found = reader_for(client).by_email(
        ["Ada@Example.COM", "nobody@example.com", "bob@example.com", "ada@example.com"], ["city"]
    )
    assert client.requests_sent == before + 1
    assert sorted(found) == ["ada@example.com", "bob@example.com"]
    ada = found["ada@example.com"]
    assert (ada.id, ada.email, ada.properties["city"], ada.archived) == (
        ids["ada@example.com"],
        "ada@example.com",
        "Paris",
        False,
    )
    # the identity properties come along whatever was asked
    assert ada.properties["email"] == "ada@example.com"


def test_by_email_reads_only_live_contacts(client: HubSpotClient, sandbox: SandboxServer) -> None:
    ids = seed(client, **{"gone@example.com": "Rome"})
    sandbox.state.archive(ids["gone@example.com"])
    assert reader_for(client).by_email(["gone@example.com"], ["city"]) == {}


def test_by_id_keys_merged_away_ids_by_the_id_asked_with_the_survivor_record(
    client: HubSpotClient, sandbox: SandboxServer
) -> None:
    ids = seed(client, **{"one@example.com": "Lima", "two@example.com": "Quito", "three@example.com": "Oslo"})
    one, two, three = (ids[f"{n}@example.com"] for n in ("one", "two", "three"))
    survivor = sandbox.state.merge(one, two)
    before = client.requests_sent
    found = reader_for(client).by_id([three, two, "424242", one, survivor], ["city"], archived=False)
    assert client.requests_sent == before + 1
    assert sorted(found) == sorted([one, two, three, survivor])
    assert {found[key].id for key in (one, two, survivor)} == {survivor}
    assert found[one].merged_ids == {one, two}
    assert found[one].properties["city"] == "Lima"  # the primary's value won
    assert found[three].id == three


def test_a_merge_of_a_merged_record_still_keys_every_retired_id(
    client: HubSpotClient, sandbox: SandboxServer
) -> None:
    ids = seed(client, **{"a@example.com": "x", "b@example.com": "y", "c@example.com": "z"})
    first = sandbox.state.merge(ids["a@example.com"], ids["b@example.com"])
    last = sandbox.state.merge(first, ids["c@example.com"])
    found = reader_for(client).by_id(list(ids.values()), [], archived=False)
    assert {key: record.id for key, record in found.items()} == dict.fromkeys(ids.values(), last)


def test_by_id_with_archived_answers_only_archived_contacts(
    client: HubSpotClient, sandbox: SandboxServer
) -> None:
    ids = seed(client, **{"live@example.com": "a", "gone@example.com": "b", "erased@example.com": "c"})
    live, gone, erased = ids["live@example.com"], ids["gone@example.com"], ids["erased@example.com"]
    sandbox.state.archive(gone)
    sandbox.state.erase(erased)
    reader = reader_for(client)
    archived = reader.by_id([live, gone, erased], ["city"], archived=True)
    assert list(archived) == [gone] and archived[gone].archived and archived[gone].properties["city"] == "b"
    current = reader.by_id([live, gone, erased], ["city"], archived=False)
    assert list(current) == [live] and not current[live].archived


def test_an_additional_email_finds_the_survivor_when_hubspot_matches_it(
    make_client: Callable[..., HubSpotClient], sandbox: SandboxServer
) -> None:
    client = make_client()
    sandbox.state.config.additional_emails_match = True
    ids = seed(client, **{"main@example.com": "a", "old@example.com": "b"})
    survivor = sandbox.state.merge(ids["main@example.com"], ids["old@example.com"])
    found = reader_for(client).by_email(["old@example.com", "main@example.com"], [])
    assert {key: r.id for key, r in found.items()} == {
        "old@example.com": survivor,
        "main@example.com": survivor,
    }
    assert found["old@example.com"].email == "main@example.com"


def test_nothing_asked_makes_no_call(client: HubSpotClient) -> None:
    reader = reader_for(client)
    assert reader.by_email([], ["city"]) == {} and reader.by_id([], ["city"], archived=True) == {}
    assert client.requests_sent == 0


# --- answers only a mocked HubSpot gives ---------------------------------------------------------


def mocked_read(mock: responses.RequestsMock, answer: dict[str, object], status: int = 207) -> HubSpotReader:
    mock.post(BASE + OBJECTS[ApiVersion.V3] + "/batch/read", json=answer, status=status)
    return reader_for(build(ApiVersion.V3))


def test_one_record_matching_no_key_answers_for_the_one_key_left_unexplained() -> None:
    with responses.RequestsMock() as mock:
        answer = batch(
            [record("90", email="s@example.com"), record("11", email="a@example.com")],
            [standard_error("OBJECT_NOT_FOUND", NOT_FOUND, ids=["12"])],
        )
        found = mocked_read(mock, answer).by_id(["11", "12", "13"], ["email"], archived=False)
    assert {key: r.id for key, r in found.items()} == {"11": "11", "13": "90"}


def test_records_that_cannot_be_told_apart_raise_rather_than_lose_contacts() -> None:
    with responses.RequestsMock() as mock:
        answer = batch([record("90"), record("91")])
        reader = mocked_read(mock, answer, status=200)
        with pytest.raises(HubSpotError) as raised:
            reader.by_id(["11", "12"], ["email"], archived=False)
    assert raised.value.kind is ErrorKind.PERMANENT and "0 of 2" in raised.value.message


def test_a_key_hubspot_reports_another_error_for_fails_the_read() -> None:
    with responses.RequestsMock() as mock:
        answer = batch(
            [record("11", email="a@example.com")],
            [standard_error("VALIDATION_ERROR", "Invalid id", ids=["b@example.com"])],
        )
        reader = mocked_read(mock, answer)
        with pytest.raises(HubSpotError) as raised:
            reader.by_email(["a@example.com", "B@example.com"], [])
    assert raised.value.category == "VALIDATION_ERROR"
