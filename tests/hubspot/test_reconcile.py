"""Reconcile against the sandbox over real HTTP, with the ledger in moto: contacts are synced by the
merge and the flusher, changed in the sandbox as a person (or HubSpot) would, reconciled, and the
flusher writes the repairs. HubSpot ends as the rules say, the ledger agrees, nothing is duplicated
and a contact in sync costs no write."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import pytest
from hubspot_activation.field_rules import FieldRule, FieldRules
from hubspot_activation.hubspot.client import HubSpotClient
from hubspot_activation.hubspot.errors import ErrorKind, HubSpotError
from hubspot_activation.ledger.reconcile_store import DynamoDbTrackedContacts
from hubspot_activation.ledger.seen_item import seen_from_item
from hubspot_activation.reconcile.model import DeletionPolicy, DriftKind, HubSpotRecord, InvalidCursor, Seen
from hubspot_activation.reconcile.service import ERASED_REASON, Reconciler, ReconcileSettings
from hubspot_activation.upsert.ledger import DELETED, ERASED, FAILED, MERGED, SYNCED
from hubspot_activation.upsert.plan import Outcome
from moto import mock_aws

from local.hubspot_sandbox import SandboxServer
from tests.conftest import create_ledger_table
from tests.hubspot.test_sync import GOLD, GOLD_PROP, TABLE, Harness, build_harness, exited, realized, update

ADA, BOB, CY = "ada@example.com", "bob@example.com", "cy@example.com"


@dataclass
class Budget:
    """Reconcile's budget, held on demand."""

    holding: str | None = None
    calls: int = 0

    def hold(self) -> str | None:
        return self.holding

    def spent(self, calls: int) -> None:
        self.calls += calls


@dataclass
class ObservedReader:
    """HubSpot's batch reads as reconcile makes them, counted."""

    client: HubSpotClient
    calls: list[tuple[str, int]] = field(default_factory=list)
    #: the properties each read asked for
    asked: list[list[str]] = field(default_factory=list)

    def by_email(self, emails: Sequence[str], properties: Sequence[str]) -> dict[str, HubSpotRecord]:
        from hubspot_activation.hubspot.reader import HubSpotContactReader

        self.calls.append(("email", len(emails)))
        self.asked.append(list(properties))
        return HubSpotContactReader(self.client).by_email(emails, properties)

    def by_id(
        self, ids: Sequence[str], properties: Sequence[str], archived: bool
    ) -> dict[str, HubSpotRecord]:
        from hubspot_activation.hubspot.reader import HubSpotContactReader

        self.calls.append(("archived" if archived else "id", len(ids)))
        self.asked.append(list(properties))
        return HubSpotContactReader(self.client).by_id(ids, properties, archived)


@dataclass
class Reconcile:
    harness: Harness
    reader: ObservedReader
    budget: Budget
    contacts: DynamoDbTrackedContacts
    deletions: DeletionPolicy = DeletionPolicy.RESPECT
    rules: FieldRules = field(default_factory=FieldRules)

    def reconciler(self) -> Reconciler:
        return Reconciler(
            self.contacts,
            self.reader,
            self.harness.schema,
            self.budget,
            ReconcileSettings(deletions=self.deletions, rules=self.rules),
            clock=self.harness.clock.time,
            monotonic=self.harness.clock.monotonic,
        )

    def id_of(self, email: str) -> str:
        return self.harness.sandbox.state.email_index[email]

    def edit(self, email: str, **properties: str) -> None:
        """A person's edit in HubSpot."""
        contact = self.harness.sandbox.state.contacts[self.id_of(email)]
        contact["properties"].update(properties)

    def seen(self, email: str) -> Seen:
        item = self.harness.dynamodb.get_item(TableName=TABLE, Key={"email": {"S": email}})["Item"]
        seen = seen_from_item(item)
        assert seen is not None
        return seen


@pytest.fixture
def harness(sandbox: SandboxServer, make_client: Callable[..., HubSpotClient]) -> Iterator[Harness]:
    with mock_aws():
        create_ledger_table(TABLE)
        yield build_harness(sandbox, make_client)


@pytest.fixture
def rec(harness: Harness) -> Reconcile:
    contacts = DynamoDbTrackedContacts(harness.dynamodb, TABLE)
    return Reconcile(harness, ObservedReader(harness.client), Budget(), contacts)


def sync_three(harness: Harness) -> None:
    harness.sync(
        [
            update(ADA, realized(GOLD, 1000, "Gold"), firstname="Ada", city="London"),
            update(BOB, exited(GOLD, 1000, "Gold"), firstname="Bob"),
            update(CY, realized(GOLD, 1000, "Gold"), firstname="Cy"),
        ]
    )


def test_contacts_in_sync_cost_one_read_and_no_write(harness: Harness, rec: Reconcile) -> None:
    sync_three(harness)
    upserts = harness.upserts()
    report = rec.reconciler().run()
    assert report.checked == 3 and sum(report.drift.values()) == 0 and report.cursor is None
    assert rec.reader.calls == [("email", 3)] and report.calls == 1 == rec.budget.calls
    assert harness.pending() == set()
    assert harness.flush().hubspot_requests == 0 and harness.upserts() == upserts


def test_an_edited_managed_property_is_written_again_with_the_newest_source_value(
    harness: Harness, rec: Reconcile
) -> None:
    sync_three(harness)
    rec.edit(ADA, city="Paris", **{GOLD_PROP: "exited"})
    rec.edit(BOB, lastname="Unmanaged")  # not a property the connector wrote: not drift
    report = rec.reconciler().run()
    assert report.drift[DriftKind.EDITED] == 1 and report.repaired[DriftKind.EDITED] == 1
    assert report.examples[0].email == ADA and report.examples[0].properties == sorted(["city", GOLD_PROP])
    assert harness.pending() == {ADA}
    flushed = harness.flush()
    assert flushed.outcomes == {ADA: Outcome.SYNCED} and flushed.call_sizes == [1]
    ada = harness.contact(ADA)
    assert (ada["city"], ada[GOLD_PROP]) == ("London", "realized")
    assert harness.contact(BOB)["lastname"] == "Unmanaged"
    again = rec.reconciler().run()
    assert sum(again.drift.values()) == 0 and harness.pending() == set()


def test_a_dry_run_finds_drift_and_changes_nothing(harness: Harness, rec: Reconcile) -> None:
    sync_three(harness)
    rec.edit(ADA, city="Paris")
    before = harness.entry(ADA)
    report = rec.reconciler().run(dry_run=True)
    assert report.drift[DriftKind.EDITED] == 1 and not report.repaired
    assert harness.entry(ADA) == before and harness.pending() == set()
    assert harness.contact(ADA)["city"] == "Paris"


def test_a_deleted_contact_is_respected_until_the_source_changes_it(harness: Harness, rec: Reconcile) -> None:
    sync_three(harness)
    old_id = rec.id_of(ADA)
    harness.sandbox.state.archive(old_id)
    report = rec.reconciler().run()
    assert report.drift[DriftKind.DELETED] == 1 and not report.repaired
    assert rec.reader.calls == [("email", 3), ("id", 1), ("archived", 1)]
    assert harness.entry(ADA).status == DELETED and harness.pending() == set()
    # An unchanged re-send does not re-create it, and a second reconcile leaves it deleted.
    resent = harness.sync([update(ADA, realized(GOLD, 1000, "Gold"), firstname="Ada", city="London")])
    assert resent.hubspot_requests == 0 and ADA not in harness.sandbox.state.email_index
    assert sum(rec.reconciler().run().drift.values()) == 0 and harness.entry(ADA).status == DELETED
    # A changed one re-creates it with its whole current state.
    harness.sync([update(ADA, firstname="Ada Lovelace")])
    ada = harness.contact(ADA)
    assert (ada["firstname"], ada["city"], ada[GOLD_PROP]) == ("Ada Lovelace", "London", "realized")
    entry = harness.entry(ADA)
    assert entry.status == SYNCED and entry.hubspot_id == rec.id_of(ADA) != old_id


def test_recreate_brings_a_deleted_contact_back_with_its_full_state(harness: Harness, rec: Reconcile) -> None:
    sync_three(harness)
    harness.sandbox.state.archive(rec.id_of(BOB))
    rec.deletions = DeletionPolicy.RECREATE
    report = rec.reconciler().run()
    assert report.drift[DriftKind.DELETED] == 1 and report.repaired[DriftKind.DELETED] == 1
    harness.flush()
    bob = harness.contact(BOB)
    assert (bob["firstname"], bob[GOLD_PROP]) == ("Bob", "exited")
    assert harness.entry(BOB).status == SYNCED
    assert sum(rec.reconciler().run().drift.values()) == 0


def test_a_restored_contact_is_checked_and_back_to_synced(harness: Harness, rec: Reconcile) -> None:
    sync_three(harness)
    bob_id = rec.id_of(BOB)
    harness.sandbox.state.archive(bob_id)
    rec.reconciler().run()
    harness.sandbox.state.restore(bob_id)
    report = rec.reconciler().run()
    assert report.drift[DriftKind.RESTORED] == 1 and report.repaired[DriftKind.RESTORED] == 1
    entry = harness.entry(BOB)
    assert entry.status == SYNCED and entry.hubspot_id == bob_id and harness.pending() == set()


def test_an_erased_contact_fails_for_good_and_is_not_sent_again(harness: Harness, rec: Reconcile) -> None:
    sync_three(harness)
    harness.sandbox.state.erase(rec.id_of(CY))
    report = rec.reconciler().run()
    assert report.drift[DriftKind.ERASED] == 1
    entry = harness.entry(CY)
    assert (entry.status, entry.hubspot_state, entry.reason) == (FAILED, ERASED, ERASED_REASON)
    changed = harness.sync([update(CY, firstname="Cyrus")])
    assert changed.hubspot_requests == 0 and harness.entry(CY).status == FAILED
    assert CY not in harness.sandbox.state.email_index
    assert sum(rec.reconciler().run().drift.values()) == 0  # not read again


def test_a_merged_contact_is_followed_and_written_by_record_id(harness: Harness, rec: Reconcile) -> None:
    sync_three(harness)
    survivor = harness.sandbox.state.merge(rec.id_of(BOB), rec.id_of(ADA))  # Bob's record wins
    report = rec.reconciler().run()
    assert report.drift[DriftKind.MERGED] >= 1
    ada = harness.entry(ADA)
    assert (ada.hubspot_id, ada.hubspot_state) == (survivor, MERGED)
    assert harness.entry(BOB).hubspot_id == survivor
    contacts = len(harness.sandbox.state.contacts)
    # Ada's managed values differ on the survivor (Bob's won): written to it by id, no duplicate.
    harness.flush()
    harness.sync([update(ADA, city="Leeds")])
    assert len(harness.sandbox.state.contacts) == contacts
    assert harness.sandbox.state.contacts[survivor]["properties"]["city"] == "Leeds"
    assert ADA not in harness.sandbox.state.email_index or harness.sandbox.state.email_index[ADA] == survivor


def test_a_walk_stops_when_the_budget_holds_and_goes_on_from_its_cursor(
    harness: Harness, rec: Reconcile
) -> None:
    harness.sync([update(f"u{i:03d}@example.com", realized(GOLD, 1000, "Gold")) for i in range(250)])
    first = rec.reconciler().run(max_contacts=100)
    assert first.cursor is not None and 100 <= first.checked < 250
    rec.budget.holding = "backlog"
    held = rec.reconciler().run(cursor=first.cursor)
    assert (held.checked, held.stopped_by, held.cursor) == (0, "backlog", first.cursor)
    rec.budget.holding = None
    rest = rec.reconciler().run(cursor=first.cursor)
    assert rest.cursor is None and first.checked + rest.checked == 250


def test_a_cursor_no_reconcile_gave_is_refused(rec: Reconcile) -> None:
    with pytest.raises(InvalidCursor):
        rec.reconciler().run(cursor="not-a-cursor")


def test_named_contacts_are_checked_alone(harness: Harness, rec: Reconcile) -> None:
    sync_three(harness)
    rec.edit(ADA, city="Paris")
    rec.edit(BOB, firstname="Robert")
    report = rec.reconciler().run(emails=[" ADA@example.com", "nobody@example.com"])
    assert report.checked == 1 and report.drift[DriftKind.EDITED] == 1 and harness.pending() == {ADA}


@pytest.mark.parametrize("additional_emails_match", [False, True])
def test_a_merge_creates_no_duplicate_whether_or_not_hubspot_matches_additional_emails(
    harness: Harness, rec: Reconcile, additional_emails_match: bool
) -> None:
    """HubSpot does not say whether ``idProperty=email`` finds an address a merge made additional:
    either way the merged contact's record is followed and written by id."""
    sync_three(harness)
    harness.sandbox.state.config.additional_emails_match = additional_emails_match
    survivor = harness.sandbox.state.merge(rec.id_of(BOB), rec.id_of(ADA))
    rec.reconciler().run()
    assert harness.entry(ADA).hubspot_state == MERGED
    harness.flush()
    for round_ in range(2):
        harness.sync([update(ADA, city=f"City {round_}"), update(BOB, firstname=f"Bob {round_}")])
    assert len(harness.sandbox.state.contacts) == 2  # the survivor and Cy
    survivor_properties = harness.sandbox.state.contacts[survivor]["properties"]
    assert (survivor_properties["city"], survivor_properties["firstname"]) == ("City 1", "Bob 1")
    assert sum(rec.reconciler().run().drift.values()) == 0


def test_the_primary_of_a_merge_follows_its_new_id_and_is_still_written_by_email(
    harness: Harness, rec: Reconcile
) -> None:
    sync_three(harness)
    survivor = harness.sandbox.state.merge(rec.id_of(ADA), rec.id_of(BOB))  # Ada's record wins
    report = rec.reconciler().run()
    assert report.drift[DriftKind.MERGED] == 2
    ada = harness.entry(ADA)
    assert (ada.hubspot_id, ada.hubspot_state) == (survivor, None)
    harness.flush()
    # Both contacts' statuses have the same timestamp, and Bob's was received after Ada's: the
    # newest source value wins on the survivor, whichever record won the merge.
    assert harness.contact(ADA)[GOLD_PROP] == "exited"
    assert sum(rec.reconciler().run().drift.values()) == 0 and harness.pending() == set()


def test_an_operator_replay_sends_an_erased_contact_once_more(harness: Harness, rec: Reconcile) -> None:
    sync_three(harness)
    harness.sandbox.state.erase(rec.id_of(CY))
    rec.reconciler().run()
    harness.merger.process(harness.replay_messages(CY))
    report = harness.flush()
    assert report.outcomes == {CY: Outcome.FAILED} and harness.upserts() >= 2
    entry = harness.entry(CY)
    assert entry.status == FAILED and entry.reason != ERASED_REASON  # HubSpot's own refusal now
    assert CY not in harness.sandbox.state.email_index


def test_a_contact_that_changes_during_the_read_is_left_to_the_flush(
    harness: Harness, rec: Reconcile
) -> None:
    sync_three(harness)
    rec.edit(ADA, city="Paris")
    original = rec.reader.by_email

    def merge_meanwhile(emails: Sequence[str], properties: Sequence[str]) -> dict[str, HubSpotRecord]:
        found = original(emails, properties)
        harness.merge([update(ADA, firstname="Ada L.")])
        return found

    rec.reader.by_email = merge_meanwhile  # type: ignore[method-assign]
    report = rec.reconciler().run()
    assert report.drift[DriftKind.EDITED] == 1 and not report.repaired and report.skipped == 1
    assert harness.entry(ADA).written["city"] == "London"  # the flush's record stands
    harness.flush()
    assert harness.contact(ADA)["firstname"] == "Ada L."
    rec.reader.by_email = original  # type: ignore[method-assign]
    assert rec.reconciler().run().repaired[DriftKind.EDITED] == 1  # the next walk repairs it
    harness.flush()
    assert harness.contact(ADA)["city"] == "London"


def test_pending_contacts_are_skipped_and_cost_no_read(harness: Harness, rec: Reconcile) -> None:
    harness.merge([update(ADA, firstname="Ada")])
    report = rec.reconciler().run()
    assert (report.checked, report.skipped, report.calls) == (1, 1, 0)


@pytest.mark.parametrize("kind", [ErrorKind.PERMANENT, ErrorKind.RETRYABLE])
def test_a_page_hubspot_cannot_answer_never_stops_every_walk_at_it(
    harness: Harness, rec: Reconcile, kind: ErrorKind
) -> None:
    harness.sync([update(f"u{i:03d}@example.com", realized(GOLD, 1000, "Gold")) for i in range(150)])
    original = rec.reader.by_email
    calls = 0

    def first_page_fails(emails: Sequence[str], properties: Sequence[str]) -> dict[str, HubSpotRecord]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise HubSpotError(kind, "HubSpot could not answer")
        return original(emails, properties)

    rec.reader.by_email = first_page_fails  # type: ignore[method-assign]
    report = rec.reconciler().run()
    if kind is ErrorKind.PERMANENT:
        # Passed over, counted as skipped: the walk goes on and ends.
        assert report.cursor is None and report.checked == 150 and report.skipped >= 1
    else:
        # Stopped where it was: the next run reads the same page again.
        assert (report.stopped_by, report.more, report.cursor) == ("hubspot", True, None)
        assert rec.reconciler().run().checked == 150


def test_contacts_merged_into_a_record_with_a_third_email_are_each_followed(
    harness: Harness, rec: Reconcile
) -> None:
    """Two tracked contacts whose record now answers to another primary email: both are found
    through the one id they share, neither is taken for erased."""
    sync_three(harness)
    state = harness.sandbox.state
    first = state.merge(rec.id_of(CY), rec.id_of(ADA))
    rec.reconciler().run()
    survivor = state.merge(first, rec.id_of(BOB))  # Cy's record wins again: Ada and Bob answer to it
    report = rec.reconciler().run()
    assert report.drift[DriftKind.ERASED] == 0
    for email in (ADA, BOB):
        entry = harness.entry(email)
        assert (entry.status, entry.hubspot_id, entry.hubspot_state) == (SYNCED, survivor, MERGED)
    assert sum(rec.reconciler().run().drift.values()) == 0


def test_a_page_that_ends_on_another_item_than_a_contact_goes_on_from_it(rec: Reconcile) -> None:
    """A scan's page may end on a marker or a lease (its key has no ``@``): the cursor after it
    is still one the walk takes."""
    client = rec.harness.dynamodb
    for key in ("#flush-lane#0", "ada@example.com", "bob@example.com"):
        client.put_item(TableName=TABLE, Item={"email": {"S": key}})
    contacts = DynamoDbTrackedContacts(client, TABLE)
    emails: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        states, cursor = contacts.page(cursor, 1)
        emails.extend(state.email for state in states)
        pages += 1
        if cursor is None:
            break
    assert sorted(emails) == [ADA, BOB] and pages >= 3


def test_a_contact_left_deleted_costs_no_read_of_its_id(harness: Harness, rec: Reconcile) -> None:
    sync_three(harness)
    harness.sandbox.state.archive(rec.id_of(ADA))
    rec.reconciler().run()
    rec.reader.calls.clear()
    assert sum(rec.reconciler().run().drift.values()) == 0
    assert rec.reader.calls == [("email", 3)]


def test_contacts_not_found_by_email_are_read_by_id_a_hundred_a_call_across_pages(
    harness: Harness, rec: Reconcile
) -> None:
    emails = [f"u{i:03d}@example.com" for i in range(250)]
    harness.sync([update(email, realized(GOLD, 1000, "Gold")) for email in emails])
    for email in emails[::10]:  # one contact in ten, on every page
        harness.sandbox.state.archive(rec.id_of(email))
    report = rec.reconciler().run()
    assert report.drift[DriftKind.DELETED] == 25
    assert [kind for kind, _count in rec.reader.calls].count("id") == 1
    assert [kind for kind, _count in rec.reader.calls].count("archived") == 1


def test_an_erased_contact_stays_erased_through_an_update_with_a_problem(
    harness: Harness, rec: Reconcile
) -> None:
    sync_three(harness)
    harness.sandbox.state.erase(rec.id_of(CY))
    rec.reconciler().run()
    upserts = harness.upserts()
    harness.sync([update(CY, no_such_property="x")])  # a mapped attribute HubSpot has no property for
    harness.sync([update(CY, firstname="Cyrus")])
    entry = harness.entry(CY)
    assert (entry.status, entry.hubspot_state) == (FAILED, ERASED) and harness.upserts() == upserts


def test_contacts_merged_into_one_record_are_written_to_it_one_call_after_the_other(
    harness: Harness, rec: Reconcile
) -> None:
    """HubSpot refuses a batch naming one record twice: two contacts written by the same record's
    id go in separate calls, and the contacts written by email beside them are settled."""
    sync_three(harness)
    state = harness.sandbox.state
    survivor = state.merge(rec.id_of(CY), state.merge(rec.id_of(ADA), rec.id_of(BOB)))
    rec.reconciler().run()
    harness.flush()
    report = harness.sync(
        [
            update(ADA, city="Ada's city"),
            update(BOB, lastname="Bob's name"),
            update("dee@example.com", firstname="Dee"),
        ]
    )
    assert report.counts()[Outcome.SYNCED] == 3 and harness.pending() == set()
    held = state.contacts[survivor]["properties"]
    assert (held["city"], held["lastname"]) == ("Ada's city", "Bob's name")


def test_a_read_by_email_carries_a_hundred_contacts_whatever_else_the_table_holds(
    harness: Harness, rec: Reconcile
) -> None:
    harness.sync([update(f"u{i:03d}@example.com", realized(GOLD, 1000, "Gold")) for i in range(150)])
    for index in range(150):  # other items the scan reads too
        harness.dynamodb.put_item(TableName=TABLE, Item={"email": {"S": f"#held#{index:03d}"}})
    report = rec.reconciler().run()
    assert report.checked == 150 and report.cursor is None
    assert [size for kind, size in rec.reader.calls if kind == "email"] == [100, 50]


def test_named_contacts_are_checked_while_live_traffic_holds_the_walk(
    harness: Harness, rec: Reconcile
) -> None:
    """The journal names a few contacts a minute: a steady backlog must not hold them back."""
    sync_three(harness)
    rec.edit(ADA, city="Paris")
    rec.budget.holding = "backlog"
    assert rec.reconciler().run().stopped_by == "backlog"
    named = rec.reconciler().run(emails=[ADA])
    assert named.checked == 1 and named.drift[DriftKind.EDITED] == 1
    rec.budget.holding = "daily_share"
    assert rec.reconciler().run(emails=[ADA]).stopped_by == "daily_share"


def test_a_stopped_read_of_record_ids_stops_the_walk(harness: Harness, rec: Reconcile) -> None:
    harness.sync([update(f"u{i:03d}@example.com", realized(GOLD, 1000, "Gold")) for i in range(250)])
    for index in range(0, 250, 2):
        harness.sandbox.state.archive(rec.id_of(f"u{index:03d}@example.com"))
    original = rec.reader.by_id

    def failing(ids: Sequence[str], properties: Sequence[str], archived: bool) -> dict[str, HubSpotRecord]:
        raise HubSpotError(ErrorKind.RETRYABLE, "HubSpot is down")

    rec.reader.by_id = failing  # type: ignore[method-assign]
    report = rec.reconciler().run()
    assert report.stopped_by == "hubspot" and report.cursor is not None and report.checked < 250
    rec.reader.by_id = original  # type: ignore[method-assign]


# --- field rules ---------------------------------------------------------------------------------


def ruled(rec: Reconcile, **rules: FieldRule) -> None:
    """The rules reconcile runs under from now on (the values were written under ``overwrite``)."""
    rec.rules = FieldRules(dict(rules))


@pytest.mark.parametrize("rule", [FieldRule.OVERWRITE, FieldRule.UNLESS_BLANK, FieldRule.ALWAYS])
def test_an_edit_in_hubspot_is_repaired_under_the_rules_that_repair_drift(
    harness: Harness, rec: Reconcile, rule: FieldRule
) -> None:
    sync_three(harness)
    ruled(rec, city=rule)
    rec.edit(ADA, city="Paris")
    report = rec.reconciler().run()
    assert report.drift[DriftKind.EDITED] == 1 and report.repaired[DriftKind.EDITED] == 1
    assert report.examples[0].properties == ["city"] and report.examples[0].kept == []
    assert harness.pending() == {ADA}
    assert harness.flush().call_sizes == [1]
    assert harness.contact(ADA)["city"] == "London" and harness.entry(ADA).held == {}


def test_a_fill_empty_property_hubspot_edited_is_kept_as_hubspot_holds_it(
    harness: Harness, rec: Reconcile
) -> None:
    sync_three(harness)
    ruled(rec, city=FieldRule.FILL_EMPTY)
    rec.edit(ADA, city="Paris")
    upserts = harness.upserts()
    report = rec.reconciler().run()
    # Found (an operator sees HubSpot's edit), not repaired: HubSpot's value wins.
    assert report.drift[DriftKind.EDITED] == 1 and report.repaired[DriftKind.EDITED] == 0
    finding = report.examples[0]
    assert (finding.email, finding.properties, finding.kept) == (ADA, ["city"], ["city"])
    assert not finding.repaired
    assert finding.as_json()["kept"] == ["city"]
    entry = harness.entry(ADA)
    assert entry.held == {"city": "Paris"} and "city" not in entry.written
    assert entry.written["firstname"] == "Ada"
    seen = rec.seen(ADA)
    assert seen.properties["city"] == "Paris" and seen.drift is DriftKind.EDITED
    assert harness.pending() == set() and harness.flush().hubspot_requests == 0
    # A later update of another property writes that one only: the source's city stays unwritten.
    harness.sync([update(ADA, firstname="Ada L.")])
    ada = harness.contact(ADA)
    assert (ada["firstname"], ada["city"]) == ("Ada L.", "Paris")
    assert harness.upserts() == upserts + 1
    # The held value is read (and compared) by the next walk, and is no drift while it stands.
    rec.reader.asked.clear()
    again = rec.reconciler().run()
    assert sum(again.drift.values()) == 0 and "city" in rec.reader.asked[0]
    assert harness.pending() == set()


def test_a_contact_whose_only_drift_is_on_fill_empty_costs_no_write(harness: Harness, rec: Reconcile) -> None:
    sync_three(harness)
    ruled(rec, city=FieldRule.FILL_EMPTY)
    rec.edit(ADA, city="Paris")
    rec.edit(BOB, firstname="Robert")
    report = rec.reconciler().run()
    assert report.drift[DriftKind.EDITED] == 2 and report.repaired[DriftKind.EDITED] == 1
    assert harness.pending() == {BOB}
    flushed = harness.flush()
    assert flushed.outcomes == {BOB: Outcome.SYNCED} and harness.writer.calls[-1] == [BOB]
    assert (harness.contact(ADA)["city"], harness.contact(BOB)["firstname"]) == ("Paris", "Bob")


def test_a_fill_empty_property_hubspot_emptied_is_filled_again_by_the_flush(
    harness: Harness, rec: Reconcile
) -> None:
    sync_three(harness)
    ruled(rec, city=FieldRule.FILL_EMPTY)
    rec.edit(ADA, city="")
    report = rec.reconciler().run()
    assert report.repaired[DriftKind.EDITED] == 1 and report.examples[0].kept == []
    entry = harness.entry(ADA)
    assert "city" not in entry.written and "city" not in entry.attribute_order and entry.held == {}
    assert harness.pending() == {ADA}
    harness.flush()
    assert harness.contact(ADA)["city"] == "London" and harness.entry(ADA).written["city"] == "London"
    assert sum(rec.reconciler().run().drift.values()) == 0


def test_a_held_value_follows_hubspot_and_is_filled_again_once_hubspot_empties_it(
    harness: Harness, rec: Reconcile
) -> None:
    sync_three(harness)
    ruled(rec, city=FieldRule.FILL_EMPTY)
    rec.edit(ADA, city="Paris")
    rec.reconciler().run()
    # HubSpot's own value changing is not drift: what is held follows it, nothing is written.
    rec.edit(ADA, city="Rome")
    changed = rec.reconciler().run()
    assert sum(changed.drift.values()) == 0 and harness.entry(ADA).held == {"city": "Rome"}
    assert harness.pending() == set() and rec.seen(ADA).properties["city"] == "Rome"
    # Emptied: no longer held, and the flusher fills it from the source.
    rec.edit(ADA, city="")
    emptied = rec.reconciler().run()
    assert emptied.repaired[DriftKind.EDITED] == 1 and emptied.examples[0].properties == ["city"]
    assert harness.entry(ADA).held == {} and harness.pending() == {ADA}
    harness.flush()
    assert harness.contact(ADA)["city"] == "London" and harness.entry(ADA).written["city"] == "London"
    assert sum(rec.reconciler().run().drift.values()) == 0 and harness.pending() == set()


def test_a_never_property_is_neither_read_nor_compared(harness: Harness, rec: Reconcile) -> None:
    sync_three(harness)  # city written while it was overwrite
    ruled(rec, city=FieldRule.NEVER)
    rec.edit(ADA, city="Paris")
    report = rec.reconciler().run()
    assert sum(report.drift.values()) == 0 and harness.pending() == set()
    assert rec.reader.asked and all("city" not in asked for asked in rec.reader.asked)
    assert "firstname" in rec.reader.asked[0]
    assert "city" not in rec.seen(ADA).properties
    assert harness.contact(ADA)["city"] == "Paris"  # left as HubSpot has it


def test_a_repair_keeps_what_the_contact_holds_and_hubspot_refused(harness: Harness, rec: Reconcile) -> None:
    """The repair's conditional write carries the confirmed state's held and refused values."""
    sync_three(harness)
    ruled(rec, city=FieldRule.FILL_EMPTY)
    harness.dynamodb.update_item(
        TableName=TABLE,
        Key={"email": {"S": ADA}},
        UpdateExpression="SET refusedValues = :r",
        ExpressionAttributeValues={":r": {"M": {"jobtitle": {"S": "f1"}}}},
    )
    rec.edit(ADA, city="Paris", firstname="Edited")
    report = rec.reconciler().run()
    assert report.repaired[DriftKind.EDITED] == 1
    entry = harness.entry(ADA)
    assert entry.held == {"city": "Paris"} and entry.refused_values == {"jobtitle": "f1"}
    harness.flush()
    entry = harness.entry(ADA)
    assert entry.held == {"city": "Paris"} and entry.refused_values == {"jobtitle": "f1"}
    ada = harness.contact(ADA)
    assert (ada["firstname"], ada["city"]) == ("Ada", "Paris")
