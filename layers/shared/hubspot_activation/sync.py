"""The consumer's core (DESIGN.md section 5): SQS messages in, HubSpot contacts and ledger out.

Knows nothing about Lambda: the upsert adapter turns the event into InboundMessages and the
report into ``batchItemFailures``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .hubspot.client import MAX_BATCH_INPUTS, HubSpotClient, UpsertInput, UpsertResult
from .hubspot.errors import DailyLimitReached, ErrorKind, HubSpotError
from .ledger import FAILED, SYNCED, AppliedAudience, Ledger, LedgerEntry, LedgerUnavailable
from .model import AttributeValue, AudienceChange, ContactUpdate
from .observability import logger
from .properties import AudienceProperty, PropertySchema, coerce_attributes
from .queue import decode_message

#: SQS keeps a message invisible for at most 12 hours after it was received.
MAX_VISIBILITY_SECONDS = 43_200
#: Backoff of transient failures: 10 s, 20 s, 40 s ... up to 10 minutes.
RETRY_BASE_SECONDS = 10
MAX_RETRY_DELAY_SECONDS = 600


@dataclass(frozen=True)
class InboundMessage:
    message_id: str
    group_id: str
    body: str
    receipt_handle: str = ""
    receive_count: int = 1


class VisibilityExtender(Protocol):
    def extend(self, messages: Sequence[InboundMessage], seconds: int) -> None:
        """Make these received messages visible again in ``seconds`` (a retry backoff or a DAILY
        limit pause)."""
        ...


@dataclass
class SyncReport:
    failed_message_ids: list[str] = field(default_factory=list)
    synced: int = 0
    skipped_unchanged: int = 0
    failed: int = 0
    retried_later: int = 0
    warnings: int = 0
    hubspot_requests: int = 0
    throttled: int = 0
    daily_limit_resets_at: float | None = None
    #: HubSpot's remaining burst budget after the last call (None when no call was made)
    rate_limit_remaining: int | None = None
    #: email -> "synced" | "skipped" | "failed" | "retry": what happened to each contact
    outcomes: dict[str, str] = field(default_factory=dict)


@dataclass
class _Contact:
    email: str
    group_id: str
    audiences: dict[str, AudienceChange] = field(default_factory=dict)
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    message_ids: list[str] = field(default_factory=list)
    # filled while planning
    fresh: list[AudienceChange] = field(default_factory=list)
    audience_properties: dict[str, str] = field(default_factory=dict)  # audience id -> property name
    properties: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

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


def coalesce(messages: Sequence[InboundMessage]) -> tuple[dict[str, _Contact], list[str]]:
    """Contacts in first-seen order, and the ids of messages that could not be decoded."""
    contacts: dict[str, _Contact] = {}
    poison: list[str] = []
    for message in messages:
        try:
            updates = decode_message(message.body)
        except (ValueError, KeyError, TypeError) as exc:
            logger.error(
                "undecodable message", extra={"messageId": message.message_id, "error": str(exc)[:200]}
            )
            poison.append(message.message_id)
            continue
        for update in updates:
            contact = contacts.setdefault(update.email, _Contact(update.email, message.group_id))
            contact.merge(update, message.message_id)
    return contacts, poison


def failed_with_fifo_successors(messages: Sequence[InboundMessage], failed: set[str]) -> list[str]:
    """A failed message takes every later message of its group with it, so order is kept."""
    blocked_groups: set[str] = set()
    result = []
    for message in messages:
        if message.message_id in failed or message.group_id in blocked_groups:
            blocked_groups.add(message.group_id)
            result.append(message.message_id)
    return result


def _describe(result: UpsertResult) -> str:
    error = result.error
    assert error is not None
    details = "; ".join(
        f"{item.get('name', '?')}: {item.get('error', '')} {item.get('message', '')}".strip()
        for item in result.property_errors
    )
    return f"HubSpot rejected the contact ({error.category or error.status}): {details or error.message}"[
        :1000
    ]


class SyncService:
    def __init__(
        self,
        client: HubSpotClient,
        schema: PropertySchema,
        ledger: Ledger,
        extender: VisibilityExtender | None = None,
        clock: Callable[[], float] = time.time,
        retry_base_seconds: int = RETRY_BASE_SECONDS,
    ) -> None:
        self._retry_base = retry_base_seconds
        # One upsert (with a possible retry of refused fields) may wait up to the client's retry
        # budget twice, plus time to record the outcome.
        self._call_budget = 2 * client.retry_policy.max_wait_seconds + 10
        self._remaining: Callable[[], float] = lambda: float("inf")
        self._client = client
        self._schema = schema
        self._ledger = ledger
        self._extender = extender
        self._clock = clock

    def process(
        self, messages: Sequence[InboundMessage], remaining_seconds: Callable[[], float] | None = None
    ) -> SyncReport:
        """``remaining_seconds`` is the invocation's time left: no HubSpot call is started without
        enough of it, and the contacts not reached go back to the queue instead of timing out."""
        report = SyncReport()
        self._remaining = remaining_seconds or (lambda: float("inf"))
        requests_before, throttled_before = self._client.requests_sent, self._client.governor.throttled
        contacts, poison = coalesce(messages)
        retry: set[str] = set()  # emails to hand back to the queue
        try:
            self._sync(contacts, report, retry)
        except DailyLimitReached as exc:
            # Contacts already answered keep their outcome; the rest wait for the reset.
            report.daily_limit_resets_at = exc.resets_at
            retry.update(email for email in contacts if email not in report.outcomes)
        except (HubSpotError, LedgerUnavailable) as exc:
            # Nothing is known to be recorded: hand everything back (HubSpot upserts are idempotent).
            logger.error("sync stopped; messages go back to the queue", extra={"error": str(exc)[:500]})
            retry.update(contacts)
        for email in retry:
            report.outcomes[email] = "retry"
        for outcome in report.outcomes.values():
            if outcome == "synced":
                report.synced += 1
            elif outcome == "skipped":
                report.skipped_unchanged += 1
            elif outcome == "failed":
                report.failed += 1
            else:
                report.retried_later += 1
        report.warnings = sum(len(c.warnings) for c in contacts.values())
        failed_ids = set(poison) | {mid for email in retry for mid in contacts[email].message_ids}
        report.failed_message_ids = failed_with_fifo_successors(messages, failed_ids)
        report.hubspot_requests = self._client.requests_sent - requests_before
        report.throttled = self._client.governor.throttled - throttled_before
        if report.hubspot_requests:
            report.rate_limit_remaining = self._client.governor.last_remaining
        if self._extender is not None and report.failed_message_ids:
            self._schedule_retries(messages, report)
        return report

    def _schedule_retries(self, messages: Sequence[InboundMessage], report: SyncReport) -> None:
        """A DAILY pause keeps the messages invisible until the limit resets (no receive counts
        burnt on the way to the DLQ); other transient failures come back after a backoff that
        grows with the receive count, instead of after the queue's full visibility timeout."""
        assert self._extender is not None
        wanted = set(report.failed_message_ids)
        failed = [m for m in messages if m.message_id in wanted]
        if report.daily_limit_resets_at is not None:
            seconds = int(min(MAX_VISIBILITY_SECONDS, max(60, report.daily_limit_resets_at - self._clock())))
            self._extender.extend(failed, seconds)
            return
        by_delay: dict[int, list[InboundMessage]] = {}
        for message in failed:
            delay = min(MAX_RETRY_DELAY_SECONDS, self._retry_base * 2 ** max(0, message.receive_count - 1))
            by_delay.setdefault(delay, []).append(message)
        for delay, group in by_delay.items():
            self._extender.extend(group, delay)

    def _sync(self, contacts: dict[str, _Contact], report: SyncReport, retry: set[str]) -> None:
        if not contacts:
            return
        ledger = self._ledger.get_many(list(contacts))
        names: dict[str, str | None] = {}
        for contact in contacts.values():
            for change in contact.audiences.values():
                names[change.audience_id] = change.name or names.get(change.audience_id)
        audience_properties = self._schema.ensure_audiences(names)
        self._plan(contacts, ledger, audience_properties)
        to_write: list[_Contact] = []
        ledger_updates: list[LedgerEntry] = []
        for contact in contacts.values():
            previous = ledger.get(contact.email)
            if _needs_write(contact, previous):
                to_write.append(contact)
                continue
            report.outcomes[contact.email] = "failed" if contact.problems else "skipped"
            if previous is not None and previous.rejected == _fingerprint(contact):
                continue  # the same write HubSpot refused before: its failure is already recorded
            if contact.fresh or contact.problems:
                # Nothing to send, but newer timestamps (or a problem) must still be remembered.
                ledger_updates.append(self._entry(contact, previous, None))
        for start in range(0, len(to_write), MAX_BATCH_INPUTS):
            chunk = to_write[start : start + MAX_BATCH_INPUTS]
            if self._remaining() < self._call_budget:
                logger.warning("time is running out; the rest of the batch goes back to the queue")
                retry.update(contact.email for contact in to_write[start:])
                break
            try:
                results = self._upsert(chunk)
            except DailyLimitReached:
                self._ledger.put_many(ledger_updates)
                raise
            except HubSpotError as exc:
                logger.warning(
                    "batch upsert failed; contacts go back to the queue", extra={"error": str(exc)[:500]}
                )
                retry.update(contact.email for contact in chunk)
                if exc.kind is ErrorKind.CONFIGURATION:
                    retry.update(c.email for c in to_write[start + MAX_BATCH_INPUTS :])
                    break
                continue
            for contact, result in zip(chunk, results, strict=True):
                previous = ledger.get(contact.email)
                if result.ok:
                    ledger_updates.append(self._entry(contact, previous, result.contact_id))
                    report.outcomes[contact.email] = "failed" if contact.problems else "synced"
                elif result.error is not None and result.error.kind is ErrorKind.PERMANENT:
                    contact.problems.append(_describe(result))
                    ledger_updates.append(self._failed_entry(contact, previous))
                    report.outcomes[contact.email] = "failed"
                else:
                    retry.add(contact.email)
        self._ledger.put_many(ledger_updates)
        for contact in contacts.values():
            if contact.warnings or contact.problems:
                logger.info(
                    "contact synced with warnings"
                    if report.outcomes.get(contact.email) == "synced"
                    else "contact not fully synced",
                    extra={
                        "contactHash": _short_hash(contact.email),
                        "warnings": contact.warnings,
                        "problems": contact.problems,
                    },
                )

    def _plan(
        self,
        contacts: dict[str, _Contact],
        ledger: dict[str, LedgerEntry],
        audiences: dict[str, AudienceProperty],
    ) -> None:
        definitions = self._schema.definitions_for({name for c in contacts.values() for name in c.attributes})
        for contact in contacts.values():
            previous = ledger.get(contact.email)
            applied = previous.audiences if previous else {}
            contact.fresh = [
                change
                for change in contact.audiences.values()
                if change.audience_id not in applied
                or change.timestamp_ms > applied[change.audience_id].timestamp_ms
            ]
            contact.properties, contact.warnings = coerce_attributes(definitions, contact.attributes)
            contact.properties.pop("email", None)
            for change in contact.fresh:
                prop = audiences[change.audience_id]
                if prop.error:
                    contact.problems.append(f"audience {change.audience_id}: {prop.error}")
                else:
                    contact.properties[prop.name] = change.status.value
                    contact.audience_properties[change.audience_id] = prop.name

    def _upsert(self, chunk: list[_Contact]) -> list[UpsertResult]:
        results = self._client.batch_upsert([UpsertInput(c.email, c.properties) for c in chunk])
        # Fields HubSpot refused (an option or value our schema cache did not foresee) are dropped
        # and the contact is written again without them: one bad field never blocks a contact.
        again: list[tuple[int, _Contact]] = []
        for index, (contact, result) in enumerate(zip(chunk, results, strict=True)):
            if result.ok or result.error is None or result.error.kind is not ErrorKind.PERMANENT:
                continue
            bad = {str(item.get("name")) for item in result.property_errors}
            if bad and "email" not in bad and bad <= set(contact.properties):
                for name in bad:
                    contact.properties.pop(name)
                    contact.warnings[name] = "HubSpot refused the value; field not written"
                if any(item.get("error") == "PROPERTY_DOESNT_EXIST" for item in result.property_errors):
                    self._schema.refresh()
                again.append((index, contact))
        if again:
            retried = self._client.batch_upsert([UpsertInput(c.email, c.properties) for _, c in again])
            for (index, _contact), result in zip(again, retried, strict=True):
                results[index] = result
        return results

    def _entry(self, contact: _Contact, previous: LedgerEntry | None, hubspot_id: str | None) -> LedgerEntry:
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
            updated_at_ms=int(self._clock() * 1000),
        )

    def _failed_entry(self, contact: _Contact, previous: LedgerEntry | None) -> LedgerEntry:
        return LedgerEntry(
            rejected=_fingerprint(contact),
            email=contact.email,
            status=FAILED,
            hubspot_id=previous.hubspot_id if previous else None,
            audiences=dict(previous.audiences) if previous else {},
            written=dict(previous.written) if previous else {},
            reason="; ".join(contact.problems),
            warnings=contact.warnings,
            updated_at_ms=int(self._clock() * 1000),
        )


def _fingerprint(contact: _Contact) -> str:
    document = json.dumps([contact.email, sorted(contact.properties.items())], separators=(",", ":"))
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def _needs_write(contact: _Contact, previous: LedgerEntry | None) -> bool:
    """A contact never written creates itself even without properties; a known one is written when
    a value differs from the last successful write and the write is not one HubSpot refused."""
    if previous is not None and previous.rejected == _fingerprint(contact):
        return False
    if previous is None or previous.hubspot_id is None:
        return True
    return any(previous.written.get(name) != value for name, value in contact.properties.items())


def _short_hash(email: str) -> str:
    """Logs identify a contact without writing its email address."""
    return hashlib.sha256(email.encode("utf-8")).hexdigest()[:16]


__all__ = ["InboundMessage", "SyncReport", "SyncService", "VisibilityExtender", "coalesce"]
