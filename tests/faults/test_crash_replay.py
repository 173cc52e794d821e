"""Crashes and replays: whatever is delivered again, in whatever order, a contact converges to the
newest input and HubSpot never shows an older value after a newer one.

"Newest" is computed by ``workload.expected_state`` from the rules alone. Attribute values name the
update that set them (``city@<receive>.<position>``), so HubSpot's property history shows any
rollback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import pytest
from hubspot_activation.hubspot.batch import UpsertInput, UpsertResult
from hubspot_activation.hubspot.client import CallStats, RetryPolicy
from hubspot_activation.messages import pack
from hubspot_activation.model import AudienceChange, AudienceStatus, ContactUpdate
from hubspot_activation.upsert.ledger import LedgerEntry, LedgerUnavailable
from hubspot_activation.upsert.plan import InboundMessage
from hubspot_activation.upsert.schema import PropertySchema
from hubspot_activation.upsert.service import ContactWriter, SyncService

from local.hubspot_sandbox import SandboxServer
from tests.fakes import InMemoryLedger
from tests.faults.conftest import Consumer, build_consumer
from tests.faults.fifo import FifoQueue
from tests.faults.workload import ATTRIBUTES, PREFIX, expected_state, hubspot_by_email, hubspot_mismatches

pytestmark = pytest.mark.faults

REALIZED, EXITED = AudienceStatus.REALIZED, AudienceStatus.EXITED


def change(audience_id: str, status: AudienceStatus, timestamp_ms: int) -> AudienceChange:
    return AudienceChange(audience_id, status, timestamp_ms)


@dataclass
class Story:
    """What was sent so far, the messages it became, and checks against the sandbox."""

    sandbox: SandboxServer
    shards: int = 4
    sent: list[ContactUpdate] = field(default_factory=list)
    _ids: int = 0

    def request(
        self, received_ms: int, *updates: tuple[str, Iterable[AudienceChange], Iterable[str]]
    ) -> list[InboundMessage]:
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
        messages = []
        for message in pack(built, self.shards):
            self._ids += 1
            messages.append(InboundMessage(f"m{self._ids}", message.group_id, message.body, f"rh{self._ids}"))
        return messages

    def mismatches(self) -> list[str]:
        contacts, _ids, duplicates = hubspot_by_email(self.sandbox.state)
        assert duplicates == []
        return hubspot_mismatches(contacts, expected_state(self.sent))

    def rollbacks(self) -> list[str]:
        """Attribute values HubSpot held after a newer one (by the stamp the value carries)."""
        found = []
        for contact in self.sandbox.state.contacts.values():
            for name in ATTRIBUTES:
                versions = reversed(contact["history"].get(name, []))  # oldest first
                stamps = [_stamp(v["value"]) for v in versions]
                if stamps != sorted(stamps):
                    found.append(f"{contact['properties']['email']} {name}: {stamps}")
        return found


def _stamp(value: str) -> tuple[int, int]:
    received, position = value.split("@")[1].split(".")
    return int(received), int(position)


def again(messages: Sequence[InboundMessage], times: int = 2) -> list[InboundMessage]:
    """The same messages received once more (same ids, new receipt handles, counted)."""
    return [replace(m, receipt_handle=f"{m.receipt_handle}-{times}", receive_count=times) for m in messages]


@pytest.fixture
def story(sandbox: SandboxServer) -> Story:
    return Story(sandbox)


@pytest.fixture
def ledger() -> InMemoryLedger:
    return InMemoryLedger()


@pytest.fixture
def consumer(sandbox: SandboxServer, ledger: InMemoryLedger) -> Consumer:
    return build_consumer(sandbox, ledger)


def converged(story: Story) -> None:
    assert story.mismatches() == []
    assert story.rollbacks() == []


# --- crash after HubSpot accepted, before the ledger write ----------------------------------------


class CrashingLedger(InMemoryLedger):
    """put_many fails once when armed: the function dies (or DynamoDB is unreachable) after
    HubSpot accepted the write and before the ledger recorded it."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error
        self.armed = False

    def put_many(self, entries: Sequence[LedgerEntry]) -> dict[str, str]:
        if self.armed:
            self.armed = False
            raise self.error
        return super().put_many(entries)


@pytest.mark.parametrize(
    "error",
    [RuntimeError("function crashed"), LedgerUnavailable("DynamoDB unreachable")],
    ids=["crash", "outage"],
)
def test_crash_after_hubspot_accepted_and_before_the_ledger_write(
    sandbox: SandboxServer, story: Story, error: Exception
) -> None:
    ledger = CrashingLedger(error)
    service = build_consumer(sandbox, ledger).service
    old = story.request(1_000, ("ada@example.com", [change("VIP", REALIZED, 1_000)], ["city", "firstname"]))
    assert service.process(old).failed_message_ids == []
    new = story.request(2_000, ("ada@example.com", [change("VIP", EXITED, 2_000)], ["city"]))
    ledger.armed = True
    try:
        report = service.process(new)
        assert report.failed_message_ids == [m.message_id for m in new]  # outage: handed back
    except RuntimeError:
        pass  # crash: Lambda fails the whole batch
    assert story.mismatches() == []  # HubSpot holds the newer write, the ledger does not know it
    assert ledger.entries["ada@example.com"].audiences["VIP"].status == "realized"
    # Redelivered, with an older replay behind it in the same batch, then the replay alone again.
    assert service.process([*again(new), *again(old)]).failed_message_ids == []
    assert service.process(again(old, 3)).hubspot_requests == 0
    converged(story)
    entry = ledger.entries["ada@example.com"]
    assert entry.audiences["VIP"].status == "exited" and entry.written["city"] == "city@2000.0"


# --- crash after the first of several chunks ------------------------------------------------------


@dataclass
class CrashingWriter:
    """The HubSpot client, dying after its first batch upsert when armed."""

    client: ContactWriter
    armed: bool = False
    calls: int = 0

    def batch_upsert(
        self, inputs: Sequence[UpsertInput], deadline: float | None = None
    ) -> list[UpsertResult]:
        if self.armed and self.calls >= 1:
            self.armed = False
            raise RuntimeError("function crashed between chunks")
        self.calls += 1
        return self.client.batch_upsert(inputs, deadline)

    def stats(self) -> CallStats:
        return self.client.stats()

    @property
    def max_call_seconds(self) -> float:
        return self.client.max_call_seconds


def test_crash_after_the_first_of_several_chunks(
    consumer: Consumer, ledger: InMemoryLedger, story: Story
) -> None:
    story.shards = 1  # one message, 150 contacts: two chunks of HubSpot's 100
    emails = [f"u{i:03d}@example.com" for i in range(150)]
    writer = CrashingWriter(consumer.client)
    schema = PropertySchema(consumer.client, "audience_activations", "Audience activations", PREFIX)
    service = SyncService(writer, schema, ledger)
    old = story.request(1_000, *[(e, [change("gold_members", REALIZED, 1_000)], ["city"]) for e in emails])
    assert service.process(old).synced == 150
    new = story.request(2_000, *[(e, [change("gold_members", EXITED, 2_000)], ["city"]) for e in emails])
    writer.armed, writer.calls = True, 0
    with pytest.raises(RuntimeError):
        service.process(new)
    # The first chunk was recorded before the crash left the function: its redelivery costs nothing.
    assert sum(ledger.entries[e].written["city"] == f"city@2000.{i}" for i, e in enumerate(emails)) == 100
    redelivered = service.process([*again(new), *again(old)])
    assert redelivered.failed_message_ids == [] and redelivered.hubspot_requests == 1
    assert redelivered.synced == 50 and redelivered.skipped_unchanged == 100
    converged(story)


# --- timeout --------------------------------------------------------------------------------------


def test_contacts_not_reached_before_the_timeout_converge_on_redelivery(
    consumer: Consumer, ledger: InMemoryLedger, story: Story
) -> None:
    story.shards = 2
    emails = [f"u{i:03d}@example.com" for i in range(180)]
    first = story.request(1_000, *[(e, [change("VIP", REALIZED, 1_000)], ["city"]) for e in emails])
    second = story.request(2_000, *[(e, [change("VIP", EXITED, 900)], ["firstname"]) for e in emails])
    left = iter([500.0, 1.0])  # time for one chunk, then the function is about to time out
    report = consumer.service.process([*first, *second], remaining_seconds=lambda: next(left, 1.0))
    assert report.synced == 100 and report.contacts_out_of_time == 80
    assert report.failed_message_ids == []  # nothing failed: they go back at once, no backoff
    returned = [m for m in [*first, *second] if m.message_id in report.out_of_time_message_ids]
    assert returned  # the messages of the contacts not reached, and their group's later ones
    assert consumer.service.process(again(returned)).failed_message_ids == []
    assert consumer.service.process(again(first, 3)).hubspot_requests == 0  # a late replay changes nothing
    converged(story)
    assert all(ledger.entries[e].audiences["VIP"].status == "realized" for e in emails)  # 1000 > 900


# --- duplicates, replays, redrives, prefixes ------------------------------------------------------


def test_duplicate_delivery_costs_nothing_and_changes_nothing(consumer: Consumer, story: Story) -> None:
    people = [f"p{i}@example.com" for i in range(12)]
    first = story.request(1_000, *[(p, [change("vip", REALIZED, 1_000)], ["city"]) for p in people])
    copy = [replace(m, message_id=m.message_id + "-copy") for m in first]  # the same body sent twice
    report = consumer.service.process([*first, *copy])
    assert report.failed_message_ids == [] and report.synced == 12
    assert consumer.service.process(again(first)).hubspot_requests == 0
    assert consumer.service.process(copy).skipped_unchanged == 12
    converged(story)


def test_an_older_message_replayed_after_newer_ones_never_rolls_back(
    consumer: Consumer, story: Story
) -> None:
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
        assert consumer.service.process(messages).failed_message_ids == []
    replay = consumer.service.process(again(old))
    assert replay.hubspot_requests == 0
    converged(story)
    contact = story.sandbox.state.contacts[story.sandbox.state.email_index[ada]]["properties"]
    assert contact["lastname"] == "lastname@1000.0" and contact["city"] == "city@2000.0"


def test_dlq_redrive_of_an_older_message_after_newer_ones(sandbox: SandboxServer, story: Story) -> None:
    queue = FifoQueue(visibility_timeout=0.0, max_receive_count=2)
    ledger = InMemoryLedger()
    service = build_consumer(sandbox, ledger, extender=queue, retry_base_seconds=0).service
    story.shards = 1
    ada = "ada@example.com"

    def drain() -> None:
        while batch := queue.receive(10):
            queue.answer(batch, service.process(batch).failed_message_ids)

    # The older message fails until it lands in the DLQ (HubSpot down).
    (old,) = story.request(1_000, (ada, [change("VIP", REALIZED, 1_000)], ["city", "firstname"]))
    queue.send(old.group_id, old.body)
    sandbox.state.config.error_rate = 1.0
    drain()
    assert len(queue.dead_letters) == 1
    sandbox.state.config.error_rate = 0.0
    # Newer changes: VIP exited, a newer firstname. The city was never set again.
    for message in story.request(2_000, (ada, [change("VIP", EXITED, 2_000)], ["firstname"])):
        queue.send(message.group_id, message.body)
    drain()
    assert queue.redrive() == 1
    drain()
    converged(story)
    contact = sandbox.state.contacts[sandbox.state.email_index[ada]]["properties"]
    # The redriven message brings what nothing newer replaced (the city) and nothing else.
    assert (contact["city"], contact["firstname"]) == ("city@1000.0", "firstname@2000.0")
    assert queue.dead_letters == [] and queue.backlog() == 0


def test_prefix_redelivery_of_a_batch(consumer: Consumer, story: Story) -> None:
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
    assert consumer.service.process(batch).failed_message_ids == []
    for size in (1, 2, 4):
        prefix = consumer.service.process(again(batch[:size], size + 1))
        assert prefix.hubspot_requests == 0 and prefix.failed_message_ids == []
    # The prefix again, together with one newer message.
    newer = story.request(9_000, (ada, [], ["city"]))
    assert consumer.service.process([*again(batch[:3], 9), *newer]).synced == 1
    converged(story)


# --- a timed-out attempt, retried within the same call ------------------------------------------

SLOW_THEN_FAST = RetryPolicy(
    max_attempts=2, max_wait_seconds=5, base_backoff_seconds=0.01, locked_wait_seconds=0.05
)


def _timed_out_then_retried(
    sandbox: SandboxServer, ledger: InMemoryLedger, story: Story
) -> tuple[SyncService, list[InboundMessage]]:
    """The first attempt of a write waits 700 ms in HubSpot (the client gives up after 0.3 s); its
    retry is answered at once. Returns the service and the message that was written so."""
    service = build_consumer(sandbox, ledger, timeout=(1.0, 0.3), retry=SLOW_THEN_FAST).service
    warm = story.request(500, ("warm@example.com", [change("VIP", EXITED, 500)], ["city"]))
    assert service.process(warm).failed_message_ids == []  # properties cached: one call per write next

    def fast_after_first() -> None:
        while sandbox.state.faults["latency"] == 0:
            time.sleep(0.005)
        sandbox.state.config.latency_ms = 0

    sandbox.state.config.latency_ms = 700
    watcher = threading.Thread(target=fast_after_first)
    watcher.start()
    first = story.request(1_000, ("ada@example.com", [change("VIP", REALIZED, 1_000)], ["city"]))
    report = service.process(first)
    watcher.join()
    # Written, but the timed-out attempt may land late: the message comes back for a re-check
    # (holding back its group's later messages, as FIFO does), and the contact is unconfirmed.
    assert report.failed_message_ids == [m.message_id for m in first]
    return service, first


def test_a_timed_out_attempt_leaves_the_contact_unconfirmed_even_when_its_retry_succeeds(
    sandbox: SandboxServer, story: Story
) -> None:
    ledger = InMemoryLedger()
    _timed_out_then_retried(sandbox, ledger, story)
    assert ledger.entries["ada@example.com"].unconfirmed_at_ms is not None


def test_a_late_apply_never_rolls_back_the_next_write(sandbox: SandboxServer, story: Story) -> None:
    ledger = InMemoryLedger()
    service, first = _timed_out_then_retried(sandbox, ledger, story)
    second = story.request(2_000, ("ada@example.com", [change("VIP", EXITED, 2_000)], ["city"]))
    time.sleep(1.0)  # the first attempt is applied meanwhile, while its group waits for the re-check
    assert service.process([*again(first), *second]).failed_message_ids == []
    assert service.process(again(second)).failed_message_ids == []  # a redelivery is sent, not skipped
    converged(story)
