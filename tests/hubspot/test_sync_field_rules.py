"""Field rules at the flush, against the sandbox over real HTTP with the ledger in moto (the
``test_sync`` harness): ``never`` and blanks under ``unless_blank``/``fill_empty`` are not written,
and a ``fill_empty`` value is written only into a property HubSpot holds nothing in - read once per
call's worth of contacts when the ledger cannot tell, never read again once it can."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from hubspot_activation.field_rules import FieldRule, FieldRules
from hubspot_activation.hubspot.batch import UpsertInput
from hubspot_activation.hubspot.client import HubSpotClient
from hubspot_activation.ledger.reconcile_store import DynamoDbTrackedContacts
from hubspot_activation.upsert.flush import RECORD_MARGIN_SECONDS, FlushSettings
from hubspot_activation.upsert.ledger import DELETED
from hubspot_activation.upsert.plan import Outcome
from moto import mock_aws

from local.hubspot_sandbox import SandboxServer
from tests.conftest import create_ledger_table
from tests.hubspot.test_reconcile import Budget as ReconcileBudget
from tests.hubspot.test_reconcile import ObservedReader, Reconcile
from tests.hubspot.test_sync import (
    ONE_VERSION,
    PHONE_PATTERN,
    TABLE,
    Budget,
    Harness,
    build_harness,
    put_rule,
    update,
)

ADA, BOB, CY = "ada@example.com", "bob@example.com", "cy@example.com"
FILL_CITY = FieldRules.from_json('{"city": "fill_empty"}')
ALWAYS_PHONE = FieldRules.from_json('{"phone": "always"}')


@pytest.fixture
def harness(sandbox: SandboxServer, make_client: Callable[..., HubSpotClient]) -> Iterator[Harness]:
    with mock_aws():
        create_ledger_table(TABLE)
        yield build_harness(sandbox, make_client)


def seed(harness: Harness, email: str, **properties: str) -> None:
    """A contact someone else put in HubSpot (a salesperson, another integration): the connector's
    ledger knows nothing of it."""
    (result,) = harness.client.batch_upsert([UpsertInput(email, {"lastname": "Seeded", **properties})])
    assert result.ok


def test_fill_empty_keeps_what_hubspot_holds_and_writes_into_what_is_empty(harness: Harness) -> None:
    harness.rules = FILL_CITY
    seed(harness, ADA, city="Paris")  # HubSpot holds a city
    seed(harness, CY)  # HubSpot holds the contact, no city
    reads, upserts = harness.reads(), harness.upserts()
    report = harness.sync(
        [
            update(ADA, city="London", firstname="Ada"),
            update(BOB, city="Leeds", firstname="Bob"),  # HubSpot does not hold Bob
            update(CY, city="York", firstname="Cy"),
        ]
    )
    assert report.counts() == {Outcome.SYNCED: 3}
    assert (harness.reads() - reads, harness.upserts() - upserts) == (1, 1)  # one read for the call
    ada = harness.contact(ADA)
    assert (ada["city"], ada["firstname"]) == ("Paris", "Ada")
    assert harness.contact(BOB)["city"] == "Leeds" and harness.contact(CY)["city"] == "York"
    entry = harness.entry(ADA)
    assert entry.held == {"city": "Paris"} and "city" not in entry.written
    assert entry.written["firstname"] == "Ada" and entry.warnings == {}
    assert harness.entry(BOB).held == {} and harness.entry(BOB).written["city"] == "Leeds"
    assert harness.entry(CY).held == {} and harness.entry(CY).written["city"] == "York"
    assert harness.pending() == set()


def test_a_contact_whose_only_value_hubspot_holds_is_settled_unwritten_and_costs_nothing_again(
    harness: Harness,
) -> None:
    harness.rules = FILL_CITY
    seed(harness, ADA, city="Paris")
    harness.sync([update(BOB, city="Leeds")])  # schema cached
    reads, upserts = harness.reads(), harness.upserts()
    first = harness.sync([update(ADA, city="London")])
    assert first.outcomes == {ADA: Outcome.SKIPPED} and first.call_sizes == []
    assert (harness.reads() - reads, harness.upserts() - upserts) == (1, 0)
    assert harness.contact(ADA)["city"] == "Paris" and harness.entry(ADA).held == {"city": "Paris"}
    # The same value sent again (a later export): HubSpot is known to hold a value, so no call.
    again = harness.sync([update(ADA, city="London")])
    assert again.hubspot_requests == 0 and again.outcomes == {ADA: Outcome.SKIPPED}
    # Nor for another value: HubSpot's stays.
    changed = harness.sync([update(ADA, city="Rome", firstname="Ada")])
    assert changed.outcomes == {ADA: Outcome.SYNCED}
    assert (harness.reads() - reads, harness.upserts() - upserts) == (1, 1)
    assert harness.contact(ADA)["city"] == "Paris" and harness.contact(ADA)["firstname"] == "Ada"
    assert harness.entry(ADA).held == {"city": "Paris"}
    assert harness.pending() == set()


@ONE_VERSION
def test_a_value_the_connector_wrote_is_never_read_again_nor_overwritten(harness: Harness) -> None:
    harness.rules = FILL_CITY
    harness.sync([update("warm@example.com", city="x")])  # schema cached
    reads, upserts = harness.reads(), harness.upserts()
    harness.sync([update(BOB, city="Leeds", firstname="Bob")])
    assert (harness.reads() - reads, harness.upserts() - upserts) == (1, 1)
    # Sent again unchanged: the ledger says HubSpot holds it.
    unchanged = harness.sync([update(BOB, city="Leeds", firstname="Bob")])
    assert unchanged.hubspot_requests == 0
    # The source changes the city: HubSpot holds a value (the connector's own), which wins; no read.
    changed = harness.sync([update(BOB, city="York", firstname="Robert")])
    assert changed.outcomes == {BOB: Outcome.SYNCED}
    assert (harness.reads() - reads, harness.upserts() - upserts) == (1, 2)
    assert harness.contact(BOB)["city"] == "Leeds" and harness.contact(BOB)["firstname"] == "Robert"
    assert harness.entry(BOB).written["city"] == "Leeds" and harness.entry(BOB).held == {}


@ONE_VERSION
def test_never_and_blanks_under_unless_blank_are_not_written_and_need_no_read(harness: Harness) -> None:
    harness.rules = FieldRules(
        {"company": FieldRule.NEVER, "city": FieldRule.UNLESS_BLANK, "phone": FieldRule.FILL_EMPTY}
    )
    harness.sync([update(ADA, city="London", firstname="Ada")])
    reads, upserts = harness.reads(), harness.upserts()
    report = harness.sync([update(ADA, city="", phone="", company="CEO", firstname="Adele")])
    assert report.outcomes == {ADA: Outcome.SYNCED} and harness.reads() == reads
    assert harness.upserts() == upserts + 1
    ada = harness.contact(ADA)
    assert (ada["city"], ada["firstname"]) == ("London", "Adele")
    assert "company" not in ada and "phone" not in ada
    entry = harness.entry(ADA)
    assert "company" not in entry.written and entry.written["city"] == "London"
    assert entry.warnings == {} and entry.pending_attributes == {} and entry.reason is None
    # Only such values: nothing to write, no call.
    nothing = harness.sync([update(ADA, city="", company="CTO")])
    assert nothing.hubspot_requests == 0 and nothing.outcomes == {ADA: Outcome.SKIPPED}
    assert harness.pending() == set()


@ONE_VERSION
def test_rules_reading_nothing_make_no_read(harness: Harness) -> None:
    harness.rules = FieldRules.from_json('{"company": "never", "city": "unless_blank"}')
    seed(harness, ADA, city="Paris")
    report = harness.sync([update(ADA, city="London", company="CEO"), update(BOB, city="Leeds")])
    assert report.counts() == {Outcome.SYNCED: 2} and harness.reads() == 0
    assert harness.contact(ADA)["city"] == "London" and "company" not in harness.contact(ADA)


@ONE_VERSION
def test_a_failed_read_leaves_the_contacts_pending_after_a_backoff_and_sends_no_write(
    harness: Harness,
) -> None:
    harness.rules = FILL_CITY
    harness.settings = FlushSettings(linger_seconds=0.0, retry_base_seconds=10)
    harness.sync([update("warm@example.com", city="x")])  # schema cached
    harness.writer.calls.clear()
    harness.merge([update(ADA, city="London"), update(BOB, firstname="Bob")])
    harness.sandbox.state.config.error_rate = 1.0  # HubSpot answers 502
    seen: list[tuple[int, int]] = []

    def recover() -> None:
        seen.extend((harness.state(email).attempts, len(harness.writer.calls)) for email in (ADA, BOB))
        harness.sandbox.state.config.error_rate = 0.0

    harness.clock.on_sleep = recover
    report = harness.flush()
    assert harness.clock.sleeps[0] == 10.0 and seen == [(1, 0), (1, 0)]  # the read failed, nothing sent
    assert report.counts() == {Outcome.SYNCED: 2} and harness.contact(ADA)["city"] == "London"
    assert harness.pending() == set()


@ONE_VERSION
def test_the_daily_limit_met_by_the_read_stops_the_run_and_leaves_the_contacts_as_they_were(
    harness: Harness,
) -> None:
    harness.rules = FILL_CITY
    harness.sync([update("warm@example.com", city="x")])  # schema cached
    harness.writer.calls.clear()
    harness.merge([update(ADA, city="London")])
    harness.sandbox.state.config.daily_limit = harness.sandbox.state.daily_used  # not one request
    report = harness.flush()
    assert report.daily_limit_resets_at is not None and report.outcomes == {}
    assert harness.writer.calls == [] and harness.pending() == {ADA}
    assert harness.state(ADA).attempts == 0 and harness.state(ADA).confirmed is None


@ONE_VERSION
def test_a_call_that_must_read_first_starts_only_with_time_for_both(harness: Harness) -> None:
    harness.rules = FILL_CITY
    harness.sync([update("warm@example.com", city="x")])  # schema cached
    harness.merge([update(ADA, city="London")])
    one_call = RECORD_MARGIN_SECONDS + 1.5 * harness.writer.max_call_seconds
    report = harness.flush(Budget(one_call))
    assert report.hubspot_requests == 0 and report.outcomes == {} and report.more_pending
    assert harness.pending() == {ADA} and harness.state(ADA).attempts == 0
    # With time for both, the read and the write are made.
    assert harness.flush().outcomes == {ADA: Outcome.SYNCED}
    assert harness.contact(ADA)["city"] == "London"


def test_a_merged_contact_is_read_by_its_record_id(harness: Harness) -> None:
    """A contact merged into a record with another primary email is written by record id, and
    read by it: by email HubSpot need not find it, and the survivor's value would be overwritten."""
    tracked = DynamoDbTrackedContacts(harness.dynamodb, TABLE)
    rec = Reconcile(harness, ObservedReader(harness.client), ReconcileBudget(), tracked)
    harness.sync([update(ADA, firstname="Ada"), update(BOB, firstname="Bob", city="Oslo")])
    survivor = harness.sandbox.state.merge(rec.id_of(BOB), rec.id_of(ADA))  # Bob's record wins
    rec.reconciler().run()
    assert harness.entry(ADA).written_by_id
    harness.flush()
    harness.rules = FILL_CITY
    reads, upserts = harness.reads(), harness.upserts()
    report = harness.sync([update(ADA, city="Leeds")])
    assert report.outcomes == {ADA: Outcome.SKIPPED} and harness.reads() == reads + 1
    assert harness.upserts() == upserts
    assert harness.sandbox.state.contacts[survivor]["properties"]["city"] == "Oslo"
    assert harness.entry(ADA).held == {"city": "Oslo"}


@ONE_VERSION
def test_a_held_value_is_forgotten_once_the_connector_writes_the_property(harness: Harness) -> None:
    """The operator changes the rule to overwrite: the source's value is written over HubSpot's,
    which the ledger then no longer counts as held."""
    harness.rules = FILL_CITY
    seed(harness, ADA, city="Paris")
    harness.sync([update(ADA, city="London", firstname="Ada")])
    assert harness.entry(ADA).held == {"city": "Paris"}
    harness.rules = FieldRules()
    harness.sync([update(ADA, city="Rome")])
    assert harness.contact(ADA)["city"] == "Rome"
    entry = harness.entry(ADA)
    assert entry.held == {} and entry.written["city"] == "Rome"


# Where the rules, fill_empty's read, HubSpot's refusals and reconcile meet in one contact's ledger.


def test_always_null_does_not_recreate_a_contact_deleted_in_hubspot(harness: Harness) -> None:
    """A contact deleted in HubSpot is left deleted until the source changes a value. Under
    ``always`` ingest turns every exported null into "" on every run; a property the connector
    never wrote (None in ``written``) then looks changed ("" != None) and the contact is
    re-created by a clear of a property it never had."""
    tracked = DynamoDbTrackedContacts(harness.dynamodb, TABLE)
    rec = Reconcile(harness, ObservedReader(harness.client), ReconcileBudget(), tracked)
    harness.sync([update(ADA, firstname="Ada"), update(BOB, firstname="Bob")])
    harness.sandbox.state.archive(rec.id_of(ADA))
    rec.reconciler().run()
    assert harness.entry(ADA).status == DELETED
    harness.rules = ALWAYS_PHONE
    # The same profile, with phone exported as null (ingest emits "" for it under always).
    resent = harness.sync([update(ADA, firstname="Ada", phone="")])
    assert resent.hubspot_requests == 0 and ADA not in harness.sandbox.state.email_index
    assert harness.entry(ADA).status == DELETED


def test_always_null_alone_does_not_create_a_contact(harness: Harness) -> None:
    """A contact HubSpot does not hold is never created by its email alone; a profile whose only
    field is an ``always`` property exported as null carries nothing but a clear."""
    harness.rules = ALWAYS_PHONE
    harness.sync([update(BOB, firstname="Bob")])  # schema cached
    report = harness.sync([update(ADA, phone="")])
    assert report.hubspot_requests == 0 and ADA not in harness.sandbox.state.email_index


FILL_CITY = FieldRules.from_json('{"city": "fill_empty"}')


def test_a_held_value_hubspot_empties_is_filled_for_a_contact_the_connector_never_wrote(
    harness: Harness,
) -> None:
    """The read before a fill_empty write finds the contact and a value (held), nothing else is
    written: the ledger keeps no record id, so reconcile never checks the contact, and the value
    HubSpot empties later is never filled (the design: an emptied held value is filled)."""
    tracked = DynamoDbTrackedContacts(harness.dynamodb, TABLE)
    rec = Reconcile(harness, ObservedReader(harness.client), ReconcileBudget(), tracked, rules=FILL_CITY)
    harness.rules = FILL_CITY
    harness.sync([update(BOB, city="Leeds")])  # schema cached
    seed(harness, ADA, city="Paris")
    harness.sync([update(ADA, city="London")])
    assert harness.entry(ADA).held == {"city": "Paris"}
    rec.edit(ADA, city="")  # a salesperson empties it
    rec.reconciler().run()
    harness.flush()
    assert harness.contact(ADA)["city"] == "London"


def test_reconcile_repairs_a_held_value_once_the_rule_is_overwrite(harness: Harness) -> None:
    """fill_empty -> overwrite between deploys: HubSpot's value, kept while the rule was
    fill_empty, is now drift the source's value overwrites. Reconcile compares only ``written``;
    the property sits in ``held``, so with no new message from the source it is never repaired."""
    tracked = DynamoDbTrackedContacts(harness.dynamodb, TABLE)
    rec = Reconcile(harness, ObservedReader(harness.client), ReconcileBudget(), tracked, rules=FILL_CITY)
    harness.rules = FILL_CITY
    seed(harness, ADA, city="Paris")
    harness.sync([update(ADA, city="London", firstname="Ada")])
    assert harness.entry(ADA).held == {"city": "Paris"}
    harness.rules = rec.rules = FieldRules()  # redeployed with city overwrite
    rec.reconciler().run()
    harness.flush()
    assert harness.contact(ADA)["city"] == "London"


def test_a_deleted_contact_with_a_refused_value_stays_deleted_on_an_unchanged_resend(
    harness: Harness,
) -> None:
    """A contact failed by a refused value and then deleted in HubSpot: the unchanged export keeps
    the refusal's problem, and ``synced_entry`` keeps DELETED only for a contact without problems,
    so the ledger turns a deleted contact into a failed one (counted and listed as failed)."""
    tracked = DynamoDbTrackedContacts(harness.dynamodb, TABLE)
    rec = Reconcile(harness, ObservedReader(harness.client), ReconcileBudget(), tracked)
    put_rule(harness, "phone", "REGEX", PHONE_PATTERN)
    profile = {"firstname": "Ada", "city": "London", "phone": "call me"}
    harness.sync([update(ADA, **profile), update(BOB, firstname="Bob")])
    assert harness.entry(ADA).refused_values
    harness.sandbox.state.archive(rec.id_of(ADA))
    rec.reconciler().run()
    assert harness.entry(ADA).status == DELETED
    harness.sync([update(ADA, **profile)])  # the unchanged export
    assert harness.entry(ADA).status == DELETED
    harness.sync([update(ADA, **{**profile, "firstname": "Ada L"})])
    ada = harness.contact(ADA)
    assert (ada["firstname"], ada.get("city")) == ("Ada L", "London")
