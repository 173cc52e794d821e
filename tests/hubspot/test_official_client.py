"""HubSpot's official Python client (``hubspot-api-client``) against the sandbox.

A client HubSpot wrote and tests against real HubSpot is the best witness of what HubSpot accepts and
answers: it sends array query parameters exploded, booleans in Python's spelling, and deserializes
answers into models that insist on the spec's required fields. If it works here, the sandbox speaks
HubSpot's dialect and not just the one this project's own client happens to use.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hubspot import HubSpot
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
)

from local.hubspot_sandbox import SandboxServer

ALWAYS_RETURNED = {"hs_object_id", "createdate", "lastmodifieddate"}


@pytest.fixture
def hubspot(sandbox: SandboxServer) -> Any:
    # Every config key the client is built with is set on each API's Configuration; ``host`` there
    # replaces https://api.hubapi.com (setting it on one API object would not stick: the client builds
    # a fresh ApiClient and Configuration on every ``basic_api`` / ``batch_api`` access).
    client = HubSpot(access_token=sandbox.state.add_private_app_token(), host=sandbox.url)
    assert client.crm.contacts.basic_api.api_client.configuration.host == sandbox.url
    return client


def upsert(hubspot: Any, email: str, trace: str | None = None, **properties: str) -> Any:
    batch = BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[
            SimplePublicObjectBatchInputUpsert(
                id=email, id_property="email", object_write_trace_id=trace, properties=properties
            )
        ]
    )
    return hubspot.crm.contacts.batch_api.upsert(batch)


def error_document(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def test_batch_upsert_creates_then_updates(hubspot: Any, sandbox: SandboxServer) -> None:
    created = upsert(hubspot, "Ada@Example.com", firstname="Ada")
    assert created.status == "COMPLETE"
    (first,) = created.results
    assert first.new is True and first.properties["email"] == "ada@example.com"
    updated = upsert(hubspot, "ada@example.com", lastname="Lovelace")
    (second,) = updated.results
    assert second.new is False and second.id == first.id
    assert sandbox.state.contacts[first.id]["properties"]["lastname"] == "Lovelace"


def test_batch_upsert_reports_an_invalid_email_the_way_hubspot_does(hubspot: Any) -> None:
    with pytest.raises(ApiException) as whole:
        upsert(hubspot, "typo@example.com.com", firstname="Typo")
    assert whole.value.status == 400
    assert error_document(whole.value)["category"] == "VALIDATION_ERROR"
    assert "INVALID_EMAIL" in error_document(whole.value)["message"]
    # With a trace id the bad input is one entry of a 207 answer, which the client deserializes too.
    traced = upsert(hubspot, "typo@example.com.com", trace="t-1", firstname="Typo")
    assert traced.num_errors == 1 and traced.results == []
    (error,) = traced.errors
    assert error.context == {"objectWriteTraceId": ["t-1"]} and "INVALID_EMAIL" in error.message


def test_batch_create_through_the_official_models(hubspot: Any) -> None:
    batch = BatchInputSimplePublicObjectBatchInputForCreate(
        inputs=[
            SimplePublicObjectBatchInputForCreate(
                properties={"email": "grace@example.com", "firstname": "Grace"}, associations=[]
            )
        ]
    )
    (record,) = hubspot.crm.contacts.batch_api.create(batch).results
    assert record.properties["email"] == "grace@example.com"
    again = hubspot.crm.contacts.batch_api.create(batch)  # a 207 the client reads as "with errors"
    assert again.num_errors == 1 and again.results == []
    assert again.errors[0].category == "CONFLICT"


def test_read_one_contact_with_several_properties(hubspot: Any) -> None:
    (record,) = upsert(
        hubspot, "ada@example.com", firstname="Ada", lastname="Lovelace", city="London", company="AE"
    ).results
    wanted = ["firstname", "lastname", "city", "email"]
    contact = hubspot.crm.contacts.basic_api.get_by_id(record.id, properties=wanted)
    assert set(contact.properties) == {*wanted, *ALWAYS_RETURNED}
    assert contact.properties["city"] == "London" and contact.properties["email"] == "ada@example.com"
    assert contact.properties_with_history is None and contact.associations is None


def test_read_one_contact_by_email(hubspot: Any) -> None:
    (record,) = upsert(hubspot, "ada@example.com", firstname="Ada", lastname="Lovelace").results
    contact = hubspot.crm.contacts.basic_api.get_by_id(
        "ada@example.com", id_property="email", properties=["firstname", "lastname"]
    )
    assert contact.id == record.id
    assert (contact.properties["firstname"], contact.properties["lastname"]) == ("Ada", "Lovelace")
    with pytest.raises(ApiException) as missing:
        hubspot.crm.contacts.basic_api.get_by_id("nobody@example.com", id_property="email")
    assert missing.value.status == 404 and error_document(missing.value)["category"] == "OBJECT_NOT_FOUND"


def test_read_one_contact_with_history_and_associations(hubspot: Any) -> None:
    (record,) = upsert(hubspot, "ada@example.com", firstname="Ada", city="London").results
    upsert(hubspot, "ada@example.com", firstname="Augusta")
    contact = hubspot.crm.contacts.basic_api.get_by_id(
        record.id,
        properties=["firstname"],
        properties_with_history=["firstname", "city"],
        associations=["companies", "deals"],
        archived=False,
    )
    assert contact.properties["firstname"] == "Augusta"
    history = contact.properties_with_history
    assert set(history) == {"firstname", "city"}
    assert [entry.value for entry in history["firstname"]] == ["Augusta", "Ada"]
    assert all(entry.source_type and entry.timestamp is not None for entry in history["firstname"])
    assert contact.associations == {}


def test_batch_read_by_email(hubspot: Any) -> None:
    upsert(hubspot, "ada@example.com", firstname="Ada", city="London")
    read = BatchReadInputSimplePublicObjectId(
        id_property="email",
        properties=["firstname", "city"],
        properties_with_history=[],
        inputs=[SimplePublicObjectId(id="ada@example.com")],
    )
    (contact,) = hubspot.crm.contacts.batch_api.read(read).results
    assert (contact.properties["firstname"], contact.properties["city"]) == ("Ada", "London")


def test_list_and_read_properties(hubspot: Any) -> None:
    properties = hubspot.crm.properties.core_api

    def names(**query: Any) -> set[str]:
        return {prop.name for prop in properties.get_all("contacts", **query).results}

    assert {"email", "firstname", "lastname", "lifecyclestage", "hs_object_id"} <= names()
    # The client sends archived=False / archived=True: Python's spelling must be understood.
    assert names(archived=False) == names()
    assert names(archived=True) == set()  # nothing is archived
    email = properties.get_by_name("contacts", "email")
    assert (email.type, email.field_type, email.has_unique_value) == ("string", "text", True)
    stage = properties.get_by_name("contacts", "lifecyclestage")
    assert [option.value for option in stage.options] == ["subscriber", "lead", "customer"]
