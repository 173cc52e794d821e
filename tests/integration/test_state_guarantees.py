"""The ledger's conditional writes (``DynamoDbContactStates``, ``DynamoDbFlushLease``) against moto:
what the merge and the flush may rely on when they race each other or themselves.

Every merge here is its own batch (one ``merge`` call), as separate invocations of the merge
function would make them; the flush's side is played by ``read`` then ``record``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hubspot_activation.ledger.contact_state import DynamoDbContactStates, DynamoDbFlushLease
from hubspot_activation.ledger.keys import PENDING_PARTITIONS
from hubspot_activation.messages import REPLAY_SOURCE
from hubspot_activation.model import AudienceChange, AudienceStatus, ContactUpdate
from hubspot_activation.upsert.ledger import SYNCED, LedgerEntry
from hubspot_activation.upsert.plan import PendingContact
from hubspot_activation.upsert.state import ContactState, Recording
from hubspot_activation.upsert.wiring import lane_of, lane_partitions
from moto import mock_aws

from tests.conftest import create_ledger_table

NOW_MS = 1_796_000_000_000
EVERY_PARTITION = list(range(PENDING_PARTITIONS))
REALIZED, EXITED = AudienceStatus.REALIZED, AudienceStatus.EXITED


@pytest.fixture
def states() -> Iterator[DynamoDbContactStates]:
    with mock_aws():
        create_ledger_table()
        yield DynamoDbContactStates(boto3.client("dynamodb"), "ledger")


@pytest.fixture
def lease() -> Iterator[DynamoDbFlushLease]:
    with mock_aws():
        create_ledger_table()
        yield DynamoDbFlushLease(boto3.client("dynamodb"), "ledger")


def incoming(email: str, *updates: ContactUpdate) -> PendingContact:
    """One batch's coalesced updates of a contact, as the merge function hands them to the ledger."""
    contact = PendingContact(email, "g0")
    for index, update in enumerate(updates):
        contact.merge(update, f"m{index}")
    return contact


def update(
    email: str,
    received_ms: int,
    audiences: tuple[AudienceChange, ...] = (),
    source: str = "aep",
    **attributes: str,
) -> ContactUpdate:
    return ContactUpdate(email, audiences, dict(attributes), source=source, received_ms=received_ms)


def desired_of(state: ContactState) -> tuple[dict[str, Any], dict[str, Any]]:
    """The desired state's content (audience status, timestamp and name; attribute values)."""
    assert state.desired is not None
    audiences = {
        audience_id: (o.change.status, o.change.timestamp_ms, o.change.name)
        for audience_id, o in state.desired.audiences.items()
    }
    return audiences, {name: value for name, (value, _order) in state.desired.attributes.items()}


def listed(due_by_ms: int = NOW_MS) -> list[str]:
    """The contacts the pending index lists due by then, as a flush run starting now reads them."""
    fresh = DynamoDbContactStates(boto3.client("dynamodb"), "ledger")
    return sorted(ref.email for ref in fresh.pending(EVERY_PARTITION, due_by_ms, 1000))


def flusher() -> DynamoDbContactStates:
    """A flush run's view of the ledger: it reads the index, then the contacts, then records."""
    return DynamoDbContactStates(boto3.client("dynamodb"), "ledger")


def four_updates(email: str) -> list[ContactUpdate]:
    """Updates of one contact whose newest change of each field is in a different update."""
    gold, vip = "gold", "vip"
    return [
        update(email, 1_000, (AudienceChange(gold, REALIZED, 100, "Gold"),), city="Paris"),
        update(email, 2_000, (AudienceChange(gold, EXITED, 300),), firstname="Ada"),
        update(
            email,
            3_000,
            (AudienceChange(gold, REALIZED, 200), AudienceChange(vip, REALIZED, 50)),
            city="Rome",
        ),
        update(email, 4_000, (AudienceChange(vip, EXITED, 40),), firstname="Grace"),
    ]


def test_any_order_of_the_same_updates_merges_to_the_same_desired_state(
    states: DynamoDbContactStates,
) -> None:
    finals = set()
    for number, order in enumerate(itertools.permutations(range(4))):
        email = f"perm{number}@example.com"
        updates = four_updates(email)
        for index in order:
            states.merge([incoming(email, updates[index])], NOW_MS)
        audiences, attributes = desired_of(states.read([email])[email])
        finals.add((repr(sorted(audiences.items())), repr(sorted(attributes.items()))))
    # The newest audience change by timestamp (gold exited at 300, vip realized at 50) and the
    # newest attribute value by receive order (Rome, Grace), whatever the order they came in.
    assert len(finals) == 1
    audiences, attributes = desired_of(states.read(["perm0@example.com"])["perm0@example.com"])
    assert audiences == {"gold": (EXITED, 300, "Gold"), "vip": (REALIZED, 50, None)}
    assert attributes == {"city": "Rome", "firstname": "Grace"}


def test_a_renamed_audience_keeps_the_newest_name_in_the_ledger_whatever_the_order(
    states: DynamoDbContactStates,
) -> None:
    """A change sent without a name keeps the one given before; which one that is (the newest)
    is kept in the item with the name, so a rename merged later is still judged by it."""
    for number, order in enumerate(itertools.permutations(range(3))):
        email = f"rename{number}@example.com"
        changes = [
            update(email, 1_000, (AudienceChange("gold", REALIZED, 100, "Gold"),)),
            update(email, 2_000, (AudienceChange("gold", REALIZED, 200, "Gold VIP"),)),
            update(email, 3_000, (AudienceChange("gold", EXITED, 300),)),
        ]
        for index in order:
            states.merge([incoming(email, changes[index])], NOW_MS)
        assert desired_of(states.read([email])[email])[0] == {"gold": (EXITED, 300, "Gold VIP")}, order


def test_a_duplicate_or_an_older_update_changes_nothing(states: DynamoDbContactStates) -> None:
    email = "ada@example.com"
    older, newer = four_updates(email)[2], four_updates(email)[3]
    first = states.merge([incoming(email, older, newer)], NOW_MS)
    assert first.changed == [email] and first.newly_pending == [email]
    before = states.read([email])[email]
    assert before.version == 1

    again = states.merge([incoming(email, newer)], NOW_MS + 1)  # a redelivery
    late = states.merge([incoming(email, older)], NOW_MS + 2)  # a redriven older message
    assert (again.changed, again.newly_pending, late.changed, late.newly_pending) == ([], [], [], [])
    after = states.read([email])[email]
    assert after.version == before.version and desired_of(after) == desired_of(before)
    assert after.pending_since_ms == NOW_MS  # its place in line is kept


def test_a_change_to_a_pending_contact_keeps_its_place_in_line(states: DynamoDbContactStates) -> None:
    email = "ada@example.com"
    states.merge([incoming(email, update(email, 1_000, city="Paris"))], NOW_MS)
    result = states.merge([incoming(email, update(email, 2_000, city="Rome"))], NOW_MS + 5_000)
    # Changed, but pending already: the merge wakes no flusher for it.
    assert result.changed == [email] and result.newly_pending == []
    state = states.read([email])[email]
    assert (state.version, state.pending_since_ms, state.due_ms) == (2, NOW_MS, None)
    assert desired_of(state)[1] == {"city": "Rome"}
    assert listed(NOW_MS) == [email]  # still due from when it first became pending


def test_a_merge_racing_another_merge_of_the_same_contact_loses_neither(
    states: DynamoDbContactStates,
) -> None:
    """The first merge's conditional write finds the version moved on by the second: it reads
    again and merges again, so the item ends up with both updates."""
    email = "ada@example.com"
    states.merge([incoming(email, update(email, 1_000, city="Paris"))], NOW_MS)
    other = DynamoDbContactStates(boto3.client("dynamodb"), "ledger")
    raced: list[bool] = []

    def the_other_merge_first(**_: Any) -> None:
        if not raced:
            raced.append(True)
            other.merge([incoming(email, update(email, 3_000, firstname="Ada"))], NOW_MS)

    client = boto3.client("dynamodb")
    client.meta.events.register("before-call.dynamodb.UpdateItem", the_other_merge_first)
    mine = DynamoDbContactStates(client, "ledger")
    result = mine.merge([incoming(email, update(email, 2_000, city="Rome"))], NOW_MS)
    assert raced and result.changed == [email]
    state = states.read([email])[email]
    assert desired_of(state)[1] == {"city": "Rome", "firstname": "Ada"}
    assert state.version == 3


def entry(email: str, city: str) -> LedgerEntry:
    return LedgerEntry(email, SYNCED, hubspot_id="101", written={"city": city}, updated_at_ms=NOW_MS)


def test_a_marker_leaves_the_pending_index_once_each_of_its_contacts_is_settled(
    states: DynamoDbContactStates,
) -> None:
    emails = [f"user{i}@example.com" for i in range(5)]
    states.merge([incoming(e, update(e, 1_000, city="Paris")) for e in emails], NOW_MS)
    assert listed() == emails
    assert states.next_due(EVERY_PARTITION) == NOW_MS
    run = flusher()
    assert sorted(ref.email for ref in run.pending(EVERY_PARTITION, NOW_MS, 1000)) == emails
    read = run.read(emails)

    refused = run.record([Recording(e, read[e].version, entry(e, "Paris")) for e in emails[:3]], NOW_MS)
    assert refused == {}
    # The run is offered only what it has not settled; the batch's marker stays until it has.
    assert sorted(ref.email for ref in run.pending(EVERY_PARTITION, NOW_MS, 1000)) == emails[3:]
    assert listed() == emails
    run.record([Recording(e, read[e].version, entry(e, "Paris")) for e in emails[3:]], NOW_MS)
    assert listed() == [] and states.next_due(EVERY_PARTITION) is None
    settled = states.read(emails[:1])[emails[0]]
    assert not settled.pending and settled.confirmed is not None
    assert settled.confirmed.written == {"city": "Paris"} and settled.attempts == 0
    # The desired state stays: the next merge is compared with everything asked so far.
    assert desired_of(settled)[1] == {"city": "Paris"}


def test_a_marker_whose_contacts_were_all_settled_by_another_run_is_deleted_by_the_next_read(
    states: DynamoDbContactStates,
) -> None:
    email = "ada@example.com"
    states.merge([incoming(email, update(email, 1_000, city="Paris"))], NOW_MS)
    version = states.read([email])[email].version
    # Settled by a run that never read this marker (it crashed after writing, say).
    flusher().record([Recording(email, version, entry(email, "Paris"))], NOW_MS)
    assert listed() == [email]
    run = flusher()
    run.pending(EVERY_PARTITION, NOW_MS, 1000)
    assert run.read([email])[email].pending is False
    assert listed() == []


def test_a_merge_during_a_flush_keeps_the_contact_pending_with_its_confirmed_state_recorded(
    states: DynamoDbContactStates,
) -> None:
    email = "ada@example.com"
    states.merge([incoming(email, update(email, 1_000, city="Paris"))], NOW_MS)
    run = flusher()
    run.pending(EVERY_PARTITION, NOW_MS, 1000)
    read = run.read([email])[email]  # the flusher reads, then writes Paris to HubSpot ...
    states.merge([incoming(email, update(email, 2_000, city="Rome"))], NOW_MS + 10)  # ... meanwhile
    refused = run.record([Recording(email, read.version, entry(email, "Paris"))], NOW_MS + 20)
    assert refused == {}
    state = states.read([email])[email]
    # What HubSpot holds is known; what is wanted is newer: it stays in line for the next write.
    assert state.confirmed is not None and state.confirmed.written == {"city": "Paris"}
    assert state.pending and desired_of(state)[1] == {"city": "Rome"}
    assert listed(NOW_MS + 20) == [email]
    # The next round, reading the newer version, settles it, and every marker listing it goes.
    run.pending(EVERY_PARTITION, NOW_MS + 30, 1000)
    again = run.read([email])[email]
    run.record([Recording(email, again.version, entry(email, "Rome"))], NOW_MS + 30)
    assert listed(NOW_MS + 30) == [] and not states.read([email])[email].pending


def test_a_keep_pending_recording_moves_the_contact_later_in_line(states: DynamoDbContactStates) -> None:
    email = "ada@example.com"
    states.merge([incoming(email, update(email, 1_000, city="Paris"))], NOW_MS)
    run = flusher()
    run.pending(EVERY_PARTITION, NOW_MS, 1000)
    version = run.read([email])[email].version
    later = NOW_MS + 20_000
    run.record([Recording(email, version, None, settled=False, due_ms=later, attempts=1)], NOW_MS)
    assert listed(NOW_MS) == []  # backing off: not due yet
    assert listed(later) == [email]
    assert states.next_due(EVERY_PARTITION) == later
    state = states.read([email])[email]
    assert (state.pending, state.attempts, state.due_ms, state.confirmed) == (True, 1, later, None)
    # A later merge changes what is wanted but not the backoff: HubSpot is still failing.
    states.merge([incoming(email, update(email, 2_000, city="Rome"))], NOW_MS + 1)
    assert states.read([email])[email].due_ms == later


def test_a_keep_pending_recording_never_revives_a_contact_another_flush_settled(
    states: DynamoDbContactStates,
) -> None:
    email = "ada@example.com"
    states.merge([incoming(email, update(email, 1_000, city="Paris"))], NOW_MS)
    version = states.read([email])[email].version
    flusher().record([Recording(email, version, entry(email, "Paris"))], NOW_MS)
    run = flusher()
    run.record([Recording(email, version, None, settled=False, due_ms=NOW_MS + 10, attempts=1)], NOW_MS)
    state = states.read([email])[email]
    assert not state.pending and state.attempts == 0


def test_a_replay_makes_a_settled_contact_pending_again_without_changing_it(
    states: DynamoDbContactStates,
) -> None:
    email = "ada@example.com"
    states.merge([incoming(email, update(email, 1_000, city="Paris"))], NOW_MS)
    state = states.read([email])[email]
    states.record([Recording(email, state.version, entry(email, "Paris"))], NOW_MS)

    result = states.merge([incoming(email, update(email, 5_000, source=REPLAY_SOURCE))], NOW_MS + 1)
    assert result.changed == [email] and result.newly_pending == [email]
    replayed = states.read([email])[email]
    assert replayed.pending and replayed.replay and desired_of(replayed)[1] == {"city": "Paris"}
    assert email in listed(NOW_MS + 1)
    # A settled recording clears the replay mark with the rest of the pending attributes.
    states.record([Recording(email, replayed.version, entry(email, "Paris"))], NOW_MS + 2)
    assert not states.read([email])[email].replay


def test_each_lane_reads_its_own_contacts_oldest_due_first(states: DynamoDbContactStates) -> None:
    merger = DynamoDbContactStates(boto3.client("dynamodb"), "ledger", lanes=2)
    emails = [f"user{i}@example.com" for i in range(40)]
    for offset, email in enumerate(emails):
        merger.merge([incoming(email, update(email, 1_000, city="Paris"))], NOW_MS + offset)
    for lane in (0, 1):
        mine = [e for e in emails if lane_of(e, 2) == lane]
        refs = flusher().pending(lane_partitions(lane, 2), NOW_MS + 100, 1000)
        assert mine and [ref.email for ref in refs] == mine
        assert [ref.due_ms for ref in refs] == sorted(ref.due_ms for ref in refs)
    # Whole markers, oldest first, until the limit.
    assert [ref.email for ref in flusher().pending(EVERY_PARTITION, NOW_MS + 100, 3)] == emails[:3]


def test_a_lane_lease_has_one_owner_at_a_time_and_expires(lease: DynamoDbFlushLease) -> None:
    until = NOW_MS + 60_000
    assert lease.acquire(0, "run-a", until, NOW_MS)
    assert not lease.acquire(0, "run-b", until + 1, NOW_MS + 1)  # held
    assert lease.acquire(1, "run-b", until, NOW_MS + 1)  # another lane is another lease
    assert lease.acquire(0, "run-a", until + 5, NOW_MS + 2)  # its owner may extend it
    # The owner crashed: once its time is up, another run takes the lane.
    assert lease.acquire(0, "run-c", until + 60_000, until + 6)
    assert not lease.acquire(0, "run-a", until + 60_000, until + 7)


def test_a_run_asked_to_run_again_learns_it_when_it_lets_the_lane_go(lease: DynamoDbFlushLease) -> None:
    until = NOW_MS + 60_000
    assert not lease.ask_again(0, NOW_MS)  # nobody holds the lane: the caller takes it itself
    assert lease.acquire(0, "run-a", until, NOW_MS)
    assert lease.release(0, "run-a") is False  # nobody asked
    assert lease.acquire(0, "run-a", until, NOW_MS)
    assert lease.ask_again(0, NOW_MS + 1)
    assert lease.ask_again(0, NOW_MS + 2)  # asked twice: one more run
    assert lease.release(0, "run-a") is True
    # Released: the next run starts clean.
    assert lease.acquire(0, "run-b", until, NOW_MS + 3)
    assert lease.release(0, "run-b") is False
    # A lease that expired (its holder crashed) has no run to ask.
    assert lease.acquire(0, "crashed", NOW_MS + 10, NOW_MS + 4)
    assert not lease.ask_again(0, NOW_MS + 11)


def test_only_its_owner_releases_a_lane(lease: DynamoDbFlushLease) -> None:
    assert lease.acquire(0, "run-a", NOW_MS + 60_000, NOW_MS)
    lease.release(0, "run-b")  # not its lease: nothing happens
    assert not lease.acquire(0, "run-b", NOW_MS + 60_000, NOW_MS + 1)
    lease.release(0, "run-a")
    assert lease.acquire(0, "run-b", NOW_MS + 60_000, NOW_MS + 2)
