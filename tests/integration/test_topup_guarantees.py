"""The top-up's guarantees, through the real upsert handler, the local event source and the local
SQS FIFO queue (moto with SQS's FIFO receive, local/sqs_fifo.py): order per contact across the
event source's batch and the topped-up messages, a transient failure returning a topped-up message
with every later one of its group (made visible after the backoff, never deleted), receive counts
reaching the DLQ, and every message deleted exactly once after success.

(tests/integration/test_upsert_handler.py covers filling and settling, a whole-call failure and a
crash.) Time never passes by the clock here: moto's clock is moved past the retry backoff.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from hubspot_activation.hubspot.batch import UpsertInput, UpsertResult
from hubspot_activation.hubspot.client import HubSpotClient
from hubspot_activation.hubspot.errors import ErrorKind, HubSpotError
from hubspot_activation.messages import pack
from hubspot_activation.model import ContactUpdate
from moto import mock_aws
from moto.core.utils import unix_time_millis
from moto.sqs import models as sqs_models

from local.event_source import EventSourcePoller
from local.functions import handler
from local.hubspot_sandbox import SandboxServer
from local.sqs_fifo import DEDUPLICATION_WINDOW_MS
from tests.conftest import FakeContext, create_ledger_table

SHARDS = 8
MAX_RECEIVE_COUNT = 3
RETRY_BASE_SECONDS = 10


def group_of(email: str) -> str:
    return pack([ContactUpdate(email, (), {})], SHARDS)[0].group_id


def same_group_emails(count: int, avoid: frozenset[str] = frozenset()) -> list[str]:
    """``count`` emails of one message group, not one of the groups in ``avoid``."""
    by_group: dict[str, list[str]] = {}
    for i in range(1000):
        email = f"user{i}@example.com"
        group = group_of(email)
        if group in avoid:
            continue
        by_group.setdefault(group, []).append(email)
        if len(by_group[group]) == count:
            return by_group[group]
    raise AssertionError("no group found")


@dataclass
class Pipeline:
    sandbox: SandboxServer
    queue: str
    dlq: str
    poller: EventSourcePoller
    now_ms: list[float]
    #: message id -> how many times moto deleted it
    deletes: Counter[str] = field(default_factory=Counter)
    #: the city each write sent, per email, in call order
    cities: dict[str, list[str]] = field(default_factory=dict)
    #: emails whose writes HubSpot answers with a transient error (how many more times; -1: always)
    failing: dict[str, int] = field(default_factory=dict)
    stamp: int = 1_795_000_000_000

    def send(self, email: str, city: str) -> str:
        return self.send_many([email], city)

    def send_many(self, emails: list[str], city: str) -> str:
        """One message carrying every one of ``emails`` (all of one group)."""
        self.stamp += 1
        updates = [ContactUpdate(email, (), {"city": city}, received_ms=self.stamp) for email in emails]
        (message,) = pack(updates, SHARDS)
        return str(
            boto3.client("sqs").send_message(
                QueueUrl=self.queue,
                MessageBody=message.body,
                MessageGroupId=message.group_id,
                MessageDeduplicationId=message.deduplication_id,
            )["MessageId"]
        )

    def visible(self) -> list[str]:
        """The queue's messages visible now (moto's clock moved a second on first: it stands still
        here, and "visible at once" means "visible from now")."""
        self.now_ms[0] += 1000
        queue = sqs_models.sqs_backends["123456789012"]["us-east-1"].get_queue(self.queue.rsplit("/", 1)[1])
        return [message.id for message in queue._messages if message.visible]

    def pass_backoff(self) -> None:
        self.now_ms[0] += (RETRY_BASE_SECONDS * 2**MAX_RECEIVE_COUNT + 1) * 1000

    def on_queue(self, url: str | None = None) -> list[str]:
        queue = sqs_models.sqs_backends["123456789012"]["us-east-1"].get_queue(
            (url or self.queue).rsplit("/", 1)[1]
        )
        return [message.id for message in queue._messages]


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    now_ms = [unix_time_millis()]
    monkeypatch.setattr(sqs_models, "unix_time_millis", lambda: now_ms[0])
    sandbox = SandboxServer().start()
    with mock_aws():
        sqs = boto3.client("sqs")
        create_ledger_table()
        secret = boto3.client("secretsmanager").create_secret(
            Name="hubspot", SecretString=json.dumps({"accessToken": sandbox.state.add_private_app_token()})
        )["ARN"]
        dlq = sqs.create_queue(QueueName="dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
        queue = sqs.create_queue(
            QueueName="q.fifo",
            Attributes={
                "FifoQueue": "true",
                "VisibilityTimeout": "900",
                "RedrivePolicy": json.dumps(redrive),
            },
        )["QueueUrl"]
        for name, value in {
            "LEDGER_TABLE": "ledger",
            "HUBSPOT_SECRET_ID": secret,
            "QUEUE_URL": queue,
            "DEAD_LETTER_QUEUE_URL": dlq,
            "HUBSPOT_BASE_URL": sandbox.url,
            "RETRY_BASE_SECONDS": str(RETRY_BASE_SECONDS),
            "POWERTOOLS_SERVICE_NAME": "hubspot-activation",
        }.items():
            monkeypatch.setenv(name, value)
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        # One record per invocation: everything else the function holds, it received itself.
        poller = EventSourcePoller(sqs, queue, arn, handler("upsert", cold_start=True), batch_size=1)
        running = Pipeline(sandbox, queue, dlq, poller, now_ms)
        _record_deletes(monkeypatch, running)
        _record_writes(monkeypatch, running)
        yield running
    sandbox.stop()


def _record_deletes(monkeypatch: pytest.MonkeyPatch, running: Pipeline) -> None:
    delete = sqs_models.Queue.delete_message

    def recorded(queue: Any, receipt_handle: str) -> None:
        before = {message.id for message in queue._messages}
        delete(queue, receipt_handle)
        gone = before - {message.id for message in queue._messages}
        running.deletes.update(gone)
        if not gone:
            running.deletes["(nothing: deleted before, or a stale handle)"] += 1

    monkeypatch.setattr(sqs_models.Queue, "delete_message", recorded)


def _record_writes(monkeypatch: pytest.MonkeyPatch, running: Pipeline) -> None:
    upsert = HubSpotClient.batch_upsert

    def recorded(
        client: HubSpotClient, inputs: list[UpsertInput], deadline: float | None = None
    ) -> list[UpsertResult]:
        failing = [i for i in inputs if running.failing.get(i.email, 0) != 0]
        passing = [i for i in inputs if i not in failing]
        for item in failing:
            running.failing[item.email] -= 1
        results = {r.email: r for r in upsert(client, passing, deadline)} if passing else {}
        for item in passing:
            running.cities.setdefault(item.email, []).append(str(item.properties.get("city")))
        error = HubSpotError(ErrorKind.RETRYABLE, "HubSpot had a moment", status=503)
        return [results.get(i.email) or UpsertResult(i.email, error=error) for i in inputs]

    monkeypatch.setattr(HubSpotClient, "batch_upsert", recorded)


def city(running: Pipeline, email: str) -> str | None:
    for contact in running.sandbox.state.contacts.values():
        if contact["properties"].get("email") == email:
            return str(contact["properties"].get("city"))
    return None


def test_a_contact_keeps_its_order_while_another_consumer_holds_its_group(pipeline: Pipeline) -> None:
    (ada,) = same_group_emails(1)
    (first_other,) = same_group_emails(1, avoid=frozenset({group_of(ada)}))
    (second_other,) = same_group_emails(1, avoid=frozenset({group_of(ada), group_of(first_other)}))
    other = [first_other, second_other]
    for label in ("first", "second", "third"):
        pipeline.send(ada, label)
    for email in other:
        pipeline.send(email, "elsewhere")
    # Consumer 1 holds ada's first message (its invocation has not run yet).
    held = boto3.client("sqs").receive_message(QueueUrl=pipeline.queue, MaxNumberOfMessages=1)["Messages"]
    assert len(held) == 1
    # Consumer 2 runs: one record from the event source, the rest topped up, but none of ada's.
    assert pipeline.poller.poll_once() == 1
    assert ada not in pipeline.cities
    assert sorted(pipeline.cities) == sorted(other)
    # Consumer 1's invocation, then the rest of the queue.
    event = {"Records": [pipeline.poller._record(dict(held[0]))]}
    assert pipeline.poller.handler(event, FakeContext()) == {"batchItemFailures": []}
    boto3.client("sqs").delete_message(QueueUrl=pipeline.queue, ReceiptHandle=held[0]["ReceiptHandle"])
    assert pipeline.poller.drain(timeout=30)
    assert pipeline.cities[ada] == ["first", "second", "third"]
    assert city(pipeline, ada) == "third"


def test_a_transient_failure_returns_the_topped_up_message_and_every_later_one_of_its_group(
    pipeline: Pipeline,
) -> None:
    bob, carl = same_group_emails(2)
    (starter,) = same_group_emails(1, avoid=frozenset({group_of(bob)}))
    first = pipeline.send(starter, "start")  # the event source's record: the oldest group
    returned = [pipeline.send(bob, "b1"), pipeline.send(carl, "c1"), pipeline.send(bob, "b2")]
    pipeline.failing[bob] = 1
    assert pipeline.poller.poll_once() == 1
    # The event source's record and nothing else was deleted; bob's group is on the queue, carl's
    # write (after bob's failed one in the group) included, invisible until the backoff is over.
    assert set(pipeline.deletes) == {first}
    assert pipeline.on_queue() == returned
    assert pipeline.poller.poll_once() == 0
    pipeline.pass_backoff()
    again = boto3.client("sqs").receive_message(
        QueueUrl=pipeline.queue, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )["Messages"]
    assert [m["MessageId"] for m in again] == returned  # in order, together
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in again} == {"2"}
    boto3.client("sqs").change_message_visibility_batch(
        QueueUrl=pipeline.queue,
        Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(again)
        ],
    )
    pipeline.now_ms[0] += 1000  # moto's clock stands still here: let "visible now" be in the past
    assert pipeline.poller.drain(timeout=30)
    assert city(pipeline, bob) == "b2" and city(pipeline, carl) == "c1"
    # Every message deleted exactly once, and only after its success.
    assert pipeline.deletes == Counter(dict.fromkeys([first, *returned], 1))


def test_a_topped_up_message_failing_max_receive_count_times_lands_in_the_dlq(pipeline: Pipeline) -> None:
    (bob,) = same_group_emails(1)
    starters = same_group_emails(MAX_RECEIVE_COUNT + 1, avoid=frozenset({group_of(bob)}))
    # The starters' group is older than bob's, so the event source always takes a starter and
    # bob's message only ever reaches the function through the top-up.
    starter_ids = [pipeline.send(email, "start") for email in starters]
    doomed = pipeline.send(bob, "never")
    pipeline.failing[bob] = -1
    for _ in range(MAX_RECEIVE_COUNT):
        assert pipeline.poller.poll_once() == 1
        assert doomed in pipeline.on_queue()
        pipeline.pass_backoff()
    assert pipeline.poller.poll_once() == 1  # the top-up's receive moves it
    assert pipeline.on_queue() == []
    assert pipeline.on_queue(pipeline.dlq) == [doomed]
    assert pipeline.poller.stats.records == MAX_RECEIVE_COUNT + 1
    assert pipeline.deletes == Counter(dict.fromkeys(starter_ids, 1))
    assert city(pipeline, bob) is None


def three_groups(sizes: tuple[int, int, int]) -> list[list[str]]:
    """Emails of three different groups, as many of each as ``sizes`` asks."""
    first = same_group_emails(sizes[0])
    second = same_group_emails(sizes[1], avoid=frozenset({group_of(first[0])}))
    third = same_group_emails(sizes[2], avoid=frozenset({group_of(first[0]), group_of(second[0])}))
    return [first, second, third]


def test_a_topped_up_partial_tail_is_held_back_and_written_by_the_next_invocation(
    pipeline: Pipeline,
) -> None:
    a, b, c = three_groups((20, 40, 49))
    # The event source's record: 20 contacts; the top-up asks for 4 more messages and gets b's
    # two (20 + 20) and c's two (40 + 10, of which one contact repeats): 110 contacts, a backlog.
    ids = [pipeline.send_many(a, "a"), pipeline.send_many(b[:20], "b1"), pipeline.send_many(b[20:], "b2")]
    ids += [pipeline.send_many(c[:40], "first"), pipeline.send_many([c[39], *c[40:]], "second")]
    assert pipeline.poller.poll_once() == 1
    # One full call of 100 contacts: c's 9 new ones wait and their message goes back; c[39],
    # written now with both its updates, is in it too and is skipped as unchanged when it returns.
    assert sorted(pipeline.cities) == sorted([*a, *b, *c[:40]])
    assert pipeline.sandbox.state.requests["POST batch_upsert"] == 1
    assert pipeline.cities[c[39]] == ["second"]
    assert pipeline.deletes == Counter(dict.fromkeys(ids[:4], 1))
    assert pipeline.visible() == [ids[4]]  # back at once, not after the visibility timeout
    assert pipeline.poller.poll_once() == 1
    assert pipeline.poller.pending() == 0
    assert pipeline.sandbox.state.requests["POST batch_upsert"] == 2
    assert pipeline.cities[c[39]] == ["second"]
    assert {email: pipeline.cities[email] for email in c[40:]} == {email: ["second"] for email in c[40:]}
    assert pipeline.deletes == Counter(dict.fromkeys(ids, 1))  # every message deleted exactly once


def test_an_event_source_record_held_back_comes_back_first_of_its_group(pipeline: Pipeline) -> None:
    a, b, _ = three_groups((120, 100, 1))
    # b's contacts are already in HubSpot with these values: sent again, they need no write.
    synced = [pipeline.send_many(b, "b")]
    assert pipeline.poller.drain(timeout=30)
    writes_before = pipeline.sandbox.state.requests["POST batch_upsert"]
    # Past SQS's deduplication window: the same content is queued again, not dropped as a duplicate.
    pipeline.now_ms[0] += DEDUPLICATION_WINDOW_MS
    # The record: a's 120 contacts; the top-up reaches 200 contacts with b's unchanged 100. Of the
    # 120 writes, the last 20 wait: the record goes back, its group's next message behind it.
    ids = [pipeline.send_many(a, "first"), pipeline.send_many(b, "b")]
    later = pipeline.send_many(a[:5], "second")
    handler = pipeline.poller.handler
    answers: list[dict[str, Any]] = []

    def recorded(event: dict[str, Any], context: Any) -> dict[str, Any]:
        answers.append(handler(event, context))
        return answers[-1]

    pipeline.poller.handler = recorded
    assert pipeline.poller.poll_once() == 1
    assert answers[0] == {"batchItemFailures": [{"itemIdentifier": ids[0]}]}
    assert pipeline.sandbox.state.requests["POST batch_upsert"] == writes_before + 1
    assert len([email for email in a if email in pipeline.cities]) == 100
    assert pipeline.visible() == [ids[0], later]  # the record at once; its group's next behind it
    assert pipeline.poller.drain(timeout=30)
    assert all(pipeline.cities[email] == ["first", "second"] for email in a[:5])
    assert all(pipeline.cities[email] == ["first"] for email in a[5:])
    assert all(pipeline.cities[email] == ["b"] for email in b)  # never written again
    assert pipeline.deletes == Counter(dict.fromkeys([*synced, *ids, later], 1))
