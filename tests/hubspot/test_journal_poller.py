"""The journal poller against the sandbox's webhooks journal, as wired for the reconcile function:
an OAuth app's client, the ledger table as the template declares it (its hubspotId index), and a
reconciler that notes what it is asked to check. Edits, deletions, restores, merges and GDPR
deletions made in HubSpot reach the right contacts; an offset that expired asks for a full walk;
the journal's calls are counted but never charged to the connector's governor."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import requests
from hubspot_activation.hubspot.client import HubSpotClient, new_session
from hubspot_activation.hubspot.credentials import OAuthCredentials
from hubspot_activation.hubspot.governor import RateGovernor
from hubspot_activation.hubspot.journal import (
    JOURNAL_SCOPES,
    FileExpired,
    OffsetExpired,
    WebhooksJournal,
    journal_client,
    journal_enabled,
)
from hubspot_activation.hubspot.versions import ApiVersion, Paths
from hubspot_activation.ledger.reconcile_store import DynamoDbTrackedContacts
from hubspot_activation.reconcile.journal import JournalPoller
from hubspot_activation.reconcile.journal_wiring import journal_poller
from hubspot_activation.reconcile.model import DriftKind, ReconcileReport
from hubspot_activation.reconcile.service import Reconciler
from hubspot_activation.upsert.ledger import DELETED
from moto import mock_aws

from bench.fakes import MemoryDailyCounter
from local.hubspot_sandbox import SandboxServer
from local.hubspot_sandbox.state import ALL_SCOPES
from tests.conftest import create_ledger_table
from tests.hubspot.conftest import FAST_RETRY, TokenSecret, governor_for
from tests.hubspot.test_reconcile import Budget, ObservedReader
from tests.hubspot.test_sync import GOLD, GOLD_PROP, build_harness, realized, update

TABLE = "ledger"
CONTACTS = "/crm/v3/objects/contacts"


class Clock:
    def __init__(self) -> None:
        self.now = 1_780_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class NotingReconciler:
    runs: list[set[str]] = field(default_factory=list)

    def run(
        self,
        *,
        dry_run: bool = False,
        cursor: str | None = None,
        emails: Collection[str] | None = None,
        deadline: float | None = None,
        max_contacts: int | None = None,
        progress: Callable[[ReconcileReport], None] | None = None,
    ) -> ReconcileReport:
        assert emails is not None
        self.runs.append(set(emails))
        return ReconcileReport(checked=len(emails))


@dataclass
class Stack:
    sandbox: SandboxServer
    clock: Clock
    client: HubSpotClient
    daily: MemoryDailyCounter
    reconciler: NotingReconciler
    poller: JournalPoller
    crm_token: str

    def crm(self, method: str, path: str, body: Any = None) -> requests.Response:
        """Someone changing contacts in HubSpot (a private app of their own)."""
        headers = {"Authorization": f"Bearer {self.crm_token}"}
        return requests.request(method, self.sandbox.url + path, json=body, headers=headers, timeout=5)

    def upsert(self, email: str, **properties: str) -> str:
        body = {"inputs": [{"idProperty": "email", "id": email, "properties": properties}]}
        response = self.crm("POST", CONTACTS + "/batch/upsert", body)
        assert response.status_code == 200, response.text
        contact_id: str = response.json()["results"][0]["id"]
        return contact_id

    def track(self, email: str, hubspot_id: str) -> None:
        """A contact the connector synced: the ledger item carries HubSpot's record id."""
        boto3.client("dynamodb").put_item(
            TableName=TABLE,
            Item={"email": {"S": email}, "hubspotId": {"S": hubspot_id}, "status": {"S": "synced"}},
        )

    def poll(self) -> Any:
        return self.poller.poll(time.monotonic() + 60)


def oauth_client(sandbox: SandboxServer, daily: MemoryDailyCounter, scopes: frozenset[str]) -> HubSpotClient:
    client_id, client_secret, refresh = sandbox.state.add_oauth_app(scopes)
    secret = TokenSecret({"clientId": client_id, "clientSecret": client_secret, "refreshToken": refresh})
    session = new_session()
    governor = governor_for(sandbox)
    governed = RateGovernor(governor.settings, daily_counter=daily)
    credentials = OAuthCredentials(
        secret, sandbox.url + Paths(ApiVersion.V2026_09).oauth_token, session, clock=sandbox.state.clock
    )
    return HubSpotClient(
        credentials, governed, ApiVersion.V2026_09, base_url=sandbox.url, session=session, retry=FAST_RETRY
    )


@pytest.fixture
def stack(sandbox: SandboxServer) -> Iterator[Stack]:
    clock = Clock()
    sandbox.state.clock = clock
    sandbox.state.config.update({"oauth_token_ttl_seconds": 10 * 86_400})  # outlives the tests' clock
    daily = MemoryDailyCounter()
    client = oauth_client(sandbox, daily, ALL_SCOPES | JOURNAL_SCOPES)
    reconciler = NotingReconciler()
    with mock_aws():
        create_ledger_table(TABLE)
        poller = journal_poller(
            client, boto3.client("dynamodb"), TABLE, reconciler, lambda: ["firstname", "city"]
        )
        yield Stack(sandbox, clock, client, daily, reconciler, poller, sandbox.state.add_private_app_token())


def journal_requests(sandbox: SandboxServer) -> int:
    return sum(count for name, count in sandbox.state.requests.items() if " journal." in name)


def test_hubspot_changes_reach_the_contacts_they_touched(stack: Stack) -> None:
    ada = stack.upsert("ada@example.com", firstname="Ada")
    bob = stack.upsert("bob@example.com", firstname="Bob")
    carol = stack.upsert("carol@example.com", firstname="Carol")
    dan = stack.upsert("dan@example.com", firstname="Dan")
    erin = stack.upsert("erin@example.com", firstname="Erin")
    for email, contact_id in [
        ("ada@example.com", ada),
        ("bob@example.com", bob),
        ("carol@example.com", carol),
        ("dan@example.com", dan),
        ("erin@example.com", erin),
    ]:
        stack.track(email, contact_id)

    first = stack.poll()
    assert first.subscribed and stack.reconciler.runs == []
    assert {s["subscriptionType"] for s in stack.sandbox.state.subscriptions.values()} == {
        "OBJECT",
        "GDPR_PRIVACY_DELETION",
    }

    stack.clock.now += 1
    assert stack.crm("PATCH", f"{CONTACTS}/{ada}", {"properties": {"firstname": "Augusta"}}).ok
    assert stack.crm("PATCH", f"{CONTACTS}/{erin}", {"properties": {"lastname": "Unmanaged"}}).ok
    assert stack.crm("DELETE", f"{CONTACTS}/{bob}").status_code == 204
    stack.sandbox.state.archive(carol)
    stack.sandbox.state.restore(carol)
    assert stack.crm("POST", f"{CONTACTS}/gdpr-delete", {"objectId": dan}).status_code == 204
    merged = stack.sandbox.state.merge(ada, erin)

    report = stack.poll()

    assert stack.reconciler.runs == [
        {"ada@example.com", "bob@example.com", "carol@example.com", "dan@example.com", "erin@example.com"}
    ]
    assert report.offset is not None and not report.expired and report.stopped_by is None
    assert report.events == report.entries == 7  # update, delete, delete + restore, GDPR + delete, merge

    stack.track("ada@example.com", merged)  # the reconciler followed the survivor
    stack.clock.now += 1
    assert stack.crm("PATCH", f"{CONTACTS}/{merged}", {"properties": {"city": "Paris"}}).ok
    assert stack.poll().contacts == 1 and stack.reconciler.runs[-1] == {"ada@example.com"}
    assert not stack.poll().subscribed and len(stack.reconciler.runs) == 2  # nothing new


def test_journal_calls_are_counted_and_never_charged_to_the_governor(stack: Stack) -> None:
    ada = stack.upsert("ada@example.com", firstname="Ada")
    stack.track("ada@example.com", ada)
    stack.poll()
    assert stack.crm("PATCH", f"{CONTACTS}/{ada}", {"properties": {"firstname": "Augusta"}}).ok
    stack.sandbox.state.config.update({"force_429": 5})  # the CRM API's window is full

    report = stack.poll()

    assert report.calls == 1 and stack.reconciler.runs == [{"ada@example.com"}]
    assert journal_requests(stack.sandbox) == 5  # list, two subscriptions, latest; then one batch read
    assert stack.client.requests_sent == 0 and stack.daily.totals == {}
    assert stack.client.governor.throttled == 0
    assert journal_enabled(stack.client.credentials)


def test_an_offset_that_expired_starts_from_the_earliest_and_asks_for_a_full_walk(stack: Stack) -> None:
    ada = stack.upsert("ada@example.com", firstname="Ada")
    stack.track("ada@example.com", ada)
    stack.poll()
    assert stack.crm("PATCH", f"{CONTACTS}/{ada}", {"properties": {"firstname": "Augusta"}}).ok
    assert stack.poll().offset is not None

    stack.clock.now += 3 * 86_400 + 1  # past the 3 days the journal keeps
    bob = stack.upsert("bob@example.com", firstname="Bob")
    stack.track("bob@example.com", bob)

    report = stack.poll()

    assert report.expired and report.full_walk_needed and report.as_json()["fullWalkNeeded"]
    assert stack.reconciler.runs[-1] == {"bob@example.com"} and report.offset is not None
    assert not stack.poll().full_walk_needed


def test_offsets_and_file_links_expire_as_distinct_errors(stack: Stack) -> None:
    stack.poll()
    ada = stack.upsert("ada@example.com", firstname="Ada")
    bob = stack.upsert("bob@example.com", firstname="Bob")
    journal = WebhooksJournal(journal_client(stack.client))
    first, entry = journal.earliest(), journal.latest()
    assert first is not None and entry is not None
    following = journal.next_after(first.offset)
    assert following is not None and following.offset == entry.offset
    assert journal.next_after(entry.offset) is None and journal.batch_after(entry.offset) == []
    assert [journal.events(e)[0]["objectId"] for e in (first, entry)] == [int(ada), int(bob)]
    assert journal.calls == 5

    stack.clock.now += 301  # a file link lives 5 minutes
    with pytest.raises(FileExpired) as link:
        journal.events(entry)
    assert link.value.status == 403
    stack.clock.now += 3 * 86_400  # the journal keeps 3 days
    with pytest.raises(OffsetExpired) as offset:
        journal.batch_after(first.offset)
    assert offset.value.status == 400 and offset.value.offset == first.offset
    with pytest.raises(OffsetExpired):
        journal.next_after(first.offset)


def test_an_oauth_app_without_the_journal_scopes_is_reported_unavailable(sandbox: SandboxServer) -> None:
    client = oauth_client(sandbox, MemoryDailyCounter(), ALL_SCOPES)
    with mock_aws():
        create_ledger_table(TABLE)
        poller = journal_poller(client, boto3.client("dynamodb"), TABLE, NotingReconciler(), lambda: [])
        report = poller.poll(time.monotonic() + 60)
    assert report.stopped_by == "unavailable" and "webhooks-journal" in (report.unavailable or "")
    assert journal_requests(sandbox) == 0


def test_the_real_reconciler_repairs_what_the_journal_names_and_only_that(
    sandbox: SandboxServer, make_client: Callable[..., HubSpotClient]
) -> None:
    with mock_aws():
        create_ledger_table(TABLE)
        harness = build_harness(sandbox, make_client)
        harness.sync(
            [
                update("ada@example.com", realized(GOLD, 1000, "Gold"), firstname="Ada", city="London"),
                update("bob@example.com", realized(GOLD, 1000, "Gold"), firstname="Bob", city="Bristol"),
                update("cy@example.com", realized(GOLD, 1000, "Gold"), firstname="Cy", city="Cardiff"),
            ]
        )
        sandbox.state.config.update({"oauth_token_ttl_seconds": 10 * 86_400})
        budget = Budget()
        reconciler = Reconciler(
            DynamoDbTrackedContacts(harness.dynamodb, TABLE),
            ObservedReader(harness.client),
            harness.schema,
            budget,
            clock=harness.clock.time,
            monotonic=harness.clock.monotonic,
        )
        poller = journal_poller(
            oauth_client(sandbox, MemoryDailyCounter(), ALL_SCOPES | JOURNAL_SCOPES),
            harness.dynamodb,
            TABLE,
            reconciler,
            lambda: ["firstname", "city", GOLD_PROP],
            clock=harness.clock.monotonic,
        )
        assert poller.poll(harness.clock.monotonic() + 60).subscribed

        state, crm = sandbox.state, sandbox.state.add_private_app_token()
        bob = state.email_index["bob@example.com"]
        edited = requests.patch(
            f"{sandbox.url}{CONTACTS}/{bob}",
            json={"properties": {"city": "Paris"}},
            headers={"Authorization": f"Bearer {crm}"},
            timeout=5,
        )
        assert edited.ok
        state.archive(state.email_index["ada@example.com"])
        state.contacts[state.email_index["cy@example.com"]]["properties"]["city"] = "Cork"  # no event

        report = poller.poll(harness.clock.monotonic() + 60)

        assert report.reconcile is not None and report.reconcile.checked == 2
        assert (
            report.reconcile.drift[DriftKind.EDITED] == 1 and report.reconcile.drift[DriftKind.DELETED] == 1
        )
        assert report.offset is not None and harness.pending() == {"bob@example.com"}
        assert harness.entry("ada@example.com").status == DELETED
        harness.flush()
        assert harness.contact("bob@example.com")["city"] == "Bristol"
        assert harness.contact("cy@example.com")["city"] == "Cork"  # the scheduled walk's to find
