"""Reconcile's check of the audiences' HubSpot lists against the sandbox over real HTTP, with the
ledger in moto: contacts synced, handed to their audience's list as the flusher hands them (their
``listed`` status, the list buffer), the list in HubSpot changed by a person, reconciled; the
repair goes through the buffer and a drain leaves HubSpot's list as the newest statuses say.
Without lists, reconcile reads no membership and reports none."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest
from hubspot_activation.hubspot.client import HubSpotClient
from hubspot_activation.hubspot.lists import HubSpotLists
from hubspot_activation.ledger.audience_directory import DynamoDbAudienceDirectory
from hubspot_activation.ledger.audience_item import LIST_GENERATION, LIST_ID, audience_key_item
from hubspot_activation.ledger.contact_item import LISTED, contact_key, entry_from_item, listed_value
from hubspot_activation.ledger.list_buffer import DynamoDbListBuffer
from hubspot_activation.ledger.reconcile_store import DynamoDbTrackedContacts
from hubspot_activation.lists.changes import BufferedListChanges
from hubspot_activation.lists.model import MembershipResult, Toggle
from hubspot_activation.lists.service import ListDrain
from hubspot_activation.reconcile.memberships import ListsCheck
from hubspot_activation.reconcile.service import Reconciler, ReconcileSettings
from hubspot_activation.reconcile.wiring import HubSpotMemberships
from hubspot_activation.upsert.ledger import ListedAudience

from tests.hubspot.test_reconcile import ADA, BOB, CY, Budget, ObservedReader, harness, sync_three
from tests.hubspot.test_sync import GOLD, TABLE, Harness, exited, update

__all__ = ["harness"]  # the fixture, imported for this module's tests


@dataclass
class CountedMemberships:
    """HubSpot's memberships reads as reconcile makes them, counted; ``before`` runs before each
    answer (something happening between reconcile's read of the ledger and its repair)."""

    client: HubSpotClient
    calls: list[int] = field(default_factory=list)
    before: Callable[[], None] | None = None

    def memberships(self, record_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        self.calls.append(len(record_ids))
        if self.before is not None:
            self.before()
        return HubSpotMemberships(self.client).memberships(record_ids)


class ClientMemberships:
    """The drain's port over the Lists API client (as the lists function drains)."""

    def __init__(self, client: HubSpotClient) -> None:
        self.lists = HubSpotLists(client)

    def add_and_remove(self, list_id: str, add: list[str], remove: list[str]) -> MembershipResult:
        return MembershipResult(frozenset(self.lists.add_and_remove(list_id, add, remove).missing))


@dataclass
class Lists:
    harness: Harness
    list_id: str
    buffer: DynamoDbListBuffer
    reader: CountedMemberships
    budget: Budget = field(default_factory=Budget)
    contacts_reader: ObservedReader | None = None

    def reconciler(self, *, lists: bool = True) -> Reconciler:
        self.contacts_reader = ObservedReader(self.harness.client)
        check = ListsCheck(
            self.reader,
            DynamoDbAudienceDirectory(self.harness.dynamodb, TABLE, max_age_seconds=0),
            self.buffer,
            BufferedListChanges(self.buffer, None, flush_seconds=30),
        )
        return Reconciler(
            DynamoDbTrackedContacts(self.harness.dynamodb, TABLE),
            self.contacts_reader,
            self.harness.schema,
            self.budget,
            ReconcileSettings(),
            clock=self.harness.clock.time,
            monotonic=self.harness.clock.monotonic,
            lists=check if lists else None,
        )

    def id_of(self, email: str) -> str:
        return self.harness.sandbox.state.email_index[email]

    def members(self) -> set[str]:
        return set(self.harness.sandbox.state.lists[self.list_id].members)

    def hand(self, *emails: str) -> list[Toggle]:
        """What the flusher does: each contact's newest status recorded as handed to the list,
        and the toggles it appends to the buffer."""
        toggles = []
        for email in emails:
            item = self.harness.dynamodb.get_item(
                TableName=TABLE, Key=contact_key(email), ConsistentRead=True
            )
            entry = entry_from_item(item["Item"])
            applied = entry.audiences[GOLD]
            handed = ListedAudience(applied.status, applied.timestamp_ms, applied.order, 0)
            self.harness.dynamodb.update_item(
                TableName=TABLE,
                Key=contact_key(email),
                UpdateExpression="SET #l = :l",
                ExpressionAttributeNames={"#l": LISTED},
                ExpressionAttributeValues={":l": listed_value({GOLD: handed})},
            )
            assert entry.hubspot_id is not None
            rank = (applied.timestamp_ms, *applied.order, 0)
            toggles.append(Toggle(entry.hubspot_id, applied.status == "realized", rank))
        self.buffer.append(GOLD, toggles, self.harness.clock.now_ms())
        return toggles

    def drain(self) -> None:
        """What the lists function does: the buffer sent to HubSpot's list."""
        drain = ListDrain(
            self.buffer, ClientMemberships(self.harness.client), clock_ms=self.harness.clock.now_ms
        )
        report = drain.drain(GOLD, self.list_id)
        assert report.failure is None and not report.gone and report.remaining == 0


@pytest.fixture
def kept(harness: Harness) -> Lists:
    """Three contacts synced (Ada and Cy realized, Bob exited), Gold's list made by the lists
    function and filled by a drain."""
    sync_three(harness)
    list_id = HubSpotLists(harness.client).create("Gold").list_id
    harness.dynamodb.update_item(
        TableName=TABLE,
        Key=audience_key_item(GOLD),
        UpdateExpression="SET audienceId = :a, #l = :l, #g = :g",
        ExpressionAttributeNames={"#l": LIST_ID, "#g": LIST_GENERATION},
        ExpressionAttributeValues={":a": {"S": GOLD}, ":l": {"S": list_id}, ":g": {"N": "0"}},
    )
    lists = Lists(
        harness, list_id, DynamoDbListBuffer(harness.dynamodb, TABLE), CountedMemberships(harness.client)
    )
    lists.hand(ADA, BOB, CY)
    lists.drain()
    assert lists.members() == {lists.id_of(ADA), lists.id_of(CY)}
    return lists


def test_lists_in_step_cost_one_memberships_read_and_no_repair(kept: Lists) -> None:
    report = kept.reconciler().run()
    assert report.checked == 3 and report.membership is not None
    assert (report.membership.checked, report.membership.found, report.membership.skipped) == (3, 0, 0)
    assert kept.reader.calls == [3] and report.calls == 2 == kept.budget.calls
    assert kept.buffer.read(GOLD) == []
    assert report.as_json()["membershipDrift"] == {
        "checked": 3,
        "found": 0,
        "repaired": 0,
        "skipped": 0,
        "examples": [],
    }


def test_a_membership_a_person_changed_is_found_and_handed_to_the_list_again(kept: Lists) -> None:
    ada, bob = kept.id_of(ADA), kept.id_of(BOB)
    HubSpotLists(kept.harness.client).add_and_remove(kept.list_id, add=[bob], remove=[ada])

    dry = kept.reconciler().run(dry_run=True)
    assert dry.membership is not None and (dry.membership.found, dry.membership.repaired) == (2, 0)
    assert kept.buffer.read(GOLD) == [] and kept.members() == {bob, kept.id_of(CY)}

    report = kept.reconciler().run()
    assert report.membership is not None and (report.membership.found, report.membership.repaired) == (2, 2)
    examples = sorted(
        (e["email"], e["expected"], e["repaired"]) for e in report.as_json()["membershipDrift"]["examples"]
    )
    assert examples == [(ADA, "member", True), (BOB, "not a member", True)]
    waiting = {toggle.record_id: toggle.member for toggle in kept.buffer.read(GOLD)}
    assert waiting == {ada: True, bob: False}
    kept.drain()
    assert kept.members() == {ada, kept.id_of(CY)}
    again = kept.reconciler().run()
    assert again.membership is not None and again.membership.found == 0


def test_a_change_waiting_in_the_buffer_is_not_drift(kept: Lists) -> None:
    kept.harness.sync([update(CY, exited(GOLD, 2000))])
    (toggle,) = kept.hand(CY)  # handed, not sent yet: HubSpot's list still holds Cy
    assert toggle.member is False and kept.id_of(CY) in kept.members()
    report = kept.reconciler().run()
    assert report.membership is not None and report.membership.found == 0
    assert kept.buffer.read(GOLD) == [toggle]


def test_a_repair_never_rolls_back_a_newer_status(kept: Lists) -> None:
    ada = kept.id_of(ADA)
    HubSpotLists(kept.harness.client).add_and_remove(kept.list_id, add=[], remove=[ada])

    def newer_exit_sent() -> None:
        # Between reconcile's read of the ledger and its repair: Ada exits, and the flusher and
        # the lists function send it (HubSpot's list agrees with the exit).
        kept.reader.before = None
        kept.harness.sync([update(ADA, exited(GOLD, 3000))])
        kept.hand(ADA)
        kept.drain()

    kept.reader.before = newer_exit_sent
    report = kept.reconciler().run()
    # Reconcile saw Ada realized and not in the list: it hands the realized status again, which
    # the buffer drops, the exit being newer.
    assert report.membership is not None and report.membership.found == 1
    assert kept.buffer.read(GOLD) == []
    kept.drain()
    assert ada not in kept.members()


def test_a_deleted_audience_or_a_list_made_again_is_not_compared(kept: Lists) -> None:
    HubSpotLists(kept.harness.client).add_and_remove(kept.list_id, add=[], remove=[kept.id_of(ADA)])
    table, key = kept.harness.dynamodb, audience_key_item(GOLD)
    table.update_item(
        TableName=TABLE,
        Key=key,
        UpdateExpression="SET #g = :g",
        ExpressionAttributeNames={"#g": LIST_GENERATION},
        ExpressionAttributeValues={":g": {"N": "1"}},
    )
    report = kept.reconciler().run()
    assert report.membership is not None and (report.membership.checked, report.membership.found) == (0, 0)
    table.update_item(
        TableName=TABLE,
        Key=key,
        UpdateExpression="SET #g = :g, #s = :s",
        ExpressionAttributeNames={"#g": LIST_GENERATION, "#s": "status"},
        ExpressionAttributeValues={":g": {"N": "0"}, ":s": {"S": "deleted"}},
    )
    report = kept.reconciler().run()
    assert report.membership is not None and (report.membership.checked, report.membership.found) == (0, 0)
    assert kept.reader.calls == [] and kept.buffer.read(GOLD) == []


def test_without_lists_reconcile_reads_no_membership_and_reports_none(kept: Lists) -> None:
    HubSpotLists(kept.harness.client).add_and_remove(kept.list_id, add=[], remove=[kept.id_of(ADA)])
    report = kept.reconciler(lists=False).run()
    assert report.checked == 3 and report.membership is None and "membershipDrift" not in report.as_json()
    assert kept.reader.calls == [] and report.calls == 1
    assert kept.contacts_reader is not None and kept.contacts_reader.calls == [("email", 3)]
