"""The merge and flush Lambda handlers in-process, loaded from functions/*/app.py as Lambda loads
them: the merge takes an SQS event and answers ``batchItemFailures``, the flush takes a lane's
wake-up (or the schedule's event) and writes HubSpot; both publish EMF metrics. Around them: moto
(the ledger table with its pending index, the FIFO queue and its DLQ, the HubSpot credential) and
the HubSpot sandbox on loopback. The flush function's asynchronous invocations (the merge waking
it, a run waking the next) are taken by ``local.lambda_async`` and recorded here, or run.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from hubspot_activation.ledger.contact_item import PENDING_SINCE, entry_from_item
from hubspot_activation.ledger.contact_state import DynamoDbContactStates, DynamoDbFlushLease
from hubspot_activation.ledger.keys import PENDING_PARTITIONS
from hubspot_activation.ledger.list_buffer import DynamoDbListBuffer
from hubspot_activation.messages import REPLAY_SOURCE, ResumeJob
from hubspot_activation.model import AudienceChange, AudienceStatus, ContactUpdate
from hubspot_activation.operations.views import contact_view
from hubspot_activation.upsert.wiring import lane_of, lane_partitions
from moto import mock_aws
from moto.core.utils import unix_time_millis
from moto.sqs import models as sqs_models

from local.functions import handler
from local.hubspot_sandbox import SandboxServer
from local.lambda_async import LocalAsyncFunction
from tests.builders import pack
from tests.conftest import FakeContext, create_fifo_queue_with_dlq, create_ledger_table

FLUSH_FUNCTION = "hubspot-activation-flush"
GOLD = AudienceChange("gold", AudienceStatus.REALIZED, 1_795_000_000_000, "Gold")
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class Sync:
    sandbox: SandboxServer
    queue: str
    dlq: str
    monkeypatch: pytest.MonkeyPatch
    #: the events the flush function was invoked with asynchronously, in order
    invocations: list[dict[str, Any]] = field(default_factory=list)
    #: runs the flush handler for each invocation when set (else they are only recorded)
    flush: Handler | None = None
    _async: LocalAsyncFunction | None = None

    def lanes(self, count: int) -> None:
        self.monkeypatch.setenv("FLUSH_LANES", str(count))

    def on_invoke(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.invocations.append(event)
        return self.flush(event, context) if self.flush is not None else {}

    def woken(self) -> list[dict[str, Any]]:
        """The invocations so far, once every one of them has been handled."""
        assert self._async is not None
        deadline = time.monotonic() + 120
        while not self._async.idle():
            assert time.monotonic() < deadline, "the flush function never went idle"
            time.sleep(0.01)
        return list(self.invocations)

    def states(self) -> DynamoDbContactStates:
        return DynamoDbContactStates(boto3.client("dynamodb"), "ledger")

    def pending(self) -> list[str]:
        """The contacts whose item says they are pending (the index lists markers of contacts, kept
        until each of their contacts is settled)."""
        pages = (
            boto3.client("dynamodb")
            .get_paginator("scan")
            .paginate(
                TableName="ledger",
                FilterExpression="attribute_exists(#s)",
                ExpressionAttributeNames={"#s": PENDING_SINCE},
            )
        )
        return sorted(str(item["email"]["S"]) for page in pages for item in page["Items"])

    def listed(self) -> list[str]:
        """The contacts the pending index lists due now, as a flush run starting now reads them."""
        refs = self.states().pending(list(range(PENDING_PARTITIONS)), int(time.time() * 1000) + 1, 10_000)
        return sorted(ref.email for ref in refs)

    def hubspot(self) -> dict[str, dict[str, Any]]:
        """HubSpot's contacts by email: their properties."""
        return {
            contact["properties"]["email"]: contact["properties"]
            for contact in self.sandbox.state.contacts.values()
        }


@pytest.fixture
def sync(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sync]:
    sandbox = SandboxServer().start()
    with mock_aws():
        create_ledger_table()
        secret = boto3.client("secretsmanager").create_secret(
            Name="hubspot", SecretString=json.dumps({"accessToken": sandbox.state.add_private_app_token()})
        )["ARN"]
        queue, dlq = create_fifo_queue_with_dlq("activations", "dlq", max_receive_count=5)
        for name, value in {
            "LEDGER_TABLE": "ledger",
            "HUBSPOT_SECRET_ID": secret,
            "QUEUE_URL": queue,
            "DEAD_LETTER_QUEUE_URL": dlq,
            "HUBSPOT_BASE_URL": sandbox.url,
            "FLUSH_FUNCTION_NAME": FLUSH_FUNCTION,
            "FLUSH_LANES": "1",
            "POWERTOOLS_SERVICE_NAME": "hubspot-activation",
        }.items():
            monkeypatch.setenv(name, value)
        running = Sync(sandbox, queue, dlq, monkeypatch)
        running._async = LocalAsyncFunction(
            FLUSH_FUNCTION, lambda: running.on_invoke, 900.0, concurrency=1
        ).start()
        try:
            yield running
        finally:
            running._async.stop()
    sandbox.stop()


def sqs_event(updates: list[ContactUpdate], shards: int = 4) -> dict[str, Any]:
    """The updates as ingest packs them, in the shape of AWS's sample SQS event for a FIFO queue."""
    return {
        "Records": [
            {
                "messageId": f"059f36b4-87a3-44ab-83d2-66197582{i:04d}",
                "receiptHandle": f"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a{i}",
                "body": message.body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1545082649183",
                    "SequenceNumber": f"1853221001367889{i:04d}",
                    "MessageGroupId": message.group_id,
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "MessageDeduplicationId": message.deduplication_id,
                    "ApproximateFirstReceiveTimestamp": "1545082649185",
                },
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:activations.fifo",
                "awsRegion": "us-east-1",
            }
            for i, message in enumerate(pack(updates, shards))
        ]
    }


def profiles(count: int, start: int = 0, city: str = "City") -> list[ContactUpdate]:
    return [
        ContactUpdate(
            f"user{i}@example.com", (GOLD,), {"city": f"{city} {i}"}, received_ms=1_795_000_000_000 + i
        )
        for i in range(start, start + count)
    ]


def emf(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


def metric(output: str, name: str) -> float:
    """The sum of one EMF metric over every invocation's document in ``output``."""
    return sum(sum(document[name]) for document in emf(output) if name in document)


def logs(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, Any]]:
    """The log records of ``message``, with the fields they carry."""
    return [vars(record) for record in caplog.records if record.getMessage() == message]


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(str(vars(record)) for record in caplog.records)


def test_a_merge_marks_contacts_pending_and_wakes_their_lanes_without_calling_hubspot(
    sync: Sync, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    sync.lanes(2)
    updates = profiles(20)
    merge = handler("merge", cold_start=True)
    event = sqs_event(updates)
    assert merge(event, FakeContext()) == {"batchItemFailures": []}

    emails = sorted(u.email for u in updates)
    assert sync.pending() == emails and sync.listed() == emails
    assert sync.sandbox.state.requests == {}  # the merge makes no HubSpot call
    lanes = {lane_of(email, 2) for email in emails}
    assert lanes == {0, 1}
    # Each lane's partitions list that lane's contacts, and only those.
    now_ms = int(time.time() * 1000) + 1
    for lane in lanes:
        refs = sync.states().pending(lane_partitions(lane, 2), now_ms, 1000)
        assert sorted(ref.email for ref in refs) == [e for e in emails if lane_of(e, 2) == lane]
    assert sorted(event["lane"] for event in sync.woken()) == sorted(lanes)
    output = capsys.readouterr().out
    assert metric(output, "ContactsMerged") == 20 and metric(output, "ContactsPending") == 20
    (merged,) = logs(caplog, "batch merged")
    assert (merged["messages"], merged["contacts"], merged["newlyPending"]) == (len(event["Records"]), 20, 20)
    # Logs and metrics carry counts, never an email.
    assert "@example.com" not in output + everything_logged(caplog)


def test_a_redelivered_batch_changes_nothing_and_wakes_nobody(
    sync: Sync, capsys: pytest.CaptureFixture[str]
) -> None:
    merge = handler("merge", cold_start=True)
    event = sqs_event(profiles(5))
    merge(event, FakeContext())
    first = len(sync.woken())
    capsys.readouterr()
    assert merge(event, FakeContext()) == {"batchItemFailures": []}
    assert len(sync.woken()) == first
    output = capsys.readouterr().out
    assert metric(output, "ContactsMerged") == 0 and metric(output, "ContactsPending") == 0


def dead_letters(queue: str) -> list[dict[str, Any]]:
    received = boto3.client("sqs").receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )
    return [dict(message) for message in received.get("Messages", [])]


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000,
        "not json",
        '{"v":2,"rcv":1e999,"updates":[]}',
        '{"v":2,"rcv":1,"updates":[{"email":"x@example.com","pos":1e999}]}',
        '{"v":2,"rcv":1,"updates":[{"email":"x@example.com","audiences":[{"id":"a","status":"realized","ts":-1e999}]}]}',
        '{"v":2,"rcv":1,"updates":[{"email":"x@example.com","attributes":{"n":1e999}}]}',
        '{"v":2,"rcv":1,"updates":[{"email":"\\ud800@example.com"}]}',
        '{"v":2,"rcv":1,"updates":[{"email":"x@example.com","audiences":[{"id":"a","status":"realized","name":["VIP"]}]}]}',
    ],
    ids=[
        "nested-too-deep",
        "not-json",
        "rcv-overflow",
        "pos-overflow",
        "ts-overflow",
        "infinite-attribute",
        "lone-surrogate",
        "name-not-text",
    ],
)
def test_an_undecodable_message_goes_to_the_dead_letter_queue_and_the_rest_is_merged(
    sync: Sync, capsys: pytest.CaptureFixture[str], body: str
) -> None:
    event = sqs_event(profiles(3))
    poison = {**event["Records"][0], "messageId": "poison", "body": body}
    poison["attributes"] = {**poison["attributes"], "MessageGroupId": "elsewhere"}
    event["Records"].append(poison)
    assert handler("merge", cold_start=True)(event, FakeContext()) == {"batchItemFailures": []}
    assert sync.pending() == sorted(u.email for u in profiles(3))
    (letter,) = dead_letters(sync.dlq)
    # Kept as it came, in its own group, for an operator to inspect.
    assert letter["Body"] == body and letter["Attributes"]["MessageGroupId"] == "elsewhere"
    assert metric(capsys.readouterr().out, "UndecodableMessages") == 1


def receive_as_event_source(queue: str, count: int = 10) -> dict[str, Any]:
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


def enqueue(queue: str, updates: list[ContactUpdate]) -> None:
    for message in pack(updates, 4):
        boto3.client("sqs").send_message(
            QueueUrl=queue,
            MessageBody=message.body,
            MessageGroupId=message.group_id,
            MessageDeduplicationId=message.deduplication_id,
        )


def test_with_the_ledger_unreachable_every_message_goes_back_after_a_backoff(sync: Sync) -> None:
    now_ms = [unix_time_millis()]
    sync.monkeypatch.setattr(sqs_models, "unix_time_millis", lambda: now_ms[0])  # moto's clock
    enqueue(sync.queue, profiles(8))
    event = receive_as_event_source(sync.queue)
    assert event["Records"]
    sync.monkeypatch.setenv("LEDGER_TABLE", "no-such-table")
    sync.monkeypatch.setenv("RETRY_BASE_SECONDS", "5")
    result = handler("merge", cold_start=True)(event, FakeContext())
    assert sorted(item["itemIdentifier"] for item in result["batchItemFailures"]) == sorted(
        r["messageId"] for r in event["Records"]
    )
    assert sync.woken() == []
    # Each comes back after the retry backoff (5 s at the first receive): not at once, which would
    # spin on the outage, nor after the queue's whole visibility timeout (30 s).
    now_ms[0] += 4_000
    assert receive_as_event_source(sync.queue)["Records"] == []
    now_ms[0] += 2_000
    again = receive_as_event_source(sync.queue)
    assert {r["messageId"] for r in again["Records"]} == {r["messageId"] for r in event["Records"]}


def test_a_setting_the_function_cannot_run_without_fails_its_first_invocation(
    sync: Sync,
) -> None:
    sync.monkeypatch.delenv("LEDGER_TABLE")
    for name, event in (("merge", {"Records": []}), ("flush", {"lane": 0})):
        with pytest.raises(ValueError, match="LEDGER_TABLE"):
            handler(name, cold_start=True)(event, FakeContext())


def test_a_lane_run_writes_its_pending_contacts_and_settles_them(
    sync: Sync, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    updates = profiles(150)
    handler("merge", cold_start=True)(sqs_event(updates, shards=8), FakeContext())
    assert sync.woken() == [{"lane": 0}]
    capsys.readouterr()

    summary = handler("flush", cold_start=True)({"lane": 0}, FakeContext())
    assert (summary["lane"], summary["synced"], summary["failed"], summary["retriedLater"]) == (0, 150, 0, 0)
    # 150 contacts, nothing else pending: one full call and the tail.
    assert sorted(summary["contactsPerCall"]) == [50, 100]
    assert sync.pending() == [] and sync.listed() == []
    hubspot = sync.hubspot()
    assert {email: hubspot[email]["city"] for email in hubspot} == {
        u.email: u.attributes["city"] for u in updates
    }
    assert {hubspot[email]["aud_gold"] for email in hubspot} == {"realized"}
    states = sync.states().read([u.email for u in updates])
    assert {s.confirmed.status if s.confirmed else None for s in states.values()} == {"synced"}
    output = capsys.readouterr().out
    assert metric(output, "ContactsUpserted") == 150 and metric(output, "FlushInvocations") == 1
    (ended,) = logs(caplog, "flush run ended")
    assert ended["synced"] == 150 and ended["hubspotRequests"] >= 2
    assert "@example.com" not in output + everything_logged(caplog)
    # Nothing is due any more: the run started no other.
    assert sync.woken() == [{"lane": 0}]


def test_a_merge_wakes_the_flush_function_and_the_contacts_reach_hubspot(sync: Sync) -> None:
    sync.lanes(2)
    sync.flush = handler("flush", cold_start=True)
    updates = profiles(30)
    handler("merge", cold_start=True)(sqs_event(updates), FakeContext())
    woken = sync.woken()
    assert {event["lane"] for event in woken} == {0, 1}
    assert sync.pending() == []
    assert sorted(sync.hubspot()) == sorted(u.email for u in updates)


def test_the_schedule_wakes_every_lane(sync: Sync, capsys: pytest.CaptureFixture[str]) -> None:
    sync.lanes(3)
    flush = handler("flush", cold_start=True)
    scheduled = {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": "123456789012",
        "time": "2026-12-06T09:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:scheduler:us-east-1:123456789012:schedule/default/flush"],
        "detail": "{}",
    }
    for event in (scheduled, {}, {"lane": 3}, {"lane": True}, {"lane": "0"}):
        assert flush(event, FakeContext()) == {"woke": 3}
    assert sorted(event["lane"] for event in sync.woken()) == sorted([0, 1, 2] * 5)
    assert sync.sandbox.state.requests == {}
    assert metric(capsys.readouterr().out, "FlushInvocations") == 5


def test_a_run_finding_its_lane_taken_leaves_it_to_the_running_one_which_runs_again(sync: Sync) -> None:
    handler("merge", cold_start=True)(sqs_event(profiles(10)), FakeContext())
    lease = DynamoDbFlushLease(boto3.client("dynamodb"), "ledger")
    now_ms = int(time.time() * 1000)
    assert lease.acquire(0, "the-running-one", now_ms + 600_000, now_ms)
    sync.woken()  # the merge's wake-up

    flush = handler("flush", cold_start=True)
    assert flush({"lane": 0}, FakeContext()) == {
        "lane": 0,
        "skipped": "another run holds the lane; it runs again after",
    }
    assert sync.sandbox.state.requests["POST batch_upsert"] == 0
    assert len(sync.pending()) == 10

    # The wake-up is not lost: the running one, letting the lane go, learns it must run again.
    assert lease.release(0, "the-running-one") is True
    assert flush({"lane": 0}, FakeContext())["synced"] == 10
    assert sync.pending() == []


def test_a_run_that_crashed_holding_its_lane_is_followed_once_its_lease_expires(sync: Sync) -> None:
    handler("merge", cold_start=True)(sqs_event(profiles(10)), FakeContext())
    lease = DynamoDbFlushLease(boto3.client("dynamodb"), "ledger")
    now_ms = int(time.time() * 1000)
    assert lease.acquire(0, "crashed", now_ms - 1, now_ms - 900_000)
    assert handler("flush", cold_start=True)({"lane": 0}, FakeContext())["synced"] == 10


class HubSpotPacedContext(FakeContext):
    """An invocation whose clock is HubSpot's answers: each batch upsert the sandbox answers uses
    up ``seconds_per_call`` of the ``start_seconds`` the invocation began with. Nothing waits."""

    def __init__(self, sandbox: SandboxServer, start_seconds: float, seconds_per_call: float) -> None:
        self._sandbox = sandbox
        self._start_seconds = start_seconds
        self._seconds_per_call = seconds_per_call
        self._before = sandbox.state.requests["POST batch_upsert"]

    def get_remaining_time_in_millis(self) -> int:
        used = (self._sandbox.state.requests["POST batch_upsert"] - self._before) * self._seconds_per_call
        return int((self._start_seconds - used) * 1000)


def test_a_run_out_of_time_leaves_the_rest_pending_and_wakes_its_lane_again(sync: Sync) -> None:
    sync.monkeypatch.setenv("FLUSH_PARALLEL_CALLS", "1")
    handler("merge", cold_start=True)(sqs_event(profiles(250), shards=8), FakeContext())
    assert sync.woken() == [{"lane": 0}]

    # Time for one call: after it, less is left than a call and the recording need.
    context = HubSpotPacedContext(sync.sandbox, 900.0, 880.0)
    summary = handler("flush", cold_start=True)({"lane": 0}, context)
    assert summary["contactsPerCall"] == [100]
    assert len(sync.pending()) == 150
    assert sync.woken() == [{"lane": 0}, {"lane": 0}]

    # The next run (its own full time) writes the rest.
    assert handler("flush", cold_start=True)({"lane": 0}, FakeContext())["synced"] == 150
    assert sync.pending() == [] and len(sync.hubspot()) == 250


def test_a_change_to_a_contact_in_a_backoff_waits_for_the_backoff_and_starts_no_run(sync: Sync) -> None:
    """The change is merged, and written when the backoff ends: the run it wakes finds nothing
    due, ends without waiting on the contact and starts no other."""
    sync.monkeypatch.setenv("RETRY_BASE_SECONDS", "600")
    merge, flush = handler("merge", cold_start=True), handler("flush", cold_start=True)
    email = "ada@example.com"

    def change(city: str, received_ms: int, who: str = email) -> None:
        update = ContactUpdate(who, (), {"city": city}, received_ms=received_ms)
        assert merge(sqs_event([update]), FakeContext()) == {"batchItemFailures": []}

    # A first write: the container has HubSpot's property definitions from then on.
    change("Oslo", 1_794_999_999_999, "grace@example.com")
    assert flush({"lane": 0}, FakeContext())["synced"] == 1
    change("Paris", 1_795_000_000_000)
    sync.sandbox.state.config.update({"error_rate": 1.0})  # HubSpot down for the next write
    assert flush({"lane": 0}, FakeContext())["retriedLater"] == 1
    sync.sandbox.state.config.update({"error_rate": 0.0})

    change("Rome", 1_795_000_000_001)  # wakes the lane, like every batch that changes something
    woken = len(sync.woken())
    summary = flush({"lane": 0}, FakeContext())
    assert (summary["calls"], summary["retriedLater"]) == (0, 0)
    assert len(sync.woken()) == woken
    state = sync.states().read([email])[email]
    assert state.pending and state.due_ms is not None and state.due_ms > time.time() * 1000 + 500_000
    assert state.desired is not None and state.desired.attributes["city"][0] == "Rome"


def test_a_lane_hands_its_tail_to_the_first_lane_which_writes_every_tail_in_one_call(sync: Sync) -> None:
    sync.lanes(2)
    updates = profiles(40)
    handler("merge", cold_start=True)(sqs_event(updates), FakeContext())
    sync.woken()
    flush = handler("flush", cold_start=True)
    second = flush({"lane": 1}, FakeContext())
    assert second["calls"] == 0 and second["handedOver"] is True
    assert sync.woken()[-1] == {"lane": 0}
    first = flush({"lane": 0}, FakeContext())
    assert first["contactsPerCall"] == [40]
    assert sync.pending() == []


@dataclass
class AwsCalls:
    """Every AWS call the process makes through boto3's default session: (IAM action, resource)."""

    calls: set[tuple[str, str]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.signing_name
        action = _IAM_ACTIONS.get(model.name, model.name)
        index = params.get("IndexName")
        resource = str(
            (f"{params['TableName']}/index/{index}" if index else None)
            or params.get("TableName")
            or params.get("QueueUrl", "").rsplit("/", 1)[-1]
            or params.get("FunctionName")
            or params.get("SecretId")
            or ("ledger" if "RequestItems" in params else "")
        )
        with self.lock:
            self.calls.add((f"{service}:{action}", resource))


#: Batch calls are allowed by their single call's action.
_IAM_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
    "Invoke": "InvokeFunction",
}


@pytest.fixture
def aws_calls() -> Iterator[AwsCalls]:
    recorder = AwsCalls()
    events = boto3._get_default_session().events
    events.register("before-parameter-build", recorder.record)
    try:
        yield recorder
    finally:
        events.unregister("before-parameter-build", recorder.record)


#: What the calls' resources are in template.yaml: how a granting statement's Resource names them
#: (the flush function by its logical id, or by the name it gives itself: ``<stack>-flush``).
_LOGICAL = {
    "ledger": ("LedgerTable",),
    "activations.fifo": ("ActivationsQueue",),
    "dlq.fifo": ("ActivationsDeadLetterQueue",),
    FLUSH_FUNCTION: ("FlushFunction", "${AWS::StackName}-flush"),
}


def granted(cfn: dict[str, Any], role: str, action: str, resource: str) -> bool:
    """Whether a statement of ``role`` in the translated template allows ``action`` on ``resource``
    (an index only by a statement naming that index, a table only by one naming no index)."""
    table, _, index = resource.partition("/index/")
    logical = (
        ("HubSpotCredentialSecret",) if resource.startswith("arn:aws:secretsmanager") else _LOGICAL[table]
    )
    for policy in cfn["Resources"][role]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            named = str(statement["Resource"])
            if action not in actions or not any(name in named for name in logical):
                continue
            if (f"/index/{index}" in named) if index else "/index/" not in named:
                return True
    return False


def test_every_aws_call_the_functions_make_is_one_their_role_grants(sync: Sync, aws_calls: AwsCalls) -> None:
    """moto enforces no IAM: a call the role does not grant would fail only in AWS. A merge reads
    and conditionally writes contacts, sets aside a poison message and wakes the flush; a flush
    reads its credential, the queue's depth and the pending index, takes its lane's lease, writes
    and records."""
    from local.template import translate

    event = sqs_event(profiles(30))
    event["Records"].append({**event["Records"][0], "messageId": "poison", "body": "not json"})
    # An operator's PUT re-activating an audience: the merge reads its held contacts and queues
    # them, then the job's sweep.
    job = ResumeJob("gold").message("put-request", int(time.time() * 1000))
    resume = {**event["Records"][0], "messageId": "resume", "body": job.body}
    resume["attributes"] = {**resume["attributes"], "MessageGroupId": job.group_id}
    event["Records"].append(resume)
    assert handler("merge", cold_start=True)(event, FakeContext()) == {"batchItemFailures": []}
    merge_calls = set(aws_calls.calls)
    # The event source takes the job's sweep, sent on to the queue, at once (and the merge puts it
    # back invisible until it is due): the flush sees no update waiting to be merged.
    assert len(receive_as_event_source(sync.queue)["Records"]) == 1
    aws_calls.calls = set()
    assert handler("flush", cold_start=True)({"lane": 0}, FakeContext())["synced"] == 30
    flush_calls = aws_calls.calls
    assert merge_calls >= {
        ("dynamodb:BatchGetItem", "ledger"),
        ("dynamodb:BatchWriteItem", "ledger"),
        ("dynamodb:UpdateItem", "ledger"),
        ("dynamodb:Query", "ledger/index/held"),
        ("sqs:SendMessage", "dlq.fifo"),
        ("sqs:SendMessage", "activations.fifo"),
        ("lambda:InvokeFunction", FLUSH_FUNCTION),
    }
    assert {action for action, _resource in flush_calls} >= {
        "secretsmanager:GetSecretValue",
        "sqs:GetQueueAttributes",
        "dynamodb:Query",
        "dynamodb:BatchGetItem",
        "dynamodb:UpdateItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
    }
    cfn = translate()
    assert [c for c in sorted(merge_calls) if not granted(cfn, "MergeFunctionRole", *c)] == []
    assert [c for c in sorted(flush_calls) if not granted(cfn, "FlushFunctionRole", *c)] == []


def published(output: str) -> set[str]:
    """The names of the metrics the EMF documents in ``output`` declare."""
    return {
        definition["Name"]
        for document in emf(output)
        for directive in document["_aws"]["CloudWatchMetrics"]
        for definition in directive["Metrics"]
    }


def watched() -> set[str]:
    """The connector's own metrics that template.yaml's dashboard and alarms read."""
    from local.template import translate

    resources = translate()["Resources"].values()
    alarms = {
        spec["Properties"]["MetricName"]
        for spec in resources
        if spec["Type"] == "AWS::CloudWatch::Alarm" and spec["Properties"]["Namespace"] == "HubSpotActivation"
    }
    (dashboard,) = [spec for spec in resources if spec["Type"] == "AWS::CloudWatch::Dashboard"]
    shown = re.findall(r'\["HubSpotActivation", "(\w+)"', dashboard["Properties"]["DashboardBody"]["Fn::Sub"])
    return alarms | set(shown)


def test_the_merge_and_the_flush_publish_every_metric_the_dashboard_and_the_alarms_read(
    sync: Sync, capsys: pytest.CaptureFixture[str]
) -> None:
    handler("merge", cold_start=True)(sqs_event(profiles(10)), FakeContext())
    handler("flush", cold_start=True)({"lane": 0}, FakeContext())
    output = capsys.readouterr().out
    # Profiles accepted and excluded are the ingest function's (tests/integration/test_ingest_handler.py),
    # drift the reconcile function's (tests/integration/test_reconcile_handler.py).
    others = {"ProfilesAccepted", "ProfilesExcluded", "DriftDetected", "DriftRepaired"}
    assert watched() - others - published(output) == set()
    # HubSpot's remaining burst budget after the run's last call (the sandbox has 100 a window).
    assert 0 <= metric(output, "RateLimitRemaining") < 100


def test_a_raised_property_limit_is_seen_by_every_flush_container(sync: Sync) -> None:
    """Two flush containers, each with its own cached definitions, both saw an audience's property
    refused (the custom property limit). After the operator's fix, a replay tries again at once on
    whichever container writes it, and any newer update once the refusal is older than the retry
    time, on every container, long before the definitions' refresh."""
    sync.monkeypatch.setenv("AUDIENCE_PROPERTY_RETRY_SECONDS", "1")
    state = sync.sandbox.state
    state.config.update({"custom_property_limit": state.custom_property_count()})
    merge = handler("merge", cold_start=True)
    first, second = handler("flush", cold_start=True), handler("flush", cold_start=True)
    vip = AudienceChange("vip", AudienceStatus.REALIZED, 1_795_000_000_000, "VIP")
    received = iter(range(1_795_000_000_000, 1_795_000_001_000))

    def write(container: Handler, emails: list[str], source: str = "aep") -> None:
        updates = [
            ContactUpdate(
                email, (vip,), {"firstname": f"V{email[0]}"}, source=source, received_ms=next(received)
            )
            for email in emails
        ]
        assert merge(sqs_event(updates), FakeContext()) == {"batchItemFailures": []}
        container({"lane": 0}, FakeContext())
        assert sync.pending() == []

    def vip_status(emails: list[str]) -> list[str | None]:
        hubspot = sync.hubspot()
        return [hubspot[email].get("aud_vip") for email in emails]

    write(first, ["a0@example.com", "a1@example.com"])
    write(second, ["b0@example.com", "b1@example.com"])
    assert vip_status(["a0@example.com", "b0@example.com"]) == [None, None]

    state.config.update({"custom_property_limit": 1000})  # the operator's fix
    write(second, ["b0@example.com"], source=REPLAY_SOURCE)
    assert vip_status(["b0@example.com"]) == ["realized"]
    time.sleep(1.2)  # the refusal is older than the retry time
    write(first, ["c0@example.com", "a1@example.com"])
    write(second, ["d0@example.com", "b1@example.com"])
    assert (
        vip_status(["c0@example.com", "a1@example.com", "d0@example.com", "b1@example.com"])
        == ["realized"] * 4
    )


def test_a_value_for_a_property_deleted_in_hubspot_is_kept_until_a_replay_writes_it(sync: Sync) -> None:
    state = sync.sandbox.state
    state.properties["loyalty_tier"] = {**state.properties["firstname"], "name": "loyalty_tier"}
    merge, flush = handler("merge", cold_start=True), handler("flush", cold_start=True)
    email = "ada@example.com"

    def write(update: ContactUpdate) -> None:
        assert merge(sqs_event([update]), FakeContext()) == {"batchItemFailures": []}
        flush({"lane": 0}, FakeContext())

    write(ContactUpdate(email, (), {"loyalty_tier": "silver"}, received_ms=1_795_000_000_000))
    assert sync.hubspot()[email]["loyalty_tier"] == "silver"
    # Deleted in HubSpot while the flush container's cached definitions still list it.
    definition = state.properties.pop("loyalty_tier")
    write(
        ContactUpdate(email, (), {"loyalty_tier": "gold", "firstname": "Ada"}, received_ms=1_795_000_000_001)
    )
    assert sync.hubspot()[email]["firstname"] == "Ada"
    item = boto3.client("dynamodb").get_item(TableName="ledger", Key={"email": {"S": email}})
    view = contact_view(entry_from_item(item["Item"]))
    assert view["status"] == "failed" and "loyalty_tier" in view["lastError"]
    assert view["pending"]["attributes"] == {"loyalty_tier": "gold"}
    assert sync.pending() == []  # failed, replayable: not retried on its own

    state.properties["loyalty_tier"] = definition  # the operator's fix
    write(ContactUpdate(email, source=REPLAY_SOURCE, received_ms=1_795_000_000_002))
    assert sync.hubspot()[email]["loyalty_tier"] == "gold"


def long_email(i: int) -> str:
    """A valid address of 238 characters (local part 61, domain labels of 60 and 50)."""
    return f"user{i:05d}.{'x' * 50}@{'a' * 60}.{'b' * 60}.{'c' * 50}.com"


def test_a_batch_whose_contacts_would_not_fit_one_pending_marker_is_merged(sync: Sync) -> None:
    """A marker is one DynamoDB item (400 KB at most): a batch listing more addresses than that
    holds (here 2,000 of 238 characters, 476 KB) is listed by several markers, not refused."""
    updates = [
        ContactUpdate(long_email(i), (), {"city": "Paris"}, received_ms=1_795_000_000_000)
        for i in range(2000)
    ]
    event = sqs_event(updates)
    assert len(event["Records"]) <= 10  # one event source batch
    assert handler("merge", cold_start=True)(event, FakeContext()) == {"batchItemFailures": []}
    emails = sorted(u.email for u in updates)
    assert sync.pending() == emails and sync.listed() == emails


@dataclass
class ServiceCalls:
    """Every call of one AWS service the process makes through boto3's default session: (operation,
    parameters)."""

    service: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.service_model.service_name == self.service:
            with self.lock:
                self.calls.append((model.name, dict(params)))


@pytest.fixture
def service_calls() -> Iterator[Callable[[str], ServiceCalls]]:
    recorders: list[ServiceCalls] = []
    events = boto3._get_default_session().events

    def watch(service: str) -> ServiceCalls:
        recorder = ServiceCalls(service)
        events.register("before-parameter-build", recorder.record)
        recorders.append(recorder)
        return recorder

    try:
        yield watch
    finally:
        for recorder in recorders:
            events.unregister("before-parameter-build", recorder.record)


@pytest.mark.parametrize("target", ["both", "list"])
def test_with_lists_kept_a_flush_hands_each_contact_to_its_list_and_starts_its_drain(
    sync: Sync, target: str, service_calls: Callable[[str], ServiceCalls], aws_calls: AwsCalls
) -> None:
    from local.template import translate

    timers = boto3.client("sqs").create_queue(QueueName="list-timers")["QueueUrl"]
    for name, value in {
        "AUDIENCE_TARGET": target,
        "LIST_TIMER_QUEUE_URL": timers,
        "LIST_FLUSH_SECONDS": "45",
    }.items():
        sync.monkeypatch.setenv(name, value)
    updates = profiles(30)
    handler("merge", cold_start=True)(sqs_event(updates), FakeContext())
    sqs = service_calls("sqs")
    aws_calls.calls = set()
    assert handler("flush", cold_start=True)({"lane": 0}, FakeContext())["synced"] == 30

    # Every call is one the role grants, but the timer's: its queue is the lists function's.
    cfn = translate()
    calls = sorted(call for call in aws_calls.calls if call[1] != "list-timers")
    assert [call for call in calls if not granted(cfn, "FlushFunctionRole", *call)] == []

    record_ids = sync.sandbox.state.email_index
    buffer = DynamoDbListBuffer(boto3.client("dynamodb"), "ledger")
    assert {t.record_id: t.member for t in buffer.read("gold")} == {
        record_ids[u.email]: True for u in updates
    }
    # One drain asked for, ListFlushSeconds after the list's first waiting change.
    started = [params for operation, params in sqs.calls if operation == "SendMessage"]
    assert [(p["QueueUrl"], json.loads(p["MessageBody"]), p["DelaySeconds"]) for p in started] == [
        (timers, {"audienceId": "gold"}, 45)
    ]
    hubspot = sync.hubspot()
    assert {"aud_gold" in hubspot[u.email] for u in updates} == {target == "both"}
    states = sync.states().read([u.email for u in updates])
    assert {s.confirmed.listed["gold"].status for s in states.values() if s.confirmed} == {"realized"}


def test_with_audiences_as_properties_a_flush_makes_no_call_for_lists(
    sync: Sync, service_calls: Callable[[str], ServiceCalls]
) -> None:
    sync.monkeypatch.setenv("LIST_TIMER_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/timers")
    handler("merge", cold_start=True)(sqs_event(profiles(30)), FakeContext())
    dynamodb, sqs = service_calls("dynamodb"), service_calls("sqs")
    assert handler("flush", cold_start=True)({"lane": 0}, FakeContext())["synced"] == 30

    assert dynamodb.calls
    assert [call for call in dynamodb.calls if "#list#" in json.dumps(call[1])] == []
    assert [call for call in dynamodb.calls if '"lists"' in json.dumps(call[1])] == []
    assert [operation for operation, _params in sqs.calls if operation != "GetQueueAttributes"] == []
    states = sync.states().read([u.email for u in profiles(30)])
    assert {bool(s.confirmed.listed) for s in states.values() if s.confirmed} == {False}
