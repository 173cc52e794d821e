"""The journal poller over an in-memory journal and the ledger's ports on the in-memory table:
subscriptions made once, every event kind reaching the right contacts, the offset stored only
after their reconcile, an expired offset, and which credentials may poll at all."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from hubspot_activation.hubspot.credentials import (
    OAuthCredentials,
    RotatingCredentials,
    StaticTokenCredentials,
)
from hubspot_activation.hubspot.journal import (
    MAX_BATCH,
    FileExpired,
    JournalEntry,
    JournalUnavailable,
    OffsetExpired,
    journal_enabled,
)
from hubspot_activation.ledger.journal_store import DynamoDbContactIdIndex, DynamoDbJournalOffsets
from hubspot_activation.ledger.keys import journal_offset_key
from hubspot_activation.reconcile.journal import JournalPoller, JournalPosition, record_ids
from hubspot_activation.reconcile.model import ReconcileReport

from bench.fakes import MemoryDynamoDb

TABLE = "ledger"
PORTAL = 24_681_357
FAR = 1e12


class FakeJournal:
    """The journal's calls over a list of entries (one event each, as the sandbox answers)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, dict[str, Any]]] = []
        self.subs: list[dict[str, Any]] = []
        self.calls = 0
        self.posted: list[dict[str, Any]] = []
        self.expired_files: set[str] = set()
        self.unavailable: str | None = None
        self._next = 0

    def add(self, action: str, object_id: int, **extra: Any) -> str:
        self._next += 1
        offset = f"offset-{self._next:04d}"
        self.entries.append(
            (offset, {"action": action, "objectId": object_id, "objectTypeId": "0-1", **extra})
        )
        return offset

    def drop_oldest(self, count: int) -> None:
        """Entries older than the journal keeps."""
        del self.entries[:count]

    def portal_id(self) -> int:
        if self.unavailable:
            raise JournalUnavailable(self.unavailable)
        return PORTAL

    def subscriptions(self) -> list[dict[str, Any]]:
        self.calls += 1
        return [dict(s) for s in self.subs]

    def subscribe_contacts(self, portal_id: int, properties: Any) -> dict[str, Any]:
        body = {
            "subscriptionType": "OBJECT",
            "objectTypeId": "0-1",
            "portalId": portal_id,
            "actions": ["UPDATE", "DELETE", "MERGE", "RESTORE"],
            "properties": sorted(properties),
            "objectIds": [],
        }
        return self._upsert(body)

    def subscribe_privacy_deletions(self, portal_id: int) -> dict[str, Any]:
        body = {
            "subscriptionType": "GDPR_PRIVACY_DELETION",
            "objectTypeId": "0-1",
            "portalId": portal_id,
            "actions": ["GDPR_DELETE"],
        }
        return self._upsert(body)

    def _upsert(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        self.posted.append(body)
        self.subs = [s for s in self.subs if s["subscriptionType"] != body["subscriptionType"]] + [body]
        return body

    def latest(self) -> JournalEntry | None:
        self.calls += 1
        return self._entry(self.entries[-1][0]) if self.entries else None

    def batch_after(self, offset: str | None, count: int = MAX_BATCH) -> list[JournalEntry]:
        self.calls += 1
        offsets = [o for o, _ in self.entries]
        if offset is not None and offset not in offsets:
            raise OffsetExpired(offset, status=400)
        start = 0 if offset is None else offsets.index(offset) + 1
        return [self._entry(o) for o in offsets[start : start + count]]

    def events(self, entry: JournalEntry) -> list[dict[str, Any]]:
        if entry.offset in self.expired_files:
            raise FileExpired(entry.offset, status=403)
        return [dict(event) for o, event in self.entries if o == entry.offset]

    @staticmethod
    def _entry(offset: str) -> JournalEntry:
        return JournalEntry(offset, f"https://files.invalid/{offset}.json", "2026-12-06T00:05:00Z")


@dataclass
class FakeReconciler:
    """``Reconciler.run``'s signature; notes the contacts and the offset stored while it runs."""

    offsets: DynamoDbJournalOffsets
    stop: str | None = None
    runs: list[set[str]] = field(default_factory=list)
    offsets_seen: list[str | None] = field(default_factory=list)

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
        assert emails is not None and deadline is not None and not dry_run
        self.runs.append(set(emails))
        stored = self.offsets.load()
        self.offsets_seen.append(stored.offset if stored else None)
        return ReconcileReport(checked=len(emails), stopped_by=self.stop)


@dataclass
class World:
    journal: FakeJournal
    #: the in-memory table, passed where a boto3 DynamoDB client goes
    ledger: Any
    offsets: DynamoDbJournalOffsets
    reconciler: FakeReconciler
    managed: list[str]
    now: list[float]

    def poller(self) -> JournalPoller:
        return JournalPoller(
            self.journal,
            self.offsets,
            DynamoDbContactIdIndex(self.ledger, TABLE),
            self.reconciler,
            lambda: list(self.managed),
            clock=lambda: self.now[0],
        )

    def track(self, email: str, hubspot_id: str | None) -> None:
        item: dict[str, Any] = {"email": {"S": email}, "status": {"S": "synced"}}
        if hubspot_id is not None:
            item["hubspotId"] = {"S": hubspot_id}
        self.ledger.put_item(TableName=TABLE, Item=item)

    def stored(self) -> JournalPosition | None:
        return self.offsets.load()


@pytest.fixture
def world() -> World:
    ledger: Any = MemoryDynamoDb()
    offsets = DynamoDbJournalOffsets(ledger, TABLE, wall_clock=lambda: 1_780_000_000.0)
    return World(FakeJournal(), ledger, offsets, FakeReconciler(offsets), ["firstname", "aud_one"], [0.0])


def test_the_first_poll_subscribes_and_starts_after_the_newest_entry_and_later_polls_do_not(
    world: World,
) -> None:
    world.track("ada@example.com", "1")
    world.journal.add("UPDATE", 1, propertyName="firstname")  # before the connector listened
    newest = world.journal.add("DELETE", 1)

    first = world.poller().poll(FAR)
    assert first.subscribed and first.offset == newest and world.reconciler.runs == []
    assert sorted(s["subscriptionType"] for s in world.journal.subs) == ["GDPR_PRIVACY_DELETION", "OBJECT"]
    contacts = next(s for s in world.journal.subs if s["subscriptionType"] == "OBJECT")
    assert contacts["properties"] == ["aud_one", "firstname"] and contacts["objectIds"] == []
    assert first.calls == 4  # list, two subscriptions, latest

    posted = len(world.journal.posted)
    again = world.poller().poll(FAR)
    assert not again.subscribed and len(world.journal.posted) == posted
    assert again.calls == 1 and again.offset is None and again.stopped_by is None  # one read, nothing new

    world.managed.append("aud_two")  # a new audience's property: its changes are wanted too
    grown = world.poller().poll(FAR)
    assert grown.subscribed and len(world.journal.posted) == posted + 1
    contacts = next(s for s in world.journal.subs if s["subscriptionType"] == "OBJECT")
    assert contacts["properties"] == ["aud_one", "aud_two", "firstname"]
    assert not world.poller().poll(FAR).subscribed


def test_subscriptions_that_already_cover_the_contacts_are_not_made_again(world: World) -> None:
    world.journal.subscribe_contacts(PORTAL, ["firstname", "aud_one", "lastname"])
    world.journal.subscribe_privacy_deletions(PORTAL)
    world.journal.posted.clear()

    report = world.poller().poll(FAR)

    assert not report.subscribed and world.journal.posted == []
    assert world.stored() is not None


def test_each_event_kind_reaches_the_contacts_it_names(world: World) -> None:
    for email, hubspot_id in [
        ("edited@example.com", "11"),
        ("deleted@example.com", "12"),
        ("restored@example.com", "13"),
        ("erased@example.com", "14"),
        ("primary@example.com", "15"),
        ("merged@example.com", "16"),
        ("company-like@example.com", "17"),
        ("untouched@example.com", "18"),
        ("never-written@example.com", None),
    ]:
        world.track(email, hubspot_id)
    world.poller().poll(FAR)
    world.journal.add("UPDATE", 11, propertyName="firstname", propertyValue="Ada")
    world.journal.add("DELETE", 12)
    world.journal.add("RESTORE", 13)
    world.journal.add("GDPR_DELETE", 14)
    world.journal.add("MERGE", 90, primaryObjectId=15, mergedObjectIds=[16], newObjectId=90)
    world.journal.add("UPDATE", 17, objectTypeId="0-2")  # another object type
    world.journal.add("CREATE", 18)  # not an event the poller subscribes to
    last = world.journal.add("DELETE", 404)  # a contact the connector does not track

    report = world.poller().poll(FAR)

    assert world.reconciler.runs == [
        {
            "edited@example.com",
            "deleted@example.com",
            "restored@example.com",
            "erased@example.com",
            "primary@example.com",
            "merged@example.com",
        }
    ]
    assert (report.entries, report.events, report.contacts, report.offset) == (8, 8, 6, last)
    assert report.as_json()["reconcile"]["checked"] == 6


def test_a_merge_names_the_records_merged_and_the_survivor() -> None:
    merge = {"action": "MERGE", "objectTypeId": "0-1", "objectId": 90, "primaryObjectId": 15}
    assert record_ids([{**merge, "mergedObjectIds": [16, 17], "newObjectId": 90}]) == {"90", "15", "16", "17"}


def test_the_survivor_of_an_earlier_merge_is_found_by_its_new_id(world: World) -> None:
    world.track("ada@example.com", "90")  # the ledger already follows the merged record
    world.poller().poll(FAR)
    world.journal.add("UPDATE", 90, propertyName="firstname")
    world.poller().poll(FAR)
    assert world.reconciler.runs == [{"ada@example.com"}]


def test_the_offset_is_stored_only_after_the_reconcile_of_its_contacts_completed(world: World) -> None:
    world.track("ada@example.com", "1")
    start = world.poller().poll(FAR).offset
    world.journal.add("DELETE", 1)
    last = world.journal.add("RESTORE", 1)

    world.reconciler.stop = "backlog"  # live traffic first: the reconcile stops early
    held = world.poller().poll(FAR)
    assert held.stopped_by == "reconcile:backlog" and held.offset is None
    assert world.stored() == JournalPosition(start, PORTAL, world.stored().subscribed)  # type: ignore[union-attr]

    world.reconciler.stop = None
    done = world.poller().poll(FAR)
    assert world.reconciler.runs == [{"ada@example.com"}, {"ada@example.com"}]  # read again, not lost
    assert world.reconciler.offsets_seen == [start, start]  # while it ran, the old offset stood
    assert done.offset == last and world.stored().offset == last  # type: ignore[union-attr]


def test_a_poll_reads_up_to_its_limit_and_says_there_is_more(world: World) -> None:
    world.track("ada@example.com", "1")
    world.poller().poll(FAR)
    offsets = [world.journal.add("UPDATE", 1, propertyName="firstname") for _ in range(250)]
    poller = JournalPoller(
        world.journal,
        world.offsets,
        DynamoDbContactIdIndex(world.ledger, TABLE),
        world.reconciler,
        lambda: list(world.managed),
        clock=lambda: 0.0,
        max_entries=120,
    )
    first = poller.poll(FAR)
    assert (first.entries, first.more, first.offset, first.calls) == (120, True, offsets[119], 2)
    second = poller.poll(FAR)
    third = poller.poll(FAR)
    assert (second.offset, third.offset, third.entries, third.more) == (offsets[239], offsets[-1], 10, False)


def test_an_expired_offset_starts_again_from_the_earliest_and_asks_for_a_full_walk(world: World) -> None:
    world.track("lost@example.com", "1")
    world.track("kept@example.com", "2")
    world.journal.add("RESTORE", 1)
    assert world.poller().poll(FAR).offset is not None
    world.journal.add("DELETE", 1)
    kept = world.journal.add("DELETE", 2)
    world.journal.drop_oldest(2)  # the stored offset and the deletion of 1 are gone

    report = world.poller().poll(FAR)

    assert report.expired and report.full_walk_needed
    assert world.reconciler.runs == [{"kept@example.com"}] and report.offset == kept
    assert report.as_json()["fullWalkNeeded"] is True
    after = world.poller().poll(FAR)
    assert not after.expired and not after.full_walk_needed


def test_an_expired_offset_with_an_empty_journal_reads_from_the_earliest_next(world: World) -> None:
    world.track("ada@example.com", "1")
    world.journal.add("DELETE", 1)
    world.poller().poll(FAR)
    world.journal.drop_oldest(1)

    expired = world.poller().poll(FAR)
    assert expired.full_walk_needed and world.stored().offset is None  # type: ignore[union-attr]

    world.journal.add("RESTORE", 1)
    later = world.poller().poll(FAR)
    assert not later.full_walk_needed and world.reconciler.runs == [{"ada@example.com"}]


def test_an_expired_file_link_leaves_the_offset_for_the_next_poll(world: World) -> None:
    world.track("ada@example.com", "1")
    start = world.poller().poll(FAR).offset
    world.journal.expired_files.add(world.journal.add("DELETE", 1))

    report = world.poller().poll(FAR)

    assert report.stopped_by == "file_expired" and world.reconciler.runs == []
    assert world.stored().offset == start  # type: ignore[union-attr]


def test_no_read_starts_too_close_to_the_deadline(world: World) -> None:
    world.track("ada@example.com", "1")
    start = world.poller().poll(FAR).offset
    world.journal.add("DELETE", 1)
    world.now[0] = 100.0

    report = world.poller().poll(deadline=104.0)

    assert report.stopped_by == "deadline" and report.calls == 0 and world.reconciler.runs == []
    assert world.stored().offset == start  # type: ignore[union-attr]


def test_a_journal_the_credential_cannot_read_is_reported(world: World) -> None:
    world.journal.unavailable = "the OAuth app lacks the scopes webhooks-journal-data-access"
    report = world.poller().poll(FAR)
    assert report.stopped_by == "unavailable" and report.unavailable == world.journal.unavailable
    assert world.stored() is None


def test_an_overlapping_poll_cannot_move_the_offset_back(world: World) -> None:
    world.poller().poll(FAR)
    read = world.stored()
    assert read is not None
    assert world.offsets.save(JournalPosition("offset-b", PORTAL, read.subscribed), read)
    assert not world.offsets.save(JournalPosition("offset-a", PORTAL, read.subscribed), read)
    assert world.stored() == JournalPosition("offset-b", PORTAL, read.subscribed)
    item = world.ledger.get_item(TableName=TABLE, Key={"email": {"S": journal_offset_key()}})["Item"]
    assert "@" not in item["email"]["S"]


def _secret(document: dict[str, str]) -> Callable[[bool], Any]:
    return lambda _force: json.dumps(document)


OAUTH = {"clientId": "id", "clientSecret": "secret", "refreshToken": "na1-token"}
TOKEN_URL = "https://api.hubapi.invalid/oauth/2026-03/token"


@pytest.mark.parametrize(
    ("build", "enabled"),
    [
        (lambda: StaticTokenCredentials(_secret({"accessToken": "pat-na1-x"})), False),
        (lambda: OAuthCredentials(_secret(OAUTH), TOKEN_URL, requests.Session()), True),
        (
            lambda: RotatingCredentials(_secret({"accessToken": "pat-na1-x"}), TOKEN_URL, requests.Session()),
            False,
        ),
        (lambda: RotatingCredentials(_secret(OAUTH), TOKEN_URL, requests.Session()), True),
        (lambda: RotatingCredentials(_secret({}), TOKEN_URL, requests.Session()), False),
    ],
    ids=["private-app", "oauth", "rotating-private-app", "rotating-oauth", "no-credential"],
)
def test_only_an_oauth_app_polls_the_journal(build: Callable[[], Any], enabled: bool) -> None:
    access = journal_enabled(build())
    assert bool(access) is enabled
    assert (access.reason is None) is enabled
