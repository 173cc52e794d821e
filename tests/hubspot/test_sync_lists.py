"""The flusher's side of the audience lists (``AudienceTarget`` list or both), against the sandbox
over real HTTP with the ledger and its list buffers in moto: each list's buffer is handed the
newest applied status of each contact, under the record id HubSpot gave it, before the contact's
entry records it (``listed``); ``list`` writes no audience property. The drain that empties the
buffers into HubSpot is the lists function's (tests of ``lists.service``): here a drain is the
buffer's ``settle`` of what it holds."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import pytest
from hubspot_activation.hubspot.client import HubSpotClient
from hubspot_activation.ledger.audience_item import LIST_GENERATION, audience_key_item
from hubspot_activation.ledger.keys import list_buffer_key
from hubspot_activation.ledger.list_buffer import DynamoDbListBuffer, _Shard
from hubspot_activation.lists.changes import BufferedListChanges
from hubspot_activation.lists.model import Toggle
from hubspot_activation.lists.ports import ListChanges
from hubspot_activation.lists.target import AudienceTarget
from hubspot_activation.upsert.flush import FlushSettings
from hubspot_activation.upsert.ledger import DELETED, SYNCED, LedgerUnavailable
from hubspot_activation.upsert.plan import Outcome
from hubspot_activation.upsert.state import Recording
from moto import mock_aws

from local.hubspot_sandbox import SandboxServer
from tests.conftest import create_ledger_table
from tests.hubspot.test_sync import (
    GOLD,
    GOLD_PROP,
    ONE_VERSION,
    TABLE,
    Harness,
    build_harness,
    exited,
    realized,
    update,
)

ADA = "ada@example.com"
BOB = "bob@example.com"
CY = "cy@example.com"
LISTS = pytest.mark.parametrize("target", [AudienceTarget.BOTH, AudienceTarget.LIST], ids=["both", "list"])


@pytest.fixture
def harness(sandbox: SandboxServer, make_client: Callable[..., HubSpotClient]) -> Iterator[Harness]:
    with mock_aws():
        create_ledger_table(TABLE)
        yield build_harness(sandbox, make_client)


@dataclass
class Timers:
    """The drains the flusher's list changes asked for: (audience id, delay in seconds)."""

    started: list[tuple[str, int]] = field(default_factory=list)

    def start(self, audience_id: str, delay_seconds: int) -> None:
        self.started.append((audience_id, delay_seconds))


def with_lists(
    harness: Harness, target: AudienceTarget, buffer: DynamoDbListBuffer | None = None
) -> tuple[DynamoDbListBuffer, Timers]:
    buffer = buffer or DynamoDbListBuffer(harness.dynamodb, TABLE, flush_ms=30_000, chunk_size=500)
    timers = Timers()
    harness.audience_target = target
    harness.list_changes = BufferedListChanges(buffer, timers, flush_seconds=30)
    return buffer, timers


def waiting(buffer: DynamoDbListBuffer, audience_id: str = GOLD) -> dict[str, tuple[bool, int, int]]:
    """Record id -> (added, the status's timestamp, the list generation) of the changes waiting."""
    return {t.record_id: (t.member, t.rank[0], t.rank[-1]) for t in buffer.read(audience_id)}


def drain(harness: Harness, buffer: DynamoDbListBuffer, audience_id: str = GOLD) -> list[Toggle]:
    """What a drain of the list sends (and HubSpot applies): everything waiting."""
    sent = buffer.read(audience_id)
    buffer.settle(audience_id, sent, harness.clock.now_ms())
    return sent


def record_id(harness: Harness, email: str) -> str:
    return harness.sandbox.state.email_index[email]


def audience_properties_of(harness: Harness) -> set[str]:
    """Audience properties in HubSpot, made or written on any contact."""
    made = {name for name in harness.sandbox.state.properties if name.startswith("aud_")}
    written = {
        name
        for contact in harness.sandbox.state.contacts.values()
        for name in contact["properties"]
        if name.startswith("aud_")
    }
    return made | written


@LISTS
def test_each_list_holds_the_newest_status_of_each_contact_whatever_order_updates_come_in(
    harness: Harness, target: AudienceTarget
) -> None:
    buffer, timers = with_lists(harness, target)
    first = harness.messages(
        [
            update(ADA, realized(GOLD, 1000), firstname="Ada"),
            update(BOB, realized(GOLD, 1000)),
            update(CY, exited(GOLD, 1000)),
        ]
    )
    assert harness.merger.process(first).failed_message_ids == []
    harness.flush()
    ada, bob, cy = (record_id(harness, email) for email in (ADA, BOB, CY))
    assert waiting(buffer) == {ada: (True, 1000, 0), bob: (True, 1000, 0), cy: (False, 1000, 0)}
    drain(harness, buffer)

    # An exit; an older exit; the first batch redelivered; a realize older than the exit; a replay.
    harness.sync([update(ADA, exited(GOLD, 2000)), update(BOB, exited(GOLD, 500))])
    assert harness.merger.process(first).failed_message_ids == []
    harness.sync([update(ADA, realized(GOLD, 1500))])
    harness.merger.process(harness.replay_messages(ADA, BOB, CY))
    harness.flush()

    assert waiting(buffer) == {ada: (False, 2000, 0)}
    assert harness.pending() == set()
    listed = {email: harness.entry(email).listed[GOLD] for email in (ADA, BOB, CY)}
    assert {email: (handed.status, handed.timestamp_ms) for email, handed in listed.items()} == {
        ADA: ("exited", 2000),
        BOB: ("realized", 1000),
        CY: ("exited", 1000),
    }
    # A drain is asked for each time the list had nothing waiting: after the first batch, and
    # after the exit once the first drain had sent everything.
    assert timers.started == [(GOLD, 30), (GOLD, 30)]
    if target is AudienceTarget.BOTH:
        assert (harness.contact(ADA)[GOLD_PROP], harness.contact(BOB)[GOLD_PROP]) == ("exited", "realized")
    else:
        assert audience_properties_of(harness) == set()
        assert harness.contact(ADA)["firstname"] == "Ada"


def test_with_lists_alone_no_audience_property_is_made_and_a_contact_is_written_by_its_email_alone(
    harness: Harness,
) -> None:
    buffer, _timers = with_lists(harness, AudienceTarget.LIST)
    report = harness.sync([update(ADA, realized(GOLD, 1000, "Gold members"))])

    assert report.outcomes == {ADA: Outcome.SYNCED}
    assert harness.writer.calls == [[ADA]]
    assert harness.contact(ADA)["email"] == ADA
    assert audience_properties_of(harness) == set()
    assert "audience_activations" not in harness.sandbox.state.groups
    assert not any(key.startswith("POST") and "propert" in key for key in harness.sandbox.state.requests)
    entry = harness.entry(ADA)
    ada = record_id(harness, ADA)
    assert (entry.status, entry.hubspot_id, entry.written) == (SYNCED, ada, {})
    assert entry.audiences[GOLD].status == "realized"
    assert waiting(buffer) == {ada: (True, 1000, 0)}

    # The contact's record is known: a later status goes to the list without a HubSpot call.
    report = harness.sync([update(ADA, exited(GOLD, 2000))])
    assert report.outcomes == {ADA: Outcome.SKIPPED}
    assert harness.upserts() == 1
    assert waiting(buffer) == {ada: (False, 2000, 0)}
    assert harness.entry(ADA).listed[GOLD].status == "exited"


@LISTS
def test_a_crash_between_the_buffer_and_the_ledger_hands_the_same_changes_again(
    harness: Harness, target: AudienceTarget
) -> None:
    buffer, _timers = with_lists(harness, target)
    record = harness.states.record
    crashes: list[int] = []

    def crash_once(recordings: Sequence[Recording], now_ms: int) -> dict[str, str]:
        if not crashes:
            crashes.append(len(recordings))
            raise LedgerUnavailable("DynamoDB call failed: the run died here")
        return record(recordings, now_ms)

    harness.states.record = crash_once  # type: ignore[method-assign]
    harness.merge([update(ADA, realized(GOLD, 1000)), update(BOB, realized(GOLD, 1000))])
    with contextlib.suppress(LedgerUnavailable):
        harness.flush()
    assert crashes == [2]
    ada, bob = record_id(harness, ADA), record_id(harness, BOB)
    # Buffered, not recorded: both stay pending with nothing listed.
    assert waiting(buffer) == {ada: (True, 1000, 0), bob: (True, 1000, 0)}
    assert harness.pending() == {ADA, BOB}
    assert harness.state(ADA).confirmed is None

    # Meanwhile Ada exits; the next run hands Bob's change again (the same: nothing new waits) and
    # Ada's exit.
    harness.clock.advance(60)
    harness.sync([update(ADA, exited(GOLD, 2000))])
    assert waiting(buffer) == {ada: (False, 2000, 0), bob: (True, 1000, 0)}
    assert harness.pending() == set()
    assert (harness.entry(ADA).listed[GOLD].status, harness.entry(BOB).listed[GOLD].status) == (
        "exited",
        "realized",
    )
    assert (harness.entry(ADA).hubspot_id, harness.entry(BOB).hubspot_id) == (ada, bob)


def shard_bound(changes: int) -> int:
    """A list buffer shard's size bound that holds ``changes`` changes of a contact of the
    sandbox at most (record ids of a few digits, ranks of a timestamp and an order)."""
    empty = _Shard(GOLD, list_buffer_key(GOLD, 0)).size()
    return empty + changes * 40 + 10


@LISTS
def test_a_contact_a_full_list_buffer_refuses_stays_pending_until_a_drain_makes_room(
    harness: Harness, target: AudienceTarget
) -> None:
    buffer = DynamoDbListBuffer(harness.dynamodb, TABLE, shards=1, max_bytes=shard_bound(1))
    buffer, _timers = with_lists(harness, target, buffer)
    report = harness.sync([update(email, realized(GOLD, 1000)) for email in (ADA, BOB, CY)])
    assert set(report.outcomes.values()) == {Outcome.SYNCED}
    upserts = harness.upserts()
    (first,) = waiting(buffer)
    refused = {email for email in (ADA, BOB, CY) if record_id(harness, email) != first}
    # The refused contacts stay pending for a backoff, not failed; the one buffered is settled.
    assert harness.pending() == refused
    for email in refused:
        state = harness.state(email)
        assert state.confirmed is not None and state.confirmed.status == SYNCED
        assert GOLD not in state.confirmed.listed and state.attempts == 0
        assert state.due_ms == harness.clock.now_ms() + 30_000

    sent = drain(harness, buffer)
    for _round in range(3):
        harness.clock.advance(30)
        harness.flush()
        sent += drain(harness, buffer)
    assert harness.pending() == set()
    assert sorted(t.record_id for t in sent) == sorted(record_id(harness, e) for e in (ADA, BOB, CY))
    assert {harness.entry(email).listed[GOLD].status for email in (ADA, BOB, CY)} == {"realized"}
    # Handing a change to a list again costs no HubSpot write.
    assert harness.upserts() == upserts


def make_list_again(harness: Harness, generation: int) -> None:
    """What the lists function records when it makes an audience's list again."""
    harness.dynamodb.update_item(
        TableName=TABLE,
        Key=audience_key_item(GOLD),
        UpdateExpression="SET #g = :g",
        ExpressionAttributeNames={"#g": LIST_GENERATION},
        ExpressionAttributeValues={":g": {"N": str(generation)}},
    )


@LISTS
def test_a_list_made_again_takes_a_pending_contact_again_without_a_hubspot_write(
    harness: Harness, target: AudienceTarget
) -> None:
    buffer, _timers = with_lists(harness, target)
    harness.sync([update(ADA, realized(GOLD, 1000), firstname="Ada")])
    ada = record_id(harness, ADA)
    drain(harness, buffer)
    upserts = harness.upserts()

    make_list_again(harness, 1)
    harness.merger.process(harness.replay_messages(ADA))
    report = harness.flush()

    assert report.outcomes == {ADA: Outcome.SKIPPED}
    assert harness.upserts() == upserts
    assert waiting(buffer) == {ada: (True, 1000, 1)}
    assert harness.entry(ADA).listed[GOLD].generation == 1
    assert harness.pending() == set()


def test_contacts_synced_before_lists_were_kept_are_handed_to_them_once_pending_again(
    harness: Harness,
) -> None:
    harness.sync([update(ADA, realized(GOLD, 1000), firstname="Ada")])
    assert harness.entry(ADA).listed == {}
    upserts = harness.upserts()

    buffer, _timers = with_lists(harness, AudienceTarget.BOTH)
    harness.merger.process(harness.replay_messages(ADA))
    harness.flush()

    assert harness.upserts() == upserts
    assert waiting(buffer) == {record_id(harness, ADA): (True, 1000, 0)}
    assert harness.entry(ADA).listed[GOLD].status == "realized"


@LISTS
def test_a_contact_deleted_in_hubspot_hands_nothing_until_created_again_under_its_new_record(
    harness: Harness, target: AudienceTarget
) -> None:
    buffer, _timers = with_lists(harness, target)
    harness.sync([update(ADA, realized(GOLD, 1000), firstname="Ada")])
    old = record_id(harness, ADA)
    drain(harness, buffer)
    # Reconcile found it deleted in HubSpot (and the deletion policy leaves it so).
    deleted = replace(harness.entry(ADA), status=DELETED)
    harness.states.record([Recording(ADA, harness.state(ADA).version, deleted)], harness.clock.now_ms())
    harness.sandbox.state.contacts.pop(old)
    harness.sandbox.state.email_index.pop(ADA)

    harness.merger.process(harness.replay_messages(ADA))
    harness.flush()
    assert harness.entry(ADA).status == DELETED
    assert waiting(buffer) == {}
    assert harness.upserts() == 1

    # A changed value creates it again: a new record, which takes the same status again.
    harness.sync([update(ADA, firstname="Ada Lovelace")])
    new = record_id(harness, ADA)
    assert new != old
    assert waiting(buffer) == {new: (True, 1000, 0)}
    assert harness.entry(ADA).hubspot_id == new
    assert harness.entry(ADA).listed[GOLD].status == "realized"


@dataclass
class OverlapWatch:
    """A ``ListChanges`` that notes how many appends ran at once (a list buffer takes one
    conditional write at a time: appends racing each other retry, and past a few give up)."""

    inner: ListChanges
    running: int = 0
    most: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def append(self, audience_id: str, toggles: Sequence[Toggle], now_ms: int) -> None:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.05)  # widens the window another append could start in
            self.inner.append(audience_id, toggles, now_ms)
        finally:
            with self.lock:
                self.running -= 1


@ONE_VERSION
def test_a_runs_parallel_calls_append_to_the_lists_one_at_a_time(harness: Harness) -> None:
    buffer, _timers = with_lists(harness, AudienceTarget.BOTH)
    assert harness.list_changes is not None
    watch = OverlapWatch(harness.list_changes)
    harness.list_changes = watch
    harness.settings = FlushSettings(linger_seconds=0.0, parallel_calls=4)
    emails = [f"user{i}@example.com" for i in range(400)]
    harness.sync([update(email, realized(GOLD, 1000)) for email in emails])

    assert len(harness.writer.calls) == 4
    assert watch.most == 1
    assert len(buffer.read(GOLD)) == 400
    assert harness.pending() == set()
