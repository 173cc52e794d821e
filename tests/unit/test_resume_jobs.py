"""Resume jobs: their message format, and how the consumer pages through an audience's held
contacts, sends the job on and sweeps once more after the last page."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pytest
from hubspot_activation.messages import (
    RESUME_SOURCE,
    QueueMessage,
    ResumeJob,
    decode_message,
    decode_resume_job,
    is_resume_group,
)
from hubspot_activation.upsert.audiences import AudienceMetadata
from hubspot_activation.upsert.plan import InboundMessage, coalesce
from hubspot_activation.upsert.resume import ResumeJobs

NOW = 1_796_000_000.0


def test_a_job_message_round_trips_in_its_own_group_and_fails_the_update_decoder() -> None:
    message = ResumeJob("gold/é", cursor='{"k":1}', sweep=True, due_ms=5).message("req-1", 7)
    assert is_resume_group(message.group_id) and not is_resume_group("c3")
    assert decode_resume_job(message.body) == ResumeJob("gold/é", '{"k":1}', True, 5)
    # A consumer that knows no jobs (one still running during a deploy) must not read it as a
    # message without updates and delete it: it fails to decode, goes to the DLQ, and a replay
    # brings it back to a consumer that runs it.
    with pytest.raises(ValueError, match="unsupported message format"):
        decode_message(message.body)
    batch = coalesce([InboundMessage("m1", message.group_id, message.body)])
    assert batch.jobs == {"m1": ResumeJob("gold/é", '{"k":1}', True, 5)} and not batch.undecodable
    assert message.deduplication_id != ResumeJob("gold/é").message("req-2", 7).deduplication_id


@pytest.mark.parametrize(
    "body",
    [
        '{"v":2,"rcv":1,"updates":[]}',
        '{"v":2,"rcv":1,"updates":[],"resume":{"audience":""}}',
        '{"v":2,"rcv":1,"updates":[],"resume":{"audience":"a","cursor":3}}',
        '{"v":2,"rcv":1,"updates":[],"resume":{"audience":"a","due":1e400}}',
        "[" * 100_000,
    ],
)
def test_a_resume_group_message_that_is_not_a_job_is_set_aside(body: str) -> None:
    batch = coalesce([InboundMessage("m1", "resume-x", body)])
    assert list(batch.undecodable) == ["m1"] and not batch.jobs


@dataclass
class Index:
    emails: list[str]
    reads: list[str | None] = field(default_factory=list)

    def held_contacts(self, audience_id: str, limit: int, cursor: str | None) -> tuple[list[str], str | None]:
        self.reads.append(cursor)
        start = int(cursor or 0)
        end = start + limit
        return self.emails[start:end], (str(end) if end < len(self.emails) else None)


@dataclass
class Directory:
    deleted: bool = False

    def lookup(self, audience_ids: Iterable[str]) -> dict[str, AudienceMetadata]:
        return {audience_id: AudienceMetadata(None, self.deleted) for audience_id in audience_ids}

    def forget(self, audience_ids: Iterable[str]) -> None:
        pass


@dataclass
class Sent:
    messages: list[QueueMessage] = field(default_factory=list)

    def publish(self, messages: Sequence[QueueMessage], request_id: str) -> int:
        self.messages.extend(messages)
        return 1

    def jobs(self) -> list[ResumeJob]:
        return [decode_resume_job(m.body) for m in self.messages if is_resume_group(m.group_id)]

    def contacts(self) -> list[str]:
        updates = [
            u for m in self.messages if not is_resume_group(m.group_id) for u in decode_message(m.body)
        ]
        assert all(u.source == RESUME_SOURCE and not u.audiences and not u.attributes for u in updates)
        return sorted(u.email for u in updates)


def runner(index: Index, sent: Sent, directory: Directory | None = None) -> ResumeJobs:
    return ResumeJobs(
        index, directory or Directory(), sent, 4, sweep_seconds=60, page_size=2, clock=lambda: NOW
    )


def test_a_job_queues_one_page_and_sends_the_next_then_a_sweep_due_a_minute_later() -> None:
    index, sent = Index([f"c{i}@example.com" for i in range(3)]), Sent()
    outcome = runner(index, sent).run({"m1": ResumeJob("gold")})
    assert outcome.contacts == 2 and sent.jobs() == [ResumeJob("gold", "2")]
    sent.messages.clear()
    runner(index, sent).run({"m2": ResumeJob("gold", "2")})
    assert sent.contacts() == ["c2@example.com"]
    assert sent.jobs() == [ResumeJob("gold", None, sweep=True, due_ms=int(NOW * 1000) + 60_000)]
    sent.messages.clear()
    runner(index, sent).run({"m3": ResumeJob("gold", None, sweep=True)})
    assert sent.contacts() == ["c0@example.com", "c1@example.com"] and sent.jobs() == [
        ResumeJob("gold", "2", True)
    ]
    sent.messages.clear()
    runner(index, sent).run({"m4": ResumeJob("gold", "2", sweep=True)})
    assert sent.contacts() == ["c2@example.com"] and sent.jobs() == []


def test_a_job_received_before_it_is_due_goes_back_until_then() -> None:
    index, sent = Index(["a@example.com"]), Sent()
    outcome = runner(index, sent).run({"m1": ResumeJob("gold", sweep=True, due_ms=int(NOW * 1000) + 59_001)})
    assert outcome.later == {"m1": 60} and index.reads == [] and sent.messages == []


def test_a_job_finding_its_audience_deleted_again_stops() -> None:
    index, sent = Index(["a@example.com"]), Sent()
    outcome = runner(index, sent, Directory(deleted=True)).run({"m1": ResumeJob("gold")})
    assert outcome.contacts == 0 and index.reads == [] and sent.messages == []


def test_a_job_that_fails_goes_back() -> None:
    class Refusing(Sent):
        def publish(self, messages: Sequence[QueueMessage], request_id: str) -> int:
            raise RuntimeError("SQS did not take them")

    outcome = runner(Index(["a@example.com"]), Refusing()).run({"m1": ResumeJob("gold")})
    assert outcome.failed == {"m1"}


def test_a_job_behind_an_early_or_failed_job_of_its_group_is_not_run() -> None:
    # Run, the job behind would send its pages and its follow-up, then go back with its group
    # and run again: two sweeps of the same audience.
    index, sent = Index(["a@example.com", "b@example.com", "c@example.com"]), Sent()
    early = ResumeJob("gold", sweep=True, due_ms=int(NOW * 1000) + 30_000)
    outcome = runner(index, sent).run(
        {"m1": early, "m2": ResumeJob("gold", "2", sweep=True), "m3": ResumeJob("blue")}
    )
    assert index.reads == [None] and sent.jobs() == [ResumeJob("blue", "2")]
    assert outcome.later == {"m1": 30} and outcome.held_back == {"m2"}

    class Refusing(Sent):
        def publish(self, messages: Sequence[QueueMessage], request_id: str) -> int:
            self.messages.extend(messages)
            raise RuntimeError("SQS did not take them")

    index, refusing = Index(["a@example.com"]), Refusing()
    outcome = runner(index, refusing).run({"m1": ResumeJob("gold"), "m2": ResumeJob("gold", "2")})
    assert index.reads == [None] and outcome.failed == {"m1"} and outcome.held_back == {"m2"}
