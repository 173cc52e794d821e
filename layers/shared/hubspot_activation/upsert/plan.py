"""The upsert function's decisions, as pure functions of data: no AWS, no HTTP, no clock of their own.

The service around them reads (messages, the ledger, HubSpot's property definitions), asks these
functions what to do, performs it and records the outcome. Every rule lives here so it can be
tested without sockets:

- ``coalesce``: messages -> one pending change set per contact (newest audience change wins,
  attributes of later updates win, undecodable messages set apart);
- ``plan_writes``: + ledger + audience properties + definitions -> which contacts need a HubSpot
  write, which are skipped as unchanged or stale, what the ledger must remember for them;
- ``drop_refused_fields`` / ``outcome_of``: a HubSpot answer -> what to write again, what to record;
- ``messages_to_return`` / ``retry_schedule``: which messages go back to the queue (a failed one
  takes every later message of its FIFO group with it) and when they come back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..hubspot.batch import UpsertResult
from ..hubspot.errors import ErrorKind
from ..messages import decode_message
from ..model import AttributeValue, AudienceChange, ContactUpdate
from .ledger import FAILED, SYNCED, AppliedAudience, LedgerEntry
from .properties import AudienceProperty, coerce_attributes

#: SQS keeps a message invisible for at most 12 hours after it was received.
MAX_VISIBILITY_SECONDS = 43_200
#: Backoff of transient failures: 10 s, 20 s, 40 s ... up to 10 minutes.
RETRY_BASE_SECONDS = 10
MAX_RETRY_DELAY_SECONDS = 600
#: A DAILY pause never makes a message invisible for less than this.
MIN_DAILY_PAUSE_SECONDS = 60


class Outcome(StrEnum):
    SYNCED = "synced"
    SKIPPED = "skipped"
    FAILED = "failed"
    RETRY = "retry"


@dataclass(frozen=True)
class InboundMessage:
    message_id: str
    group_id: str
    body: str
    receipt_handle: str = ""
    receive_count: int = 1


@dataclass
class PendingContact:
    """Everything one batch asks for one contact, merged in message order."""

    email: str
    group_id: str
    audiences: dict[str, AudienceChange] = field(default_factory=dict)
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    message_ids: list[str] = field(default_factory=list)

    def merge(self, update: ContactUpdate, message_id: str) -> None:
        for change in update.audiences:
            current = self.audiences.get(change.audience_id)
            # Newest timestamp wins; on a tie the later message wins. A name is never forgotten.
            if current is None or change.timestamp_ms >= current.timestamp_ms:
                name = change.name or (current.name if current else None)
                self.audiences[change.audience_id] = AudienceChange(
                    change.audience_id, change.status, change.timestamp_ms, name
                )
            elif change.name and not current.name:
                self.audiences[change.audience_id] = AudienceChange(
                    current.audience_id, current.status, current.timestamp_ms, change.name
                )
        self.attributes.update(update.attributes)
        if message_id not in self.message_ids:
            self.message_ids.append(message_id)


@dataclass
class Batch:
    #: contacts in first-seen order
    contacts: dict[str, PendingContact]
    #: ids of the messages that could not be decoded, with the reason
    undecodable: dict[str, str] = field(default_factory=dict)

    def audience_names(self) -> dict[str, str | None]:
        """Every audience of the batch, with the newest name it was given (None when none)."""
        names: dict[str, str | None] = {}
        for contact in self.contacts.values():
            for change in contact.audiences.values():
                names[change.audience_id] = change.name or names.get(change.audience_id)
        return names

    def attribute_names(self) -> set[str]:
        return {name for contact in self.contacts.values() for name in contact.attributes}


def coalesce(messages: Sequence[InboundMessage]) -> Batch:
    batch = Batch({})
    for message in messages:
        try:
            updates = decode_message(message.body)
        except (ValueError, KeyError, TypeError) as exc:
            batch.undecodable[message.message_id] = str(exc)[:200]
            continue
        for update in updates:
            contact = batch.contacts.setdefault(update.email, PendingContact(update.email, message.group_id))
            contact.merge(update, message.message_id)
    return batch


@dataclass
class ContactWrite:
    """One contact's planned HubSpot write and what is known about it."""

    email: str
    message_ids: list[str]
    previous: LedgerEntry | None
    #: audience changes newer than what the ledger says was applied
    fresh: list[AudienceChange] = field(default_factory=list)
    #: HubSpot property -> value to write
    properties: dict[str, str] = field(default_factory=dict)
    #: audience id -> the property its status is written to
    audience_properties: dict[str, str] = field(default_factory=dict)
    #: property -> why its value is not written
    warnings: dict[str, str] = field(default_factory=dict)
    #: why the contact is not (fully) synced
    problems: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        document = json.dumps([self.email, sorted(self.properties.items())], separators=(",", ":"))
        return hashlib.sha256(document.encode("utf-8")).hexdigest()

    def refused_before(self) -> bool:
        return self.previous is not None and self.previous.rejected == self.fingerprint()

    def needs_write(self) -> bool:
        """A contact never written creates itself even without properties; a known one is written
        when a value differs from the last successful write and the write is not one HubSpot
        refused."""
        if self.refused_before():
            return False
        if self.previous is None or self.previous.hubspot_id is None:
            return True
        written = self.previous.written
        return any(written.get(name) != value for name, value in self.properties.items())


@dataclass
class WritePlan:
    #: contacts to send to HubSpot, in batch order
    writes: list[ContactWrite] = field(default_factory=list)
    #: outcomes already decided without a HubSpot call (skipped, or failed before sending)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    #: ledger entries to store for contacts that are not written (newer timestamps, a problem)
    records: list[LedgerEntry] = field(default_factory=list)
    #: every contact of the batch, written or not (for logging warnings and problems)
    contacts: list[ContactWrite] = field(default_factory=list)


def plan_writes(
    batch: Batch,
    ledger: Mapping[str, LedgerEntry],
    audiences: Mapping[str, AudienceProperty],
    definitions: Mapping[str, Mapping[str, Any]],
    now_ms: int,
) -> WritePlan:
    plan = WritePlan()
    for pending in batch.contacts.values():
        contact = _contact_write(pending, ledger.get(pending.email), audiences, definitions)
        plan.contacts.append(contact)
        if contact.needs_write():
            plan.writes.append(contact)
            continue
        plan.outcomes[contact.email] = Outcome.FAILED if contact.problems else Outcome.SKIPPED
        if contact.refused_before():
            continue  # the same write HubSpot refused before: its failure is already recorded
        if contact.fresh or contact.problems:
            # Nothing to send, but newer timestamps (or a problem) must still be remembered.
            plan.records.append(synced_entry(contact, None, now_ms))
    return plan


def _contact_write(
    pending: PendingContact,
    previous: LedgerEntry | None,
    audiences: Mapping[str, AudienceProperty],
    definitions: Mapping[str, Mapping[str, Any]],
) -> ContactWrite:
    applied = previous.audiences if previous else {}
    fresh = [
        change
        for change in pending.audiences.values()
        if change.audience_id not in applied or change.timestamp_ms > applied[change.audience_id].timestamp_ms
    ]
    properties, warnings = coerce_attributes(definitions, pending.attributes)
    properties.pop("email", None)  # the upsert's id, never a property to write
    contact = ContactWrite(
        pending.email, list(pending.message_ids), previous, fresh, properties, warnings=warnings
    )
    for change in fresh:
        prop = audiences[change.audience_id]
        if prop.error:
            contact.problems.append(f"audience {change.audience_id}: {prop.error}")
        else:
            contact.properties[prop.name] = change.status.value
            contact.audience_properties[change.audience_id] = prop.name
    return contact


REFUSED_FIELD_WARNING = "HubSpot refused the value; field not written"


def drop_refused_fields(contact: ContactWrite, result: UpsertResult) -> bool:
    """Fields HubSpot refused (an option or value the cached schema did not foresee) are dropped so
    the contact can be written again without them: one bad field never blocks a contact. True when
    the contact should be sent again."""
    if result.ok or result.error is None or result.error.kind is not ErrorKind.PERMANENT:
        return False
    bad = {str(item.get("name")) for item in result.property_errors}
    if not bad or "email" in bad or not bad <= set(contact.properties):
        return False
    for name in bad:
        contact.properties.pop(name)
        contact.warnings[name] = REFUSED_FIELD_WARNING
    return True


def refers_to_unknown_property(result: UpsertResult) -> bool:
    """HubSpot says a property does not exist: the cached definitions are out of date."""
    return any(item.get("error") == "PROPERTY_DOESNT_EXIST" for item in result.property_errors)


def outcome_of(
    contact: ContactWrite, result: UpsertResult, now_ms: int
) -> tuple[Outcome, LedgerEntry | None]:
    """What a HubSpot answer means for the contact, and the ledger entry to store (None: nothing
    is known yet, the contact goes back to the queue)."""
    if result.ok:
        outcome = Outcome.FAILED if contact.problems else Outcome.SYNCED
        return outcome, synced_entry(contact, result.contact_id, now_ms)
    if result.error is not None and result.error.kind is ErrorKind.PERMANENT:
        contact.problems.append(describe_refusal(result))
        return Outcome.FAILED, rejected_entry(contact, now_ms)
    return Outcome.RETRY, None


def describe_refusal(result: UpsertResult) -> str:
    error = result.error
    assert error is not None
    details = "; ".join(
        f"{item.get('name', '?')}: {item.get('error', '')} {item.get('message', '')}".strip()
        for item in result.property_errors
    )
    return f"HubSpot rejected the contact ({error.category or error.status}): {details or error.message}"[
        :1000
    ]


def synced_entry(contact: ContactWrite, hubspot_id: str | None, now_ms: int) -> LedgerEntry:
    """The ledger after a successful write (``hubspot_id`` set) or after deciding not to write: the
    written values are kept, and an audience counts as applied once HubSpot holds its status."""
    previous = contact.previous
    audiences = dict(previous.audiences) if previous else {}
    written = dict(previous.written) if previous else {}
    if hubspot_id is not None:
        written.update(contact.properties)
    for change in contact.fresh:
        name = contact.audience_properties.get(change.audience_id)
        if name is not None and written.get(name) == change.status.value:
            audiences[change.audience_id] = AppliedAudience(change.status.value, change.timestamp_ms)
    return LedgerEntry(
        email=contact.email,
        status=FAILED if contact.problems else SYNCED,
        hubspot_id=hubspot_id or (previous.hubspot_id if previous else None),
        audiences=audiences,
        written=written,
        reason="; ".join(contact.problems) or None,
        warnings=contact.warnings,
        updated_at_ms=now_ms,
    )


def rejected_entry(contact: ContactWrite, now_ms: int) -> LedgerEntry:
    """HubSpot refused the write for good: remember its fingerprint so the same write is not sent
    again, and keep what was applied before."""
    previous = contact.previous
    return LedgerEntry(
        rejected=contact.fingerprint(),
        email=contact.email,
        status=FAILED,
        hubspot_id=previous.hubspot_id if previous else None,
        audiences=dict(previous.audiences) if previous else {},
        written=dict(previous.written) if previous else {},
        reason="; ".join(contact.problems),
        warnings=contact.warnings,
        updated_at_ms=now_ms,
    )


def messages_to_return(messages: Sequence[InboundMessage], failed: Iterable[str]) -> list[str]:
    """A failed message takes every later message of its group with it, so order is kept."""
    failed_ids = set(failed)
    blocked_groups: set[str] = set()
    result = []
    for message in messages:
        if message.message_id in failed_ids or message.group_id in blocked_groups:
            blocked_groups.add(message.group_id)
            result.append(message.message_id)
    return result


def retry_schedule(
    messages: Sequence[InboundMessage],
    returned: Iterable[str],
    retry_base_seconds: int,
    daily_resets_at: float | None,
    now: float,
) -> dict[int, list[InboundMessage]]:
    """Visibility delay -> the returned messages to make visible after it. A DAILY pause keeps them
    invisible until the limit resets (no receive counts burnt on the way to the DLQ); other
    transient failures come back after a backoff that grows with the receive count, instead of
    after the queue's full visibility timeout."""
    wanted = set(returned)
    chosen = [m for m in messages if m.message_id in wanted]
    if not chosen:
        return {}
    if daily_resets_at is not None:
        pause = int(min(MAX_VISIBILITY_SECONDS, max(MIN_DAILY_PAUSE_SECONDS, daily_resets_at - now)))
        return {pause: chosen}
    schedule: dict[int, list[InboundMessage]] = {}
    for message in chosen:
        delay = min(MAX_RETRY_DELAY_SECONDS, retry_base_seconds * 2 ** max(0, message.receive_count - 1))
        schedule.setdefault(delay, []).append(message)
    return schedule


__all__ = [
    "Batch",
    "ContactWrite",
    "InboundMessage",
    "Outcome",
    "PendingContact",
    "WritePlan",
    "coalesce",
    "drop_refused_fields",
    "messages_to_return",
    "outcome_of",
    "plan_writes",
    "retry_schedule",
]
