"""The consumer's core against the sandbox over real HTTP, with an in-memory ledger."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import pytest
from hubspot_activation.hubspot.client import HubSpotClient
from hubspot_activation.messages import pack, shard_of
from hubspot_activation.model import AudienceChange, AudienceStatus, ContactUpdate
from hubspot_activation.upsert.ledger import LedgerEntry, LedgerUnavailable
from hubspot_activation.upsert.plan import RETRY_BASE_SECONDS, Outcome
from hubspot_activation.upsert.properties import audience_property_name
from hubspot_activation.upsert.schema import PropertySchema
from hubspot_activation.upsert.service import InboundMessage, SyncService

from local.hubspot_sandbox import SandboxServer
from tests.fakes import InMemoryLedger

GOLD = "a1b2c3d4-0000-4000-8000-000000000001"
CART = "a1b2c3d4-0000-4000-8000-000000000002"
GOLD_PROP = audience_property_name(GOLD, "aud_")
CART_PROP = audience_property_name(CART, "aud_")


@dataclass
class RecordingExtender:
    calls: list[tuple[list[str], int]] = field(default_factory=list)

    def extend(self, messages: Sequence[InboundMessage], seconds: int) -> None:
        self.calls.append(([m.message_id for m in messages], seconds))


@dataclass
class Harness:
    service: SyncService
    client: HubSpotClient
    ledger: InMemoryLedger
    extender: RecordingExtender
    sandbox: SandboxServer
    sequence: int = 0

    def messages(self, *batches: list[ContactUpdate], shards: int = 4) -> list[InboundMessage]:
        result = []
        for updates in batches:
            for message in pack(updates, shards):
                self.sequence += 1
                result.append(
                    InboundMessage(f"m{self.sequence}", message.group_id, message.body, f"rh{self.sequence}")
                )
        return result

    def contact(self, email: str) -> dict[str, str]:
        return dict(self.sandbox.state.contacts[self.sandbox.state.email_index[email]]["properties"])


@pytest.fixture
def harness(sandbox: SandboxServer, make_client: Callable[..., HubSpotClient]) -> Harness:
    client = make_client()
    ledger = InMemoryLedger()
    extender = RecordingExtender()
    schema = PropertySchema(client, "audience_activations", "Audience activations", "aud_")
    return Harness(SyncService(client, schema, ledger, extender), client, ledger, extender, sandbox)


def update(email: str, *audiences: AudienceChange, **attributes: str | int | float | bool) -> ContactUpdate:
    return ContactUpdate(email, tuple(audiences), dict(attributes))


def realized(audience: str, ts: int, name: str | None = None) -> AudienceChange:
    return AudienceChange(audience, AudienceStatus.REALIZED, ts, name)


def exited(audience: str, ts: int, name: str | None = None) -> AudienceChange:
    return AudienceChange(audience, AudienceStatus.EXITED, ts, name)


def test_fresh_contacts_get_their_audience_property_and_attributes(harness: Harness) -> None:
    report = harness.service.process(
        harness.messages(
            [
                update(
                    "ada@example.com", realized(GOLD, 1000, "Gold members"), firstname="Ada", city="London"
                ),
                update("grace@example.com", exited(GOLD, 1000), lastname="Hopper"),
            ]
        )
    )
    assert report.failed_message_ids == [] and report.synced == 2
    ada = harness.contact("ada@example.com")
    assert (ada["firstname"], ada["city"], ada[GOLD_PROP]) == ("Ada", "London", "realized")
    assert harness.contact("grace@example.com")[GOLD_PROP] == "exited"
    prop = harness.sandbox.state.properties[GOLD_PROP]
    assert prop["label"] == "Gold members" and prop["groupName"] == "audience_activations"
    assert report.hubspot_requests == 5  # properties, groups, create group, create property, one upsert
    entry = harness.ledger.entries["ada@example.com"]
    assert entry.status == "synced" and entry.hubspot_id and entry.audiences[GOLD].timestamp_ms == 1000


def test_newest_status_wins_within_one_batch(harness: Harness) -> None:
    report = harness.service.process(
        harness.messages(
            [update("ada@example.com", realized(GOLD, 2000))],
            [update("ada@example.com", exited(GOLD, 3000))],
            [update("ada@example.com", realized(GOLD, 1000))],  # late and older: ignored
        )
    )
    assert report.synced == 1 and report.hubspot_requests == 5
    assert harness.contact("ada@example.com")[GOLD_PROP] == "exited"


def test_newest_status_wins_across_batches_and_stale_changes_cost_nothing(harness: Harness) -> None:
    harness.service.process(harness.messages([update("ada@example.com", exited(GOLD, 3000))]))
    stale = harness.service.process(harness.messages([update("ada@example.com", realized(GOLD, 2000))]))
    assert stale.hubspot_requests == 0 and stale.skipped_unchanged == 1
    assert harness.contact("ada@example.com")[GOLD_PROP] == "exited"
    newer = harness.service.process(harness.messages([update("ada@example.com", realized(GOLD, 4000))]))
    assert newer.synced == 1 and harness.contact("ada@example.com")[GOLD_PROP] == "realized"


def test_resending_unchanged_profiles_costs_zero_requests(harness: Harness) -> None:
    load = [update(f"u{i}@example.com", realized(GOLD, 1000, "Gold"), firstname=f"U{i}") for i in range(250)]
    first = harness.service.process(harness.messages(load))
    assert first.synced == 250
    again = harness.service.process(harness.messages(load))
    assert again.hubspot_requests == 0 and again.skipped_unchanged == 250 and again.failed_message_ids == []


def test_requalification_with_the_same_status_updates_only_the_ledger(harness: Harness) -> None:
    harness.service.process(harness.messages([update("ada@example.com", realized(GOLD, 1000))]))
    report = harness.service.process(harness.messages([update("ada@example.com", realized(GOLD, 5000))]))
    assert report.hubspot_requests == 0
    assert harness.ledger.entries["ada@example.com"].audiences[GOLD].timestamp_ms == 5000


def test_invalid_attribute_value_drops_only_that_field(harness: Harness, sandbox: SandboxServer) -> None:
    report = harness.service.process(
        harness.messages(
            [
                update(
                    "ada@example.com",
                    realized(GOLD, 1000),
                    firstname="Ada",
                    lifecyclestage="astronaut",
                    shoe_size=44,
                ),
            ]
        )
    )
    # The rest is written; the value HubSpot has no property for is kept, and fails the contact
    # until a replay writes it.
    assert report.failed == 1 and report.warnings == 2
    ada = harness.contact("ada@example.com")
    assert ada["firstname"] == "Ada" and "lifecyclestage" not in ada
    entry = harness.ledger.entries["ada@example.com"]
    assert set(entry.warnings) == {"lifecyclestage", "shoe_size"}
    assert entry.pending_attributes["shoe_size"].value == 44 and "shoe_size" in (entry.reason or "")


def test_value_hubspot_refuses_is_dropped_and_the_contact_written(
    harness: Harness, sandbox: SandboxServer
) -> None:
    harness.service.process(
        harness.messages([update("warm@example.com", city="x")])
    )  # fills the schema cache
    options = sandbox.state.properties["lifecyclestage"]["options"]
    sandbox.state.properties["lifecyclestage"]["options"] = options[:1]  # changed in HubSpot behind the cache
    report = harness.service.process(
        harness.messages([update("ada@example.com", firstname="Ada", lifecyclestage="lead")])
    )
    assert report.synced == 1
    assert harness.contact("ada@example.com")["firstname"] == "Ada"
    assert "lifecyclestage" in harness.ledger.entries["ada@example.com"].warnings


def test_invalid_email_fails_alone_and_the_rest_of_the_chunk_is_written(harness: Harness) -> None:
    report = harness.service.process(
        harness.messages(
            [
                update("good@example.com", firstname="Good"),
                update("bad@@example.com", firstname="Bad"),
                update("fine@example.com", firstname="Fine"),
            ],
            shards=1,
        )
    )
    assert report.outcomes == {
        "good@example.com": "synced",
        "bad@@example.com": "failed",
        "fine@example.com": "synced",
    }
    assert report.failed_message_ids == []  # permanent: recorded, never retried
    failed = harness.ledger.entries["bad@@example.com"]
    assert failed.status == "failed" and failed.reason is not None and "INVALID_EMAIL" in failed.reason


def test_audience_name_arriving_later_updates_the_label(harness: Harness, sandbox: SandboxServer) -> None:
    harness.service.process(harness.messages([update("ada@example.com", realized(GOLD, 1000))]))
    assert sandbox.state.properties[GOLD_PROP]["label"] == GOLD
    harness.service.process(
        harness.messages([update("ada@example.com", realized(GOLD, 1000, "Gold members"))])
    )
    assert sandbox.state.properties[GOLD_PROP]["label"] == "Gold members"


def test_transient_failures_fail_their_message_and_every_later_one_of_the_group(
    harness: Harness, sandbox: SandboxServer
) -> None:
    emails = [f"u{i}@example.com" for i in range(40)]
    messages = harness.messages(*[[update(email, city=str(n)) for email in emails] for n in range(3)])
    sandbox.state.config.omit_results = 1  # HubSpot's answer leaves one contact out
    report = harness.service.process(messages)
    (retry,) = [email for email, outcome in report.outcomes.items() if outcome == "retry"]
    group = shard_of(retry, 4)
    in_group = [m.message_id for m in messages if m.group_id == group]
    first_failed = min(in_group.index(mid) for mid in report.failed_message_ids if mid in in_group)
    assert set(report.failed_message_ids) == set(in_group[first_failed:])
    assert all(m.group_id == group for m in messages if m.message_id in report.failed_message_ids)


def test_daily_limit_leaves_messages_on_the_queue_with_extended_visibility(
    harness: Harness, sandbox: SandboxServer
) -> None:
    sandbox.state.config.daily_limit = sandbox.state.daily_used + 1  # enough to read the schema only
    messages = harness.messages([update(f"u{i}@example.com", city="x") for i in range(10)])
    report = harness.service.process(messages)
    assert report.daily_limit_resets_at is not None
    assert sorted(report.failed_message_ids) == sorted(m.message_id for m in messages)
    ((extended, seconds),) = harness.extender.calls
    assert sorted(extended) == sorted(m.message_id for m in messages) and 60 <= seconds <= 43_200


def test_property_limit_is_a_reported_failure_and_attributes_still_land(
    harness: Harness, sandbox: SandboxServer
) -> None:
    sandbox.state.config.custom_property_limit = 0
    report = harness.service.process(
        harness.messages([update("ada@example.com", realized(GOLD, 1000), firstname="Ada")])
    )
    assert report.outcomes == {"ada@example.com": "failed"} and report.failed_message_ids == []
    assert harness.contact("ada@example.com")["firstname"] == "Ada"
    reason = harness.ledger.entries["ada@example.com"].reason
    assert reason is not None and "custom property limit" in reason


def test_undecodable_message_goes_back_with_its_successors(harness: Harness) -> None:
    good = harness.messages([update("ada@example.com", city="x")], shards=1)
    poison = InboundMessage("poison", good[0].group_id, "not json")
    later = harness.messages([update("grace@example.com", city="y")], shards=1)
    report = harness.service.process([poison, *good, *later])
    assert report.failed_message_ids == ["poison", good[0].message_id, later[0].message_id]


def test_ledger_outage_hands_everything_back(harness: Harness) -> None:
    class BrokenLedger(InMemoryLedger):
        def put_many(self, entries: Sequence[LedgerEntry]) -> dict[str, str]:
            raise LedgerUnavailable("DynamoDB is down")

    service = SyncService(harness.client, PropertySchema(harness.client, "g", "G", "aud_"), BrokenLedger())
    messages = harness.messages([update("ada@example.com", city="x")])
    assert service.process(messages).failed_message_ids == [m.message_id for m in messages]


def test_transient_failures_come_back_after_a_backoff_growing_with_receive_count(
    harness: Harness, sandbox: SandboxServer
) -> None:
    packed = harness.messages(
        [update("ada@example.com", city="x")], [update("ada@example.com", city="y")], shards=1
    )
    messages = [
        InboundMessage(m.message_id, m.group_id, m.body, m.receipt_handle, receive_count=n)
        for n, m in zip((1, 3), packed, strict=True)
    ]
    sandbox.state.config.error_rate = 1.0  # HubSpot keeps answering 502
    report = harness.service.process(messages)
    assert report.failed_message_ids == [m.message_id for m in messages]
    assert sorted(harness.extender.calls) == [([messages[0].message_id], 10), ([messages[1].message_id], 40)]


def test_a_write_hubspot_refused_is_not_sent_again_but_a_corrected_one_is(harness: Harness) -> None:
    bad = [update("typo@example.com.com", firstname="Typo")]
    first = harness.service.process(harness.messages(bad))
    assert first.outcomes == {"typo@example.com.com": "failed"}
    again = harness.service.process(harness.messages(bad))
    assert again.hubspot_requests == 0 and again.outcomes == {"typo@example.com.com": "skipped"}
    assert harness.ledger.entries["typo@example.com.com"].status == "failed"
    changed = harness.service.process(harness.messages([update("typo@example.com.com", firstname="Other")]))
    assert changed.hubspot_requests == 1


def test_a_new_contact_with_nothing_to_write_is_not_created(harness: Harness) -> None:
    index = harness.sandbox.state.email_index
    # A value for a property HubSpot lacks: kept, the contact failed until a replay writes it.
    report = harness.service.process(harness.messages([update("ada@example.com", shoe_size=44)]))
    assert report.outcomes == {"ada@example.com": "failed"} and report.warnings == 1
    # A value HubSpot cannot take: dropped with a warning.
    invalid = harness.service.process(harness.messages([update("bob@example.com", lifecyclestage="x")]))
    assert invalid.outcomes == {"bob@example.com": "skipped"} and invalid.warnings == 1
    assert "ada@example.com" not in index and "bob@example.com" not in index
    again = harness.service.process(harness.messages([update("ada@example.com", shoe_size=44)]))
    assert again.hubspot_requests == 0 and "ada@example.com" not in index


def test_a_property_created_in_hubspot_later_is_picked_up(
    sandbox: SandboxServer, make_client: Callable[..., HubSpotClient]
) -> None:
    now = [0.0]
    client = make_client()
    schema = PropertySchema(
        client, "audience_activations", "Audience activations", "aud_", clock=lambda: now[0]
    )
    service = SyncService(client, schema, InMemoryLedger())
    harness = Harness(service, client, InMemoryLedger(), RecordingExtender(), sandbox)
    service.process(harness.messages([update("ada@example.com", loyalty_tier="gold")]))
    assert "ada@example.com" not in sandbox.state.email_index  # nothing it could write yet
    sandbox.state.properties["loyalty_tier"] = {
        **sandbox.state.properties["city"],
        "name": "loyalty_tier",
        "hubspotDefined": False,
    }
    now[0] = 61.0
    service.process(harness.messages([update("ada@example.com", loyalty_tier="gold")]))
    assert harness.contact("ada@example.com")["loyalty_tier"] == "gold"


def test_report_carries_the_remaining_rate_limit(harness: Harness) -> None:
    report = harness.service.process(harness.messages([update("ada@example.com", city="x")]))
    assert report.rate_limit_remaining is not None and 0 < report.rate_limit_remaining < 100
    again = harness.service.process(harness.messages([update("ada@example.com", city="x")]))
    assert again.hubspot_requests == 0 and again.rate_limit_remaining is None


def test_contacts_not_reached_before_the_timeout_go_back_to_the_queue(harness: Harness) -> None:
    messages = harness.messages([update(f"u{i}@example.com", city="x") for i in range(150)], shards=1)
    left = iter([500.0, 5.0])  # enough time for the first chunk of 100, not for the second
    report = harness.service.process(messages, remaining_seconds=lambda: next(left))
    assert report.synced == 100 and report.retried_later == 0 and report.contacts_out_of_time == 50
    # One group: all go back, visible at once (they did not fail: no backoff).
    assert report.failed_message_ids == []
    assert report.out_of_time_message_ids == [m.message_id for m in messages]
    assert harness.extender.calls == [([m.message_id for m in messages], 0)]


def test_contacts_sent_back_for_time_are_written_first_when_they_return(harness: Harness) -> None:
    fresh = harness.messages([update(f"new{i}@example.com", city="x") for i in range(100)], shards=1)
    returned = harness.messages([update(f"old{i}@example.com", city="x") for i in range(100)], shards=8)
    again = [replace(m, receive_count=2) for m in returned]
    left = iter([500.0, 5.0])  # time for one call
    report = harness.service.process([*fresh, *again], remaining_seconds=lambda: next(left))
    assert {email for email, outcome in report.outcomes.items() if outcome is Outcome.SYNCED} == {
        f"old{i}@example.com" for i in range(100)
    }
    assert report.contacts_out_of_time == 100


def test_a_batch_no_call_had_time_for_goes_back_after_the_backoff(harness: Harness) -> None:
    messages = harness.messages([update(f"u{i}@example.com", city="x") for i in range(150)], shards=1)
    report = harness.service.process(messages, remaining_seconds=lambda: 5.0)
    # Nothing written (the set-up used the time): at once would meet the same slowness again.
    assert harness.sandbox.state.email_index == {} and report.contacts_out_of_time == 0
    assert report.failed_message_ids == [m.message_id for m in messages]
    assert harness.extender.calls == [([m.message_id for m in messages], RETRY_BASE_SECONDS)]


class HubSpotPacedClock:
    """A monotonic clock that HubSpot's answers move: each request answered takes ``seconds``. The
    latency is simulated, so nothing waits and nothing is timed."""

    def __init__(self, sandbox: SandboxServer, seconds: float) -> None:
        self._sandbox = sandbox
        self._seconds = seconds

    def __call__(self) -> float:
        return self._seconds * sum(self._sandbox.state.requests.values())


def paced_harness(
    sandbox: SandboxServer, make_client: Callable[..., HubSpotClient], clock: Callable[[], float]
) -> Harness:
    """A harness whose HubSpot calls end by deadlines on ``clock``. Its client's calls get 8 s
    each: 3 s for one attempt, 5 s of retry waits."""
    client = make_client(clock=clock)
    assert client.max_call_seconds == 8
    ledger, extender = InMemoryLedger(), RecordingExtender()
    schema = PropertySchema(client, "audience_activations", "Audience activations", "aud_")
    service = SyncService(client, schema, ledger, extender, monotonic=clock)
    return Harness(service, client, ledger, extender, sandbox)


@pytest.mark.parametrize(
    ("whole_batch_refused", "seconds_per_request"),
    [
        # Ada's refused value is dropped and a second call would write the rest of her in time
        # the first call (6 s) has used up.
        (False, 6.0),
        # The whole batch is refused, split to find Ada; Bob's half is written (3 s + 3 s) and
        # Ada's half has no time left.
        (True, 3.0),
    ],
)
def test_a_chunk_out_of_time_for_its_second_call_keeps_what_the_first_wrote(
    sandbox: SandboxServer,
    make_client: Callable[..., HubSpotClient],
    whole_batch_refused: bool,
    seconds_per_request: float,
) -> None:
    harness = paced_harness(sandbox, make_client, HubSpotPacedClock(sandbox, seconds_per_request))
    harness.service.process(harness.messages([update("warm@example.com", city="x")]))  # schema cached
    options = sandbox.state.properties["lifecyclestage"]["options"]
    sandbox.state.properties["lifecyclestage"]["options"] = options[:1]  # changed behind the cache
    sandbox.state.config.per_input_errors = not whole_batch_refused
    bob = harness.messages([update("bob@example.com", firstname="Bob")])
    ada = harness.messages([update("ada@example.com", firstname="Ada", lifecyclestage="lead")])
    report = harness.service.process([*bob, *ada])
    # Bob, written by HubSpot, is recorded synced; only Ada goes back, visible at once.
    assert harness.contact("bob@example.com")["firstname"] == "Bob"
    assert report.outcomes == {"bob@example.com": Outcome.SYNCED}
    assert harness.ledger.entries["bob@example.com"].status == "synced"
    assert "ada@example.com" not in harness.ledger.entries
    assert report.failed_message_ids == [] and report.contacts_out_of_time == 1
    assert report.out_of_time_message_ids == [m.message_id for m in ada]
    assert harness.extender.calls == [([m.message_id for m in ada], 0)]


def test_a_second_call_that_fails_sends_back_only_its_contacts_after_a_backoff(
    sandbox: SandboxServer, make_client: Callable[..., HubSpotClient]
) -> None:
    harness_clock = HubSpotPacedClock(sandbox, 0.0)  # time never runs short
    upserts_before = [0]

    def clock() -> float:
        # HubSpot fails every request once it has answered the chunk's first call.
        if sandbox.state.requests["POST batch_upsert"] > upserts_before[0]:
            sandbox.state.config.error_rate = 1.0
        return harness_clock()

    harness = paced_harness(sandbox, make_client, clock)
    harness.service.process(harness.messages([update("warm@example.com", city="x")]))  # schema cached
    options = sandbox.state.properties["lifecyclestage"]["options"]
    sandbox.state.properties["lifecyclestage"]["options"] = options[:1]  # changed behind the cache
    upserts_before[0] = sandbox.state.requests["POST batch_upsert"]
    bob = harness.messages([update("bob@example.com", firstname="Bob")])
    ada = harness.messages([update("ada@example.com", firstname="Ada", lifecyclestage="lead")])
    report = harness.service.process([*bob, *ada])
    assert report.outcomes == {"bob@example.com": Outcome.SYNCED, "ada@example.com": Outcome.RETRY}
    assert harness.ledger.entries["bob@example.com"].status == "synced"
    # Ada's call failed: her message goes back as failed, after the transient backoff.
    assert report.failed_message_ids == [m.message_id for m in ada] and report.contacts_out_of_time == 0
    assert [(ids, seconds > 0) for ids, seconds in harness.extender.calls] == [
        ([m.message_id for m in ada], True)
    ]


def test_a_property_deleted_behind_the_cache_costs_the_chunk_no_call_but_its_write(
    sandbox: SandboxServer, make_client: Callable[..., HubSpotClient]
) -> None:
    """Re-reading the definitions between the chunk's two calls would leave the second no time
    (3 s a request, 8 s a call): the contact is written without the property in time, and the next
    batch reads the definitions again and does not send it."""
    harness = paced_harness(sandbox, make_client, HubSpotPacedClock(sandbox, 3.0))
    sandbox.state.properties["loyalty_tier"] = {
        **sandbox.state.properties["city"],
        "name": "loyalty_tier",
        "hubspotDefined": False,
    }
    harness.service.process(harness.messages([update("warm@example.com", loyalty_tier="gold")]))
    del sandbox.state.properties["loyalty_tier"]
    report = harness.service.process(
        harness.messages([update("ada@example.com", firstname="Ada", loyalty_tier="gold")])
    )
    assert report.contacts_out_of_time == 0 and report.failed_message_ids == []
    assert harness.contact("ada@example.com")["firstname"] == "Ada"
    # Written without the value, which is kept until the property exists again.
    assert harness.ledger.entries["ada@example.com"].pending_attributes["loyalty_tier"].value == "gold"
    assert report.hubspot_requests == 2  # the refused call and the one without the property
    after = harness.service.process(
        harness.messages([update("bob@example.com", firstname="Bob", loyalty_tier="gold")])
    )
    assert after.hubspot_requests == 2  # the definitions read again, one call without the property
    assert harness.contact("bob@example.com")["firstname"] == "Bob"


@dataclass
class RecordingDeadLetters:
    moved: list[str] = field(default_factory=list)
    refuse: bool = False

    def send(self, messages: Sequence[InboundMessage]) -> set[str]:
        if self.refuse:
            return {m.message_id for m in messages}
        self.moved.extend(m.message_id for m in messages)
        return set()


def test_undecodable_messages_go_to_the_dlq_at_once_and_hold_nothing_back(
    harness: Harness, make_client: Callable[..., HubSpotClient]
) -> None:
    dead_letters = RecordingDeadLetters()
    client = make_client()
    schema = PropertySchema(client, "audience_activations", "Audience activations", "aud_")
    service = SyncService(client, schema, harness.ledger, dead_letters=dead_letters)
    good = harness.messages([update("ada@example.com", city="x")], shards=1)
    sns = InboundMessage("sns", good[0].group_id, '{"Type": "Notification", "Message": "hello"}')
    report = service.process([sns, *good])
    assert dead_letters.moved == ["sns"] and report.undecodable == 1
    assert report.failed_message_ids == [] and report.outcomes == {"ada@example.com": "synced"}
    # When the DLQ cannot take it, it goes back (with its successors) rather than being lost.
    dead_letters.refuse = True
    again = service.process([sns, *harness.messages([update("ada@example.com", city="y")], shards=1)])
    assert again.failed_message_ids[0] == "sns" and len(again.failed_message_ids) == 2


def test_a_contact_the_ledger_cannot_hold_fails_alone(
    harness: Harness, make_client: Callable[..., HubSpotClient]
) -> None:
    ledger = InMemoryLedger(refuse=frozenset({"bad@example.com"}))
    client = make_client()
    schema = PropertySchema(client, "audience_activations", "Audience activations", "aud_")
    service = SyncService(client, schema, ledger)
    updates = [update(f"user{i}@example.com", realized(GOLD, 1000), city="x") for i in range(80)]
    updates.insert(40, update("bad@example.com", realized(GOLD, 2000)))
    report = service.process(harness.messages(updates, shards=8))
    assert report.failed_message_ids == []
    assert report.synced == 80 and report.outcomes["bad@example.com"] == "failed"
    assert len(ledger.entries) == 81
    bad = ledger.entries["bad@example.com"]
    assert bad.status == "failed" and bad.reason is not None and "cannot store" in bad.reason


def test_hubspot_messages_quoting_an_email_are_scrubbed_before_logging(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        harness.service.process(harness.messages([update("bad@@example.com", firstname="Bad")]))
    assert harness.ledger.entries["bad@@example.com"].status == "failed"
    logged = "\n".join(record.getMessage() + str(record.__dict__) for record in caplog.records)
    assert "contactHash" in logged and "example.com" not in logged


def defer_group(group: str, calls: list[list[tuple[str, list[str]]]]) -> Callable[..., set[str]]:
    """A hold-back that makes every contact of ``group`` wait, recording the writes it was shown."""

    def choose(messages: Sequence[InboundMessage], writes: Sequence[tuple[str, Sequence[str]]]) -> set[str]:
        calls.append([(email, list(ids)) for email, ids in writes])
        return {email for email, _ in writes if shard_of(email, 4) == group}

    return choose


def test_the_hold_back_sees_only_writes_and_waiting_contacts_are_neither_written_nor_recorded(
    harness: Harness,
) -> None:
    unchanged = [f"same{i}@example.com" for i in range(6)]
    harness.service.process(harness.messages([update(email, city="Paris") for email in unchanged]))
    fresh = [f"new{i}@example.com" for i in range(12)]
    batch = harness.messages([update(email, city="Paris") for email in [*unchanged, *fresh]])
    waiting_group = shard_of(fresh[0], 4)
    calls: list[list[tuple[str, list[str]]]] = []
    requests_before = harness.sandbox.state.requests["POST batch_upsert"]

    report = harness.service.process(batch, hold_back=defer_group(waiting_group, calls))

    # Shown: only the fresh contacts, never the unchanged ones, with their messages.
    assert sorted(email for email, _ in calls[0]) == sorted(fresh)
    waiting = {email for email in fresh if shard_of(email, 4) == waiting_group}
    # Their messages go back (the unchanged contacts in them are recorded as skipped, harmlessly).
    assert report.held_message_ids == [m.message_id for m in batch if m.group_id == waiting_group]
    assert report.failed_message_ids == [] and report.contacts_held_back == len(waiting)
    assert not waiting & set(report.outcomes)
    assert not waiting & set(harness.sandbox.state.email_index)
    assert not waiting & set(harness.ledger.entries)
    assert report.synced == len(fresh) - len(waiting)
    assert harness.sandbox.state.requests["POST batch_upsert"] == requests_before + 1
    # When the messages return, the waiting contacts are written and the others skipped.
    again = harness.service.process([m for m in batch if m.message_id in report.held_message_ids])
    assert again.synced == len(waiting) and again.hubspot_requests == 1
    assert all(email in harness.sandbox.state.email_index for email in fresh)


def test_nothing_waiting_leaves_the_batch_whole(harness: Harness) -> None:
    batch = harness.messages([update(f"u{i}@example.com", city="Oslo") for i in range(5)])
    report = harness.service.process(batch, hold_back=lambda messages, writes: set())
    assert report.synced == 5 and report.held_message_ids == [] and report.contacts_held_back == 0
