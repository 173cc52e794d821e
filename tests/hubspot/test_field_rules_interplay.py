"""Where the field rules, fill_empty's read, HubSpot's refusals and reconcile meet in one contact's ledger."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from hubspot_activation.field_rules import FieldRules
from hubspot_activation.hubspot.batch import UpsertInput
from hubspot_activation.hubspot.client import HubSpotClient
from hubspot_activation.ledger.reconcile_store import DynamoDbTrackedContacts
from hubspot_activation.upsert.ledger import DELETED
from moto import mock_aws

from local.hubspot_sandbox import SandboxServer
from tests.conftest import create_ledger_table
from tests.hubspot.test_reconcile import Budget as ReconcileBudget
from tests.hubspot.test_reconcile import ObservedReader, Reconcile
from tests.hubspot.test_sync import PHONE_PATTERN, TABLE, Harness, build_harness, put_rule, update

ADA, BOB = "ada@example.com", "bob@example.com"
ALWAYS_PHONE = FieldRules.from_json('{"phone": "always"}')


@pytest.fixture
def harness(sandbox: SandboxServer, make_client: Callable[..., HubSpotClient]) -> Iterator[Harness]:
    with mock_aws():
        create_ledger_table(TABLE)
        yield build_harness(sandbox, make_client)


def seed(harness: Harness, email: str, **properties: str) -> None:
    (result,) = harness.client.batch_upsert([UpsertInput(email, {"lastname": "Seeded", **properties})])
    assert result.ok


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
