"""The whole pipeline on the embedded default, over real HTTP on loopback: ingest API -> moto SQS
(FIFO, DLQ) -> the upsert handler driven like Lambda's event source -> the HubSpot sandbox."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
from hubspot_activation.upsert.properties import audience_property_name
from moto.core.utils import unix_time_millis
from moto.sqs import models as sqs_models

from local import stack as local_stack
from local.functions import handler
from local.sqs_fifo import DEDUPLICATION_WINDOW_MS

GOLD = "a1b2c3d4-0000-4000-8000-000000000001"
GOLD_PROP = audience_property_name(GOLD, "aud_")


def post(stack: local_stack.LocalStack, document: Any) -> dict[str, Any]:
    response = requests.post(
        stack.activations_url,
        json=document,
        timeout=10,
        headers={"Authorization": f"Bearer {stack.ingest_token}"},
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def profile(
    email: str,
    status: str | None = None,
    timestamp: str = "2026-11-20T10:00:00Z",
    name: str | None = None,
    **attributes: Any,
) -> dict[str, Any]:
    audiences = (
        {GOLD: {"status": status, "timestamp": timestamp, **({"name": name} if name else {})}}
        if status
        else {}
    )
    return {"email": email, "attributes": attributes, "audiences": audiences}


def contact(stack: local_stack.LocalStack, email: str) -> dict[str, str]:
    assert stack.sandbox is not None
    state = stack.sandbox.state
    return dict(state.contacts[state.email_index[email]]["properties"])


def ledger(stack: local_stack.LocalStack) -> dict[str, dict[str, Any]]:
    return {item["email"]["S"]: item for item in local_stack.ledger_entries(stack)}


def hubspot_requests(stack: local_stack.LocalStack) -> int:
    assert stack.sandbox is not None
    return sum(stack.sandbox.state.requests.values())


def past_the_deduplication_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Moves the local queue's clock (moto runs in this process) past SQS's deduplication window."""
    monkeypatch.setattr(sqs_models, "unix_time_millis", lambda: unix_time_millis() + DEDUPLICATION_WINDOW_MS)


def test_demo_exits_zero() -> None:
    assert local_stack.demo() == 0


def test_every_sample_lands_in_hubspot(running: local_stack.LocalStack) -> None:
    accepted, excluded = local_stack.post_samples(running, show=False)
    assert (accepted, excluded) == (7, 2)
    assert local_stack.drain(running, show=False)
    assert running.sandbox is not None
    emails = set(running.sandbox.state.email_index)
    assert len(emails) == 6 and set(ledger(running)) == emails
    assert local_stack.dead_letters(running) == 0


def test_the_local_resources_are_the_templates(running: local_stack.LocalStack) -> None:
    sqs = running.aws.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=running.queue_url(), AttributeNames=["All"])["Attributes"]
    assert attributes["FifoQueue"] == "true" and attributes["VisibilityTimeout"] == "900"
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 20
    table = running.aws.client("dynamodb").describe_table(TableName=running.aws.physical_id("LedgerTable"))
    assert table["Table"]["KeySchema"] == [{"AttributeName": "email", "KeyType": "HASH"}]


def test_realized_then_exited_in_one_batch_and_across_batches(running: local_stack.LocalStack) -> None:
    post(running, {"profiles": [profile("ada@example.com", "realized", "2026-11-20T10:00:00Z", "Gold")]})
    post(running, {"profiles": [profile("ada@example.com", "exited", "2026-11-20T11:00:00Z")]})
    assert local_stack.drain(running, show=False)
    assert contact(running, "ada@example.com")[GOLD_PROP] == "exited"
    post(
        running, {"profiles": [profile("ada@example.com", "realized", "2026-11-20T10:30:00Z")]}
    )  # late, older
    assert local_stack.drain(running, show=False)
    assert contact(running, "ada@example.com")[GOLD_PROP] == "exited"
    post(running, {"profiles": [profile("ada@example.com", "realized", "2026-11-21T09:00:00Z")]})
    assert local_stack.drain(running, show=False)
    assert contact(running, "ada@example.com")[GOLD_PROP] == "realized"


def test_resending_unchanged_profiles_costs_zero_hubspot_requests(
    running: local_stack.LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    load = {
        "profiles": [
            profile(f"user{i}@example.com", "realized", name="Gold", firstname=f"U{i}") for i in range(300)
        ]
    }
    post(running, load)
    assert local_stack.drain(running, show=False)
    before = hubspot_requests(running)
    past_the_deduplication_window(monkeypatch)  # within it SQS drops the re-send before the consumer
    post(running, load)
    assert running.poller.pending() > 0
    assert local_stack.drain(running, show=False)
    assert hubspot_requests(running) == before
    assert len(ledger(running)) == 300


def test_the_same_body_within_five_minutes_is_queued_once_even_after_it_was_consumed(
    running: local_stack.LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    load = {"profiles": [profile("ada@example.com", "realized", firstname="Ada")]}
    assert post(running, load)["accepted"] == 1
    assert local_stack.drain(running, show=False)
    # Accepted again, and dropped by the queue as SQS drops it: the first copy was sent just now.
    assert post(running, load)["accepted"] == 1
    assert running.poller.pending() == 0
    past_the_deduplication_window(monkeypatch)
    assert post(running, load)["accepted"] == 1
    assert running.poller.pending() == 1
    assert local_stack.drain(running, show=False)
    assert contact(running, "ada@example.com")["firstname"] == "Ada"


def test_invalid_attribute_value_drops_only_that_field(running: local_stack.LocalStack) -> None:
    post(
        running,
        {"profiles": [profile("ada@example.com", "realized", firstname="Ada", lifecyclestage="astronaut")]},
    )
    assert local_stack.drain(running, show=False)
    stored = contact(running, "ada@example.com")
    assert stored["firstname"] == "Ada" and "lifecyclestage" not in stored
    assert "lifecyclestage" in ledger(running)["ada@example.com"]["warnings"]["M"]


def test_invalid_email_is_recorded_as_failed_and_the_rest_written(running: local_stack.LocalStack) -> None:
    post(
        running,
        {
            "profiles": [
                profile("good@example.com", firstname="Good"),
                profile("typo@example.com.com", firstname="Typo"),
                profile("fine@example.com", firstname="Fine"),
            ]
        },
    )
    assert local_stack.drain(running, show=False)
    entries = ledger(running)
    assert entries["typo@example.com.com"]["status"]["S"] == "failed"
    assert "INVALID_EMAIL" in entries["typo@example.com.com"]["reason"]["S"]
    assert contact(running, "good@example.com")["firstname"] == "Good"
    assert contact(running, "fine@example.com")["firstname"] == "Fine"
    assert local_stack.dead_letters(running) == 0


def test_audience_name_arriving_later_updates_the_label(running: local_stack.LocalStack) -> None:
    assert running.sandbox is not None
    post(running, {"profiles": [profile("ada@example.com", "realized")]})
    assert local_stack.drain(running, show=False)
    assert running.sandbox.state.properties[GOLD_PROP]["label"] == GOLD
    post(running, {"profiles": [profile("ada@example.com", "realized", name="Gold loyalty members")]})
    assert local_stack.drain(running, show=False)
    assert running.sandbox.state.properties[GOLD_PROP]["label"] == "Gold loyalty members"


def test_partial_batch_failure_keeps_fifo_order(running: local_stack.LocalStack) -> None:
    assert running.sandbox is not None
    for city in ("first", "second", "third"):
        post(running, {"email": "ada@example.com", "attributes": {"city": city}})
    running.sandbox.state.config.omit_results = 1  # HubSpot's next answer leaves Ada out
    assert running.poller.poll_once() == 3
    assert running.poller.stats.failed_records == 3  # her message and every later one of the group
    assert local_stack.drain(running, show=False)
    assert contact(running, "ada@example.com")["city"] == "third"
    assert local_stack.dead_letters(running) == 0


def test_daily_limit_leaves_messages_on_the_queue_with_extended_visibility(
    running: local_stack.LocalStack,
) -> None:
    assert running.sandbox is not None
    running.sandbox.state.config.daily_limit = running.sandbox.state.daily_used
    post(running, {"profiles": [profile(f"u{i}@example.com", firstname="U") for i in range(20)]})
    running.poller.poll_once()
    time.sleep(running.poller.visibility_timeout + 1)  # a normal failure would be visible again by now
    assert running.poller.poll_once() == 0
    assert running.poller.pending() > 0  # still there, waiting for the reset
    assert local_stack.dead_letters(running) == 0
    assert running.sandbox.state.contacts == {}


def test_oauth_credentials_work_end_to_end(running: local_stack.LocalStack) -> None:
    assert running.sandbox is not None
    client_id, client_secret, refresh = running.sandbox.state.add_oauth_app()
    running.aws.client("secretsmanager").put_secret_value(
        SecretId=running.aws.physical_id("HubSpotCredentialSecret"),
        SecretString=json.dumps(
            {"clientId": client_id, "clientSecret": client_secret, "refreshToken": refresh}
        ),
    )
    restarted = handler("upsert", cold_start=True)  # a new container reads the new secret
    running.poller.handler = restarted
    post(running, {"profiles": [profile("ada@example.com", "realized", firstname="Ada")]})
    assert local_stack.drain(running, show=False)
    assert contact(running, "ada@example.com")["firstname"] == "Ada"
    assert running.sandbox.state.requests["POST oauth_token"] == 1


def test_curl_without_a_token_is_refused(running: local_stack.LocalStack) -> None:
    response = requests.post(running.activations_url, json={"email": "a@example.com"}, timeout=5)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
