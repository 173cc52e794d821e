"""Field rules on the local stack deployed with a ``FieldRules`` parameter: the flush handler
writes a ``fill_empty`` property only where HubSpot holds nothing, reading HubSpot once for the
call, and never writes a ``never`` property."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from local import stack as local_stack
from tests.e2e.test_local_stack import contact, ledger, past_the_deduplication_window, post, profile

RULES = {"city": "fill_empty", "company": "never"}


@pytest.fixture
def stack() -> Iterator[local_stack.LocalStack]:
    started = local_stack.start(parameters={"FieldRules": json.dumps(RULES)})
    yield started
    started.stop()


def seed(stack: local_stack.LocalStack, email: str, **properties: str) -> None:
    """A contact a salesperson created in HubSpot, through its API: the connector knows nothing of it."""
    assert stack.sandbox is not None
    token = stack.sandbox.state.add_private_app_token()
    response = requests.post(
        f"{stack.sandbox.url}/crm/v3/objects/contacts",
        json={"properties": {"email": email, **properties}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text


def test_fill_empty_and_never_on_the_flush_function(
    stack: local_stack.LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stack.sandbox is not None
    seed(stack, "ada@example.com", city="Paris")
    before = Counter(stack.sandbox.state.requests)
    load = {
        "profiles": [
            profile("ada@example.com", "realized", firstname="Ada", city="London", company="CEO"),
            profile("bob@example.com", "realized", firstname="Bob", city="Leeds", company="CTO"),
        ]
    }
    post(stack, load)
    assert local_stack.drain(stack, show=False)
    made = Counter(stack.sandbox.state.requests) - before
    assert (made["POST batch_read"], made["POST batch_upsert"]) == (1, 1)
    ada, bob = contact(stack, "ada@example.com"), contact(stack, "bob@example.com")
    assert (ada["city"], ada["firstname"], bob["city"]) == ("Paris", "Ada", "Leeds")
    assert "company" not in ada and "company" not in bob
    items = ledger(stack)
    assert items["ada@example.com"]["held"] == {"M": {"city": {"S": "Paris"}}}
    # The same profiles again: HubSpot is known to hold both cities, nothing is read or written.
    before = Counter(stack.sandbox.state.requests)
    past_the_deduplication_window(monkeypatch)
    post(stack, load)
    assert local_stack.drain(stack, show=False)
    made = Counter(stack.sandbox.state.requests) - before
    assert made["POST batch_read"] == 0 and made["POST batch_upsert"] == 0, made
