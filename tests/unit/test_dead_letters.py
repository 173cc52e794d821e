"""Moving dead letters back when SQS fails part of the way: nothing is lost, nothing loops."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hubspot_activation.messages import ResumeJob
from hubspot_activation.model import AudienceChange, AudienceStatus, ContactUpdate
from hubspot_activation.operations.dead_letters import UNDECODABLE_GROUP, SqsDeadLetterMover

from tests.builders import pack
from tests.conftest import drain


class FaultySqs:
    """moto's SQS, with the faults a test asks for; counts the calls it passes on."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.send_error: Exception | None = None
        self.refuse_entries: set[str] = set()
        self.delete_error: Exception | None = None
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def receive_message(self, **kwargs: Any) -> Any:
        self._count("receive_message")
        return self._client.receive_message(**kwargs)

    def send_message_batch(self, **kwargs: Any) -> Any:
        self._count("send_message_batch")
        if self.send_error is not None:
            raise self.send_error
        refused = [entry for entry in kwargs["Entries"] if entry["Id"] in self.refuse_entries]
        kept = [entry for entry in kwargs["Entries"] if entry["Id"] not in self.refuse_entries]
        response = dict(self._client.send_message_batch(QueueUrl=kwargs["QueueUrl"], Entries=kept))
        response["Failed"] = [
            {"Id": entry["Id"], "Code": "InternalError", "SenderFault": False} for entry in refused
        ]
        return response

    def delete_message_batch(self, **kwargs: Any) -> Any:
        self._count("delete_message_batch")
        if self.delete_error is not None:
            raise self.delete_error
        return self._client.delete_message_batch(**kwargs)

    def change_message_visibility_batch(self, **kwargs: Any) -> Any:
        self._count("change_message_visibility_batch")
        return self._client.change_message_visibility_batch(**kwargs)


REFUSED = ClientError({"Error": {"Code": "InternalError", "Message": "boom"}}, "SendMessageBatch")


@pytest.fixture
def queues(aws_resources: dict[str, str]) -> tuple[Any, str, str]:
    sqs = boto3.client("sqs")
    dlq = sqs.get_queue_url(QueueName="dlq.fifo")["QueueUrl"]
    return sqs, dlq, aws_resources["QUEUE_URL"]


def dead_letter(sqs: Any, dlq: str, email: str) -> None:
    change = AudienceChange("gold", AudienceStatus.REALIZED, 1_795_000_000_000)
    (message,) = pack([ContactUpdate(email, (change,), received_ms=1_795_000_000_000)], 8)
    sqs.send_message(
        QueueUrl=dlq,
        MessageBody=message.body,
        MessageGroupId=message.group_id,
        MessageDeduplicationId=message.deduplication_id,
    )


def garbage(sqs: Any, dlq: str, body: str) -> str:
    return str(
        sqs.send_message(
            QueueUrl=dlq, MessageBody=body, MessageGroupId="other", MessageDeduplicationId=body[:60]
        )["MessageId"]
    )


def bodies(sqs: Any, url: str) -> list[str]:
    return sorted(message["Body"] for message in drain(url))


def mover(faulty: FaultySqs, dlq: str, queue: str) -> SqsDeadLetterMover:
    return SqsDeadLetterMover(faulty, dlq, queue, clock=lambda: 0.0)  # type: ignore[arg-type]


def test_a_refused_send_stops_the_move_and_the_messages_are_visible_again_at_once(
    queues: tuple[Any, str, str],
) -> None:
    sqs, dlq, queue = queues
    for i in range(25):
        dead_letter(sqs, dlq, f"user{i}@example.com")
    faulty = FaultySqs(sqs)
    faulty.send_error = REFUSED
    report = mover(faulty, dlq, queue).move_back(500, deadline=1.0)
    assert (report.moved, report.failed) == (0, 10)
    assert len(report.errors) == 1 and "could not send to the queue" in report.errors[0]
    # One batch received and tried, then no more: not 500 messages' worth of the same failure.
    assert faulty.calls["receive_message"] == 1 and faulty.calls["send_message_batch"] == 1
    assert "delete_message_batch" not in faulty.calls
    # Made visible at once: all 25 are receivable now, not only after the 60 s visibility timeout.
    assert len(drain(dlq)) == 25
    assert drain(queue) == []


def test_entries_the_queue_refuses_stay_in_the_dlq_and_the_rest_moves(queues: tuple[Any, str, str]) -> None:
    sqs, dlq, queue = queues
    for i in range(3):
        dead_letter(sqs, dlq, f"user{i}@example.com")
    faulty = FaultySqs(sqs)
    faulty.refuse_entries = {"1"}
    report = mover(faulty, dlq, queue).move_back(500, deadline=1.0)
    assert (report.moved, report.failed) == (2, 1)
    assert report.errors == ["1 message(s) could not be sent back; they stay in the DLQ"]
    moved, left = drain(queue), drain(dlq)
    assert len(moved) == 2 and len(left) == 1
    assert {message["Body"] for message in moved}.isdisjoint(message["Body"] for message in left)


def test_a_failed_delete_after_the_send_duplicates_but_never_loses(queues: tuple[Any, str, str]) -> None:
    sqs, dlq, queue = queues
    dead_letter(sqs, dlq, "ada@example.com")
    faulty = FaultySqs(sqs)
    faulty.delete_error = ClientError({"Error": {"Code": "InternalError"}}, "DeleteMessageBatch")
    report = mover(faulty, dlq, queue).move_back(500, deadline=1.0)
    assert (report.moved, report.undeleted) == (1, 1)
    assert any("could not be deleted from the DLQ" in error for error in report.errors)
    # On the main queue, and still in the DLQ (visible after its timeout): a later move sends it
    # again - a duplicate the ledger's order stamps make harmless - but it is never lost.
    (on_queue,) = drain(queue)
    assert on_queue["Body"].count("ada@example.com") == 1
    attributes = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"
    assert faulty.calls["send_message_batch"] == 1  # not re-received and re-sent within the call


def test_undecodable_messages_stay_in_the_dlq_and_are_reported(queues: tuple[Any, str, str]) -> None:
    sqs, dlq, queue = queues
    dead_letter(sqs, dlq, "ada@example.com")
    garbage(sqs, dlq, "not a queue message")
    garbage(sqs, dlq, '{"v": 99, "updates": []}')
    faulty = FaultySqs(sqs)
    report = mover(faulty, dlq, queue).move_back(500, deadline=1.0)
    assert report.moved == 1 and report.set_aside == 2
    assert report.to_json()["undecodable"]["count"] == 2
    assert len(drain(queue)) == 1
    # Left in the DLQ (set aside in its undecodable group, body unchanged) under the ids the answer
    # lists, and visible for the operator as soon as the call ended.
    left = drain(dlq)
    assert sorted(message["MessageId"] for message in left) == sorted(report.undecodable_ids)
    assert sorted(message["Body"] for message in left) == sorted(
        ["not a queue message", '{"v": 99, "updates": []}']
    )
    assert {message["Attributes"]["MessageGroupId"] for message in left} == {UNDECODABLE_GROUP}


def test_a_resume_group_letter_is_decoded_as_a_job_and_a_broken_one_set_aside(
    queues: tuple[Any, str, str],
) -> None:
    sqs, dlq, queue = queues
    job = ResumeJob("gold").message("req-1", 1_795_000_000_000)
    broken = '{"v":2,"rcv":0,"updates":[],"resume":{"audience":""}}'
    for body, dedup in ((broken, "broken"), (job.body, "job")):
        sqs.send_message(
            QueueUrl=dlq, MessageBody=body, MessageGroupId=job.group_id, MessageDeduplicationId=dedup
        )
    report = mover(FaultySqs(sqs), dlq, queue).move_back(500, deadline=1.0)
    # The consumer would dead-letter the broken job again: it is set aside, not moved back and
    # forth, and the good job behind it in its group is moved.
    assert (report.moved, report.set_aside) == (1, 1)
    assert bodies(sqs, queue) == [job.body]
    (left,) = drain(dlq)
    assert left["Body"] == broken and left["Attributes"]["MessageGroupId"] == UNDECODABLE_GROUP


def letter(sqs: Any, dlq: str, group: str, index: int) -> str:
    """A decodable dead letter in ``group``; its body names its index."""
    change = AudienceChange("gold", AudienceStatus.REALIZED, 1_795_000_000_000 + index)
    (message,) = pack(
        [ContactUpdate(f"user{index}@example.com", (change,), received_ms=1_795_000_000_000)], 8
    )
    sqs.send_message(
        QueueUrl=dlq, MessageBody=message.body, MessageGroupId=group, MessageDeduplicationId=f"letter-{index}"
    )
    return message.body


def test_an_undecodable_head_never_blocks_its_group_and_more_holds_until_all_moved(
    queues: tuple[Any, str, str],
) -> None:
    sqs, dlq, queue = queues
    sqs.send_message(
        QueueUrl=dlq, MessageBody="{not json", MessageGroupId="c3", MessageDeduplicationId="head"
    )
    bodies_in_order = [letter(sqs, dlq, "c3", index) for index in range(95)]
    faulty = FaultySqs(sqs)
    answers = []
    for _call in range(20):
        report = mover(faulty, dlq, queue).move_back(20, deadline=1.0)
        answers.append((report.moved, report.more))
        if not report.more:
            break
    moved = drain(queue)
    # Every movable letter moved, in its group's order; each call but the last said there was more.
    assert [message["Body"] for message in moved] == bodies_in_order
    assert {message["Attributes"]["MessageGroupId"] for message in moved} == {"c3"}
    assert sum(count for count, _more in answers) == 95
    assert [more for _count, more in answers] == [True] * (len(answers) - 1) + [False]
    assert len(answers) == 5  # 19 moved with the letter set aside, then 20 a call
    (left,) = drain(dlq)
    assert left["Body"] == "{not json" and left["Attributes"]["MessageGroupId"] == UNDECODABLE_GROUP


def test_a_set_aside_letter_keeps_its_id_and_is_not_sent_again(queues: tuple[Any, str, str]) -> None:
    sqs, dlq, queue = queues
    sqs.send_message(QueueUrl=dlq, MessageBody="[[[", MessageGroupId="c1", MessageDeduplicationId="head")
    letter(sqs, dlq, "c1", 0)
    faulty = FaultySqs(sqs)
    first = mover(faulty, dlq, queue).move_back(500, deadline=1.0)
    assert (first.moved, first.set_aside, first.more) == (1, 1, False)
    sends = faulty.calls["send_message_batch"]
    letter(sqs, dlq, "c1", 1)
    second = mover(faulty, dlq, queue).move_back(500, deadline=1.0)
    # Found in the undecodable group: reported under the same id, left there, not sent anew.
    assert (second.moved, second.set_aside, second.more) == (1, 0, False)
    assert second.undecodable_ids == first.undecodable_ids
    assert faulty.calls["send_message_batch"] == sends + 1  # the one move, no set-aside
    assert [message["MessageId"] for message in drain(dlq)] == first.undecodable_ids


def test_undecodable_heads_of_many_groups_are_all_set_aside_in_one_call(queues: tuple[Any, str, str]) -> None:
    sqs, dlq, queue = queues
    expected = []
    for group in range(12):
        sqs.send_message(
            QueueUrl=dlq,
            MessageBody="x" * (group + 1),
            MessageGroupId=f"c{group}",
            MessageDeduplicationId=f"h{group}",
        )
        expected += [letter(sqs, dlq, f"c{group}", group * 10 + i) for i in range(3)]
    # Deeper than the JSON decoder's recursion limit: undecodable, not a crash.
    sqs.send_message(
        QueueUrl=dlq, MessageBody="[" * 100_000, MessageGroupId="c0", MessageDeduplicationId="deep"
    )
    report = mover(FaultySqs(sqs), dlq, queue).move_back(500, deadline=1.0)
    assert (report.moved, report.set_aside, report.more) == (36, 13, False)
    assert sorted(message["Body"] for message in drain(queue)) == sorted(expected)
    assert len(drain(dlq)) == 13


def test_a_refused_set_aside_stops_the_move_and_loses_nothing(queues: tuple[Any, str, str]) -> None:
    sqs, dlq, queue = queues
    sqs.send_message(QueueUrl=dlq, MessageBody="nope", MessageGroupId="c2", MessageDeduplicationId="head")
    letter(sqs, dlq, "c2", 0)

    class RefusingDlqSends(FaultySqs):
        def send_message_batch(self, **kwargs: Any) -> Any:
            if kwargs["QueueUrl"] == dlq:
                raise REFUSED
            return super().send_message_batch(**kwargs)

    report = mover(RefusingDlqSends(sqs), dlq, queue).move_back(500, deadline=1.0)
    assert (report.moved, report.set_aside) == (1, 0)
    assert any("could not set undecodable messages aside" in error for error in report.errors)
    # Visible again at once, still at the head of its group.
    (left,) = drain(dlq)
    assert left["Body"] == "nope" and left["Attributes"]["MessageGroupId"] == "c2"


def test_a_set_aside_letter_whose_delete_fails_keeps_more_true_and_says_what_happened(
    queues: tuple[Any, str, str],
) -> None:
    sqs, dlq, queue = queues
    sqs.send_message(QueueUrl=dlq, MessageBody="{bad", MessageGroupId="c5", MessageDeduplicationId="head")
    for index in range(12):
        letter(sqs, dlq, "c5", index)

    class FailingDeleteAfterSetAside(FaultySqs):
        """Refuses the delete that follows a send to the DLQ: the set-aside's delete."""

        sent_to: str = ""

        def send_message_batch(self, **kwargs: Any) -> Any:
            self.sent_to = kwargs["QueueUrl"]
            return super().send_message_batch(**kwargs)

        def delete_message_batch(self, **kwargs: Any) -> Any:
            if self.sent_to == dlq:
                raise ClientError({"Error": {"Code": "InternalError"}}, "DeleteMessageBatch")
            return super().delete_message_batch(**kwargs)

    report = mover(FailingDeleteAfterSetAside(sqs), dlq, queue).move_back(500, deadline=1.0)
    # The original still heads its group (in flight until its visibility timeout), with 3 letters
    # behind it: there is more to move, and the answer says so.
    assert (report.moved, report.set_aside, report.more) == (9, 1, True)
    assert report.undeleted == 0  # every moved letter was deleted
    assert not any("moved message(s)" in error for error in report.errors)
    assert any("set aside but could not be deleted from their group" in error for error in report.errors)
    assert len(drain(queue)) == 9
