"""The sandbox's webhooks journal (2026-03) over HTTP: subscriptions, reading the journal by offset,
the events of edits, deletions, restores, merges and GDPR deletions, and offsets that expire.
Field names are those of HubSpot's webhooks-journal spec."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from local.hubspot_sandbox import SandboxServer
from local.hubspot_sandbox.journal import JOURNAL_SCOPES
from local.hubspot_sandbox.state import PORTAL_ID

CONTACTS = "/crm/v3/objects/contacts"
SUBSCRIPTIONS = "/webhooks-journal/subscriptions/2026-03"
JOURNAL = "/webhooks-journal/journal/2026-03"
#: SubscriptionResponse's required fields
SUBSCRIPTION_REQUIRED = {
    "actions",
    "appId",
    "createdAt",
    "id",
    "objectTypeId",
    "subscriptionType",
    "updatedAt",
}
#: JournalFetchResponse's required fields
FETCH_REQUIRED = {"currentOffset", "expiresAt", "url"}
BATCH_REQUIRED = {"status", "results", "startedAt", "completedAt"}
ERROR_FIELDS = {"status", "message", "correlationId", "category"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_780_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(sandbox: SandboxServer) -> Clock:
    clock = Clock()
    sandbox.state.clock = clock
    return clock


class Caller:
    def __init__(self, sandbox: SandboxServer, token: str) -> None:
        self.base, self.token = sandbox.url, token

    def __call__(self, method: str, path: str, body: Any = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return requests.request(method, self.base + path, json=body, headers=headers, timeout=5)


@pytest.fixture
def app(sandbox: SandboxServer, clock: Clock) -> Caller:
    """An OAuth app granted the journal's scopes and the contacts scopes."""
    sandbox.state.config.update({"oauth_token_ttl_seconds": 10 * 86_400})  # outlives the tests' clock
    scopes = JOURNAL_SCOPES | {"crm.objects.contacts.read", "crm.objects.contacts.write", "oauth"}
    return Caller(sandbox, sandbox.state.issue_access_token(frozenset(scopes)).value)


@pytest.fixture
def crm(sandbox: SandboxServer) -> Caller:
    """Someone changing contacts: a private app with the default (non-journal) scopes."""
    return Caller(sandbox, sandbox.state.add_private_app_token())


def subscribe(app: Caller) -> dict[str, Any]:
    response = app(
        "POST",
        SUBSCRIPTIONS,
        {
            "subscriptionType": "OBJECT",
            "objectTypeId": "0-1",
            "portalId": PORTAL_ID,
            "actions": ["UPDATE", "DELETE", "MERGE", "RESTORE"],
            "properties": ["firstname"],
            "objectIds": [],
        },
    )
    assert response.status_code == 200, response.text
    gdpr = app(
        "POST",
        SUBSCRIPTIONS,
        {
            "subscriptionType": "GDPR_PRIVACY_DELETION",
            "objectTypeId": "0-1",
            "portalId": PORTAL_ID,
            "actions": ["GDPR_DELETE"],
        },
    )
    assert gdpr.status_code == 200, gdpr.text
    subscription: dict[str, Any] = response.json()
    return subscription


def upsert(crm: Caller, email: str, **properties: str) -> str:
    body = {"inputs": [{"idProperty": "email", "id": email, "properties": properties}]}
    response = crm("POST", CONTACTS + "/batch/upsert", body)
    assert response.status_code == 200, response.text
    contact_id: str = response.json()["results"][0]["id"]
    return contact_id


def read_all(app: Caller) -> list[dict[str, Any]]:
    """Every event in the journal, read from the earliest entry on, a batch of 2 at a time."""
    first = app("GET", JOURNAL + "/earliest")
    if first.status_code == 204:
        return []
    assert first.status_code == 200, first.text
    fetched = [first.json()]
    while True:
        batch = app("GET", f"{JOURNAL}/batch/{fetched[-1]['currentOffset']}/next/2")
        assert batch.status_code == 200, batch.text
        document = batch.json()
        assert set(document) >= BATCH_REQUIRED and document["status"] == "COMPLETE"
        if not document["results"]:
            break
        fetched.extend(document["results"])
    events = []
    for entry in fetched:
        assert set(entry) >= FETCH_REQUIRED and entry["expiresAt"].endswith("Z")
        file = requests.get(entry["url"], timeout=5)  # a pre-signed URL: no bearer token
        assert file.status_code == 200
        events.extend(file.json())
    return events


def test_subscriptions_are_created_listed_updated_and_deleted(app: Caller, crm: Caller) -> None:
    created = subscribe(app)
    assert set(created) >= SUBSCRIPTION_REQUIRED
    assert (created["subscriptionType"], created["objectTypeId"], created["properties"]) == (
        "OBJECT",
        "0-1",
        ["firstname"],
    )
    listed = app("GET", SUBSCRIPTIONS).json()["results"]
    assert {s["subscriptionType"] for s in listed} == {"OBJECT", "GDPR_PRIVACY_DELETION"}

    again = app(
        "POST",
        SUBSCRIPTIONS,
        {
            **{k: created[k] for k in ("objectTypeId", "portalId", "objectIds")},
            "actions": ["DELETE"],
            "properties": [],
        },
    ).json()
    assert again["id"] == created["id"] and again["actions"] == ["DELETE"]  # an upsert, not a second one
    assert app("GET", f"{SUBSCRIPTIONS}/{created['id']}").json()["actions"] == ["DELETE"]

    assert app("DELETE", f"{SUBSCRIPTIONS}/{created['id']}").status_code == 204
    gone = app("GET", f"{SUBSCRIPTIONS}/{created['id']}")
    assert gone.status_code == 404 and set(gone.json()) >= ERROR_FIELDS
    assert len(app("GET", SUBSCRIPTIONS).json()["results"]) == 1

    missing = app(
        "POST", SUBSCRIPTIONS, {"objectTypeId": "0-1", "portalId": PORTAL_ID, "actions": ["DELETE"]}
    )
    assert missing.status_code == 400 and missing.json()["category"] == "VALIDATION_ERROR"
    refused = crm("GET", SUBSCRIPTIONS)  # no journal scope
    assert refused.status_code == 403 and refused.json()["category"] == "MISSING_SCOPES"
    assert crm("GET", JOURNAL + "/earliest").status_code == 403


def test_the_journal_holds_the_subscribed_contact_events_in_order(
    app: Caller, crm: Caller, sandbox: SandboxServer, clock: Clock
) -> None:
    assert read_all(app) == []  # nothing yet: 204 from earliest
    subscribe(app)
    ada = upsert(crm, "ada@example.com", firstname="Ada", city="London")
    clock.now += 1
    assert crm("PATCH", f"{CONTACTS}/{ada}", {"properties": {"firstname": "Augusta", "city": "Paris"}}).ok
    clock.now += 1
    assert crm("DELETE", f"{CONTACTS}/{ada}").status_code == 204
    sandbox.state.restore(ada)
    bob = upsert(crm, "bob@example.com", city="Bristol")  # no subscribed property: no UPDATE
    merged = crm("POST", CONTACTS + "/merge", {"primaryObjectId": ada, "objectIdToMerge": bob}).json()["id"]
    carol = upsert(crm, "carol@example.com", city="Cardiff")
    assert crm("POST", CONTACTS + "/gdpr-delete", {"objectId": carol}).status_code == 204

    events = read_all(app)
    seen = [(e["action"], str(e["objectId"]), e.get("propertyName"), e.get("propertyValue")) for e in events]
    assert seen == [
        ("UPDATE", ada, "firstname", "Ada"),
        ("UPDATE", ada, "firstname", "Augusta"),
        ("DELETE", ada, None, None),
        ("RESTORE", ada, None, None),
        ("MERGE", merged, None, None),
        ("GDPR_DELETE", carol, None, None),  # the GDPR subscription
        ("DELETE", carol, None, None),  # a privacy deletion is also a deletion
    ]
    merge = events[4]
    assert (str(merge["primaryObjectId"]), merge["mergedObjectIds"], str(merge["newObjectId"])) == (
        ada,
        [int(bob)],
        merged,
    )
    assert all(e["portalId"] == PORTAL_ID and e["objectTypeId"] == "0-1" for e in events)
    assert [e["occurredAt"] for e in events] == sorted(e["occurredAt"] for e in events)
    assert len({e["eventId"] for e in events}) == len(events)


def test_journal_calls_are_never_throttled_but_are_counted(
    app: Caller, crm: Caller, sandbox: SandboxServer
) -> None:
    subscribe(app)
    upsert(crm, "ada@example.com", firstname="Ada")
    sandbox.state.config.update({"force_429": 5})
    for _ in range(5):
        assert app("GET", JOURNAL + "/latest").status_code == 200
    assert crm("GET", CONTACTS + "/1").status_code == 429  # the CRM API still is throttled
    assert sandbox.state.requests["GET journal.latest"] == 5


def test_offsets_and_file_urls_expire(app: Caller, crm: Caller, clock: Clock) -> None:
    subscribe(app)
    upsert(crm, "ada@example.com", firstname="Ada")
    upsert(crm, "bob@example.com", firstname="Bob")
    first = app("GET", JOURNAL + "/earliest").json()
    latest = app("GET", JOURNAL + "/latest").json()
    assert app("GET", f"{JOURNAL}/offset/{latest['currentOffset']}/next").status_code == 204  # up to date
    assert app("GET", f"{JOURNAL}/batch/{latest['currentOffset']}/next/10").json()["results"] == []
    following = app("GET", f"{JOURNAL}/offset/{first['currentOffset']}/next").json()
    assert following["currentOffset"] == latest["currentOffset"]
    read = app("POST", JOURNAL + "/batch/read", {"inputs": [first["currentOffset"], "no-such-offset"]})
    assert read.status_code == 207 and len(read.json()["results"]) == 1
    assert read.json()["errors"][0]["context"] == {"offset": ["no-such-offset"]}

    clock.now += 301  # the file URL handed out lives 5 minutes
    assert requests.get(first["url"], timeout=5).status_code == 403

    clock.now += 3 * 86_400  # the journal keeps 3 days
    expired = app("GET", f"{JOURNAL}/batch/{first['currentOffset']}/next/10")
    assert expired.status_code == 400 and set(expired.json()) >= ERROR_FIELDS
    assert expired.json()["category"] == "VALIDATION_ERROR"
    assert expired.json()["context"] == {"offset": [first["currentOffset"]]}
    assert app("GET", f"{JOURNAL}/offset/{first['currentOffset']}/next").status_code == 400
    assert app("GET", JOURNAL + "/earliest").status_code == 204
    assert app("GET", f"{JOURNAL}/batch/earliest/0").status_code == 400
