"""The merge's and the flusher's decisions, as pure functions of data: no AWS, no HTTP, no clock
of their own, so every rule can be tested without sockets.

- ``coalesce`` / ``merge_desired``: messages -> one change set per contact, merged by the ordering
  rules (undecodable messages and resume jobs set apart);
- ``plan_writes``: desired and confirmed states + audience properties + definitions -> which
  contacts need a HubSpot write, which are skipped as unchanged, what the ledger must record;
- ``drop_refused_fields`` / ``outcome_of``: a HubSpot answer -> what to write again, what to record;
- ``messages_to_return`` / ``retry_schedule``: which messages the merge sends back, and when.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from ..field_rules import FieldRule, FieldRules
from ..hubspot.batch import UpsertResult
from ..hubspot.errors import ErrorKind
from ..messages import (
    REPLAY_SOURCE,
    RESUME_SOURCE,
    ResumeJob,
    decode_message,
    decode_resume_job,
    is_resume_group,
)
from ..model import AttributeValue, AudienceChange, AudienceStatus, ContactUpdate
from .ledger import (
    DELETED,
    FAILED,
    MERGED,
    SYNCED,
    UNCONFIRMED,
    UNORDERED,
    AppliedAudience,
    LedgerEntry,
    Order,
    PendingAttribute,
    PendingAudience,
    value_fingerprint,
)
from .properties import AudienceProperty, coerce_attributes

#: SQS keeps a message invisible for at most 12 hours after it was received.
MAX_VISIBILITY_SECONDS = 43_200
#: Backoff of transient failures doubles from RETRY_BASE_SECONDS (settings.py) up to 10 minutes.
MAX_RETRY_DELAY_SECONDS = 600
#: A DAILY pause never makes a message invisible for less than this.
MIN_DAILY_PAUSE_SECONDS = 60
#: After an ambiguous write, how long HubSpot may still apply it: only a write confirmed later than
#: this makes the ledger's record of what HubSpot holds trustworthy again.
AMBIGUITY_SETTLE_MS = 5 * 60 * 1000
UNKNOWN_PROPERTY_WARNING = "HubSpot has no such contact property; field not written"
MISSING_PROPERTY_PROBLEM = (
    "HubSpot has no such contact property; the value is kept and written by a replay once it exists"
)
DELETED_AUDIENCE_WARNING = (
    "the audience is deleted (DELETE /audiences/{id}); its newest change is kept and written when "
    "the audience is PUT again"
)


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


@dataclass(frozen=True)
class OrderedChange:
    """An audience change and the receive order of the update that carried it. Its name may come
    from an older change of the audience (a change sent without a name keeps the one given
    before): ``name_rank`` is then the rank of the change that gave it."""

    change: AudienceChange
    order: Order
    name_rank: tuple[int, Order] | None = None

    @property
    def rank(self) -> tuple[int, Order]:
        """Newest timestamp first; between equal timestamps, the later received."""
        return (self.change.timestamp_ms, self.order)

    @property
    def naming_rank(self) -> tuple[int, Order] | None:
        """The rank of the change its name came from (None: it has no name)."""
        if not self.change.name:
            return None
        return self.name_rank or self.rank

    def named(self, name: str | None, rank: tuple[int, Order] | None) -> OrderedChange:
        """This change with ``name``, given by a change of ``rank``, unless its own name came from
        a change at least as new: the newest name wins, whatever order the changes came in."""
        mine = self.naming_rank
        if not name or rank is None or (mine is not None and mine >= rank):
            return self
        change = self.change
        return OrderedChange(
            AudienceChange(change.audience_id, change.status, change.timestamp_ms, name),
            self.order,
            None if rank == self.rank else rank,
        )


@dataclass
class PendingContact:
    """Everything one batch asks for one contact, merged by timestamp and receive order (not by
    delivery order: a replayed or redriven older message never wins over a newer one)."""

    email: str
    group_id: str
    audiences: dict[str, OrderedChange] = field(default_factory=dict)
    #: property -> (value, receive order of the update that set it)
    attributes: dict[str, tuple[AttributeValue, Order]] = field(default_factory=dict)
    message_ids: list[str] = field(default_factory=list)
    #: an operator's replay asked for this contact: a write HubSpot refused is sent once more
    replay: bool = False
    #: a replay or a resume asked for the contact to be written from its state again, whether or
    #: not this batch changes it
    touched: bool = False

    def merge(self, update: ContactUpdate, message_id: str) -> None:
        if update.source == REPLAY_SOURCE:
            self.replay = True
        if update.source in (REPLAY_SOURCE, RESUME_SOURCE):
            self.touched = True
        for change in update.audiences:
            self.merge_audience(OrderedChange(change, update.order))
        for name, value in update.attributes.items():
            self.merge_attribute(name, value, update.order)
        if message_id not in self.message_ids:
            self.message_ids.append(message_id)

    def merge_audience(self, candidate: OrderedChange) -> None:
        current = self.audiences.get(candidate.change.audience_id)
        if current is None:
            self.audiences[candidate.change.audience_id] = candidate
            return
        newer, older = (candidate, current) if candidate.rank > current.rank else (current, candidate)
        # A name, once given, is never forgotten: the newest change keeps the newest name given.
        self.audiences[candidate.change.audience_id] = newer.named(older.change.name, older.naming_rank)

    def merge_attribute(self, name: str, value: AttributeValue, order: Order) -> None:
        current = self.attributes.get(name)
        if current is None or order >= current[1]:
            self.attributes[name] = (value, order)


def merge_desired(current: PendingContact | None, incoming: PendingContact) -> PendingContact | None:
    """The contact's desired state with ``incoming`` merged in by the same rules as within a batch
    (newest audience change by timestamp then receive order, newest attribute value by receive
    order, a name never forgotten), or None when nothing changes: an older, duplicate, replayed or
    redriven update leaves the state as it is, whatever order the updates are merged in."""
    merged = PendingContact(
        incoming.email,
        incoming.group_id,
        dict(current.audiences) if current is not None else {},
        dict(current.attributes) if current is not None else {},
    )
    for ordered in incoming.audiences.values():
        merged.merge_audience(ordered)
    for name, (value, order) in incoming.attributes.items():
        merged.merge_attribute(name, value, order)
    if current is None:
        return merged if merged.audiences or merged.attributes else None
    if merged.audiences == current.audiences and merged.attributes == current.attributes:
        return None
    return merged


@dataclass
class Batch:
    #: contacts in first-seen order
    contacts: dict[str, PendingContact]
    #: ids of the messages that could not be decoded, with the reason
    undecodable: dict[str, str] = field(default_factory=dict)
    #: message id -> the resume job it carries
    jobs: dict[str, ResumeJob] = field(default_factory=dict)

    def audience_names(self) -> dict[str, str | None]:
        """Every audience of the batch, with the newest name it was given (None when none)."""
        names: dict[str, str | None] = {}
        for contact in self.contacts.values():
            for ordered in contact.audiences.values():
                change = ordered.change
                names[change.audience_id] = change.name or names.get(change.audience_id)
        return names

    def attribute_names(self) -> set[str]:
        return {name for contact in self.contacts.values() for name in contact.attributes}

    @property
    def replay(self) -> bool:
        return any(contact.replay for contact in self.contacts.values())


def coalesce(messages: Sequence[InboundMessage]) -> Batch:
    batch = Batch({})
    for message in messages:
        try:
            if is_resume_group(message.group_id):
                batch.jobs[message.message_id] = decode_resume_job(message.body)
                continue
            updates = decode_message(message.body)
        except ValueError as exc:
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
    fresh: list[OrderedChange] = field(default_factory=list)
    #: HubSpot property -> value to write
    properties: dict[str, str] = field(default_factory=dict)
    #: attribute property -> the value asked for, before coercion (kept if HubSpot refuses the write)
    attribute_values: dict[str, AttributeValue] = field(default_factory=dict)
    #: attribute property -> receive order of the value asked for
    attribute_orders: dict[str, Order] = field(default_factory=dict)
    #: audience id -> the property its status is written to
    audience_properties: dict[str, str] = field(default_factory=dict)
    #: audiences whose fresh status goes to their list alone (``AudienceTarget=list``): applied
    #: once the contact's record id is known, with or without a property write
    list_audiences: set[str] = field(default_factory=set)
    #: property -> why its value is not written
    warnings: dict[str, str] = field(default_factory=dict)
    #: why the contact is not (fully) synced
    problems: list[str] = field(default_factory=list)
    #: what an operator's fix and a replay (or a later update) must still apply
    pending_audiences: dict[str, PendingAudience] = field(default_factory=dict)
    pending_attributes: dict[str, PendingAttribute] = field(default_factory=dict)
    #: an operator's replay: the operator fixed something, so a refused write is tried once more
    replay: bool = False
    #: ``fill_empty`` properties whose value is written only if a read finds HubSpot's empty
    needs_read: set[str] = field(default_factory=set)
    #: ``fill_empty`` property -> the non-empty value this write's read found HubSpot holding
    held: dict[str, str] = field(default_factory=dict)
    #: the record this write's read found the contact in (None: not read, or not found)
    found_id: str | None = None
    #: attribute property -> ``value_fingerprint`` of the value HubSpot's validation refused in
    #: this write (remembered in the ledger's ``refused_values``)
    refused_values: dict[str, str] = field(default_factory=dict)

    def to_read(self) -> list[str]:
        """The properties HubSpot must be read for before this write (those still to write)."""
        return sorted(name for name in self.needs_read if name in self.properties)

    def fingerprint(self) -> str:
        document = json.dumps([self.email, sorted(self.properties.items())], separators=(",", ":"))
        return hashlib.sha256(document.encode("utf-8")).hexdigest()

    def refused_before(self) -> bool:
        # The fingerprint (JSON + SHA-256) only when there is a refusal to compare it with: it is
        # asked for every contact of every batch.
        rejected = self.previous.rejected if self.previous is not None else None
        return not self.replay and rejected is not None and rejected == self.fingerprint()

    def needs_write(self) -> bool:
        """A contact HubSpot does not hold yet is created by its first property to write, or by its
        email alone when a status goes to a list alone (a list holds record ids: the upsert tells
        it) - never for a change held for a deleted audience or kept for a missing property; a
        known one is written when a value differs from the last confirmed write, or whenever a
        write's outcome is still ambiguous (HubSpot may have applied an older one late), and the
        write is not one HubSpot refused."""
        if self.refused_before():
            return False
        previous = self.previous
        if previous is not None and previous.erased and not self.replay:
            return False  # HubSpot erased it and refuses its email: only an operator sends it again
        if previous is not None and previous.status == DELETED:
            # Left deleted: only a changed value re-creates it (``plan_writes``), and a blank for
            # a property never written changes nothing.
            return False
        if previous is None or previous.hubspot_id is None:
            # Blanks alone (a field the source sends as null under ``always``) clear nothing in a
            # contact HubSpot may not hold: they never create one.
            return bool(self.list_audiences) or any(value != "" for value in self.properties.values())
        if previous.unconfirmed_at_ms is not None and self.properties:
            return True
        return any(previous.written.get(name) != value for name, value in self.properties.items())


@dataclass
class WritePlan:
    #: contacts to send to HubSpot, in batch order
    writes: list[ContactWrite] = field(default_factory=list)
    #: outcomes already decided without a HubSpot call (skipped, or failed before sending)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    #: ledger entries to store for contacts that are not written (newer orders, a problem)
    records: list[LedgerEntry] = field(default_factory=list)
    #: every contact of the batch, written or not (for logging warnings and problems)
    contacts: list[ContactWrite] = field(default_factory=list)


def audiences_to_ensure(batch: Batch, ledger: Mapping[str, LedgerEntry]) -> dict[str, str | None]:
    """The audiences whose properties must exist: the batch's and those still pending in the
    ledger for its contacts (a replay or a later update applies them)."""
    names = batch.audience_names()
    for email in batch.contacts:
        entry = ledger.get(email)
        for audience_id, pending in (entry.pending_audiences if entry else {}).items():
            names[audience_id] = names.get(audience_id) or pending.name
    return names


def attributes_to_define(batch: Batch, ledger: Mapping[str, LedgerEntry]) -> set[str]:
    """The attribute properties the plan needs definitions of: the batch's and the values still
    pending in the ledger for its contacts (written once HubSpot has their property)."""
    names = batch.attribute_names()
    for email in batch.contacts:
        entry = ledger.get(email)
        if entry is not None:
            names.update(entry.pending_attributes)
    return names


def plan_writes(
    batch: Batch,
    ledger: Mapping[str, LedgerEntry],
    audiences: Mapping[str, AudienceProperty],
    definitions: Mapping[str, Mapping[str, Any]],
    now_ms: int,
    rules: FieldRules | None = None,
) -> WritePlan:
    """``rules``: which side wins per property (none: every property is ``overwrite``)."""
    plan = WritePlan()
    rules = rules or FieldRules()
    for pending in batch.contacts.values():
        previous = ledger.get(pending.email)
        wanted = _with_ledger_pending(pending, previous)
        contact = _contact_write(wanted, previous, audiences, definitions, rules)
        if previous is not None and previous.status == DELETED and _changes_a_value(contact, previous):
            # Deleted in HubSpot and left deleted until the source changed a value: the upsert
            # that re-creates it carries its whole current state, not only the change.
            contact = _contact_write(
                wanted, previous.forgotten(SYNCED, previous.updated_at_ms), audiences, definitions, rules
            )
        plan.contacts.append(contact)
        if contact.needs_write():
            plan.writes.append(contact)
            continue
        plan.outcomes[contact.email], entry = unwritten_outcome(contact, now_ms)
        if contact.refused_before() or _refusal_stands(contact):
            continue  # the failure HubSpot's refusal recorded still holds: nothing new was sent
        if previous is None or _recorded_state(entry) != _recorded_state(previous):
            # Nothing to send, but newer orders, timestamps or a problem must still be remembered.
            plan.records.append(entry)
    return plan


def _changes_a_value(contact: ContactWrite, previous: LedgerEntry) -> bool:
    # A blank is no change to a property never written: it holds nothing either way.
    if any((previous.written.get(name) or "") != value for name, value in contact.properties.items()):
        return True
    # A status that goes to a list alone changes as its property would.
    for ordered in contact.fresh:
        applied = previous.audiences.get(ordered.change.audience_id)
        if ordered.change.audience_id in contact.list_audiences and (
            applied is None or applied.status != ordered.change.status.value
        ):
            return True
    return False


def unwritten_outcome(contact: ContactWrite, now_ms: int) -> tuple[Outcome, LedgerEntry]:
    """A contact left with nothing to send is not sent (a contact HubSpot does not hold would be
    created with its email alone): it fails when a problem keeps a change from HubSpot and is
    skipped otherwise; the entry records what it holds pending and why."""
    return Outcome.FAILED if contact.problems else Outcome.SKIPPED, synced_entry(contact, None, now_ms)


def _refusal_stands(contact: ContactWrite) -> bool:
    """A contact HubSpot refused stays failed until a write is sent again: an update (or a replay)
    with nothing to send must not mark it synced."""
    previous = contact.previous
    return (
        previous is not None
        and previous.status == FAILED
        and previous.rejected is not None
        and not (contact.properties or contact.problems or contact.fresh)
    )


def _recorded_state(entry: LedgerEntry) -> tuple[Any, ...]:
    return (
        entry.status,
        entry.audiences,
        entry.attribute_order,
        entry.pending_audiences,
        entry.pending_attributes,
        entry.reason,
        entry.warnings,
    )


def _with_ledger_pending(pending: PendingContact, previous: LedgerEntry | None) -> PendingContact:
    """The batch's changes plus what the ledger still holds for a replay, by the same rules."""
    if previous is None or not previous.replayable:
        return pending
    merged = PendingContact(
        pending.email, pending.group_id, {}, {}, list(pending.message_ids), pending.replay
    )
    for audience_id, kept in previous.pending_audiences.items():
        status = AudienceStatus(kept.status)
        merged.merge_audience(
            OrderedChange(AudienceChange(audience_id, status, kept.timestamp_ms, kept.name), kept.order)
        )
    for name, value in previous.pending_attributes.items():
        merged.merge_attribute(name, value.value, value.order)
    for ordered in pending.audiences.values():
        merged.merge_audience(ordered)
    for name, (attribute, order) in pending.attributes.items():
        merged.merge_attribute(name, attribute, order)
    return merged


def _contact_write(
    pending: PendingContact,
    previous: LedgerEntry | None,
    audiences: Mapping[str, AudienceProperty],
    definitions: Mapping[str, Mapping[str, Any]],
    rules: FieldRules,
) -> ContactWrite:
    contact = ContactWrite(pending.email, list(pending.message_ids), previous, replay=pending.replay)
    applied_orders = previous.attribute_order if previous else {}
    unsure = previous is not None and previous.unconfirmed_at_ms is not None
    current: dict[str, AttributeValue] = {}
    for name, (value, order) in pending.attributes.items():
        if name == "email":
            continue  # the upsert's id, never a property to write
        if order != UNORDERED and _stale(order, applied_orders.get(name, UNORDERED), unsure):
            continue  # an older value than the one already applied: never roll back
        if _kept_from_hubspot(contact, name, value, rules):
            continue
        current[name] = value
        contact.attribute_orders[name] = order
    contact.properties, contact.warnings = coerce_attributes(definitions, current)
    contact.attribute_values = current
    for name in current:
        if name not in definitions:
            # The operator can create the property (or fix the mapping): the value is kept, and the
            # contact counts as failed until it is written, so a replay finds it.
            contact.pending_attributes[name] = PendingAttribute(current[name], contact.attribute_orders[name])
            contact.problems.append(f"attribute {name}: {MISSING_PROPERTY_PROBLEM}")
    _hold_refused_values(contact)
    applied = previous.audiences if previous else {}
    for ordered in pending.audiences.values():
        change = ordered.change
        before = applied.get(change.audience_id)
        if before is not None and _stale(ordered.rank, (before.timestamp_ms, before.order), unsure):
            continue  # not newer than what HubSpot already holds
        prop = audiences.get(change.audience_id)
        if prop is not None and prop.deleted:
            # Not written, but recorded in order like a live audience's change (newest wins): a PUT
            # re-activating the audience resumes from it, whenever this message was consumed.
            contact.warnings[f"audience {change.audience_id}"] = DELETED_AUDIENCE_WARNING
            contact.pending_audiences[change.audience_id] = PendingAudience(
                change.status.value, change.timestamp_ms, ordered.order, change.name
            )
            continue
        contact.fresh.append(ordered)
        if prop is not None and prop.list_only and not prop.error:
            contact.list_audiences.add(change.audience_id)
            continue
        if prop is None or prop.error:
            reason = prop.error if prop is not None else "no property was made sure of for it"
            contact.problems.append(f"audience {change.audience_id}: {reason}")
            contact.pending_audiences[change.audience_id] = PendingAudience(
                change.status.value, change.timestamp_ms, ordered.order, change.name
            )
        else:
            contact.properties[prop.name] = change.status.value
            contact.audience_properties[change.audience_id] = prop.name
    return contact


def _kept_from_hubspot(contact: ContactWrite, name: str, value: AttributeValue, rules: FieldRules) -> bool:
    """Whether the property's rule keeps this value from HubSpot, checked at each write (a rule can
    change while a value waits in the queue or the ledger): ``never`` is not written, a blank
    changes nothing under ``unless_blank`` and ``fill_empty``, and ``fill_empty`` writes only into
    an empty property - not when HubSpot is known to hold a value (one it was seen holding, or
    one the connector wrote: HubSpot wins once it holds a value). Otherwise the contact is marked
    for a read of the property before the write."""
    rule = rules.rule_for(name)
    if rule is FieldRule.NEVER or (rule.ignores_blank and value == ""):
        return True
    if rule is FieldRule.FILL_EMPTY:
        previous = contact.previous
        if previous is not None and (name in previous.held or previous.written.get(name)):
            return True
        contact.needs_read.add(name)
    return False


def take_hubspot_values(
    contact: ContactWrite, holding: Mapping[str, str | None] | None, record_id: str | None = None
) -> None:
    """What a read found HubSpot holding for the contact (None: HubSpot has no such contact), in
    record ``record_id``: a ``fill_empty`` property HubSpot holds a value in is not written, and the
    value is kept (``held``) so no later write reads it again; an empty one (absent, null or
    blank) is written."""
    contact.found_id = record_id
    for name in contact.to_read():
        value = (holding or {}).get(name)
        if value:
            contact.properties.pop(name)
            contact.held[name] = value


def unwritten_after_read(contact: ContactWrite, now_ms: int) -> tuple[Outcome, LedgerEntry]:
    """A contact a read left nothing to send, settled as the plan settles one (``unwritten_outcome``)
    with what the read found kept; a refusal HubSpot's answer recorded still stands."""
    previous = contact.previous
    if previous is not None and (contact.refused_before() or _refusal_stands(contact)):
        outcome = Outcome.FAILED if contact.problems else Outcome.SKIPPED
        entry = replace(previous, held={**previous.held, **contact.held}, updated_at_ms=now_ms)
    else:
        outcome, entry = unwritten_outcome(contact, now_ms)
    # The record the read found: reconcile checks only contacts it knows the record of, and it
    # must see HubSpot empty a held value to have the flusher fill it.
    return outcome, replace(entry, hubspot_id=entry.hubspot_id or contact.found_id)


def _stale(candidate: tuple[Any, ...], applied: tuple[Any, ...], unsure: bool) -> bool:
    """Older than what was applied; the very same change again (a duplicate delivery) only while
    the ledger's record is trustworthy - after an ambiguous write it is sent once more."""
    return candidate < applied or (candidate == applied and not unsure)


REFUSED_FIELD_WARNING = "HubSpot refused the value; field not written"
#: the start of the reason a value HubSpot's validation refused is kept with (see ``_keep_refused``)
REFUSED_VALUE = "HubSpot refused the value"
#: the most of HubSpot's words kept in a refused value's reason
MAX_REFUSAL_TEXT = 300


def _keep_refused(contact: ContactWrite, name: str, reason: str) -> None:
    """Attribute ``name``'s value is not written because HubSpot refuses it: it is kept pending
    (shown with the contact and its issues, and sent again by a replay) and fails the contact."""
    contact.pending_attributes[name] = PendingAttribute(
        contact.attribute_values[name], contact.attribute_orders[name]
    )
    contact.warnings[name] = reason
    contact.problems.append(f"attribute {name}: {reason}")


def _hold_refused_values(contact: ContactWrite) -> None:
    """A value HubSpot's validation refused is not sent again (it would cost a refused call and a
    re-send) until the value changes or an operator replays the contact: it stays pending, and
    the contact failed with the refusal's reason."""
    previous = contact.previous
    if previous is None or contact.replay:
        return
    for name, fingerprint in previous.refused_values.items():
        value = contact.properties.get(name)
        if name in contact.attribute_values and value is not None and value_fingerprint(value) == fingerprint:
            del contact.properties[name]
            _keep_refused(contact, name, previous.warnings.get(name) or REFUSED_VALUE)


def _refusal_reason(name: str, details: Sequence[Mapping[str, Any]]) -> str:
    """``HubSpot refused the value (<code>: <message>)`` from HubSpot's details on ``name``."""
    words = "; ".join(
        f"{item.get('error') or 'refused'}: {item.get('message') or ''}".strip()
        for item in details
        if item.get("name") == name
    )
    return f"{REFUSED_VALUE} ({words[:MAX_REFUSAL_TEXT]})"


def drop_refused_fields(contact: ContactWrite, result: UpsertResult) -> bool:
    """Fields HubSpot refused are dropped so the contact can be written again without them: one
    bad field never blocks a contact. An attribute's refused value (a validation rule, an option
    the cached schema did not foresee) is kept pending with HubSpot's reason, fails the contact,
    and is remembered so it is not sent again unchanged; a property HubSpot says does not exist
    keeps its value for a replay. True when they were dropped: the contact is sent again if
    anything is left to write (``properties``), and is otherwise settled like a contact with
    nothing to write (``unwritten_outcome``). A refusal naming no property, or one that was not
    sent (a conditional required property), is the whole contact's: False."""
    if result.ok or result.error is None or result.error.kind is not ErrorKind.PERMANENT:
        return False
    names = [item.get("name") for item in result.property_errors]
    if not names or not all(isinstance(name, str) for name in names):
        return False
    bad = {str(name) for name in names}
    if "email" in bad or not bad <= set(contact.properties):
        return False
    missing = {
        str(item.get("name"))
        for item in result.property_errors
        if item.get("error") == "PROPERTY_DOESNT_EXIST"
    }
    for name in bad:
        value = contact.properties.pop(name)
        if name in missing and name in contact.attribute_values:
            # Deleted in HubSpot since the definitions were cached: kept like any value for a
            # property HubSpot lacks, not lost.
            contact.pending_attributes[name] = PendingAttribute(
                contact.attribute_values[name], contact.attribute_orders[name]
            )
            contact.problems.append(f"attribute {name}: {MISSING_PROPERTY_PROBLEM}")
            contact.warnings[name] = UNKNOWN_PROPERTY_WARNING
        elif name in contact.attribute_values:
            contact.refused_values[name] = value_fingerprint(value)
            _keep_refused(contact, name, _refusal_reason(name, result.property_errors))
        else:
            contact.warnings[name] = REFUSED_FIELD_WARNING
    return True


def refers_to_unknown_property(result: UpsertResult) -> bool:
    """HubSpot says a property does not exist: the cached definitions are out of date."""
    return any(item.get("error") == "PROPERTY_DOESNT_EXIST" for item in result.property_errors)


def outcome_of(
    contact: ContactWrite, result: UpsertResult, sent_ms: int, now_ms: int
) -> tuple[Outcome, LedgerEntry | None]:
    """What a HubSpot answer to a write sent at ``sent_ms`` means for the contact, and the ledger
    entry to store (None: nothing to record, the contact goes back to the queue)."""
    if result.ok:
        outcome = Outcome.FAILED if contact.problems else Outcome.SYNCED
        entry = synced_entry(contact, result.contact_id, now_ms, sent_ms)
        if result.unconfirmed:
            # Written now, but an earlier attempt of the same call may still land late and undo a
            # newer write: the contact's next write must be sent whatever it looks like, and its
            # messages (with their group's later ones) come back once for a re-check after the
            # backoff, so the newest state is written again after any late apply.
            entry.unconfirmed_at_ms = now_ms
            return Outcome.RETRY, entry
        return outcome, entry
    if result.error is not None and result.error.kind is ErrorKind.PERMANENT:
        contact.problems.append(describe_refusal(result))
        return Outcome.FAILED, rejected_entry(contact, now_ms)
    if result.error is not None and result.error.ambiguous:
        return Outcome.RETRY, ambiguous_entry(contact, now_ms)
    return Outcome.RETRY, None


def ambiguous_entry(contact: ContactWrite, now_ms: int) -> LedgerEntry:
    """The write may or may not have reached HubSpot (a timeout, a dropped connection, a 5xx):
    nothing is counted as written, and the contact's next write is sent even if it looks
    unchanged."""
    previous = contact.previous
    if previous is None:
        return LedgerEntry(contact.email, UNCONFIRMED, updated_at_ms=now_ms, unconfirmed_at_ms=now_ms)
    return replace(previous, updated_at_ms=now_ms, unconfirmed_at_ms=now_ms)


def describe_refusal(result: UpsertResult) -> str:
    error = result.error
    assert error is not None
    details = "; ".join(
        f"{item.get('name') or '?'}: {item.get('error') or ''} {item.get('message') or ''}".strip()
        for item in result.property_errors
    )
    return f"HubSpot rejected the contact ({error.category or error.status}): {details or error.message}"[
        :1000
    ]


def synced_entry(
    contact: ContactWrite, hubspot_id: str | None, now_ms: int, sent_ms: int | None = None
) -> LedgerEntry:
    """The ledger after a confirmed write (``hubspot_id`` set, sent at ``sent_ms``) or after
    deciding not to write: the written values and their orders are kept, an audience counts as
    applied once HubSpot holds its status, and what could not be applied stays pending."""
    previous = contact.previous
    audiences = dict(previous.audiences) if previous else {}
    written = dict(previous.written) if previous else {}
    orders = dict(previous.attribute_order) if previous else {}
    if hubspot_id is not None:
        written.update(contact.properties)
    for name, order in contact.attribute_orders.items():
        if name in contact.properties and written.get(name) == contact.properties[name]:
            orders[name] = max(order, orders.get(name, UNORDERED))
    pending = dict(contact.pending_audiences)
    record_id = hubspot_id or (previous.hubspot_id if previous else None)
    for ordered in contact.fresh:
        change = ordered.change
        prop = contact.audience_properties.get(change.audience_id)
        listed_alone = change.audience_id in contact.list_audiences and record_id is not None
        if listed_alone or (prop is not None and written.get(prop) == change.status.value):
            audiences[change.audience_id] = AppliedAudience(
                change.status.value, change.timestamp_ms, ordered.order
            )
            pending.pop(change.audience_id, None)
    status = FAILED if contact.problems else SYNCED
    reason = "; ".join(contact.problems) or None
    state = previous.hubspot_state if previous is not None and previous.hubspot_state == MERGED else None
    if hubspot_id is None and previous is not None:
        # Not written: a contact left deleted or erased in HubSpot stays so, whatever else keeps
        # a change from HubSpot meanwhile.
        if previous.status == DELETED:
            # What keeps a change from HubSpot (a refused value, a missing property) is kept with
            # its reason, but the contact is deleted there: it is not a failure to retry.
            status = DELETED
        elif previous.erased:
            status, reason, state = FAILED, previous.reason, previous.hubspot_state
    return LedgerEntry(
        email=contact.email,
        status=status,
        hubspot_id=hubspot_id or (previous.hubspot_id if previous else None),
        audiences=audiences,
        written=written,
        attribute_order=orders,
        pending_audiences=pending,
        pending_attributes=dict(contact.pending_attributes),
        reason=reason,
        warnings=contact.warnings,
        updated_at_ms=now_ms,
        unconfirmed_at_ms=_still_unconfirmed(previous, sent_ms),
        hubspot_state=state,
        held=_remembered(previous.held if previous else {}, contact.held, contact, hubspot_id is not None),
        refused_values=_remembered(
            previous.refused_values if previous else {},
            contact.refused_values,
            contact,
            hubspot_id is not None,
        ),
        listed=dict(previous.listed) if previous else {},
    )


def _remembered(
    before: Mapping[str, str], found: Mapping[str, str], contact: ContactWrite, written: bool
) -> dict[str, str]:
    """What the ledger keeps per property about HubSpot's side (``held``: the value HubSpot holds
    for a ``fill_empty`` property; ``refused_values``: a value its validation refused) after a
    write: what was known, with what this write found; a property the write sent, and HubSpot
    took, has neither any more (it was empty, and the value is accepted)."""
    remembered = {**before, **found}
    if written:
        for name in contact.properties:
            remembered.pop(name, None)
    return remembered


def _still_unconfirmed(previous: LedgerEntry | None, confirmed_sent_ms: int | None) -> int | None:
    """An ambiguity ends with a write confirmed after HubSpot could still have applied the
    ambiguous one; until then every write of the contact is sent."""
    if previous is None or previous.unconfirmed_at_ms is None:
        return None
    if (
        confirmed_sent_ms is not None
        and confirmed_sent_ms - previous.unconfirmed_at_ms >= AMBIGUITY_SETTLE_MS
    ):
        return None
    return previous.unconfirmed_at_ms


def rejected_entry(contact: ContactWrite, now_ms: int) -> LedgerEntry:
    """HubSpot refused the write for good: remember its fingerprint so the same write is not sent
    again unasked, keep what was applied before, and keep the refused changes pending with their
    orders - an operator's replay after a fix (or the contact's next update) sends them again, and
    the ordering rules still let a newer change win."""
    previous = contact.previous
    base = previous or LedgerEntry(contact.email, FAILED)
    # A status that goes to a list alone needs the record, not the refused write: applied when the
    # record is known, kept with the refused changes otherwise.
    listed_alone = {
        ordered.change.audience_id: AppliedAudience(
            ordered.change.status.value, ordered.change.timestamp_ms, ordered.order
        )
        for ordered in contact.fresh
        if ordered.change.audience_id in contact.list_audiences and base.hubspot_id is not None
    }
    refused_audiences = {
        ordered.change.audience_id: PendingAudience(
            ordered.change.status.value, ordered.change.timestamp_ms, ordered.order, ordered.change.name
        )
        for ordered in contact.fresh
        if ordered.change.audience_id in contact.audience_properties
        or (ordered.change.audience_id in contact.list_audiences and base.hubspot_id is None)
    }
    refused_attributes = {
        name: PendingAttribute(value, contact.attribute_orders[name])
        for name, value in contact.attribute_values.items()
        if name in contact.properties
    }
    return replace(
        base,
        rejected=contact.fingerprint(),
        status=FAILED,
        reason="; ".join(contact.problems),
        warnings=contact.warnings,
        audiences={**base.audiences, **listed_alone},
        pending_audiences={
            **{a: p for a, p in base.pending_audiences.items() if a not in listed_alone},
            **refused_audiences,
            **contact.pending_audiences,
        },
        pending_attributes={**base.pending_attributes, **refused_attributes, **contact.pending_attributes},
        held={**base.held, **contact.held},
        refused_values={**base.refused_values, **contact.refused_values},
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
    "OrderedChange",
    "Outcome",
    "PendingContact",
    "WritePlan",
    "ambiguous_entry",
    "attributes_to_define",
    "audiences_to_ensure",
    "coalesce",
    "drop_refused_fields",
    "merge_desired",
    "messages_to_return",
    "outcome_of",
    "plan_writes",
    "retry_schedule",
    "take_hubspot_values",
    "unwritten_after_read",
    "unwritten_outcome",
]
