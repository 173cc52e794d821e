"""HubSpot's own validation rules meeting the sync on the local stack (API version 2026-09): a
value a rule refuses fails that field of that contact alone, the operator routes show it, an
unchanged re-send costs no call, and a replay after the administrator's fix writes it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from local import stack as local_stack
from tests.e2e.test_operations import answer, drain, post, sandbox_contact

PATTERN = r"\+[0-9 ]{6,}"


@pytest.fixture
def stack() -> Iterator[local_stack.LocalStack]:
    started = local_stack.start()
    yield started
    started.stop()


def test_a_refused_value_fails_its_field_alone_and_a_replay_after_the_fix_writes_it(
    stack: local_stack.LocalStack,
) -> None:
    assert stack.sandbox is not None
    sandbox = stack.sandbox
    token = sandbox.state.add_private_app_token()
    rule = requests.put(
        f"{sandbox.url}/crm/property-validations/2026-09/0-1/phone/rule-type/REGEX",
        json={"ruleArguments": [PATTERN]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert rule.status_code == 204, rule.text
    profiles = [
        {"email": "ada@example.com", "attributes": {"firstname": "Ada", "phone": "+44 20 7946 0000"}},
        {"email": "bob@example.com", "attributes": {"firstname": "Bob", "phone": "call me"}},
        {"email": "cy@example.com", "attributes": {"firstname": "Cy", "phone": "+33 1 40 00 00 00"}},
    ]
    post(stack, *profiles)
    drain(stack)
    assert sandbox_contact(stack, "ada@example.com")["phone"] == "+44 20 7946 0000"
    assert sandbox_contact(stack, "cy@example.com")["phone"] == "+33 1 40 00 00 00"
    bob = sandbox_contact(stack, "bob@example.com")
    assert bob["firstname"] == "Bob" and "phone" not in bob

    reason = (
        'attribute phone: HubSpot refused the value (REGEX: Property "phone" value does not match the '
        f"pattern {PATTERN})"
    )
    failed = answer(stack, "GET", "/sync/issues?status=failed")["items"]
    assert [(item["email"], item["reason"]) for item in failed] == [("bob@example.com", reason)]
    view = answer(stack, "GET", "/contacts/bob@example.com")
    assert view["status"] == "failed" and view["lastError"] == reason
    assert view["pending"]["attributes"] == {"phone": "call me"}

    # The source sends the same profile again: nothing to write, no call.
    upserts = sandbox.state.requests["POST batch_upsert"]
    post(stack, profiles[1])
    drain(stack)
    assert sandbox.state.requests["POST batch_upsert"] == upserts
    assert answer(stack, "GET", "/contacts/bob@example.com")["lastError"] == reason

    # The administrator removes the rule in HubSpot's settings; the operator replays.
    assert requests.delete(f"{sandbox.url}/__sandbox/property-validations/phone/REGEX", timeout=10).ok
    replayed = answer(stack, "POST", "/replay", {})
    assert replayed["failedContacts"]["count"] == 1
    drain(stack)
    assert sandbox_contact(stack, "bob@example.com")["phone"] == "call me"
    assert answer(stack, "GET", "/sync/issues?status=failed")["items"] == []
    view = answer(stack, "GET", "/contacts/bob@example.com")
    assert view["status"] == "synced" and view["pending"]["attributes"] == {}
