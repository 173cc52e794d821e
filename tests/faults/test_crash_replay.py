"""Crashes between every two steps of the merge and of a flush run, and replays: whatever dies where,
and whatever is delivered again in whatever order, a contact converges to its newest input, and
HubSpot never shows an older value after a newer one.

A crash here is the process dying (killed, out of memory, timed out): ``Crash`` is a BaseException
no handler of the product catches, and once raised every later AWS call, HubSpot request or wake-up
of that process raises too, so not even a ``finally`` reaches AWS (a lane's lease stays taken).
The steps are found by running the scenario once without a crash; then it is run again, dying
before and after each kind of step in turn:

- merged but not flushed (the merge dies before waking the flusher, or the flush before writing):
  the contact stays pending and a later run (the schedule's) writes it;
- written to HubSpot but not recorded: the next run writes it again (an upsert, idempotent) and
  nothing rolls back;
- recorded but the lease not released: the lane stays taken until the lease expires, then the next
  run goes on (and has nothing to write);
- merged but the SQS message not deleted: the redelivery changes nothing.

"Newest" is computed by ``workload.expected_state`` from the rules alone. Attribute values name the
update that set them (``city@<receive>.<position>``), so HubSpot's property history shows any
rollback.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any
from urllib.parse import urlparse

import boto3
import pytest
import requests
from hubspot_activation.hubspot.client import RetryPolicy
from hubspot_activation.hubspot.versions import ApiVersion, Paths
from hubspot_activation.messages import QueueMessage
from hubspot_activation.model import AudienceChange, AudienceStatus, ContactUpdate
from hubspot_activation.upsert import wiring
from hubspot_activation.upsert.adapter import MergeConsumer, inbound_messages
from hubspot_activation.upsert.flush import FlushSettings
from hubspot_activation.upsert.ledger import SYNCED
from hubspot_activation.upsert.merge import MergeReport

from local.hubspot_sandbox import SandboxServer
from tests.builders import pack
from tests.conftest import create_ledger_table
from tests.faults.conftest import (
    LANES,
    Aws,
    FlushContainer,
    LaneWaker,
    flush_container,
    merge_consumer,
)
from tests.faults.workload import column, expected_state, hubspot_by_email, hubspot_mismatches, rollbacks

pytestmark = pytest.mark.faults

REALIZED, EXITED = AudienceStatus.REALIZED, AudienceStatus.EXITED
#: Past any lease a run took (its time left plus a minute): the clock of a run after a dead one's.
LEASE_EXPIRED = 2_000.0
LEASE = "flush-lane"
UPSERT = Paths(ApiVersion.V3).batch_upsert


class Crash(BaseException):
    """The process died: nothing of the product handles it."""


Point = tuple[str, str, int]


@dataclass
class Tripwire:
    """The steps of one process: AWS calls, HubSpot requests, wake-ups. Armed at (step, phase,
    occurrence), it kills the process there: before the step (it never happens) or after it (it
    happened, its answer is lost); from then on every step of the process raises ``Crash``."""

    at: Point | None = None
    steps: list[str] = field(default_factory=list)
    dead: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def before(self, name: str) -> int:
        """The step is about to happen; returns which of its name it is."""
        with self._lock:
            self._alive(name)
            self.steps.append(name)
            occurrence = self.steps.count(name)
            self._trip((name, "before", occurrence))
            return occurrence

    def after(self, name: str, occurrence: int) -> None:
        with self._lock:
            self._alive(name)
            self._trip((name, "after", occurrence))

    def _alive(self, name: str) -> None:
        if self.dead:
            raise Crash(f"{name}: the process is dead")

    def _trip(self, point: Point) -> None:
        if self.at == point:
            self.dead = True
            raise Crash(f"killed {point}")

    def watch(self, client: Any) -> Any:
        """A boto3 client whose every call is a step, named by its operation and, for DynamoDB,
        the kind of item it addresses."""
        service = client.meta.service_model.service_name

        def name(model: Any, params: Mapping[str, Any]) -> str:
            key = (params.get("Key") or params.get("Item") or {}).get("email", {}).get("S", "")
            kind = " contact" if "@" in key else f" {key.split('#')[1]}" if key.count("#") > 1 else ""
            return f"{service} {model.name}{kind}"

        def named(model: Any, params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
            context["tripwire_step"] = name(model, params)

        def before(context: dict[str, Any], **_: Any) -> None:
            context["tripwire_occurrence"] = self.before(context["tripwire_step"])

        def after(context: Mapping[str, Any], **_: Any) -> None:
            self.after(context["tripwire_step"], context["tripwire_occurrence"])

        # The call's own parameters are seen before they are serialized; it is sent after before-call.
        client.meta.events.register("before-parameter-build.*.*", named)
        client.meta.events.register("before-call.*.*", before)
        client.meta.events.register("after-call.*.*", after)
        return client

    def points(self) -> list[Point]:
        """Before and after the first and the last step of each kind."""
        found: list[Point] = []
        for name in dict.fromkeys(self.steps):
            for occurrence in sorted({1, self.steps.count(name)}):
                found.extend((name, phase, occurrence) for phase in ("before", "after"))
        return found

    def happened(self, name: str) -> bool:
        """Whether a step of this name took effect (the process may have died after it)."""
        return name in self.steps and self.at != (name, "before", self.steps.count(name))


class WatchedSession(requests.Session):
    """The HubSpot client's HTTP session: every request is a step."""

    def __init__(self, tripwire: Tripwire) -> None:
        super().__init__()
        self.tripwire = tripwire

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        name = f"hubspot {request.method} {urlparse(request.url or '').path}"
        occurrence = self.tripwire.before(name)
        response = super().send(request, **kwargs)
        self.tripwire.after(name, occurrence)
        return response


@dataclass
class WatchedWaker:
    """The merge's wake-up of the flusher (a Lambda Invoke): a step."""

    tripwire: Tripwire
    waker: LaneWaker

    def wake(self, lanes: Collection[int], sweep: bool = False) -> None:
        occurrence = self.tripwire.before("lambda Invoke")
        self.waker.wake(lanes)
        self.tripwire.after("lambda Invoke", occurrence)


@pytest.fixture(autouse=True)
def prompt_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A flush run ends as soon as its lane has nothing due, rather than lingering two seconds for
    contacts being merged: each run here is driven by the test."""
    monkeypatch.setattr(wiring, "FlushSettings", partial(FlushSettings, linger_seconds=0.0))


def change(audience_id: str, status: AudienceStatus, timestamp_ms: int) -> AudienceChange:
    return AudienceChange(audience_id, status, timestamp_ms)


def in_lane(lane: int, count: int, prefix: str = "user") -> list[str]:
    """Emails the flusher's lane ``lane`` writes."""
    found = []
    for index in range(10_000):
        email = f"{prefix}{index}@example.com"
        if wiring.lane_of(email, LANES) == lane:
            found.append(email)
            if len(found) == count:
                return found
    raise AssertionError("not enough emails")


def fresh(aws: Aws) -> Aws:
    """A new ledger table (contacts' states and leases) in the same moto account."""
    table = f"ledger-{uuid.uuid4().hex[:8]}"
    create_ledger_table(table, aws.dynamodb)
    return replace(aws, settings=replace(aws.settings, ledger_table=table))


Update = tuple[str, Iterable[AudienceChange], Iterable[str]]


@dataclass
class Story:
    """What was sent so far, the messages it became, and checks against the sandbox and ledger."""

    sandbox: SandboxServer
    aws: Aws
    waker: LaneWaker = field(default_factory=LaneWaker)
    shards: int = 4
    sent: list[ContactUpdate] = field(default_factory=list)
    _ids: int = 0

    def request(self, received_ms: int, *updates: Update) -> list[QueueMessage]:
        """One ingest request: (email, audience changes, attribute names) at their positions; each
        attribute's value names its update."""
        built = [
            ContactUpdate(
                email,
                tuple(audiences),
                {name: f"{name}@{received_ms}.{position}" for name in attributes},
                received_ms=received_ms,
                position=position,
            )
            for position, (email, audiences, attributes) in enumerate(updates)
        ]
        self.sent.extend(built)
        return pack(built, self.shards)

    def event(self, messages: Iterable[QueueMessage], receive_count: int = 1) -> dict[str, Any]:
        """The merge function's SQS event for these messages (each a delivery of its own)."""
        records = []
        for message in messages:
            self._ids += 1
            records.append(
                {
                    "messageId": f"m{self._ids}",
                    "receiptHandle": f"rh{self._ids}",
                    "body": message.body,
                    "attributes": {
                        "MessageGroupId": message.group_id,
                        "ApproximateReceiveCount": str(receive_count),
                    },
                }
            )
        return {"Records": records}

    def merge(self, messages: Iterable[QueueMessage], consumer: MergeConsumer | None = None) -> MergeReport:
        consumer = consumer or merge_consumer(self.aws, self.waker)
        return consumer.service.process(inbound_messages(self.event(messages)))

    def container(self, **options: Any) -> FlushContainer:
        return flush_container(self.sandbox, self.aws, self.waker, **options)

    def flush(
        self, container: FlushContainer | None = None, lanes: Iterable[int] = range(LANES - 1, -1, -1)
    ) -> int:
        """One run of each lane, lane 0 last (it writes the tails the others hand over to it);
        returns the batch upserts they sent."""
        container = container or self.container()
        summaries = [container.invoke({"lane": lane}) for lane in lanes]
        assert all("rounds" in summary for summary in summaries), summaries
        return sum(int(summary["calls"]) for summary in summaries)

    def mismatches(self) -> list[str]:
        contacts, _ids, duplicates = hubspot_by_email(self.sandbox.state)
        assert duplicates == []
        return hubspot_mismatches(contacts, expected_state(self.sent))

    def pending(self) -> set[str]:
        return self.aws.pending_emails()

    def converged(self) -> None:
        assert self.mismatches() == []
        assert rollbacks(self.sandbox.state, self.sent) == []
        assert self.pending() == set()
        emails = sorted({update.email for update in self.sent})
        states = self.aws.states.read(emails)
        assert {email: states[email].confirmed.status for email in emails} == dict.fromkeys(  # type: ignore[union-attr]
            emails, SYNCED
        )


@pytest.fixture
def story(sandbox: SandboxServer, aws: Aws) -> Story:
    return Story(sandbox, aws)


# --- a flush run dying between every two steps ----------------------------------------------------


def _flush_scenario(sandbox: SandboxServer, aws: Aws, at: Point | None, audience: str) -> Tripwire:
    """Ada is in HubSpot with an older state; a newer one and a new contact are merged; a flush
    process watched by a tripwire armed ``at`` runs the lane, then the lane goes on with a healthy
    process. Returns the tripwire (its steps, whether it fired)."""
    story = Story(sandbox, fresh(aws))
    ada, bob = in_lane(0, 2, prefix=f"{audience}-")
    old = story.request(1_000, (ada, [change(audience, REALIZED, 1_000)], ["city", "firstname"]))
    story.merge(old)
    story.flush(lanes=[0])
    new = story.request(
        2_000,
        (ada, [change(audience, EXITED, 2_000)], ["city"]),
        (bob, [change(audience, REALIZED, 2_000)], ["lastname"]),
    )
    story.merge(new)
    tripwire = Tripwire(at)
    dying = story.container(
        dynamodb=tripwire.watch(boto3.client("dynamodb")), session=WatchedSession(tripwire)
    )
    try:
        dying.invoke({"lane": 0})
    except Crash:
        assert at is not None and tripwire.dead
    assert tripwire.dead == (at is not None), f"{at} never came: {tripwire.steps}"
    # Whatever HubSpot holds now, it never went back; a contact not pending is confirmed as written.
    assert rollbacks(sandbox.state, story.sent) == []
    settled = {ada, bob} - story.pending()
    if settled:
        contacts, _ids, _duplicates = hubspot_by_email(sandbox.state)
        expected = expected_state(story.sent)
        assert hubspot_mismatches(contacts, {e: expected[e] for e in settled}) == []
    # A run that died holding the lane leaves it taken: the next run finds it so until it expires.
    if tripwire.happened(f"dynamodb PutItem {LEASE}") and not tripwire.happened(
        f"dynamodb DeleteItem {LEASE}"
    ):
        assert story.container().invoke({"lane": 0}) == {
            "lane": 0,
            "skipped": "another run holds the lane; it runs again after",
        }
    late = story.container(clock=lambda: time.time() + LEASE_EXPIRED)
    story.flush(late, lanes=[0])
    story.converged()
    # The older message delivered again changes nothing and costs no HubSpot request.
    assert story.merge(old).changed == 0
    assert story.flush(late, lanes=[0]) == 0
    story.converged()
    return tripwire


def test_a_flush_run_dying_between_any_two_steps_loses_nothing_and_rolls_nothing_back(
    sandbox: SandboxServer, aws: Aws
) -> None:
    clean = _flush_scenario(sandbox, aws, None, "clean")
    points = clean.points()
    # The run's steps: its lease, the pending index, the states, HubSpot's properties and the
    # write, the recordings, the lease's release.
    names = set(clean.steps)
    assert {
        f"dynamodb PutItem {LEASE}",
        "dynamodb Query",
        "dynamodb BatchGetItem",
        f"hubspot POST {UPSERT}",
        "dynamodb UpdateItem contact",
        f"dynamodb DeleteItem {LEASE}",
    } <= names, names
    for index, point in enumerate(points):
        assert _flush_scenario(sandbox, aws, point, f"a{index}").dead


# --- the merge dying between every two steps ------------------------------------------------------


def _merge_scenario(story: Story, at: Point | None, tag: str) -> Tripwire:
    """A newer state of Ada is sent to the queue (moto, receiving like SQS FIFO) and received by a
    merge process watched by a tripwire armed ``at``, which deletes the message once merged. The
    message comes back when it was not deleted; a healthy merge takes it; the schedule's flush run
    writes what is pending."""
    aws, sqs, url = story.aws, story.aws.sqs, story.aws.settings.queue_url
    ada = f"{tag}@example.com"
    old = story.request(1_000, (ada, [change("VIP", REALIZED, 1_000)], ["city", "firstname"]))
    story.merge(old)
    story.flush()
    (new,) = story.request(2_000, (ada, [change("VIP", EXITED, 2_000)], ["city"]))
    sqs.send_message(
        QueueUrl=url,
        MessageBody=new.body,
        MessageGroupId=new.group_id,
        MessageDeduplicationId=new.deduplication_id,
    )
    tripwire = Tripwire(at)
    dying = merge_consumer(aws, WatchedWaker(tripwire, story.waker), tripwire.watch(boto3.client("dynamodb")))
    deleting = tripwire.watch(boto3.client("sqs"))
    (received,) = _receive(story)
    try:
        assert dying.handle(_sqs_event(received))["batchItemFailures"] == []
        deleting.delete_message(QueueUrl=url, ReceiptHandle=received["ReceiptHandle"])
    except Crash:
        assert at is not None
    assert tripwire.dead == (at is not None), f"{at} never came: {tripwire.steps}"
    desired = aws.state(ada).desired
    merged = desired is not None and desired.attributes["city"][0] == "city@2000.0"
    assert merged == tripwire.happened("dynamodb UpdateItem contact")
    if tripwire.happened("sqs DeleteMessage"):
        assert _receive(story) == []
    else:
        # Not deleted: the message comes back once its visibility ends (now, here) to a healthy merge.
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=received["ReceiptHandle"], VisibilityTimeout=0
        )
        (redelivered,) = _receive(story)
        assert redelivered["Attributes"]["ApproximateReceiveCount"] == "2"
        report = merge_consumer(aws, story.waker).service.process(inbound_messages(_sqs_event(redelivered)))
        assert report.failed_message_ids == []
        # A merge written before the crash is not written again, and wakes no flusher again.
        assert (report.changed, report.newly_pending) == ((0, 0) if merged else (1, 1))
        sqs.delete_message(QueueUrl=url, ReceiptHandle=redelivered["ReceiptHandle"])
    # Whether or not a wake-up came, the schedule runs every lane.
    container = story.container()
    container.invoke({"source": "aws.scheduler"})
    for lane in story.waker.clear():
        container.invoke({"lane": lane})
    story.converged()
    return tripwire


def _receive(story: Story) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = story.aws.sqs.receive_message(
        QueueUrl=story.aws.settings.queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    ).get("Messages", [])
    return received


def _sqs_event(message: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message["Attributes"]),
            }
        ]
    }


def test_the_merge_dying_between_any_two_steps_loses_nothing_and_a_redelivery_changes_nothing(
    story: Story,
) -> None:
    clean = _merge_scenario(story, None, "clean")
    assert clean.steps == [
        "dynamodb BatchGetItem",
        "dynamodb UpdateItem contact",
        "dynamodb BatchWriteItem",  # the batch's pending marker
        "lambda Invoke",
        "sqs DeleteMessage",
    ], clean.steps
    for index, point in enumerate(clean.points()):
        assert _merge_scenario(story, point, f"m{index}").dead


# --- named crashes, each on its own ---------------------------------------------------------------


def test_written_to_hubspot_but_not_recorded_is_written_again_by_the_next_run(story: Story) -> None:
    ada = in_lane(0, 1)[0]
    story.merge(story.request(1_000, (ada, [change("VIP", REALIZED, 1_000)], ["city"])))
    story.flush(lanes=[0])
    story.merge(story.request(2_000, (ada, [change("VIP", EXITED, 2_000)], ["city"])))
    tripwire = Tripwire((f"hubspot POST {UPSERT}", "after", 1))
    dying = story.container(
        dynamodb=tripwire.watch(boto3.client("dynamodb")), session=WatchedSession(tripwire)
    )
    with pytest.raises(Crash):
        dying.invoke({"lane": 0})
    # HubSpot holds the newer state; the ledger still confirms the older one and keeps Ada pending.
    assert story.mismatches() == []
    state = story.aws.state(ada)
    assert state.pending and state.confirmed is not None
    assert state.confirmed.written["city"] == "city@1000.0"
    late = story.container(clock=lambda: time.time() + LEASE_EXPIRED)
    assert story.flush(late, lanes=[0]) == 1  # written again: an upsert of the same state
    story.converged()
    assert story.aws.state(ada).confirmed.written["city"] == "city@2000.0"  # type: ignore[union-attr]


def test_recorded_but_the_lease_not_released_the_lease_expires_and_the_next_run_goes_on(story: Story) -> None:
    # Lane 0 writes every lane's tail: its run takes lane 1's lease too (the first lease it lets
    # go at the end), then lets its own go - which is where this run dies.
    ada, bob = in_lane(0, 2)
    story.merge(story.request(1_000, (ada, [change("VIP", REALIZED, 1_000)], ["city"])))
    tripwire = Tripwire((f"dynamodb DeleteItem {LEASE}", "before", 2))
    dying = story.container(dynamodb=tripwire.watch(boto3.client("dynamodb")))
    with pytest.raises(Crash):
        dying.invoke({"lane": 0})
    assert story.mismatches() == [] and story.pending() == set()  # recorded
    # A newer update while the dead run's lease holds the lane: it waits, pending.
    story.merge(story.request(2_000, (bob, [], ["city"])))
    assert story.container().invoke({"lane": 0}) == {
        "lane": 0,
        "skipped": "another run holds the lane; it runs again after",
    }
    assert story.pending() == {bob}
    # Lane 1 is not held by it.
    assert "rounds" in story.container().invoke({"lane": 1})
    late = story.container(clock=lambda: time.time() + LEASE_EXPIRED)
    assert story.flush(late, lanes=[0]) == 1
    story.converged()


def test_a_run_killed_after_the_first_of_several_calls_writes_only_the_rest_next_time(
    story: Story,
) -> None:
    emails = in_lane(0, 150)
    story.shards = 1
    story.merge(
        story.request(1_000, *[(e, [change("gold_members", REALIZED, 1_000)], ["city"]) for e in emails])
    )
    assert story.flush(lanes=[0]) == 2
    story.merge(
        story.request(2_000, *[(e, [change("gold_members", EXITED, 2_000)], ["city"]) for e in emails])
    )
    tripwire = Tripwire((f"hubspot POST {UPSERT}", "before", 2))
    # One call at a time: the first call of 100 is answered and recorded before the second starts.
    settings = replace(story.aws.settings, flush_parallel_calls=1)
    dying = story.container(
        settings=settings, dynamodb=tripwire.watch(boto3.client("dynamodb")), session=WatchedSession(tripwire)
    )
    with pytest.raises(Crash):
        dying.invoke({"lane": 0})
    assert len(story.pending()) == 50
    late = story.container(clock=lambda: time.time() + LEASE_EXPIRED)
    summary = late.invoke({"lane": 0})
    assert summary["contactsPerCall"] == [50] and summary["synced"] == 50
    story.converged()


# --- duplicates, replays, redrives ----------------------------------------------------------------


def test_duplicate_delivery_costs_nothing_and_changes_nothing(story: Story) -> None:
    people = [f"p{i}@example.com" for i in range(12)]
    first = story.request(1_000, *[(p, [change("vip", REALIZED, 1_000)], ["city"]) for p in people])
    report = story.merge([*first, *first])  # the same body twice in one batch
    assert report.failed_message_ids == [] and report.changed == 12
    story.flush()
    assert story.merge(first).changed == 0  # delivered again later
    assert story.flush() == 0
    story.converged()


def test_an_older_message_replayed_after_newer_ones_never_rolls_back(story: Story) -> None:
    ada = "ada@example.com"
    old = story.request(
        1_000, (ada, [change("VIP", REALIZED, 1_000), change("vip!", EXITED, 1_000)], ["city", "lastname"])
    )
    tie = story.request(
        2_000, (ada, [change("vip!", REALIZED, 1_000)], ["city"])
    )  # same timestamp: later wins
    older_ts = story.request(
        3_000, (ada, [change("VIP", EXITED, 500)], [])
    )  # received later, happened earlier
    for messages in (old, tie, older_ts):
        assert story.merge(messages).failed_message_ids == []
        story.flush()
    assert story.merge(old).changed == 0
    assert story.flush() == 0
    story.converged()
    contact = story.sandbox.state.contacts[story.sandbox.state.email_index[ada]]["properties"]
    assert contact["lastname"] == "lastname@1000.0" and contact["city"] == "city@2000.0"


def test_an_older_message_redriven_after_newer_ones_brings_only_what_nothing_replaced(story: Story) -> None:
    """An older message lands in the DLQ (its merge kept failing) while newer ones are merged and
    written; an operator's redrive brings it back."""
    ada = "ada@example.com"
    old = story.request(1_000, (ada, [change("VIP", REALIZED, 1_000)], ["city", "firstname"]))
    story.merge(story.request(2_000, (ada, [change("VIP", EXITED, 2_000)], ["firstname"])))
    story.flush()
    report = story.merge(old)
    assert report.changed == 1  # the city: nothing newer set it
    story.flush()
    story.converged()
    contact = story.sandbox.state.contacts[story.sandbox.state.email_index[ada]]["properties"]
    assert (contact["city"], contact["firstname"]) == ("city@1000.0", "firstname@2000.0")
    assert contact[column("VIP")] == "exited"


def test_any_order_of_a_batch_and_its_prefixes_redelivered_converges(story: Story) -> None:
    story.shards = 1
    ada, bob = "ada@example.com", "bob@example.com"
    batch = [
        message
        for n in range(5)
        for message in story.request(
            1_000 * (n + 1),
            (ada, [change("cart_abandoners", (REALIZED, EXITED)[n % 2], 1_000 * (n + 1))], ["city"]),
            (bob, [change("cart_abandoners", (EXITED, REALIZED)[n % 2], 5_000 - n)], ["firstname"]),
        )
    ]
    story.merge(list(reversed(batch)))
    story.flush()
    for size in (1, 2, 4):
        assert story.merge(batch[:size]).changed == 0
    assert story.flush() == 0
    newer = story.request(9_000, (ada, [], ["city"]))
    assert story.merge([*batch[:3], *newer]).changed == 1
    story.flush()
    story.converged()


# --- HubSpot failing while the run makes sure of its properties ------------------------------------


def test_hubspot_failing_while_properties_are_made_sure_of_leaves_the_contacts_pending(
    story: Story,
) -> None:
    """A transient failure of the property calls (429s past the client's retries) ends the round
    without a crash: the contacts stay pending, with a backoff, and the next run writes them."""
    ada = in_lane(0, 1)[0]
    story.merge(story.request(1_000, (ada, [change("brand-new", REALIZED, 1_000)], ["city"])))
    story.sandbox.state.config.force_429 = 50
    # The run's time is up once the failure is recorded (it would wait out the backoff otherwise).
    summary = story.container().invoke(
        {"lane": 0}, remaining=lambda: 0.0 if story.aws.state(ada).attempts else 900.0
    )
    assert summary["retriedLater"] == 1 and summary["synced"] == 0 and summary["throttled"] > 0
    state = story.aws.state(ada)
    assert state.pending and state.attempts == 1
    story.sandbox.state.config.force_429 = 0
    time.sleep(max(0.0, ((state.due_ms or 0) - time.time() * 1000) / 1000))
    assert story.flush(lanes=[0]) == 1
    story.converged()


def test_the_daily_limit_reached_while_properties_are_made_sure_of_pauses_the_run(story: Story) -> None:
    ada = in_lane(0, 1)[0]
    story.merge(story.request(1_000, (ada, [change("brand-new", REALIZED, 1_000)], ["city"])))
    state = story.sandbox.state
    with state.lock:
        state.config.daily_limit = state.daily_used
    summary = story.container().invoke({"lane": 0})
    assert summary["dailyLimitResetsAt"] is not None and summary["hubspotRequests"] == 1
    assert story.pending() == {ada}
    with state.lock:
        state.config.daily_limit = 250_000
    assert story.flush(lanes=[0]) == 1
    story.converged()


# --- a timed-out attempt, retried within the same call ------------------------------------------

SLOW_THEN_FAST = RetryPolicy(
    max_attempts=2, max_wait_seconds=5, base_backoff_seconds=0.01, locked_wait_seconds=0.05
)


@pytest.fixture
def timed_out_write(story: Story) -> str:
    """Ada's first write waits 700 ms in HubSpot (the client gives up after 0.3 s); its retry is
    answered at once, and the run's time is up right after that call. Yields Ada's email."""
    container = story.container(timeout=(1.0, 0.3), retry=SLOW_THEN_FAST)
    ada, warm = in_lane(0, 2)
    story.merge(story.request(500, (warm, [change("VIP", EXITED, 500)], ["city"])))
    story.flush(container, lanes=[0])  # properties made: one call per write next

    def fast_after_first() -> None:
        while story.sandbox.state.faults["latency"] == 0:
            time.sleep(0.005)
        story.sandbox.state.config.latency_ms = 0

    story.sandbox.state.config.latency_ms = 700
    watcher = threading.Thread(target=fast_after_first)
    watcher.start()
    story.merge(story.request(1_000, (ada, [change("VIP", REALIZED, 1_000)], ["city"])))
    sent = container.client.requests_sent
    summary = container.invoke(
        {"lane": 0}, remaining=lambda: 900.0 if container.client.requests_sent - sent < 2 else 0.0
    )
    watcher.join()
    assert summary["contactsPerCall"] == [1] and summary["hubspotRequests"] == 2
    # Written, but the timed-out attempt may land late: the contact is not taken as confirmed.
    assert summary["synced"] == 0 and summary["retriedLater"] == 1
    return ada


def test_a_timed_out_attempt_leaves_the_contact_unconfirmed_even_when_its_retry_succeeds(
    story: Story, timed_out_write: str
) -> None:
    state = story.aws.state(timed_out_write)
    assert state.pending and state.confirmed is not None and state.confirmed.unconfirmed_at_ms is not None


def test_a_late_apply_never_rolls_back_the_next_write(story: Story, timed_out_write: str) -> None:
    ada = timed_out_write
    story.merge(story.request(2_000, (ada, [change("VIP", EXITED, 2_000)], ["city"])))
    time.sleep(1.0)  # the first attempt is applied meanwhile; the contact's backoff is 1 s
    assert story.flush(lanes=[0]) == 1
    story.converged()


def test_an_unconfirmed_write_is_written_again_even_when_nothing_changed(
    story: Story, timed_out_write: str
) -> None:
    time.sleep(1.0)  # the first attempt is applied meanwhile; the contact's backoff is 1 s
    assert story.flush(lanes=[0]) == 1
    story.converged()


# --- HubSpot failing for longer than a contact's attempts ------------------------------------------


def test_a_contact_hubspot_keeps_failing_is_recorded_as_failed_with_the_reason_and_a_newer_state_is_written(
    story: Story,
) -> None:
    ada = in_lane(0, 1)[0]
    story.merge(story.request(1_000, (ada, [change("VIP", REALIZED, 1_000)], ["city"])))
    container = story.container(settings=replace(story.aws.settings, max_write_attempts=2))
    story.flush(container, lanes=[0])  # properties made
    story.merge(story.request(2_000, (ada, [change("VIP", EXITED, 2_000)], ["city"])))
    story.sandbox.state.config.error_rate = 1.0
    summary = container.invoke({"lane": 0})
    story.sandbox.state.config.error_rate = 0.0
    assert summary["failed"] == 1
    state = story.aws.state(ada)
    assert not state.pending and state.confirmed is not None and state.confirmed.status == "failed"
    assert (state.confirmed.reason or "").startswith("HubSpot failed 2 times in a row")
    # What HubSpot was confirmed to hold is kept; nothing rolled back.
    assert state.confirmed.written["city"] == "city@1000.0"
    assert rollbacks(story.sandbox.state, story.sent) == []
    # A newer update makes the contact pending again, and it is written.
    story.merge(story.request(3_000, (ada, [], ["city"])))
    assert story.flush(container, lanes=[0]) == 1
    story.converged()
