"""The lists function on the local stack as template.yaml wires it: with AudienceTarget both, a
list's buffered membership changes (appended through the flusher's port) start a timer on the
timer queue, the timer queue's event source runs the lists handler after ListFlushSeconds, and the
sandbox's list then holds exactly the members; the sweep schedule drains what no timer names.
With the default target (property) neither the timers nor the schedule exist."""

from __future__ import annotations

import time
from typing import Any

import requests
from hubspot_activation.list_function.changes import list_changes
from hubspot_activation.lists.model import Toggle
from hubspot_activation.settings import UpsertSettings

from local import stack as local_stack

GOLD = "gold-buyers"


def audience(stack: local_stack.LocalStack, name: str) -> None:
    response = requests.put(
        f"{stack.api.url}/audiences/{GOLD}",
        json={"name": name},
        headers={"Authorization": f"Bearer {stack.ingest_token}"},
        timeout=10,
    )
    assert response.status_code in (200, 201), response.text


def record_ids(stack: local_stack.LocalStack, *emails: str) -> list[str]:
    assert stack.sandbox is not None
    state = stack.sandbox.state
    body = {"inputs": [{"idProperty": "email", "id": email, "properties": {}} for email in emails]}
    answer = requests.post(
        f"{stack.hubspot_url}/crm/objects/2026-09/contacts/batch/upsert",
        json=body,
        headers={"Authorization": f"Bearer {state.add_private_app_token()}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    by_email = {r["properties"]["email"]: str(r["id"]) for r in answer.json()["results"]}
    return [by_email[email] for email in emails]


def handed(*toggles: Toggle) -> None:
    """What the flusher does once HubSpot holds the contacts: their changes to the list's buffer."""
    import boto3

    changes = list_changes(UpsertSettings.from_env(), boto3.client("dynamodb"), boto3.client("sqs"))
    changes.append(GOLD, toggles, int(time.time() * 1000))


def members(stack: local_stack.LocalStack) -> dict[str, Any]:
    assert stack.sandbox is not None
    return {found["name"]: set(found["members"]) for found in stack.sandbox.app.lists.summary()}


def test_timers_and_the_sweep_drain_the_lists_on_the_local_stack() -> None:
    stack = local_stack.start(parameters={"AudienceTarget": "both", "ListFlushSeconds": 1})
    try:
        assert stack.lister is not None and stack.list_timers is not None
        audience(stack, "Gold buyers")
        ada, bob = record_ids(stack, "ada@example.com", "bob@example.com")
        handed(Toggle(ada, True, (1, 0, 0, 0)), Toggle(bob, True, (1, 0, 0, 0)))

        assert local_stack.settle_lists(stack, timeout=60)
        assert members(stack) == {"Gold buyers": {ada, bob}}
        assert stack.list_timers.stats.invocations >= 1

        handed(Toggle(bob, False, (2, 0, 0, 0)))
        assert local_stack.settle_lists(stack, timeout=60)
        assert members(stack) == {"Gold buyers": {ada}}
    finally:
        stack.stop()


def test_without_lists_the_stack_runs_no_lists_function() -> None:
    stack = local_stack.start()
    try:
        assert stack.lister is None and stack.list_timers is None and stack.list_schedules == []
    finally:
        stack.stop()
