"""Inputs for the fault tests and the final state they must lead to, computed here from the rules
of docs/architecture.md and nothing of the product's planner:

- per contact and audience, the change with the greatest (timestamp, receive time, position) wins;
- per attribute, the value of the update with the greatest (receive time, position) that set it.

The product is used only to pack updates into queue messages (the wire format under test) and to
find an audience's column (``audience_property_name``, unit-tested on its own).

Every delivery is sent with a deduplication id of its own (``Delivery.deduplication_id``): a copy
stands for the same message delivered again (SQS's at-least-once delivery, a caller's retry after
the five-minute deduplication window, a DLQ redrive), which SQS's deduplication would otherwise drop.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hubspot_activation.messages import QueueMessage
from hubspot_activation.model import AudienceChange, AudienceStatus, ContactUpdate
from hubspot_activation.upsert.ledger import FAILED, SYNCED
from hubspot_activation.upsert.properties import audience_property_name
from hubspot_activation.upsert.state import ContactState

from tests.builders import pack

PREFIX = "aud_"
#: Ids a name could only approximate ("VIP", "vip", "vip!") must still get distinct properties.
AUDIENCES = (
    "VIP",
    "vip",
    "vip!",
    "gold_members",
    "a1b2c3d4-0000-4000-8000-00000000000a",
    "Churn Risk",
    "cart_abandoners",
    "newsletter-2024",
)
ATTRIBUTES = ("city", "firstname", "lastname")
BASE_MS = 1_795_000_000_000
#: Audience timestamps many requests share exactly: ties decided by receive order.
TIE_TIMESTAMPS = (BASE_MS - 3_600_000, BASE_MS - 1_800_000)

Stamp = tuple[int, int]


def column(audience_id: str) -> str:
    return audience_property_name(audience_id, PREFIX)


@dataclass(frozen=True)
class Request:
    """One call to the ingest API: one receive time, updates at their positions."""

    index: int
    #: fresh | older (audience timestamps older than earlier requests') | ties (shared timestamps)
    #: | resent (a caller re-sent an earlier request's content: a new receive time)
    kind: str
    received_ms: int
    updates: tuple[ContactUpdate, ...]


@dataclass(frozen=True)
class Delivery:
    request: int
    #: first | duplicate (the same message sent again) | replay (an older message after newer ones)
    kind: str
    message: QueueMessage

    def deduplication_id(self, sequence: int) -> str:
        return replace(self.message, nonce=f"delivery-{sequence}").deduplication_id


@dataclass
class Workload:
    requests: list[Request]
    #: in send order
    deliveries: list[Delivery]
    #: older messages sent again once most of the queue is consumed (a replay, a DLQ redrive)
    late: list[Delivery]

    @property
    def updates(self) -> list[ContactUpdate]:
        return [update for request in self.requests for update in request.updates]

    @property
    def emails(self) -> set[str]:
        return {update.email for update in self.updates}


def build_workload(
    seed: int = 9,
    contacts: int = 1_000,
    requests: int = 60,
    per_request: int = 85,
    shards: int = 16,
) -> Workload:
    rng = random.Random(seed)
    emails = [f"user{i:04d}@example.com" for i in range(contacts)]
    first_pass = rng.sample(emails, len(emails))  # every contact appears at least once
    hot = emails[:100]  # most interleaving happens on these
    built: list[Request] = []
    for index in range(requests):
        received_ms = BASE_MS + index * 1_000
        if index >= 10 and index % 12 == 5:
            source = built[rng.randrange(max(0, index - 10), index - 2)]
            updates = tuple(replace(u, received_ms=received_ms) for u in source.updates)
            built.append(Request(index, "resent", received_ms, updates))
            continue
        kind = rng.choices(("fresh", "older", "ties"), weights=(70, 15, 15))[0]
        chosen: list[ContactUpdate] = []
        for position in range(per_request):
            if first_pass:
                email = first_pass.pop()
            elif chosen and rng.random() < 0.04:
                email = rng.choice(chosen).email  # the same contact twice in one request
            else:
                email = rng.choice(hot) if rng.random() < 0.4 else rng.choice(emails)
            chosen.append(_random_update(rng, email, kind, received_ms, index, position))
        built.append(Request(index, kind, received_ms, tuple(chosen)))
    deliveries: list[Delivery] = []
    packed = {request.index: pack(request.updates, shards) for request in built}
    duplicated = set(rng.sample(range(requests), 5))
    echoes: list[tuple[int, Delivery]] = []  # (send after this request, delivery)
    for request in built:
        for message in packed[request.index]:
            deliveries.append(Delivery(request.index, "first", message))
        if request.index in duplicated:
            again = rng.sample(packed[request.index], min(4, len(packed[request.index])))
            deliveries.extend(Delivery(request.index, "duplicate", m) for m in again[:2])
            echoes.extend((request.index + 3, Delivery(request.index, "duplicate", m)) for m in again[2:])
        for when, delivery in [e for e in echoes if e[0] == request.index]:
            deliveries.append(delivery)
            echoes.remove((when, delivery))
    deliveries.extend(delivery for _when, delivery in echoes)
    replayed = rng.sample(range(requests // 2), 4)
    late = [Delivery(i, "replay", message) for i in replayed for message in packed[i]]
    return Workload(built, deliveries, late)


def _random_update(
    rng: random.Random, email: str, kind: str, received_ms: int, index: int, position: int
) -> ContactUpdate:
    audiences = []
    for audience_id in rng.sample(AUDIENCES, rng.choice((0, 1, 1, 2, 3))):
        if kind == "older":
            timestamp = received_ms - rng.randint(30_000, 90_000)
        elif kind == "ties":
            timestamp = rng.choice(TIE_TIMESTAMPS)
        else:
            timestamp = received_ms - rng.randint(0, 3_000)
        status = rng.choice((AudienceStatus.REALIZED, AudienceStatus.EXITED))
        audiences.append(AudienceChange(audience_id, status, timestamp))
    attributes: dict[str, str | int | float | bool] = {}
    count = rng.choice((0, 1, 1, 2)) if audiences else rng.choice((1, 2))
    for name in rng.sample(ATTRIBUTES, count):
        # Shared values make later requests repeat what is already written (nothing to send, but
        # the order must still move forward); the rest is unique to its update.
        attributes[name] = (
            rng.choice(("Paris", "Ada")) if rng.random() < 0.15 else f"{name}-{index}-{position}"
        )
    return ContactUpdate(email, tuple(audiences), attributes, received_ms=received_ms, position=position)


@dataclass
class Expected:
    #: audience id -> (status, timestamp, stamp)
    audiences: dict[str, tuple[str, int, Stamp]] = field(default_factory=dict)
    #: attribute -> (value, stamp)
    attributes: dict[str, tuple[str, Stamp]] = field(default_factory=dict)


def expected_state(updates: Iterable[ContactUpdate]) -> dict[str, Expected]:
    state: dict[str, Expected] = {}
    for update in updates:
        stamp = (update.received_ms, update.position)
        contact = state.setdefault(update.email, Expected())
        for change in update.audiences:
            current = contact.audiences.get(change.audience_id)
            if current is None or (change.timestamp_ms, stamp) > (current[1], current[2]):
                contact.audiences[change.audience_id] = (change.status.value, change.timestamp_ms, stamp)
        for name, value in update.attributes.items():
            known = contact.attributes.get(name)
            if known is None or stamp > known[1]:
                contact.attributes[name] = (str(value), stamp)
    return state


def hubspot_mismatches(
    contacts: Mapping[str, Mapping[str, Any]], expected: Mapping[str, Expected]
) -> list[str]:
    """Differences between HubSpot (email -> properties) and the expected state: every audience
    column and attribute, set where expected and absent where never asked for."""
    problems = []
    for email, want in expected.items():
        have = contacts.get(email)
        if have is None:
            problems.append(f"{email}: missing in HubSpot")
            continue
        for audience_id in AUDIENCES:
            wanted = want.audiences.get(audience_id)
            value = have.get(column(audience_id))
            if (wanted[0] if wanted else None) != value:
                problems.append(f"{email} {audience_id!r}: HubSpot {value!r}, expected {wanted}")
        for name in ATTRIBUTES:
            wanted_value = want.attributes.get(name)
            if (wanted_value[0] if wanted_value else None) != have.get(name):
                problems.append(f"{email} {name}: HubSpot {have.get(name)!r}, expected {wanted_value}")
    return problems


def ledger_mismatches(
    states: Mapping[str, ContactState],
    contacts: Mapping[str, Mapping[str, Any]],
    ids: Mapping[str, str],
    expected: Mapping[str, Expected],
) -> list[str]:
    """The ledger must agree with HubSpot: the contact's id, every value it says it wrote, every
    audience it says is applied (with the winning change's timestamp and stamp), each attribute's
    stamp, and nothing left pending."""
    problems = []
    for email, want in expected.items():
        state = states.get(email)
        entry = state.confirmed if state is not None else None
        have = contacts.get(email, {})
        if state is None or entry is None:
            problems.append(f"{email}: no confirmed state in the ledger")
            continue
        if state.pending:
            problems.append(f"{email}: still pending (attempts {state.attempts})")
        if entry.status != SYNCED or entry.hubspot_id != ids.get(email):
            problems.append(
                f"{email}: ledger {entry.status} id {entry.hubspot_id}, HubSpot id {ids.get(email)}"
            )
        for name, value in entry.written.items():
            if have.get(name) != value:
                problems.append(f"{email}: ledger wrote {name}={value!r}, HubSpot has {have.get(name)!r}")
        for audience_id, (status, timestamp, stamp) in want.audiences.items():
            applied = entry.audiences.get(audience_id)
            got = (applied.status, applied.timestamp_ms, tuple(applied.order)) if applied else None
            if got != (status, timestamp, stamp):
                problems.append(
                    f"{email} {audience_id!r}: ledger applied {got}, expected {(status, timestamp, stamp)}"
                )
        for name, (_value, stamp) in want.attributes.items():
            if tuple(entry.attribute_order.get(name, (0, 0))) != stamp:
                problems.append(
                    f"{email} {name}: ledger order {entry.attribute_order.get(name)}, expected {stamp}"
                )
        if entry.pending_audiences or entry.pending_attributes:
            problems.append(f"{email}: still pending {entry.pending_audiences} {entry.pending_attributes}")
    return problems


def unsettled(states: Mapping[str, ContactState], emails: Iterable[str]) -> list[str]:
    """The invariant's weak form: each contact is settled, either confirmed or recorded as failed
    with a reason, and none is left pending or missing."""
    problems = []
    for email in emails:
        state = states.get(email)
        entry = state.confirmed if state is not None else None
        if state is None or entry is None:
            problems.append(f"{email}: no outcome recorded")
        elif state.pending:
            problems.append(f"{email}: still pending")
        elif entry.status == FAILED and not entry.reason:
            problems.append(f"{email}: failed without a reason")
        elif entry.status not in (SYNCED, FAILED):
            problems.append(f"{email}: status {entry.status}")
    return problems


def hubspot_by_email(state: Any) -> tuple[dict[str, dict[str, Any]], dict[str, str], list[str]]:
    """The sandbox's contacts by email, their ids, and emails held by more than one contact."""
    with state.lock:
        by_email: dict[str, dict[str, Any]] = {}
        ids: dict[str, str] = {}
        duplicates = []
        for contact_id, contact in state.contacts.items():
            email = contact["properties"].get("email")
            if email in by_email:
                duplicates.append(email)
            by_email[email] = dict(contact["properties"])
            ids[email] = contact_id
        return by_email, ids, duplicates


class CachedSecret:
    """Secrets Manager as the consumer sees it: a cached copy, re-read only when forced (after a
    401). ``publish`` is an operator updating the secret."""

    def __init__(self, value: dict[str, Any]) -> None:
        self._published = dict(value)
        self._cached = dict(value)
        self._lock = threading.Lock()
        self.forced_reads = 0

    def publish(self, value: dict[str, Any]) -> None:
        with self._lock:
            self._published = dict(value)

    def __call__(self, force: bool) -> dict[str, Any]:
        with self._lock:
            if force:
                self.forced_reads += 1
                self._cached = dict(self._published)
            return dict(self._cached)


def rollbacks(state: Any, updates: Iterable[ContactUpdate]) -> list[str]:
    """Attribute values HubSpot held after a newer one, for the contacts of ``updates``. A value
    may have been set by several updates (a re-sent request, a shared value): the history is
    rollback-free when each value can be given one of its updates' stamps so that the stamps
    never decrease."""
    stamps: dict[tuple[str, str, str], list[Stamp]] = {}
    for update in updates:
        for name, value in update.attributes.items():
            stamps.setdefault((update.email, name, str(value)), []).append(
                (update.received_ms, update.position)
            )
    found = []
    with state.lock:
        for contact in state.contacts.values():
            email = contact["properties"].get("email")
            if not any(key[0] == email for key in stamps):
                continue
            for name in ATTRIBUTES:
                values = [v["value"] for v in reversed(contact["history"].get(name, []))]  # oldest first
                latest: Stamp = (0, 0)
                for value in values:
                    later = [s for s in stamps.get((email, name, value), []) if s >= latest]
                    if not later:
                        found.append(f"{email} {name}: {value!r} after a newer value ({values})")
                        break
                    latest = min(later)
    return found
