"""The sync's two halves against the sandbox over real HTTP, with the ledger in moto: the merge
writes each contact's desired state (``MergeService``), the flusher writes HubSpot from it
(``Flusher.run``). The table is the template's, its ``pending`` index included.

Time is simulated: the flusher's clocks and sleeps are a ``SimulatedClock`` (its waits move the
clock, nothing waits), so a backoff is seen in the due times it records, not in wall time."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import requests
from hubspot_activation.field_rules import FieldRules
from hubspot_activation.hubspot.batch import UpdateInput, UpsertInput, UpsertResult
from hubspot_activation.hubspot.client import CallStats, HubSpotClient
from hubspot_activation.hubspot.reader import HubSpotContactReader
from hubspot_activation.hubspot.versions import ApiVersion
from hubspot_activation.ledger.audience_directory import DynamoDbAudienceDirectory
from hubspot_activation.ledger.contact_state import DynamoDbContactStates, DynamoDbFlushLease
from hubspot_activation.ledger.keys import PENDING_PARTITIONS
from hubspot_activation.ledger.operations_store import OperationsStore
from hubspot_activation.lists.ports import ListChanges
from hubspot_activation.lists.target import AudienceTarget
from hubspot_activation.messages import REPLAY_SOURCE, requeue_messages
from hubspot_activation.model import AudienceChange, AudienceStatus, ContactUpdate
from hubspot_activation.observability import SERVICE
from hubspot_activation.upsert.adapter import FlushRunner, SqsDeadLetters
from hubspot_activation.upsert.flush import BUSY_POLL_SECONDS, Flusher, FlushReport, FlushSettings, QueueLoad
from hubspot_activation.upsert.ledger import FAILED, SYNCED, UNCONFIRMED, LedgerEntry, value_fingerprint
from hubspot_activation.upsert.merge import MergeReport, MergeService
from hubspot_activation.upsert.plan import InboundMessage, Outcome
from hubspot_activation.upsert.properties import audience_property_name
from hubspot_activation.upsert.schema import PropertySchema
from hubspot_activation.upsert.state import ContactState
from moto import mock_aws

from local.hubspot_sandbox import SandboxServer
from tests.builders import pack
from tests.conftest import create_fifo_queue_with_dlq, create_ledger_table
from tests.hubspot.conftest import VERSIONS

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

GOLD = "a1b2c3d4-0000-4000-8000-000000000001"
GOLD_PROP = audience_property_name(GOLD, "aud_")
TABLE = "ledger"
ALL_PARTITIONS = list(range(PENDING_PARTITIONS))
#: When the first update is received (epoch ms); each batch is received a second later.
RECEIVED_MS = 1_796_000_000_000
#: A value of this many characters fits in a queue message; four of them do not fit in one item.
LARGE_VALUE = 120_000
#: Tests of how many contacts a call carries, over a hundred contacts each, run against one API
#: version: what they prove does not depend on it (the client's tests cover every version).
ONE_VERSION = pytest.mark.parametrize("api_version", VERSIONS[-1:], indirect=True)


class SimulatedClock:
    """The wall clock (epoch seconds) and the monotonic clock the writer's deadlines are read on.
    Only ``sleep`` and ``advance`` move them, and ``paced`` (HubSpot's answers) moves the monotonic
    one too; ``on_sleep`` runs at each sleep (what happens in the world meanwhile: a merge, HubSpot
    recovering)."""

    def __init__(self, paced: Callable[[], float] | None = None) -> None:
        self.wall = RECEIVED_MS / 1000
        self.mono = 1_000.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[], None] | None = None
        self._paced = paced

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono + (self._paced() if self._paced is not None else 0.0)

    def now_ms(self) -> int:
        return int(self.wall * 1000)

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        if self.on_sleep is not None:
            self.on_sleep()


class Budget:
    """A run's time left, one value a question: the last one is repeated."""

    def __init__(self, *seconds: float) -> None:
        self._seconds = list(seconds)

    def __call__(self) -> float:
        return self._seconds.pop(0) if len(self._seconds) > 1 else self._seconds[0]


@dataclass
class ObservedWriter:
    """The client the flusher writes through, observed: each batch upsert's emails, in order.
    ``before_call`` runs before a call is sent (what happens in the world during the write)."""

    client: HubSpotClient
    calls: list[list[str]] = field(default_factory=list)
    before_call: Callable[[list[str]], None] | None = None

    def batch_upsert(
        self, inputs: Sequence[UpsertInput], deadline: float | None = None
    ) -> list[UpsertResult]:
        emails = [item.email for item in inputs]
        self.calls.append(emails)
        if self.before_call is not None:
            self.before_call(emails)
        return self.client.batch_upsert(inputs, deadline)

    def batch_update(
        self, inputs: Sequence[UpdateInput], deadline: float | None = None
    ) -> list[UpsertResult]:
        emails = [item.email for item in inputs]
        self.calls.append(emails)
        if self.before_call is not None:
            self.before_call(emails)
        return self.client.batch_update(inputs, deadline)

    def stats(self) -> CallStats:
        return self.client.stats()

    @property
    def max_call_seconds(self) -> float:
        return self.client.max_call_seconds


@dataclass
class RecordingExtender:
    calls: list[tuple[list[str], int]] = field(default_factory=list)

    def extend(self, messages: Sequence[InboundMessage], seconds: int) -> None:
        self.calls.append(([m.message_id for m in messages], seconds))


@dataclass
class Harness:
    sandbox: SandboxServer
    client: HubSpotClient
    dynamodb: DynamoDBClient
    clock: SimulatedClock
    states: DynamoDbContactStates
    merger: MergeService
    schema: PropertySchema
    writer: ObservedWriter
    settings: FlushSettings = field(default_factory=lambda: FlushSettings(linger_seconds=0.0))
    queue_load: Callable[[], QueueLoad] | None = None
    #: the field rules the flusher writes by (reads through ``client``, as deployed)
    rules: FieldRules | None = None
    #: where audiences go, and what takes the lists' membership changes (``list`` or ``both``)
    audience_target: AudienceTarget = AudienceTarget.PROPERTY
    list_changes: ListChanges | None = None
    sequence: int = 0
    message_count: int = 0

    def messages(self, *batches: list[ContactUpdate], shards: int = 4) -> list[InboundMessage]:
        """Each batch as the ingest API packs it, received a second after the one before."""
        result = []
        for updates in batches:
            self.sequence += 1
            received_ms = RECEIVED_MS + self.sequence * 1000
            stamped = [replace(u, received_ms=received_ms, position=i) for i, u in enumerate(updates)]
            for message in pack(stamped, shards):
                result.append(self._inbound(message.group_id, message.body))
        return result

    def replay_messages(self, *emails: str) -> list[InboundMessage]:
        """What ``POST /replay`` queues for these contacts."""
        self.sequence += 1
        received_ms = RECEIVED_MS + self.sequence * 1000
        packed = requeue_messages(list(emails), REPLAY_SOURCE, f"replay{self.sequence}", 4, received_ms)
        return [self._inbound(message.group_id, message.body) for message in packed]

    def _inbound(self, group_id: str, body: str) -> InboundMessage:
        self.message_count += 1
        return InboundMessage(f"m{self.message_count}", group_id, body, f"rh{self.message_count}")

    def merge(self, *batches: list[ContactUpdate], shards: int = 4) -> MergeReport:
        report = self.merger.process(self.messages(*batches, shards=shards))
        assert report.failed_message_ids == []
        return report

    def flusher(self, writer: ObservedWriter | None = None) -> Flusher:
        return Flusher(
            self.states,
            writer or self.writer,
            self.schema,
            DynamoDbAudienceDirectory(self.dynamodb, TABLE),
            markers=self.states,
            settings=self.settings,
            queue_load=self.queue_load,
            clock=self.clock.time,
            monotonic=self.clock.monotonic,
            sleep=self.clock.sleep,
            rules=self.rules,
            reader=HubSpotContactReader(self.client),
            audience_target=self.audience_target,
            list_changes=self.list_changes,
        )

    def flush(self, remaining: Callable[[], float] | None = None) -> FlushReport:
        return self.flusher().run(ALL_PARTITIONS, remaining or (lambda: 900.0))

    def sync(self, *batches: list[ContactUpdate], shards: int = 4) -> FlushReport:
        self.merge(*batches, shards=shards)
        return self.flush()

    def contact(self, email: str) -> dict[str, str]:
        return dict(self.sandbox.state.contacts[self.sandbox.state.email_index[email]]["properties"])

    def state(self, email: str) -> ContactState:
        return self.states.read([email])[email]

    def entry(self, email: str) -> LedgerEntry:
        confirmed = self.state(email).confirmed
        assert confirmed is not None
        return confirmed

    def pending(self) -> set[str]:
        """The contacts pending, as their items say (the markers may still list settled ones)."""
        listed = {ref.email for ref in self.states.pending(ALL_PARTITIONS, 2**62, 100_000)}
        return {email for email in listed if self.state(email).pending}

    def upserts(self) -> int:
        return self.sandbox.state.requests["POST batch_upsert"]

    def reads(self) -> int:
        return self.sandbox.state.requests["POST batch_read"]


def build_harness(
    sandbox: SandboxServer,
    make_client: Callable[..., HubSpotClient],
    paced: Callable[[], float] | None = None,
) -> Harness:
    """``paced``: what HubSpot's answers add to the monotonic clock (see ``HubSpotPacedClock``)."""
    simulated = SimulatedClock(paced)
    client = make_client(clock=simulated.monotonic)
    dynamodb = boto3.client("dynamodb")
    states = DynamoDbContactStates(dynamodb, TABLE)
    schema = PropertySchema(
        client, "audience_activations", "Audience activations", "aud_", clock=simulated.monotonic
    )
    merger = MergeService(states, lambda email: 0, clock=simulated.time)
    return Harness(sandbox, client, dynamodb, simulated, states, merger, schema, ObservedWriter(client))


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        create_ledger_table(TABLE)
        yield


@pytest.fixture
def harness(aws: None, sandbox: SandboxServer, make_client: Callable[..., HubSpotClient]) -> Harness:
    return build_harness(sandbox, make_client)


def update(email: str, *audiences: AudienceChange, **attributes: str | int | float | bool) -> ContactUpdate:
    return ContactUpdate(email, tuple(audiences), dict(attributes))


def realized(audience: str, ts: int, name: str | None = None) -> AudienceChange:
    return AudienceChange(audience, AudienceStatus.REALIZED, ts, name)


def exited(audience: str, ts: int, name: str | None = None) -> AudienceChange:
    return AudienceChange(audience, AudienceStatus.EXITED, ts, name)


def narrow_lifecyclestage(sandbox: SandboxServer) -> None:
    """HubSpot's options change behind the schema cache: only the first is valid now."""
    options = sandbox.state.properties["lifecyclestage"]["options"]
    sandbox.state.properties["lifecyclestage"]["options"] = options[:1]


def create_property(sandbox: SandboxServer, name: str) -> None:
    sandbox.state.properties[name] = {
        **sandbox.state.properties["city"],
        "name": name,
        "hubspotDefined": False,
    }


# --- outcomes ------------------------------------------------------------------------------------


def test_fresh_contacts_get_their_audience_property_and_attributes(harness: Harness) -> None:
    merged = harness.merge(
        [
            update("ada@example.com", realized(GOLD, 1000, "Gold members"), firstname="Ada", city="London"),
            update("grace@example.com", exited(GOLD, 1000), lastname="Hopper"),
        ]
    )
    assert merged.changed == 2 and merged.newly_pending == 2
    assert harness.pending() == {"ada@example.com", "grace@example.com"}
    report = harness.flush()
    assert report.outcomes == {"ada@example.com": Outcome.SYNCED, "grace@example.com": Outcome.SYNCED}
    ada = harness.contact("ada@example.com")
    assert (ada["firstname"], ada["city"], ada[GOLD_PROP]) == ("Ada", "London", "realized")
    assert harness.contact("grace@example.com")[GOLD_PROP] == "exited"
    prop = harness.sandbox.state.properties[GOLD_PROP]
    assert prop["label"] == "Gold members" and prop["groupName"] == "audience_activations"
    assert report.hubspot_requests == 5  # properties, groups, create group, create property, one upsert
    assert report.call_sizes == [2]
    entry = harness.entry("ada@example.com")
    assert entry.status == SYNCED and entry.hubspot_id and entry.audiences[GOLD].timestamp_ms == 1000
    assert harness.pending() == set()


def test_newest_status_wins_whatever_order_the_updates_are_merged_in(harness: Harness) -> None:
    changes = [realized(GOLD, 2000), exited(GOLD, 3000), realized(GOLD, 1000)]
    # Ada's in one batch, Grace's one batch each and in the reverse order.
    harness.merge(*[[update("ada@example.com", change)] for change in changes])
    late = [harness.merge([update("grace@example.com", change)]) for change in reversed(changes)]
    assert [report.changed for report in late] == [1, 1, 0]  # older than one merged before: no change
    report = harness.flush()
    assert report.counts() == {Outcome.SYNCED: 2} and report.call_sizes == [2]
    assert harness.contact("ada@example.com")[GOLD_PROP] == "exited"
    assert harness.contact("grace@example.com")[GOLD_PROP] == "exited"


def test_newest_status_wins_across_flushes_and_stale_changes_cost_nothing(harness: Harness) -> None:
    harness.sync([update("ada@example.com", exited(GOLD, 3000))])
    stale = harness.merge([update("ada@example.com", realized(GOLD, 2000))])
    assert stale.changed == 0 and harness.pending() == set()
    assert harness.flush().hubspot_requests == 0
    assert harness.contact("ada@example.com")[GOLD_PROP] == "exited"
    newer = harness.sync([update("ada@example.com", realized(GOLD, 4000))])
    assert newer.outcomes == {"ada@example.com": Outcome.SYNCED}
    assert harness.contact("ada@example.com")[GOLD_PROP] == "realized"


@ONE_VERSION
def test_resending_unchanged_profiles_costs_zero_requests(harness: Harness) -> None:
    load = [update(f"u{i}@example.com", realized(GOLD, 1000, "Gold"), firstname=f"U{i}") for i in range(120)]
    first = harness.sync(load)
    assert first.counts()[Outcome.SYNCED] == 120 and sorted(first.call_sizes) == [20, 100]
    again = harness.sync(load)
    assert again.hubspot_requests == 0 and again.counts()[Outcome.SKIPPED] == 120
    assert harness.pending() == set()


def test_requalification_with_the_same_status_updates_only_the_ledger(harness: Harness) -> None:
    harness.sync([update("ada@example.com", realized(GOLD, 1000))])
    report = harness.sync([update("ada@example.com", realized(GOLD, 5000))])
    assert report.hubspot_requests == 0 and report.outcomes == {"ada@example.com": Outcome.SKIPPED}
    assert harness.entry("ada@example.com").audiences[GOLD].timestamp_ms == 5000


def test_invalid_attribute_value_drops_only_that_field(harness: Harness) -> None:
    report = harness.sync(
        [
            update(
                "ada@example.com",
                realized(GOLD, 1000),
                firstname="Ada",
                lifecyclestage="astronaut",
                shoe_size=44,
            )
        ]
    )
    # The rest is written; the value HubSpot has no property for is kept, and fails the contact
    # until a replay writes it.
    assert report.outcomes == {"ada@example.com": Outcome.FAILED} and report.warnings == 2
    ada = harness.contact("ada@example.com")
    assert ada["firstname"] == "Ada" and "lifecyclestage" not in ada
    entry = harness.entry("ada@example.com")
    assert set(entry.warnings) == {"lifecyclestage", "shoe_size"} and entry.status == FAILED
    assert entry.pending_attributes["shoe_size"].value == 44 and "shoe_size" in (entry.reason or "")
    assert harness.pending() == set()  # settled as failed: an operator's replay sends it again


def test_value_hubspot_refuses_fails_that_field_and_the_rest_is_written(harness: Harness) -> None:
    harness.sync([update("warm@example.com", city="x")])  # fills the schema cache
    narrow_lifecyclestage(harness.sandbox)
    report = harness.sync([update("ada@example.com", firstname="Ada", lifecyclestage="lead")])
    assert report.outcomes == {"ada@example.com": Outcome.FAILED}
    assert harness.upserts() == 3  # warm, Ada refused, Ada without the refused field
    ada = harness.contact("ada@example.com")
    assert ada["firstname"] == "Ada" and "lifecyclestage" not in ada
    entry = harness.entry("ada@example.com")
    assert entry.pending_attributes["lifecyclestage"].value == "lead"
    assert entry.reason is not None
    assert "attribute lifecyclestage: HubSpot refused the value (INVALID_OPTION: " in entry.reason


PHONE_PATTERN = r"\+[0-9 ]{6,}"


def put_rule(harness: Harness, name: str, rule_type: str, *arguments: str) -> None:
    """An administrator's rule, set through HubSpot's property-validations API."""
    token = harness.sandbox.state.add_private_app_token()
    response = requests.put(
        f"{harness.sandbox.url}/crm/property-validations/2026-09/0-1/{name}/rule-type/{rule_type}",
        json={"ruleArguments": list(arguments)},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert response.status_code == 204, response.text


def test_a_value_a_validation_rule_refuses_fails_that_field_alone_until_a_replay_after_the_fix(
    harness: Harness,
) -> None:
    put_rule(harness, "phone", "REGEX", PHONE_PATTERN)
    batch = [
        update("ada@example.com", firstname="Ada", phone="+44 20 7946 0000"),
        update("bob@example.com", firstname="Bob", phone="call me"),
        update("cy@example.com", firstname="Cy", phone="+33 1 40 00 00 00"),
    ]
    report = harness.sync(batch, shards=1)
    assert report.outcomes == {
        "ada@example.com": Outcome.SYNCED,
        "bob@example.com": Outcome.FAILED,
        "cy@example.com": Outcome.SYNCED,
    }
    assert harness.writer.calls == [[u.email for u in batch], ["bob@example.com"]]  # Bob sent again
    assert harness.contact("ada@example.com")["phone"] == "+44 20 7946 0000"
    bob = harness.contact("bob@example.com")
    assert bob["firstname"] == "Bob" and "phone" not in bob
    entry = harness.entry("bob@example.com")
    assert entry.status == FAILED and entry.pending_attributes["phone"].value == "call me"
    assert entry.reason == (
        f'attribute phone: HubSpot refused the value (REGEX: Property "phone" value does not match '
        f"the pattern {PHONE_PATTERN})"
    )
    assert entry.refused_values == {"phone": value_fingerprint("call me")}
    assert harness.pending() == set()

    # The same value again (the source re-sends its profiles): not sent, the failure stands.
    again = harness.sync([update("bob@example.com", firstname="Bob", phone="call me")])
    assert again.hubspot_requests == 0 and again.outcomes == {"bob@example.com": Outcome.FAILED}
    assert harness.entry("bob@example.com").reason == entry.reason

    # The administrator removes the rule; the operator's replay writes the value.
    removed = requests.delete(f"{harness.sandbox.url}/__sandbox/property-validations/phone/REGEX", timeout=5)
    assert removed.status_code == 200
    harness.merger.process(harness.replay_messages("bob@example.com"))
    upserts = harness.upserts()
    replayed = harness.flush()
    assert replayed.outcomes == {"bob@example.com": Outcome.SYNCED} and harness.upserts() == upserts + 1
    assert harness.contact("bob@example.com")["phone"] == "call me"
    fixed = harness.entry("bob@example.com")
    assert fixed.pending_attributes == {} and fixed.refused_values == {} and fixed.reason is None


def test_a_refused_value_costs_no_second_call_when_the_rest_is_unchanged(harness: Harness) -> None:
    harness.sync([update("ada@example.com", firstname="Ada", phone="+44 20 7946 0000")])
    put_rule(harness, "phone", "REGEX", PHONE_PATTERN)
    upserts = harness.upserts()
    report = harness.sync([update("ada@example.com", firstname="Ada", phone="call me")])
    # Refused, and nothing else of Ada's differs from what HubSpot holds: no call without it.
    assert report.outcomes == {"ada@example.com": Outcome.FAILED} and harness.upserts() == upserts + 1
    assert harness.contact("ada@example.com")["phone"] == "+44 20 7946 0000"
    entry = harness.entry("ada@example.com")
    assert entry.pending_attributes["phone"].value == "call me" and entry.written["firstname"] == "Ada"
    # A replay while the rule stands: sent once more, refused once more, and nothing else sent.
    harness.merger.process(harness.replay_messages("ada@example.com"))
    replayed = harness.flush()
    assert replayed.outcomes == {"ada@example.com": Outcome.FAILED} and harness.upserts() == upserts + 2
    assert harness.entry("ada@example.com").refused_values == {"phone": value_fingerprint("call me")}


def test_a_changed_value_is_sent_and_clears_the_refusal(harness: Harness) -> None:
    put_rule(harness, "phone", "MIN_LENGTH", "6")
    harness.sync([update("ada@example.com", firstname="Ada", phone="12")])
    assert harness.entry("ada@example.com").refused_values == {"phone": value_fingerprint("12")}
    report = harness.sync([update("ada@example.com", firstname="Ada", phone="123456")])
    assert report.outcomes == {"ada@example.com": Outcome.SYNCED} and report.hubspot_requests == 1
    entry = harness.entry("ada@example.com")
    assert entry.refused_values == {} and entry.pending_attributes == {} and entry.status == SYNCED
    assert harness.contact("ada@example.com")["phone"] == "123456"


def test_a_conditional_required_property_fails_the_whole_contact_on_2026_09(
    harness: Harness, api_version: ApiVersion
) -> None:
    rule = {"whenProperty": "lifecyclestage", "whenValue": "customer", "required": "company"}
    answer = requests.post(f"{harness.sandbox.url}/__sandbox/conditional-required", json=rule, timeout=5)
    assert answer.status_code == 200
    report = harness.sync(
        [
            update("ada@example.com", firstname="Ada", lifecyclestage="customer"),
            update("bob@example.com", firstname="Bob", lifecyclestage="customer", company="Acme"),
        ],
        shards=1,
    )
    assert harness.contact("bob@example.com")["company"] == "Acme"
    if api_version is not ApiVersion.V2026_09:  # earlier versions do not enforce the UI's rule
        assert report.counts() == {Outcome.SYNCED: 2}
        return
    assert report.outcomes == {"ada@example.com": Outcome.FAILED, "bob@example.com": Outcome.SYNCED}
    assert "ada@example.com" not in harness.sandbox.state.email_index  # nothing of Ada written
    entry = harness.entry("ada@example.com")
    assert entry.reason == (
        "HubSpot rejected the contact (VALIDATION_ERROR): company: REQUIRED_PROPERTY_MISSING "
        'Property "company" is required when "lifecyclestage" is "customer"'
    )
    assert entry.pending_attributes["firstname"].value == "Ada" and entry.refused_values == {}


def test_invalid_email_fails_alone_and_the_rest_of_the_call_is_written(harness: Harness) -> None:
    report = harness.sync(
        [
            update("good@example.com", firstname="Good"),
            update("bad@@example.com", firstname="Bad"),
            update("fine@example.com", firstname="Fine"),
        ],
        shards=1,
    )
    assert report.outcomes == {
        "good@example.com": Outcome.SYNCED,
        "bad@@example.com": Outcome.FAILED,
        "fine@example.com": Outcome.SYNCED,
    }
    failed = harness.entry("bad@@example.com")
    assert failed.status == FAILED and failed.reason is not None and "INVALID_EMAIL" in failed.reason
    assert harness.pending() == set()  # permanent: recorded, never retried


def test_audience_name_arriving_later_updates_the_label(harness: Harness) -> None:
    harness.sync([update("ada@example.com", realized(GOLD, 1000))])
    assert harness.sandbox.state.properties[GOLD_PROP]["label"] == GOLD
    named = harness.merge([update("ada@example.com", realized(GOLD, 1000, "Gold members"))])
    assert named.changed == 1
    harness.flush()
    assert harness.sandbox.state.properties[GOLD_PROP]["label"] == "Gold members"


def test_property_limit_is_a_reported_failure_and_attributes_still_land(harness: Harness) -> None:
    harness.sandbox.state.config.custom_property_limit = 0
    report = harness.sync([update("ada@example.com", realized(GOLD, 1000), firstname="Ada")])
    assert report.outcomes == {"ada@example.com": Outcome.FAILED}
    assert harness.contact("ada@example.com")["firstname"] == "Ada"
    entry = harness.entry("ada@example.com")
    assert entry.reason is not None and "custom property limit" in entry.reason
    assert GOLD in entry.pending_audiences  # kept for a replay
    assert harness.pending() == set()


def test_a_write_hubspot_refused_is_not_sent_again_but_a_corrected_one_is(harness: Harness) -> None:
    bad = [update("typo@example.com.com", firstname="Typo")]
    first = harness.sync(bad)
    assert first.outcomes == {"typo@example.com.com": Outcome.FAILED}
    again = harness.sync(bad)
    assert again.hubspot_requests == 0 and again.outcomes == {"typo@example.com.com": Outcome.SKIPPED}
    assert harness.entry("typo@example.com.com").status == FAILED
    changed = harness.sync([update("typo@example.com.com", firstname="Other")])
    assert changed.hubspot_requests == 1


def test_a_new_contact_with_nothing_to_write_is_not_created(harness: Harness) -> None:
    index = harness.sandbox.state.email_index
    # A value for a property HubSpot lacks: kept, the contact failed until a replay writes it.
    report = harness.sync([update("ada@example.com", shoe_size=44)])
    assert report.outcomes == {"ada@example.com": Outcome.FAILED} and report.warnings == 1
    # A value HubSpot cannot take: dropped with a warning.
    invalid = harness.sync([update("bob@example.com", lifecyclestage="x")])
    assert invalid.outcomes == {"bob@example.com": Outcome.SKIPPED} and invalid.warnings == 1
    assert "ada@example.com" not in index and "bob@example.com" not in index
    again = harness.sync([update("ada@example.com", shoe_size=44)])
    assert again.hubspot_requests == 0 and "ada@example.com" not in index
    assert harness.entry("ada@example.com").pending_attributes["shoe_size"].value == 44


def test_a_property_created_in_hubspot_later_is_picked_up_by_the_next_update(harness: Harness) -> None:
    harness.sync([update("ada@example.com", loyalty_tier="gold")])
    assert "ada@example.com" not in harness.sandbox.state.email_index  # nothing it could write yet
    create_property(harness.sandbox, "loyalty_tier")
    harness.clock.advance(61)  # the definitions are re-read for an unknown name once a minute
    report = harness.sync([update("ada@example.com", city="Paris")])
    assert report.outcomes == {"ada@example.com": Outcome.SYNCED}
    ada = harness.contact("ada@example.com")
    assert (ada["loyalty_tier"], ada["city"]) == ("gold", "Paris")
    assert harness.entry("ada@example.com").pending_attributes == {}


def test_a_replay_sees_an_operators_fix_in_hubspot_at_once(harness: Harness) -> None:
    harness.sync([update("ada@example.com", loyalty_tier="gold")])
    create_property(harness.sandbox, "loyalty_tier")
    # At once, well within the definitions' cache: the operator fixed HubSpot, then replayed.
    merged = harness.merger.process(harness.replay_messages("ada@example.com"))
    assert merged.changed == 1 and harness.pending() == {"ada@example.com"}
    report = harness.flush()
    assert report.outcomes == {"ada@example.com": Outcome.SYNCED}
    assert harness.contact("ada@example.com")["loyalty_tier"] == "gold"
    entry = harness.entry("ada@example.com")
    assert entry.status == SYNCED and entry.pending_attributes == {}


def test_a_deleted_audience_is_held_and_the_rest_written(harness: Harness) -> None:
    operations = OperationsStore(harness.dynamodb, TABLE, clock=harness.clock.time)
    operations.delete_audience(GOLD)
    report = harness.sync([update("ada@example.com", realized(GOLD, 1000), firstname="Ada")])
    assert report.outcomes == {"ada@example.com": Outcome.SYNCED} and report.warnings == 1
    assert harness.contact("ada@example.com")["firstname"] == "Ada"
    assert GOLD_PROP not in harness.sandbox.state.properties
    entry = harness.entry("ada@example.com")
    assert entry.pending_audiences[GOLD].status == "realized"
    assert harness.states.held_contacts(GOLD, 10, None) == (["ada@example.com"], None)
    assert harness.pending() == set()
    # Re-activated: the contact's next pass writes the change it held, and lets its marker go.
    operations.save_audience(GOLD, "Gold members", None)
    harness.merger.process(harness.replay_messages("ada@example.com"))
    harness.flush()
    assert harness.contact("ada@example.com")[GOLD_PROP] == "realized"
    assert harness.entry("ada@example.com").pending_audiences == {}
    assert harness.states.held_contacts(GOLD, 10, None) == ([], None)


def test_hubspot_messages_quoting_an_email_are_scrubbed_before_logging(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger=SERVICE):
        harness.sync([update("bad@@example.com", firstname="Bad")])
    assert harness.entry("bad@@example.com").status == FAILED
    logged = "\n".join(record.getMessage() + str(record.__dict__) for record in caplog.records)
    assert "contactHash" in logged and "example.com" not in logged


# --- the merge -----------------------------------------------------------------------------------


def test_undecodable_message_goes_back_with_its_successors_without_a_dlq(harness: Harness) -> None:
    good = harness.messages([update("ada@example.com", city="x")], shards=1)
    poison = InboundMessage("poison", good[0].group_id, "not json")
    later = harness.messages([update("grace@example.com", city="y")], shards=1)
    report = harness.merger.process([poison, *good, *later])
    assert report.failed_message_ids == ["poison", good[0].message_id, later[0].message_id]
    # Merged all the same: when they come back, merging them again changes nothing.
    assert harness.pending() == {"ada@example.com", "grace@example.com"}
    assert harness.merger.process([*good, *later]).changed == 0


def test_undecodable_messages_go_to_the_dlq_at_once_and_hold_nothing_back(harness: Harness) -> None:
    _queue, dlq = create_fifo_queue_with_dlq("activations", "dlq", max_receive_count=5)
    sqs = boto3.client("sqs")
    merger = MergeService(harness.states, lambda email: 0, dead_letters=SqsDeadLetters(sqs, dlq))
    good = harness.messages([update("ada@example.com", city="x")], shards=1)
    sns = InboundMessage("sns", good[0].group_id, '{"Type": "Notification", "Message": "hello"}')
    report = merger.process([sns, *good])
    assert report.undecodable == 1 and report.failed_message_ids == []
    moved = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in moved] == [sns.body]
    assert harness.pending() == {"ada@example.com"}
    # When the DLQ cannot take it, it goes back (with its successors) rather than being lost.
    refusing = MergeService(
        harness.states, lambda email: 0, dead_letters=SqsDeadLetters(sqs, dlq + "-missing")
    )
    again = refusing.process([sns, *harness.messages([update("ada@example.com", city="y")], shards=1)])
    assert again.failed_message_ids[0] == "sns" and len(again.failed_message_ids) == 2


def test_ledger_outage_hands_every_message_back_after_a_backoff_growing_with_receive_count(
    harness: Harness,
) -> None:
    extender = RecordingExtender()
    unreachable = DynamoDbContactStates(harness.dynamodb, "no-such-table")
    merger = MergeService(unreachable, lambda email: 0, extender=extender, clock=harness.clock.time)
    packed = harness.messages(
        [update("ada@example.com", city="x")], [update("ada@example.com", city="y")], shards=1
    )
    messages = [replace(m, receive_count=n) for n, m in zip((1, 3), packed, strict=True)]
    report = merger.process(messages)
    assert report.failed_message_ids == [m.message_id for m in messages]
    assert sorted(extender.calls) == [([messages[0].message_id], 10), ([messages[1].message_id], 40)]


def test_a_contact_the_ledger_cannot_hold_fails_alone_at_the_merge(harness: Harness) -> None:
    huge = [update("huge@example.com", **{f"note{i}": "x" * LARGE_VALUE}) for i in range(4)]
    report = harness.merge([update("ada@example.com", city="x")], *[[u] for u in huge])
    assert report.refused == 1 and report.failed_message_ids == []
    state = harness.state("huge@example.com")
    assert state.confirmed is not None and state.confirmed.status == FAILED
    assert "cannot store" in (state.confirmed.reason or "") and not state.pending
    assert harness.pending() == {"ada@example.com"}


# --- the flusher ---------------------------------------------------------------------------------


def test_a_contact_the_ledger_cannot_hold_fails_alone_at_the_flush(harness: Harness) -> None:
    """The desired state fits; with the confirmed one beside it (the values HubSpot has no
    property for are kept for a replay) the item would not."""
    updates = [update(f"user{i}@example.com", realized(GOLD, 1000), city="x") for i in range(20)]
    bad = [
        update("bad@example.com", realized(GOLD, 2000), **{f"note{i}": "x" * LARGE_VALUE}) for i in range(2)
    ]
    harness.merge(updates[:10], [bad[0]], [bad[1]], updates[10:], shards=8)
    assert harness.pending() == {u.email for u in [*updates, *bad]}
    report = harness.flush()
    assert report.counts()[Outcome.SYNCED] == 20 and report.outcomes["bad@example.com"] == Outcome.FAILED
    assert harness.contact("bad@example.com")[GOLD_PROP] == "realized"
    entry = harness.entry("bad@example.com")
    assert entry.status == FAILED and "cannot store" in (entry.reason or "")
    assert all(harness.entry(u.email).status == SYNCED for u in updates)
    assert harness.pending() == set()


@ONE_VERSION
def test_a_backlog_of_many_rounds_of_changes_costs_one_write_of_the_newest_state_per_contact(
    harness: Harness,
) -> None:
    emails = [f"u{i}@example.com" for i in range(110)]
    backlog = [[update(email, city=f"round {n}") for email in emails] for n in range(3)]
    harness.merge(backlog.pop(0))

    def load() -> QueueLoad:
        # The rest of the backlog is on the queue, and the merges take a round each time the
        # run looks: the run waits for them instead of writing the states they replace.
        if backlog:
            harness.merge(backlog.pop(0))
        return QueueLoad(len(backlog) + 1)

    harness.queue_load = load
    report = harness.flush()
    assert sorted(len(call) for call in harness.writer.calls) == [10, 100]
    assert sorted(email for call in harness.writer.calls for email in call) == sorted(emails)
    assert {harness.contact(email)["city"] for email in emails} == {"round 2"}
    assert report.counts()[Outcome.SYNCED] == 110 and harness.pending() == set()


@ONE_VERSION
def test_calls_carry_100_contacts_while_100_are_pending_and_a_partial_call_comes_last(
    harness: Harness,
) -> None:
    # One call at a time, so the order the calls were made in is the order they are answered in.
    harness.settings = FlushSettings(linger_seconds=0.0, round_calls=1, parallel_calls=1)
    harness.merge([update(f"u{i}@example.com", city="x") for i in range(210)])
    report = harness.flush()
    assert report.call_sizes == [100, 100, 10]
    assert report.counts()[Outcome.SYNCED] == 210 and harness.pending() == set()


@ONE_VERSION
def test_no_partial_call_while_updates_wait_on_the_queue(harness: Harness) -> None:
    settings = FlushSettings(linger_seconds=0.0, max_delay_seconds=10.0)
    harness.settings = settings
    harness.merge([update(f"u{i}@example.com", city="x") for i in range(110)])
    harness.clock.advance(settings.max_delay_seconds + 1)  # waited long enough for the backlog
    depth = [3]
    looks = [0]

    def load() -> QueueLoad:
        looks[0] += 1
        if looks[0] == 4:
            depth[0] = 0  # the merges are through the backlog
        return QueueLoad(depth[0])

    harness.queue_load = load
    sizes_and_depth: list[tuple[int, int]] = []
    harness.writer.before_call = lambda emails: sizes_and_depth.append((len(emails), depth[0]))
    harness.flush()
    # The tail waits for the queue, in the same run.
    assert sizes_and_depth == [(100, 3), (10, 0)]
    assert harness.pending() == set()


@ONE_VERSION
def test_a_run_waiting_for_the_backlog_writes_as_soon_as_the_queue_is_empty(harness: Harness) -> None:
    """Not when the contacts would have waited ``max_delay_seconds``: that delay is for contacts
    a backlog may still change, and an empty queue holds no change."""
    settings = FlushSettings(linger_seconds=0.0, max_delay_seconds=10.0)
    harness.settings = settings
    harness.merge([update(f"u{i}@example.com", city="x") for i in range(10)])
    start = harness.clock.time()
    harness.queue_load = lambda: QueueLoad(3 if harness.clock.time() - start < 3 else 0)
    sent_after: list[float] = []
    harness.writer.before_call = lambda emails: sent_after.append(harness.clock.time() - start)
    assert harness.flush().call_sizes == [10]
    assert 3 <= sent_after[0] < 3 + BUSY_POLL_SECONDS + 0.5


@ONE_VERSION
def test_no_partial_call_while_an_update_is_being_merged(harness: Harness) -> None:
    """The queue shows nothing waiting, but a merge is under way: its contacts join the tail,
    which goes in one partial call once the merge is done."""
    harness.settings = FlushSettings(linger_seconds=0.0)
    harness.merge([update(f"u{i}@example.com", city="x") for i in range(10)])
    looks = [0]

    def load() -> QueueLoad:
        looks[0] += 1
        if looks[0] < 3:
            return QueueLoad(0, merging=1)
        if looks[0] == 3:
            harness.merge([update(f"late{i}@example.com", city="x") for i in range(2)])
        return QueueLoad(0)

    harness.queue_load = load
    report = harness.flush()
    assert report.call_sizes == [12] and harness.pending() == set()


@ONE_VERSION
def test_a_tail_waits_for_a_merge_that_never_ends_at_most_the_delay(harness: Harness) -> None:
    """A message in flight may be a merge that failed and waits out its visibility timeout: the
    tail is written once it was pending ``max_delay_seconds``."""
    settings = FlushSettings(linger_seconds=0.0, max_delay_seconds=10.0)
    harness.settings = settings
    harness.merge([update(f"u{i}@example.com", city="x") for i in range(10)])
    started = harness.clock.time()
    harness.queue_load = lambda: QueueLoad(0, merging=1)
    sent_at: list[float] = []
    harness.writer.before_call = lambda emails: sent_at.append(harness.clock.time() - started)
    report = harness.flush()
    assert report.call_sizes == [10] and harness.pending() == set()
    assert settings.max_delay_seconds <= sent_at[0] < settings.max_delay_seconds + 1


@ONE_VERSION
def test_contacts_pending_longest_are_written_first(harness: Harness) -> None:
    harness.settings = FlushSettings(linger_seconds=0.0, round_calls=1)
    old = [f"old{i}@example.com" for i in range(100)]
    new = [f"new{i}@example.com" for i in range(10)]
    harness.merge([update(email, city="x") for email in old])
    harness.clock.advance(1)
    harness.merge([update(email, city="x") for email in new])
    report = harness.flush(Budget(500, 500, 5))  # time for one call
    assert set(harness.writer.calls[0]) == set(old) and len(harness.writer.calls) == 1
    assert harness.pending() == set(new) and report.more_pending


@ONE_VERSION
def test_contacts_not_reached_before_the_time_runs_out_stay_pending_as_they_were(
    harness: Harness,
) -> None:
    harness.settings = FlushSettings(linger_seconds=0.0, parallel_calls=1)
    emails = [f"u{i}@example.com" for i in range(110)]
    harness.merge([update(email, city="x") for email in emails], shards=1)
    before = {email: harness.state(email) for email in emails}
    report = harness.flush(Budget(500, 500, 5))  # the run, the first call; no time for the second
    assert report.call_sizes == [100] and report.counts() == {Outcome.SYNCED: 100}
    assert report.more_pending
    left = harness.pending()
    assert len(left) == 10 and set(harness.writer.calls[0]) == set(emails) - left
    for email in left:
        # Not failed, not retried: no backoff, no attempt counted, nothing recorded.
        state = harness.state(email)
        assert (state.confirmed, state.attempts, state.due_ms) == (None, 0, before[email].due_ms)
    assert harness.flush().call_sizes == [10] and harness.pending() == set()


def test_a_run_without_time_for_a_call_writes_nothing_and_leaves_everything_pending(
    harness: Harness,
) -> None:
    harness.merge([update(f"u{i}@example.com", city="x") for i in range(20)])
    report = harness.flush(lambda: 5.0)
    assert report.hubspot_requests == 0 and report.more_pending and report.outcomes == {}
    assert len(harness.pending()) == 20


def test_a_merge_during_the_write_keeps_the_contact_pending_and_it_is_written_again(
    harness: Harness,
) -> None:
    harness.merge([update("ada@example.com", city="London")])
    merges: list[MergeReport] = []

    def merge_once(emails: list[str]) -> None:
        if not merges:
            merges.append(harness.merge([update("ada@example.com", city="Paris")]))

    harness.writer.before_call = merge_once
    report = harness.flush()
    assert merges[0].changed == 1 and merges[0].newly_pending == 0  # pending already
    assert harness.writer.calls == [["ada@example.com"], ["ada@example.com"]]
    assert harness.contact("ada@example.com")["city"] == "Paris"
    assert harness.entry("ada@example.com").written["city"] == "Paris"
    assert report.outcomes == {"ada@example.com": Outcome.SYNCED} and harness.pending() == set()


def test_a_merge_during_the_write_is_kept_even_when_the_write_fails_for_good(harness: Harness) -> None:
    harness.merge([update("typo@example.com.com", firstname="Typo")])

    def merge_once(emails: list[str]) -> None:
        if len(harness.writer.calls) == 1:
            harness.merge([update("typo@example.com.com", firstname="Other")])

    harness.writer.before_call = merge_once
    harness.flush()
    # Both writes refused (the email is invalid), each once: the newer one was not lost.
    assert harness.writer.calls == [["typo@example.com.com"], ["typo@example.com.com"]]
    state = harness.state("typo@example.com.com")
    assert state.desired is not None and state.desired.attributes["firstname"][0] == "Other"
    assert state.confirmed is not None and state.confirmed.status == FAILED and not state.pending


def test_a_contact_another_run_settled_during_a_failed_write_stays_settled(harness: Harness) -> None:
    """Two runs on the same contacts (the number of lanes changed while one ran): the other run
    writes Ada while this run's call for her is on its way, and this call then fails."""
    harness.sync([update("warm@example.com", city="x")])  # schema cached
    harness.merge([update("ada@example.com", city="Paris")])
    other = harness.flusher(ObservedWriter(harness.client))

    def other_run_first(emails: list[str]) -> None:
        assert other.run(ALL_PARTITIONS, lambda: 900.0).outcomes == {"ada@example.com": Outcome.SYNCED}
        harness.sandbox.state.config.error_rate = 1.0

    harness.writer.before_call = other_run_first
    report = harness.flush()
    assert report.outcomes == {"ada@example.com": Outcome.RETRY}
    assert harness.pending() == set() and harness.entry("ada@example.com").status == SYNCED
    assert harness.contact("ada@example.com")["city"] == "Paris"


def test_a_result_missing_from_hubspots_answer_is_retried_after_a_backoff(harness: Harness) -> None:
    emails = [f"u{i}@example.com" for i in range(40)]
    harness.merge(*[[update(email, city=str(n)) for email in emails] for n in range(3)])
    harness.sandbox.state.config.omit_results = 1  # HubSpot's answer leaves one contact out
    waiting: list[ContactState] = []

    def look_at_the_pending() -> None:
        waiting.extend(harness.state(email) for email in sorted(harness.pending()))

    harness.clock.on_sleep = look_at_the_pending
    report = harness.flush()
    (first, retried) = harness.writer.calls
    assert len(first) == 40 and len(retried) == 1
    assert harness.clock.sleeps == [10.0]  # the first backoff, then the retry
    (state,) = waiting
    assert state.email == retried[0] and state.attempts == 1
    assert harness.contact(retried[0])["city"] == "2"
    assert report.counts() == {Outcome.SYNCED: 40} and harness.pending() == set()
    assert harness.state(retried[0]).attempts == 0


def test_transient_failures_back_off_and_fail_the_contact_after_max_attempts(harness: Harness) -> None:
    harness.settings = FlushSettings(linger_seconds=0.0, max_attempts=3, retry_base_seconds=10)
    harness.sync([update("warm@example.com", city="x")])  # schema cached
    harness.merge([update("ada@example.com", city="y")])
    harness.sandbox.state.config.error_rate = 1.0  # HubSpot keeps answering 502
    attempts: list[int] = []
    harness.clock.on_sleep = lambda: attempts.append(harness.state("ada@example.com").attempts)
    report = harness.flush()
    assert harness.clock.sleeps == [10.0, 20.0] and attempts == [1, 2]
    assert report.outcomes == {"ada@example.com": Outcome.FAILED}
    entry = harness.entry("ada@example.com")
    assert entry.status == FAILED and entry.reason is not None
    assert entry.reason.startswith("HubSpot failed 3 times in a row")
    assert harness.pending() == set()


def test_an_ambiguous_write_is_never_confirmed(harness: Harness) -> None:
    harness.sync([update("warm@example.com", city="x")])  # schema cached
    harness.merge([update("ada@example.com", city="Paris")])
    # HubSpot applies the write and its gateway answers 502.
    harness.sandbox.state.config.applied_error_rate = 1.0
    seen: list[ContactState] = []

    def recover() -> None:
        seen.append(harness.state("ada@example.com"))
        harness.sandbox.state.config.applied_error_rate = 0.0

    harness.clock.on_sleep = recover
    report = harness.flush()
    (after_failure,) = seen
    assert after_failure.pending and after_failure.attempts == 1
    assert after_failure.confirmed is not None and after_failure.confirmed.status == UNCONFIRMED
    assert after_failure.confirmed.written == {} and after_failure.confirmed.unconfirmed_at_ms
    assert report.outcomes == {"ada@example.com": Outcome.SYNCED}
    entry = harness.entry("ada@example.com")
    assert entry.status == SYNCED and entry.unconfirmed_at_ms is not None
    # HubSpot may still apply a late attempt: an unchanged value is written again all the same.
    calls = harness.upserts()
    again = harness.sync([update("ada@example.com", city="Paris")])
    assert harness.upserts() == calls + 1 and again.outcomes == {"ada@example.com": Outcome.SYNCED}


def test_daily_limit_stops_the_run_and_leaves_the_contacts_pending(harness: Harness) -> None:
    emails = {f"u{i}@example.com" for i in range(10)}
    harness.merge([update(email, city="x") for email in sorted(emails)])
    harness.sandbox.state.config.daily_limit = harness.sandbox.state.daily_used + 1  # the schema only
    report = harness.flush()
    assert report.daily_limit_resets_at is not None and report.outcomes == {}
    assert harness.pending() == emails
    assert all(harness.state(email).confirmed is None for email in emails)
    assert all(harness.state(email).attempts == 0 for email in emails)


def test_daily_limit_met_reading_the_schema_stops_the_run_too(harness: Harness) -> None:
    harness.merge([update("ada@example.com", realized(GOLD, 1000), city="x")])
    harness.sandbox.state.config.daily_limit = harness.sandbox.state.daily_used  # not one request
    report = harness.flush()
    assert report.daily_limit_resets_at is not None and report.outcomes == {}
    assert harness.pending() == {"ada@example.com"} and harness.state("ada@example.com").attempts == 0


def test_hubspot_refusing_the_connector_stops_the_run_and_fails_no_contact(harness: Harness) -> None:
    """A revoked token (or missing scopes) is the connector's problem, not the contacts': like
    the daily limit, it leaves them pending as they were until an operator fixes it."""
    harness.sync([update("warm@example.com", city="x")])  # schema cached
    emails = {f"u{i}@example.com" for i in range(3)}
    harness.merge([update(email, city="y") for email in sorted(emails)])
    before = {email: harness.state(email).due_ms for email in emails}
    harness.sandbox.state.revoke_token(harness.client.credentials.access_token())
    report = harness.flush()
    assert report.stopped_by is not None and "401" in report.stopped_by and report.outcomes == {}
    assert harness.pending() == emails
    assert {email: (harness.state(email).attempts, harness.state(email).due_ms) for email in emails} == {
        email: (0, due) for email, due in before.items()
    }


def test_hubspot_refusing_the_connector_while_properties_are_made_sure_of_stops_the_run(
    harness: Harness,
) -> None:
    """The same refusal met before any write (the first round reads HubSpot's definitions) costs
    no contact an attempt: a revoked token must not fail every pending contact in a few hours."""
    harness.merge([update("ada@example.com", city="y")])
    due = harness.state("ada@example.com").due_ms
    harness.sandbox.state.revoke_token(harness.client.credentials.access_token())
    report = harness.flush()
    assert report.stopped_by is not None and "401" in report.stopped_by and report.outcomes == {}
    assert harness.sandbox.state.requests["POST batch_upsert"] == 0
    state = harness.state("ada@example.com")
    assert harness.pending() == {"ada@example.com"} and (state.attempts, state.due_ms) == (0, due)


@dataclass
class RecordingWaker:
    woken: list[list[int]] = field(default_factory=list)

    def wake(self, lanes: Collection[int], sweep: bool = False) -> None:
        self.woken.append(sorted(lanes))


def test_a_run_hubspot_stopped_does_not_start_the_next_at_once(harness: Harness) -> None:
    """Contacts are still due, but starting the next run at once would meet the same refusal, run
    after run: the schedule tries again within a minute."""
    harness.sync([update("warm@example.com", city="x")])  # schema cached
    harness.merge([update("ada@example.com", city="y")])
    harness.sandbox.state.revoke_token(harness.client.credentials.access_token())
    waker = RecordingWaker()
    runner = FlushRunner(
        harness.flusher(),
        DynamoDbFlushLease(harness.dynamodb, TABLE),
        waker,
        lanes=1,
        partitions=lambda lane, sweep: list(ALL_PARTITIONS),
        next_due=harness.states.next_due,
        clock=harness.clock.time,
    )
    summary = runner.handle({"lane": 0})
    assert waker.woken == [] and summary["stoppedBy"] is not None
    assert harness.pending() == {"ada@example.com"}


def test_a_wake_up_that_finds_the_lane_taken_makes_the_running_one_run_again(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that finds the lane held ends at once, but is not lost: the holder, letting the lane
    go, starts the next run (what woke it - a tail handed over by another lane, a contact merged
    after the holder's last look - may be past the point the holder looked at)."""
    harness.merge([update("ada@example.com", city="y")])
    waker = RecordingWaker()
    lease = DynamoDbFlushLease(harness.dynamodb, TABLE)

    def runner(flusher: Flusher) -> FlushRunner:
        return FlushRunner(
            flusher,
            lease,
            waker,
            lanes=1,
            partitions=lambda lane, sweep: list(ALL_PARTITIONS),
            next_due=harness.states.next_due,
            clock=harness.clock.time,
        )

    flusher = harness.flusher()
    run = flusher.run
    skipped: list[dict[str, Any]] = []

    def woken_halfway(partitions: list[int], remaining: Callable[[], float], tail: Any = None) -> FlushReport:
        skipped.append(runner(harness.flusher()).handle({"lane": 0}))
        return run(partitions, remaining, tail)

    monkeypatch.setattr(flusher, "run", woken_halfway)
    summary = runner(flusher).handle({"lane": 0})
    assert skipped == [{"lane": 0, "skipped": "another run holds the lane; it runs again after"}]
    assert summary["synced"] == 1 and harness.pending() == set()
    assert waker.woken == [[0]]
    # Nobody asked this time: no run follows.
    waker.woken.clear()
    runner(harness.flusher()).handle({"lane": 0})
    assert waker.woken == []


# --- a writer on a clock HubSpot's answers move ----------------------------------------------------


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
    """A harness whose HubSpot calls end by deadlines on a clock ``clock`` moves. Its client's
    calls get 8 s each: 3 s for one attempt, 5 s of retry waits."""
    harness = build_harness(sandbox, make_client, clock)
    assert harness.client.max_call_seconds == 8
    return harness


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
def test_a_call_out_of_time_for_its_second_attempt_keeps_what_the_first_wrote(
    aws: None,
    sandbox: SandboxServer,
    make_client: Callable[..., HubSpotClient],
    whole_batch_refused: bool,
    seconds_per_request: float,
) -> None:
    harness = paced_harness(sandbox, make_client, HubSpotPacedClock(sandbox, seconds_per_request))
    harness.sync([update("warm@example.com", city="x")])  # schema cached
    narrow_lifecyclestage(sandbox)
    sandbox.state.config.per_input_errors = not whole_batch_refused
    harness.merge([update("bob@example.com", firstname="Bob")])
    harness.clock.advance(1)  # Bob pending first: the call carries him first
    harness.merge([update("ada@example.com", firstname="Ada", lifecyclestage="lead")])
    report = harness.flush(Budget(900, 900, 5))  # one round
    # Bob, written by HubSpot, is recorded synced; Ada stays pending as she was.
    assert harness.contact("bob@example.com")["firstname"] == "Bob"
    assert report.outcomes == {"bob@example.com": Outcome.SYNCED}
    assert harness.entry("bob@example.com").status == SYNCED
    ada = harness.state("ada@example.com")
    assert ada.confirmed is None and ada.attempts == 0 and harness.pending() == {"ada@example.com"}


def test_a_second_call_that_fails_retries_only_its_contacts_after_a_backoff(
    aws: None, sandbox: SandboxServer, make_client: Callable[..., HubSpotClient]
) -> None:
    harness_clock = HubSpotPacedClock(sandbox, 0.0)  # time never runs short
    upserts_before = [0]

    def clock() -> float:
        # HubSpot fails every request once it has answered the first call.
        if sandbox.state.requests["POST batch_upsert"] > upserts_before[0]:
            sandbox.state.config.error_rate = 1.0
        return harness_clock()

    harness = paced_harness(sandbox, make_client, clock)
    harness.sync([update("warm@example.com", city="x")])  # schema cached
    narrow_lifecyclestage(sandbox)
    upserts_before[0] = sandbox.state.requests["POST batch_upsert"]
    sandbox.state.config.error_rate = 0.0  # the warm-up's own call was answered
    harness.merge(
        [update("bob@example.com", firstname="Bob")],
        [update("ada@example.com", firstname="Ada", lifecyclestage="lead")],
    )
    report = harness.flush(Budget(900, 900, 5))  # one round
    assert report.outcomes == {"bob@example.com": Outcome.SYNCED, "ada@example.com": Outcome.RETRY}
    assert harness.entry("bob@example.com").status == SYNCED
    ada = harness.state("ada@example.com")
    assert ada.pending and ada.attempts == 1
    assert ada.due_ms == harness.clock.now_ms() + 10_000
    # The second call may have reached HubSpot: nothing of it is taken as written.
    assert ada.confirmed is not None and ada.confirmed.status == UNCONFIRMED


def test_a_call_the_governor_holds_past_its_deadline_is_not_made_and_counts_no_attempt(
    aws: None, sandbox: SandboxServer, make_client: Callable[..., HubSpotClient]
) -> None:
    """One request a minute: the definitions' read takes it, and the write would wait past its
    deadline (8 s a call), so it is not sent. Nothing failed: the contact stays pending as it was,
    no attempt counted, no backoff."""
    one_a_minute = functools.partial(make_client, limit_per_window=1, window_seconds=60.0, share=1.0)
    harness = build_harness(sandbox, one_a_minute)
    harness.merge([update("ada@example.com", city="x")])
    before = harness.state("ada@example.com")
    report = harness.flush(Budget(900, 900, 5))  # one round
    assert harness.upserts() == 0 and report.outcomes == {}
    state = harness.state("ada@example.com")
    assert state.pending and state.confirmed is None
    assert (state.attempts, state.due_ms) == (0, before.due_ms)


def test_a_property_deleted_behind_the_cache_costs_the_call_no_time_but_its_write(
    aws: None, sandbox: SandboxServer, make_client: Callable[..., HubSpotClient]
) -> None:
    """Re-reading the definitions between the call's two attempts would leave the second no time
    (3 s a request, 8 s a call): the contact is written without the property in time, and the next
    round reads the definitions again and does not send it."""
    harness = paced_harness(sandbox, make_client, HubSpotPacedClock(sandbox, 3.0))
    create_property(sandbox, "loyalty_tier")
    harness.sync([update("warm@example.com", loyalty_tier="gold")])
    del sandbox.state.properties["loyalty_tier"]
    report = harness.sync([update("ada@example.com", firstname="Ada", loyalty_tier="gold")])
    assert report.outcomes == {"ada@example.com": Outcome.FAILED}
    assert harness.contact("ada@example.com")["firstname"] == "Ada"
    # Written without the value, which is kept until the property exists again.
    assert harness.entry("ada@example.com").pending_attributes["loyalty_tier"].value == "gold"
    assert report.hubspot_requests == 2  # the refused call and the one without the property
    after = harness.sync([update("bob@example.com", firstname="Bob", loyalty_tier="gold")])
    assert after.hubspot_requests == 2  # the definitions read again, one call without the property
    assert harness.contact("bob@example.com")["firstname"] == "Bob"


@ONE_VERSION
def test_a_tail_is_written_under_a_queue_that_never_empties_once_it_waited_twice_the_delay(
    harness: Harness,
) -> None:
    settings = FlushSettings(linger_seconds=0.0, max_delay_seconds=10.0)
    harness.settings = settings
    harness.merge([update(f"u{i}@example.com", city="x") for i in range(10)])
    harness.queue_load = lambda: QueueLoad(5)  # a steady stream: the queue is never seen empty
    merged_at = harness.clock.time()
    harness.clock.advance(settings.max_delay_seconds + 1)  # overdue, but a partial call would not be full
    sent_after: list[float] = []
    harness.writer.before_call = lambda emails: sent_after.append(harness.clock.time() - merged_at)
    assert harness.flush().call_sizes == [10]
    assert 2 * settings.max_delay_seconds <= sent_after[0] < 2 * settings.max_delay_seconds + 1
    assert harness.pending() == set()
