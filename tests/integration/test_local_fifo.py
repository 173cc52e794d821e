"""The local queue behaves like SQS FIFO where the upsert function's top-up relies on it
(local/sqs_fifo.py, installed for every test by tests/conftest.py and by the local stack).

Each test pins one behaviour; the ones moto gets wrong on its own fail without the patch. No test
waits for a visibility timeout: moto's clock is moved forward instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.utils import unix_time_millis
from moto.sqs import models as sqs_models

from local.sqs_fifo import DEDUPLICATION_WINDOW_MS

MAX_RECEIVE_COUNT = 3


@dataclass
class Fifo:
    sqs: Any
    url: str
    dlq: str
    now_ms: list[float]

    def send(self, *names: str) -> None:
        """Messages named ``<group><n>`` (``A1``), sent in the order given."""
        for name in names:
            self.sqs.send_message(
                QueueUrl=self.url, MessageBody=name, MessageGroupId=name[0], MessageDeduplicationId=name
            )

    def receive(self, count: int = 10, url: str | None = None) -> list[dict[str, Any]]:
        return list(
            self.sqs.receive_message(
                QueueUrl=url or self.url,
                MaxNumberOfMessages=count,
                VisibilityTimeout=600,
                MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
        )

    def set_visibility(self, messages: list[dict[str, Any]], seconds: int) -> None:
        self.sqs.change_message_visibility_batch(
            QueueUrl=self.url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": seconds}
                for i, m in enumerate(messages)
            ],
        )

    def make_visible(self, messages: list[dict[str, Any]]) -> None:
        """A retry backoff running out: the function sets the visibility, then time passes."""
        self.set_visibility(messages, 30)
        self.now_ms[0] += 31_000

    def delete(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])


def bodies(messages: list[dict[str, Any]]) -> list[str]:
    return [m["Body"] for m in messages]


@pytest.fixture
def fifo(monkeypatch: pytest.MonkeyPatch) -> Iterator[Fifo]:
    now_ms = [unix_time_millis()]
    monkeypatch.setattr(sqs_models, "unix_time_millis", lambda: now_ms[0])
    with mock_aws():
        sqs = boto3.client("sqs")
        dlq = sqs.create_queue(QueueName="dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
        url = sqs.create_queue(
            QueueName="q.fifo", Attributes={"FifoQueue": "true", "RedrivePolicy": json.dumps(redrive)}
        )["QueueUrl"]
        yield Fifo(sqs, url, dlq, now_ms)


def test_a_receive_returns_as_many_messages_of_one_group_as_it_can(fifo: Fifo) -> None:
    fifo.send("A1", "B1", "A2", "B2", "A3", "B3")
    assert bodies(fifo.receive(3)) == ["A1", "A2", "A3"]
    # The second receive (the function's top-up) gets the other group, not nothing.
    assert bodies(fifo.receive(10)) == ["B1", "B2", "B3"]


def test_a_receive_moves_on_to_the_next_group_when_one_is_exhausted(fifo: Fifo) -> None:
    fifo.send("A1", "B1", "A2", "C1", "B2")
    assert bodies(fifo.receive(4)) == ["A1", "A2", "B1", "B2"]


def test_a_group_stays_locked_while_any_of_its_messages_is_in_flight(fifo: Fifo) -> None:
    fifo.send("A1", "A2", "A3", "B1")
    first = fifo.receive(1)  # the event source's batch
    assert bodies(first) == ["A1"]
    assert bodies(fifo.receive(10)) == ["B1"]  # the top-up: A is locked by A1
    fifo.delete(first)
    second = fifo.receive(1)
    assert bodies(second) == ["A2"]
    # A1 is gone, A2 (a later message) is in flight: A3 still waits.
    assert fifo.receive(10) == []
    fifo.delete(second)
    assert bodies(fifo.receive(10)) == ["A3"]


def test_messages_of_a_group_that_become_visible_again_come_back_in_order(fifo: Fifo) -> None:
    fifo.send("A1", "A2", "A3", "B1")
    batch = fifo.receive(10)
    assert bodies(batch) == ["A1", "A2", "A3", "B1"]
    fifo.make_visible(batch[:3])
    assert bodies(fifo.receive(10)) == ["A1", "A2", "A3"]


def test_a_longer_visibility_on_a_later_message_keeps_the_group_locked(fifo: Fifo) -> None:
    fifo.send("A1", "A2")
    batch = fifo.receive(10)
    fifo.set_visibility(batch[1:], 60)  # A2's backoff runs 30 s longer than A1's
    fifo.make_visible(batch[:1])
    assert fifo.receive(10) == []
    fifo.now_ms[0] += 30_000
    assert bodies(fifo.receive(10)) == ["A1", "A2"]


def test_receive_counts_grow_with_each_receive(fifo: Fifo) -> None:
    fifo.send("A1", "A2")
    for expected in (1, 2):
        batch = fifo.receive(10)
        assert [m["Attributes"]["ApproximateReceiveCount"] for m in batch] == [str(expected)] * 2
        fifo.make_visible(batch)


def test_after_max_receive_count_a_group_moves_to_the_dlq_in_order(fifo: Fifo) -> None:
    fifo.send("A1", "A2", "B1")
    batch = fifo.receive(2)
    for _ in range(MAX_RECEIVE_COUNT - 1):
        fifo.make_visible(batch)
        batch = fifo.receive(2)
        assert bodies(batch) == ["A1", "A2"]
    fifo.make_visible(batch)
    # Received maxReceiveCount times: the next receive moves them and hands out the next group.
    assert bodies(fifo.receive(10)) == ["B1"]
    assert bodies(fifo.receive(10, url=fifo.dlq)) == ["A1", "A2"]


def test_the_dlq_keeps_a_message_whose_deduplication_id_it_has_seen(fifo: Fifo) -> None:
    fifo.sqs.send_message(
        QueueUrl=fifo.dlq, MessageBody="moved earlier", MessageGroupId="A", MessageDeduplicationId="A1"
    )
    fifo.send("A1")
    for _ in range(MAX_RECEIVE_COUNT):
        fifo.make_visible(fifo.receive(10))
    assert fifo.receive(10) == []
    assert bodies(fifo.receive(10, url=fifo.dlq)) == ["moved earlier", "A1"]


def test_only_the_latest_receipt_handle_deletes(fifo: Fifo) -> None:
    fifo.send("A1")
    stale = fifo.receive(10)
    fifo.make_visible(stale)
    current = fifo.receive(10)
    fifo.delete(stale)  # a consumer that lost the message to a later receive: accepted, no effect
    fifo.make_visible(current)
    again = fifo.receive(10)
    assert bodies(again) == ["A1"]
    fifo.delete(again)
    assert fifo.receive(10) == []


def test_standard_queues_keep_their_own_behaviour() -> None:
    with mock_aws():
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="standard")["QueueUrl"]
        for body in ("x", "y"):
            sqs.send_message(QueueUrl=url, MessageBody=body)
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert sorted(m["Body"] for m in received) == ["x", "y"]


def send_id(
    fifo: Fifo, body: str, group: str, deduplication_id: str, url: str | None = None
) -> dict[str, Any]:
    response: dict[str, Any] = fifo.sqs.send_message(
        QueueUrl=url or fifo.url,
        MessageBody=body,
        MessageGroupId=group,
        MessageDeduplicationId=deduplication_id,
    )
    return response


def test_a_deduplication_id_is_remembered_for_five_minutes_after_its_message_was_deleted(fifo: Fifo) -> None:
    first = send_id(fifo, "first", "A", "x")
    fifo.delete(fifo.receive(10))
    # Accepted, answered with the first message's id, and not queued.
    again = send_id(fifo, "again", "A", "x")
    assert (again["MessageId"], again["SequenceNumber"]) == (first["MessageId"], first["SequenceNumber"])
    assert fifo.receive(10) == []
    fifo.now_ms[0] += DEDUPLICATION_WINDOW_MS - 1
    send_id(fifo, "still within", "A", "x")
    assert fifo.receive(10) == []
    fifo.now_ms[0] += 1
    later = send_id(fifo, "after the window", "A", "x")
    assert later["MessageId"] != first["MessageId"]
    assert bodies(fifo.receive(10)) == ["after the window"]


def test_a_deduplication_id_is_remembered_after_its_message_moved_to_the_dlq(fifo: Fifo) -> None:
    send_id(fifo, "first", "A", "x")
    for _ in range(MAX_RECEIVE_COUNT):
        fifo.make_visible(fifo.receive(10))
    assert fifo.receive(10) == []  # moved to the DLQ
    send_id(fifo, "again", "A", "x")
    assert fifo.receive(10) == []
    assert bodies(fifo.receive(10, url=fifo.dlq)) == ["first"]


def test_a_duplicate_of_a_queued_message_is_answered_with_its_id(fifo: Fifo) -> None:
    first = send_id(fifo, "first", "A", "x")
    assert send_id(fifo, "first", "A", "x")["MessageId"] == first["MessageId"]
    assert bodies(fifo.receive(10)) == ["first"]


def test_with_message_group_scope_deduplication_is_per_group(fifo: Fifo) -> None:
    url = fifo.sqs.create_queue(
        QueueName="per-group.fifo",
        Attributes={
            "FifoQueue": "true",
            "DeduplicationScope": "messageGroup",
            "FifoThroughputLimit": "perMessageGroupId",
        },
    )["QueueUrl"]
    for group in ("A", "B", "A"):
        send_id(fifo, f"{group} x", group, "x", url=url)
    assert bodies(fifo.receive(10, url=url)) == ["A x", "B x"]


def test_content_based_deduplication_uses_the_body(fifo: Fifo) -> None:
    url = fifo.sqs.create_queue(
        QueueName="by-content.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    for body in ("same", "same", "other"):
        fifo.sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="A")
    assert bodies(fifo.receive(10, url=url)) == ["same", "other"]


def test_a_fifo_send_is_refused_as_sqs_refuses_it(fifo: Fifo) -> None:
    with pytest.raises(ClientError, match="MessageDeduplicationId"):
        fifo.sqs.send_message(QueueUrl=fifo.url, MessageBody="x", MessageGroupId="A")
    with pytest.raises(ClientError, match="MessageGroupId"):
        fifo.sqs.send_message(QueueUrl=fifo.url, MessageBody="x", MessageDeduplicationId="x")
    send = {"MessageBody": "x", "MessageGroupId": "A", "MessageDeduplicationId": "x", "DelaySeconds": 5}
    with pytest.raises(ClientError, match="DelaySeconds"):
        fifo.sqs.send_message(QueueUrl=fifo.url, **send)
    assert fifo.receive(10) == []


def test_queue_attributes_count_the_queue(fifo: Fifo) -> None:
    fifo.send("A1", "A2", "B1")
    fifo.receive(1)
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "FifoQueue"]
    attributes = fifo.sqs.get_queue_attributes(QueueUrl=fifo.url, AttributeNames=names)["Attributes"]
    assert attributes == {
        "ApproximateNumberOfMessages": "2",
        "ApproximateNumberOfMessagesNotVisible": "1",
        "FifoQueue": "true",
    }
    with pytest.raises(ClientError, match="InvalidAttributeName"):
        fifo.sqs.get_queue_attributes(QueueUrl=fifo.url, AttributeNames=["NoSuchAttribute"])
