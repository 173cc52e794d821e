"""The upsert Lambda handler in-process: an SQS event in, batchItemFailures and EMF metrics out,
with moto (ledger table, credential secret, queue) and the HubSpot sandbox on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hubspot_activation.ledger.contact_item import entry_from_item
from hubspot_activation.messages import REPLAY_SOURCE, pack
from hubspot_activation.model import AudienceChange, AudienceStatus, ContactUpdate
from hubspot_activation.operations.views import contact_view
from moto import mock_aws

from local.functions import handler
from local.hubspot_sandbox import SandboxServer
from local.template import load_sam
from tests.conftest import FakeContext, create_ledger_table


@pytest.fixture
def upsert_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SandboxServer, str]]:
    sandbox = SandboxServer().start()
    with mock_aws():
        create_ledger_table()
        secret = boto3.client("secretsmanager").create_secret(
            Name="hubspot", SecretString=json.dumps({"accessToken": sandbox.state.add_private_app_token()})
        )["ARN"]
        queue = boto3.client("sqs").create_queue(QueueName="q.fifo", Attributes={"FifoQueue": "true"})[
            "QueueUrl"
        ]
        for name, value in {
            "LEDGER_TABLE": "ledger",
            "HUBSPOT_SECRET_ID": secret,
            "QUEUE_URL": queue,
            "HUBSPOT_BASE_URL": sandbox.url,
            "POWERTOOLS_SERVICE_NAME": "hubspot-activation",
        }.items():
            monkeypatch.setenv(name, value)
        yield sandbox, queue
    sandbox.stop()


def sqs_event(updates: list[ContactUpdate]) -> dict[str, Any]:
    records = [
        {
            "messageId": f"m{i}",
            "receiptHandle": f"rh{i}",
            "body": message.body,
            "attributes": {"MessageGroupId": message.group_id, "ApproximateReceiveCount": "1"},
            "eventSource": "aws:sqs",
        }
        for i, message in enumerate(pack(updates, 4))
    ]
    return {"Records": records}


def test_handler_syncs_records_reports_failures_and_emits_metrics(
    upsert_env: tuple[SandboxServer, str], capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox, _queue = upsert_env
    lambda_handler = handler("upsert", cold_start=True)
    gold = AudienceChange("gold", AudienceStatus.REALIZED, 1000, "Gold")
    event = sqs_event(
        [
            ContactUpdate("ada@example.com", (gold,), {"firstname": "Ada"}),
            ContactUpdate("grace@example.com", (), {"lastname": "Hopper"}),
        ]
    )
    assert lambda_handler(event, FakeContext()) == {"batchItemFailures": []}
    assert {c["properties"].get("firstname") for c in sandbox.state.contacts.values()} == {"Ada", None}
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert emf[-1]["ContactsUpserted"] == [2.0]
    assert emf[-1]["RateLimitRemaining"] is not None

    sandbox.state.config.error_rate = 1.0  # HubSpot down: everything goes back to the queue
    failing = sqs_event([ContactUpdate("new@example.com", (), {"firstname": "New"})])
    result = lambda_handler(failing, FakeContext())
    assert result == {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in failing["Records"]]}


def test_handler_with_a_broken_setting_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGER_TABLE", raising=False)
    lambda_handler = handler("upsert", cold_start=True)
    with pytest.raises(ValueError, match="LEDGER_TABLE"):
        lambda_handler({"Records": []}, FakeContext())


def test_handler_hands_everything_back_when_the_invocation_has_no_time_left(
    upsert_env: tuple[SandboxServer, str],
) -> None:
    sandbox, _queue = upsert_env

    class AlmostOut(FakeContext):
        def get_remaining_time_in_millis(self) -> int:
            return 5_000

    event = sqs_event([ContactUpdate("ada@example.com", (), {"firstname": "Ada"})])
    result = handler("upsert", cold_start=True)(event, AlmostOut())
    assert result == {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}
    assert sandbox.state.contacts == {}


def enqueue(queue: str, updates: list[ContactUpdate], shards: int = 8) -> None:
    sqs = boto3.client("sqs")
    for message in pack(updates, shards):
        sqs.send_message(
            QueueUrl=queue,
            MessageBody=message.body,
            MessageGroupId=message.group_id,
            MessageDeduplicationId=message.deduplication_id,
        )


def receive_as_event_source(queue: str, count: int) -> dict[str, Any]:
    """What Lambda's event source would hand the function: ``count`` messages, their groups locked."""
    messages = (
        boto3.client("sqs")
        .receive_message(QueueUrl=queue, MaxNumberOfMessages=count, MessageSystemAttributeNames=["All"])
        .get("Messages", [])
    )
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "MessageGroupId": m["Attributes"]["MessageGroupId"],
                    "ApproximateReceiveCount": m["Attributes"]["ApproximateReceiveCount"],
                },
                "eventSource": "aws:sqs",
            }
            for m in messages
        ]
    }


def queued(queue: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def one_profile_requests(count: int, start_ms: int = 1_795_000_000_000) -> list[ContactUpdate]:
    """What a caller sending one profile per request makes: one small message per contact."""
    gold = AudienceChange("gold", AudienceStatus.REALIZED, 1000, "Gold")
    return [
        ContactUpdate(f"user{i}@example.com", (gold,), {"city": f"City {i}"}, received_ms=start_ms + i)
        for i in range(count)
    ]


def test_a_small_batch_is_topped_up_to_a_full_hubspot_call_and_settled(
    upsert_env: tuple[SandboxServer, str],
) -> None:
    sandbox, queue = upsert_env
    for update in one_profile_requests(150):
        enqueue(queue, [update])  # 150 messages of one contact each, spread over 8 groups
    event = receive_as_event_source(queue, 1)
    result = handler("upsert", cold_start=True)(event, FakeContext())
    assert result == {"batchItemFailures": []}
    # One call for every contact the batch could be filled with, not one call per message. (How
    # many that is depends on how many groups are free: SQS locks a group while any of its
    # messages is in flight, and moto hands out one message per group per receive, where SQS
    # returns a group's messages together.)
    written = len(sandbox.state.contacts)
    assert written > 1 and sandbox.state.requests["POST batch_upsert"] == 1
    # The event source deletes its own message; the function deleted the ones it received itself.
    boto3.client("sqs").delete_message(QueueUrl=queue, ReceiptHandle=event["Records"][0]["receiptHandle"])
    assert queued(queue) == 150 - written


def test_a_transient_failure_leaves_the_topped_up_messages_of_its_group_on_the_queue(
    upsert_env: tuple[SandboxServer, str],
) -> None:
    sandbox, queue = upsert_env
    for update in one_profile_requests(30):
        enqueue(queue, [update], shards=2)
    event = receive_as_event_source(queue, 1)
    sandbox.state.config.error_rate = 1.0  # HubSpot down for this invocation
    result = handler("upsert", cold_start=True)(event, FakeContext())
    assert [item["itemIdentifier"] for item in result["batchItemFailures"]] == [
        r["messageId"] for r in event["Records"]
    ]
    # Nothing the function received itself was deleted: every message is still on the queue.
    assert queued(queue) == 30
    sandbox.state.config.error_rate = 0.0


def test_a_crash_after_the_top_up_loses_nothing(
    upsert_env: tuple[SandboxServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _sandbox, queue = upsert_env
    for update in one_profile_requests(20):
        enqueue(queue, [update])
    event = receive_as_event_source(queue, 1)
    lambda_handler = handler("upsert", cold_start=True)
    from hubspot_activation.upsert.service import SyncService

    def crash(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("the container died")

    monkeypatch.setattr(SyncService, "process", crash)
    with pytest.raises(RuntimeError):
        lambda_handler(event, FakeContext())
    assert queued(queue) == 20  # in flight, back after the visibility timeout, none deleted


def upsert_timeout_seconds() -> float:
    """The upsert function's Timeout in template.yaml: what an invocation starts with."""
    return float(load_sam()["Resources"]["UpsertFunction"]["Properties"]["Timeout"])


class HubSpotPacedContext(FakeContext):
    """An invocation's context whose clock is HubSpot's answers: each request the sandbox answers
    (``route``: only those of that route) uses up ``seconds_per_request`` of the ``start_seconds``
    the invocation began with. The latency is simulated, so nothing waits and nothing is timed."""

    def __init__(
        self,
        sandbox: SandboxServer,
        start_seconds: float,
        seconds_per_request: float,
        route: str | None = None,
    ) -> None:
        self._sandbox = sandbox
        self._route = route
        self._start_seconds = start_seconds
        self._seconds_per_request = seconds_per_request
        self._answered_before = self._answered()

    def _answered(self) -> int:
        requests = self._sandbox.state.requests
        return requests[self._route] if self._route else sum(requests.values())

    def get_remaining_time_in_millis(self) -> int:
        used = (self._answered() - self._answered_before) * self._seconds_per_request
        return int((self._start_seconds - used) * 1000)


def aep_sized_batch(queue: str, contacts: int = 1000) -> dict[str, Any]:
    """An AEP-sized request (``contacts`` profiles) queued by ingest's packing and received as the
    event source hands it over: a few large messages, ten full HubSpot calls' worth of contacts."""
    gold = AudienceChange("gold", AudienceStatus.REALIZED, 1000, "Gold")
    enqueue(
        queue, [ContactUpdate(f"aep{i}@example.com", (gold,), {"city": f"City {i}"}) for i in range(contacts)]
    )
    return receive_as_event_source(queue, 10)


# 1 s a request is well above HubSpot's usual latency; at 5 s a request, the ten calls end 50 s
# (plus the set-up's requests) into the invocation: a call is started while its own deadline and
# the recording margin fit, not only while twice the longest call would.
@pytest.mark.parametrize("seconds_per_request", [1.0, 5.0])
def test_a_batch_of_ten_calls_fits_in_one_invocation(
    upsert_env: tuple[SandboxServer, str], seconds_per_request: float
) -> None:
    sandbox, queue = upsert_env
    event = aep_sized_batch(queue)
    assert len({r["attributes"]["MessageGroupId"] for r in event["Records"]}) == len(event["Records"])
    # HubSpot answering every request, set-up ones included, in that time.
    context = HubSpotPacedContext(sandbox, upsert_timeout_seconds(), seconds_per_request)
    result = handler("upsert", cold_start=True)(event, context)
    assert result == {"batchItemFailures": []}
    assert len(sandbox.state.contacts) == 1000
    assert sandbox.state.requests["POST batch_upsert"] == 10


def test_contacts_that_do_not_fit_go_back_visible_at_once_and_are_written_next(
    upsert_env: tuple[SandboxServer, str],
) -> None:
    sandbox, queue = upsert_env
    event = aep_sized_batch(queue)
    # HubSpot slow enough (20 s a call) that the invocation has time for only part of the batch.
    context = HubSpotPacedContext(sandbox, 120.0, 20.0, route="POST batch_upsert")
    result = handler("upsert", cold_start=True)(event, context)
    written = len(sandbox.state.contacts)
    assert 0 < written < 1000
    returned = {item["itemIdentifier"] for item in result["batchItemFailures"]}
    assert returned
    # No backoff: what went back for time is visible again at once, the whole of it.
    again = receive_as_event_source(queue, 10)
    assert {r["messageId"] for r in again["Records"]} == returned
    # The next invocation, with its full time, writes the rest.
    retried = handler("upsert", cold_start=True)(again, FakeContext())
    assert retried == {"batchItemFailures": []}
    assert len(sandbox.state.contacts) == 1000


def test_a_batch_the_set_up_left_no_time_for_backs_off_instead_of_coming_back_at_once(
    upsert_env: tuple[SandboxServer, str],
) -> None:
    """Nothing was written: coming back at once would meet the same slow HubSpot and burn one
    receive per invocation toward the DLQ."""
    sandbox, queue = upsert_env
    event = aep_sized_batch(queue)
    # HubSpot's property definitions take 90 s to read: less than a call's time is left after it.
    context = HubSpotPacedContext(sandbox, upsert_timeout_seconds(), 90.0, route="GET list_properties")
    result = handler("upsert", cold_start=True)(event, context)
    assert {item["itemIdentifier"] for item in result["batchItemFailures"]} == {
        r["messageId"] for r in event["Records"]
    }
    assert sandbox.state.requests["POST batch_upsert"] == 0
    assert receive_as_event_source(queue, 10)["Records"] == []  # backing off, not visible at once


def test_a_message_nested_too_deep_to_decode_is_set_aside_and_the_rest_synced(
    upsert_env: tuple[SandboxServer, str],
) -> None:
    """A body the JSON decoder cannot descend (it raises RecursionError, not ValueError) is not ours
    to read: it is set apart like any undecodable message, not a crash that sends the batch back."""
    sandbox, _queue = upsert_env
    event = sqs_event([ContactUpdate("ada@example.com", (), {"firstname": "Ada"})])
    poison = {**event["Records"][0], "messageId": "deep", "body": "[" * 100_000}
    poison["attributes"] = {**poison["attributes"], "MessageGroupId": "elsewhere"}
    event["Records"].append(poison)
    result = handler("upsert", cold_start=True)(event, FakeContext())
    # No dead-letter queue is configured here, so the undecodable message alone goes back.
    assert result == {"batchItemFailures": [{"itemIdentifier": "deep"}]}
    assert {c["properties"].get("firstname") for c in sandbox.state.contacts.values()} == {"Ada"}


@pytest.mark.parametrize(
    "body",
    [
        '{"v":2,"rcv":1e999,"updates":[]}',
        '{"v":2,"rcv":1,"updates":[{"email":"x@example.com","pos":1e999}]}',
        '{"v":2,"rcv":1,"updates":[{"email":"x@example.com","audiences":[{"id":"a","status":"realized","ts":-1e999}]}]}',
        '{"v":2,"rcv":1,"updates":[{"email":"x@example.com","attributes":{"n":1e999}}]}',
        '{"v":2,"rcv":1,"updates":[{"email":"\\ud800@example.com"}]}',
        '{"v":2,"rcv":1,"updates":[{"email":"x@example.com","audiences":[{"id":"a","status":"realized","name":["VIP"]}]}]}',
    ],
    ids=[
        "rcv-overflow",
        "pos-overflow",
        "ts-overflow",
        "infinite-attribute",
        "lone-surrogate",
        "name-not-text",
    ],
)
def test_a_message_with_values_no_update_of_ours_holds_is_set_aside_and_the_rest_synced(
    upsert_env: tuple[SandboxServer, str], body: str
) -> None:
    """A number too large for an integer (JSON's ``1e999`` is an infinite float), text with no
    UTF-8 form or a value of the wrong type is not ours to read either: set apart, the rest synced."""
    sandbox, _queue = upsert_env
    event = sqs_event([ContactUpdate("ada@example.com", (), {"firstname": "Ada"})])
    poison = {**event["Records"][0], "messageId": "hostile", "body": body}
    poison["attributes"] = {**poison["attributes"], "MessageGroupId": "elsewhere"}
    event["Records"].append(poison)
    result = handler("upsert", cold_start=True)(event, FakeContext())
    assert result == {"batchItemFailures": [{"itemIdentifier": "hostile"}]}
    assert {c["properties"].get("firstname") for c in sandbox.state.contacts.values()} == {"Ada"}


def test_a_raised_property_limit_is_seen_by_every_container(
    upsert_env: tuple[SandboxServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox, _queue = upsert_env
    monkeypatch.setenv("AUDIENCE_PROPERTY_RETRY_SECONDS", "1")
    state = sandbox.state
    state.config.update({"custom_property_limit": state.custom_property_count()})
    first, second = handler("upsert", cold_start=True), handler("upsert", cold_start=True)
    vip = AudienceChange("vip", AudienceStatus.REALIZED, 1000, "VIP")

    def send(container: Any, emails: list[str], source: str = "aep") -> None:
        updates = [ContactUpdate(email, (vip,), {"firstname": "V"}, source=source) for email in emails]
        assert container(sqs_event(updates), FakeContext()) == {"batchItemFailures": []}

    def vip_status(emails: list[str]) -> list[str | None]:
        by_email = {c["properties"]["email"]: c["properties"] for c in state.contacts.values()}
        return [by_email[email].get("aud_vip") for email in emails]

    # Both containers see the audience fail: no room for its property.
    send(first, ["a0@example.com", "a1@example.com"])
    send(second, ["b0@example.com", "b1@example.com"])
    assert vip_status(["a0@example.com", "b0@example.com"]) == [None, None]

    state.config.update({"custom_property_limit": 1000})  # the operator's fix
    # A replay tries again at once, on whichever container receives it.
    send(second, ["b0@example.com"], source=REPLAY_SOURCE)
    assert vip_status(["b0@example.com"]) == ["realized"]
    # New updates try again once the refusal is older than the retry time, on every container
    # (the one that did not see the replay included), long before the definitions' refresh.
    time.sleep(1.2)
    send(first, ["c0@example.com", "a1@example.com"])
    send(second, ["d0@example.com", "b1@example.com"])
    assert (
        vip_status(["c0@example.com", "a1@example.com", "d0@example.com", "b1@example.com"])
        == ["realized"] * 4
    )


def test_a_value_for_a_property_deleted_in_hubspot_is_kept_until_a_replay_writes_it(
    upsert_env: tuple[SandboxServer, str],
) -> None:
    sandbox, _queue = upsert_env
    state = sandbox.state
    state.properties["loyalty_tier"] = {**state.properties["firstname"], "name": "loyalty_tier"}
    container = handler("upsert", cold_start=True)

    def send(update: ContactUpdate) -> None:
        assert container(sqs_event([update]), FakeContext()) == {"batchItemFailures": []}

    def ada() -> dict[str, Any]:
        (contact,) = state.contacts.values()
        return dict(contact["properties"])

    send(ContactUpdate("ada@example.com", (), {"loyalty_tier": "silver"}))
    assert ada()["loyalty_tier"] == "silver"
    # Deleted in HubSpot while the container's cached definitions still list it.
    definition = state.properties.pop("loyalty_tier")
    send(ContactUpdate("ada@example.com", (), {"loyalty_tier": "gold", "firstname": "Ada"}))
    assert ada()["firstname"] == "Ada"
    item = boto3.client("dynamodb").get_item(TableName="ledger", Key={"email": {"S": "ada@example.com"}})
    view = contact_view(entry_from_item(item["Item"]))
    assert view["status"] == "failed" and "loyalty_tier" in view["lastError"]
    assert view["pending"]["attributes"] == {"loyalty_tier": "gold"}

    state.properties["loyalty_tier"] = definition  # the operator's fix
    send(ContactUpdate("ada@example.com", source=REPLAY_SOURCE))
    assert ada()["loyalty_tier"] == "gold"
