"""The whole pipeline on the embedded default, over real HTTP on loopback: ingest API -> moto SQS
(FIFO, DLQ) -> the merge handler driven like Lambda's event source -> the contacts' states in the
ledger -> the flush handler run by its wake-ups and schedule -> the HubSpot sandbox."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import pytest
import requests
from hubspot_activation.upsert.properties import audience_property_name
from moto.core.utils import unix_time_millis
from moto.sqs import models as sqs_models

from local import stack as local_stack
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
    assert attributes["FifoQueue"] == "true" and attributes["VisibilityTimeout"] == "360"
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


def test_resending_unchanged_profiles_writes_nothing_to_hubspot(
    running: local_stack.LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    load = {
        "profiles": [
            profile(f"user{i}@example.com", "realized", name="Gold", firstname=f"U{i}") for i in range(300)
        ]
    }
    post(running, load)
    assert local_stack.drain(running, show=False)
    assert running.sandbox is not None
    before = Counter(running.sandbox.state.requests)
    past_the_deduplication_window(monkeypatch)  # within it SQS drops the re-send before the merge
    post(running, load)
    assert running.poller.pending() > 0
    assert local_stack.drain(running, show=False)
    made = Counter(running.sandbox.state.requests)
    made.subtract(before)
    # Nothing written. A flush container that never ran before (each concurrent invocation gets
    # its own, as in Lambda) reads the property definitions once, to compare the values.
    assert +made <= Counter({"GET list_properties": running.flusher.concurrency - 1}), made
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


def test_a_contact_hubspots_answer_leaves_out_stays_pending_and_gets_its_newest_state(
    running: local_stack.LocalStack,
) -> None:
    assert running.sandbox is not None
    for city in ("first", "second", "third"):
        post(running, {"email": "ada@example.com", "attributes": {"city": city}})
    running.sandbox.state.config.omit_results = 1  # HubSpot's next answer leaves Ada out
    # The merge takes all three in one batch, in their order, and makes no HubSpot call.
    assert running.poller.poll_once() == 3
    assert running.poller.stats.failed_records == 0
    assert local_stack.drain(running, show=False)
    assert contact(running, "ada@example.com")["city"] == "third"
    assert running.sandbox.state.requests["POST batch_upsert"] == 2  # the unconfirmed write, sent again
    assert ledger(running)["ada@example.com"]["status"]["S"] == "synced"
    assert local_stack.dead_letters(running) == 0


def flush_runs_after(stack: local_stack.LocalStack, invocations: int) -> None:
    """Wait until the flush function ran past ``invocations`` (its schedule ticks every few
    seconds) and is idle."""
    deadline = time.monotonic() + 60
    while stack.flusher.stats.invocations <= invocations or not stack.flusher.idle():
        assert time.monotonic() < deadline, "the flush function did not run"
        time.sleep(0.2)


def test_the_daily_limit_pauses_the_flush_and_keeps_the_contacts_pending(
    running: local_stack.LocalStack,
) -> None:
    assert running.sandbox is not None
    state = running.sandbox.state
    state.config.daily_limit = state.daily_used
    post(running, {"profiles": [profile(f"u{i}@example.com", firstname="U") for i in range(20)]})
    assert running.poller.drain(timeout=60)  # merged and deleted from the queue: nothing to redeliver
    flush_runs_after(running, 0)
    assert state.throttled["DAILY"] >= 1
    # Paused till the reset: later runs (the schedule's) change nothing, and call HubSpot only in a
    # container that has not met the limit yet (each has its own governor), once.
    flush_runs_after(running, running.flusher.stats.invocations + 3)
    assert 1 <= state.throttled["DAILY"] <= running.flusher.concurrency
    assert local_stack.pending_contacts(running) == 20
    assert running.flusher.stats.errors == 0  # a pause, not a failing function
    assert not [item for item in local_stack.ledger_entries(running) if "status" in item]  # none recorded
    assert local_stack.dead_letters(running) == 0
    assert state.contacts == {}


def test_oauth_credentials_work_end_to_end(running: local_stack.LocalStack) -> None:
    assert running.sandbox is not None
    client_id, client_secret, refresh = running.sandbox.state.add_oauth_app()
    running.aws.client("secretsmanager").put_secret_value(
        SecretId=running.aws.physical_id("HubSpotCredentialSecret"),
        SecretString=json.dumps(
            {"clientId": client_id, "clientSecret": client_secret, "refreshToken": refresh}
        ),
    )
    running.flusher.cold_start()  # a new container reads the new secret
    post(running, {"profiles": [profile("ada@example.com", "realized", firstname="Ada")]})
    assert local_stack.drain(running, show=False)
    assert contact(running, "ada@example.com")["firstname"] == "Ada"
    assert running.sandbox.state.requests["POST oauth_token"] == 1


def test_curl_without_a_token_is_refused(running: local_stack.LocalStack) -> None:
    response = requests.post(running.activations_url, json={"email": "a@example.com"}, timeout=5)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_quiet_functions_running_at_once_drop_their_output_and_nothing_else(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The demo's flush, merge and ingest functions run at once in their threads while it prints
    its summary: their metrics are dropped, the summary is not."""
    first_running, second_running, first_done = threading.Event(), threading.Event(), threading.Event()

    def first(event: dict[str, Any], context: Any) -> dict[str, Any]:
        print("metrics of the first function")
        first_running.set()
        assert second_running.wait(10)  # the second starts while the first runs
        return {}

    def second(event: dict[str, Any], context: Any) -> dict[str, Any]:
        second_running.set()
        assert first_done.wait(10)  # and ends after it
        print("metrics of the second function")
        return {}

    def run_first() -> None:
        local_stack.without_metrics_output(first)({}, None)
        first_done.set()

    threads = [threading.Thread(target=run_first)]
    threads.append(threading.Thread(target=local_stack.without_metrics_output(second), args=({}, None)))
    threads[0].start()
    assert first_running.wait(10)
    threads[1].start()
    for thread in threads:
        thread.join()
    print("sync summary")
    assert capsys.readouterr().out == "sync summary\n"
