"""Batch upsert against the sandbox over real HTTP, for every API version."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hubspot_activation.hubspot.client import HubSpotClient, UpsertInput
from hubspot_activation.hubspot.errors import ErrorKind

from local.hubspot_sandbox import SandboxServer


def contact(sandbox: SandboxServer, email: str) -> dict[str, str]:
    contact_id = sandbox.state.email_index[email]
    return dict(sandbox.state.contacts[contact_id]["properties"])


def test_fresh_batch_of_100_is_one_request_and_creates_everyone(
    client: HubSpotClient, sandbox: SandboxServer
) -> None:
    inputs = [
        UpsertInput(f"user{i}@example.com", {"firstname": f"User {i}", "city": "Paris"}) for i in range(100)
    ]
    results = client.batch_upsert(inputs)
    assert client.requests_sent == 1
    assert [r.email for r in results] == [i.email for i in inputs]
    assert all(r.ok and r.created for r in results)
    assert len({r.contact_id for r in results}) == 100
    assert contact(sandbox, "user42@example.com")["firstname"] == "User 42"


def test_second_upsert_updates_the_same_contact_and_email_is_case_insensitive(
    client: HubSpotClient, sandbox: SandboxServer
) -> None:
    (first,) = client.batch_upsert([UpsertInput("Ada@Example.com", {"firstname": "Ada"})])
    (second,) = client.batch_upsert([UpsertInput("ada@example.com", {"lastname": "Lovelace"})])
    assert first.created is True and second.created is False
    assert first.contact_id == second.contact_id
    stored = contact(sandbox, "ada@example.com")
    assert (stored["email"], stored["firstname"], stored["lastname"]) == (
        "ada@example.com",
        "Ada",
        "Lovelace",
    )


def test_per_input_errors_are_mapped_back_and_the_rest_is_written(
    client: HubSpotClient, sandbox: SandboxServer
) -> None:
    sandbox.state.properties["score"] = {
        **sandbox.state.properties["firstname"],
        "name": "score",
        "type": "number",
        "fieldType": "number",
        "hubspotDefined": False,
    }
    inputs = [
        UpsertInput("good@example.com", {"firstname": "Good"}),
        UpsertInput("not-an-email", {"firstname": "Bad"}),
        UpsertInput("unknown@example.com", {"favourite_colour": "blue"}),
        UpsertInput("option@example.com", {"lifecyclestage": "astronaut"}),
        UpsertInput("number@example.com", {"score": "lots"}),
        UpsertInput("readonly@example.com", {"hs_object_id": "5"}),
        UpsertInput("long@example.com", {"city": "x" * 70_000}),
        UpsertInput("fine@example.com", {"score": "12.5", "lifecyclestage": "lead"}),
    ]
    results = {r.email: r for r in client.batch_upsert(inputs)}
    assert client.requests_sent == 1
    assert results["good@example.com"].ok and results["fine@example.com"].ok
    codes = {email: [d["error"] for d in r.property_errors] for email, r in results.items() if not r.ok}
    assert codes == {
        "not-an-email": ["INVALID_EMAIL"],
        "unknown@example.com": ["PROPERTY_DOESNT_EXIST"],
        "option@example.com": ["INVALID_OPTION"],
        "number@example.com": ["INVALID_INTEGER"],
        "readonly@example.com": ["READ_ONLY_VALUE"],
        "long@example.com": ["VALUE_TOO_LONG"],
    }
    assert all(
        r.error is not None and r.error.kind is ErrorKind.PERMANENT for r in results.values() if not r.ok
    )
    assert set(sandbox.state.email_index) == {"good@example.com", "fine@example.com"}


def test_whole_batch_400_is_bisected_to_isolate_the_bad_inputs(
    make_client: Callable[..., HubSpotClient], sandbox: SandboxServer
) -> None:
    client = make_client()
    sandbox.state.config.per_input_errors = False
    inputs = [UpsertInput(f"u{i}@example.com", {"firstname": "x"}) for i in range(16)]
    inputs[3] = UpsertInput("u3@example.com", {"nope": "x"})
    inputs[12] = UpsertInput("u12@example.com", {"lifecyclestage": "astronaut"})
    results = client.batch_upsert(inputs)
    assert [r.email for r in results if not r.ok] == ["u3@example.com", "u12@example.com"]
    assert len(sandbox.state.email_index) == 14
    # 1 whole + 2 halves + 4 quarters + 4 eighths + 4 singles: far fewer than one call per input
    assert client.requests_sent <= 2 * 2 * 4 + 1


def test_inputs_missing_from_a_2xx_answer_are_transient_failures(
    make_client: Callable[..., HubSpotClient], sandbox: SandboxServer
) -> None:
    client = make_client()
    sandbox.state.config.omit_results = 2
    results = client.batch_upsert([UpsertInput(f"m{i}@example.com", {"city": "x"}) for i in range(5)])
    missing = [r for r in results if not r.ok]
    assert len(missing) == 2
    assert all(r.error is not None and r.error.kind is ErrorKind.RETRYABLE for r in missing)


def test_batch_rules_are_checked_before_sending(client: HubSpotClient) -> None:
    with pytest.raises(ValueError, match="at most 100"):
        client.batch_upsert([UpsertInput(f"u{i}@example.com", {}) for i in range(101)])
    with pytest.raises(ValueError, match="distinct"):
        client.batch_upsert([UpsertInput("a@example.com", {}), UpsertInput("a@example.com", {})])
    assert client.requests_sent == 0


@pytest.mark.parametrize("per_input_errors", [True, False], ids=["per-input", "whole-batch-400"])
def test_a_validation_rule_refusal_names_its_property_and_reason(
    client: HubSpotClient, sandbox: SandboxServer, per_input_errors: bool
) -> None:
    sandbox.state.config.per_input_errors = per_input_errors
    sandbox.state.validation_rules["phone"] = {
        "MAX_LENGTH": {"ruleType": "MAX_LENGTH", "ruleArguments": ["5"], "shouldApplyNormalization": False}
    }
    results = client.batch_upsert(
        [
            UpsertInput("ada@example.com", {"firstname": "Ada", "phone": "0123456789"}),
            UpsertInput("bob@example.com", {"firstname": "Bob", "phone": "01234"}),
        ]
    )
    assert [r.ok for r in results] == [False, True]
    assert results[0].property_errors == [
        {
            "name": "phone",
            "error": "MAX_LENGTH",
            "message": 'Property "phone" value is longer than 5 characters',
        }
    ]
    assert contact(sandbox, "bob@example.com")["phone"] == "01234"
