"""Reconcile's plain data: what HubSpot was seen to hold, the kinds of drift, what a run found."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..upsert.ledger import LedgerEntry
from .policy import DeletionPolicy as DeletionPolicy  # the setting's type, kept dependency-free

#: Properties every read asks for besides the managed ones: who the record is and what it absorbed.
IDENTITY_PROPERTIES = ("email", "hs_additional_emails", "hs_merged_object_ids")


class InvalidCursor(ValueError):
    """A cursor no reconcile answered with."""


class DriftKind(StrEnum):
    #: a managed property holds another value than the connector last wrote (one whose rule is
    #: ``fill_empty`` is found, and kept as HubSpot holds it)
    EDITED = "edited"
    #: the contact is archived in HubSpot (restorable for 90 days)
    DELETED = "deleted"
    #: HubSpot knows the contact neither live nor archived: erased (GDPR delete) or purged
    ERASED = "erased"
    #: the record the connector wrote now answers to another record (a merge, or its email changed)
    MERGED = "merged"
    #: a contact recorded as deleted is live again
    RESTORED = "restored"


@dataclass(frozen=True)
class HubSpotRecord:
    """One contact as a batch read returned it."""

    id: str
    #: the properties asked for (HubSpot answers null for an empty one)
    properties: dict[str, str | None]
    archived: bool = False

    @property
    def email(self) -> str | None:
        value = self.properties.get("email")
        return value.strip().lower() if value else None

    @property
    def emails(self) -> set[str]:
        """Every address the record answers to: its email and its additional emails."""
        found = {self.email} if self.email else set()
        additional = self.properties.get("hs_additional_emails") or ""
        return found | {part.strip().lower() for part in additional.split(";") if part.strip()}

    @property
    def merged_ids(self) -> set[str]:
        """The record ids merged into this one (``hs_merged_object_ids``, ``;``-separated)."""
        value = self.properties.get("hs_merged_object_ids") or ""
        return {part.strip() for part in value.split(";") if part.strip()}


@dataclass(frozen=True)
class Seen:
    """What HubSpot was seen to hold for a contact, and when: kept on the contact's item."""

    at_ms: int
    #: the record's id (None: HubSpot knows no live record for the contact)
    hubspot_id: str | None
    #: the managed properties' values (None: empty in HubSpot)
    properties: dict[str, str | None]
    #: None, or the kind of drift found
    drift: DriftKind | None = None


@dataclass(frozen=True)
class Repair:
    """What reconcile stores for one contact read at ``version`` (conditional on it, and on the
    contact not being pending: a flush under way is never overwritten)."""

    email: str
    version: int
    seen: Seen
    #: the confirmed state to store (None: as it is)
    entry: LedgerEntry | None = None
    #: the contact must be written again: it becomes pending and the flusher writes it
    pending: bool = False


@dataclass
class Finding:
    email: str
    kind: DriftKind
    #: the managed properties found changed (EDITED), or that the repair writes
    properties: list[str] = field(default_factory=list)
    #: the record now answering for the contact (MERGED, RESTORED)
    hubspot_id: str | None = None
    repaired: bool = False
    #: of ``properties``, the ``fill_empty`` ones whose HubSpot value is kept: not repaired
    kept: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"email": self.email, "kind": self.kind.value, "repaired": self.repaired}
        if self.properties:
            body["properties"] = sorted(self.properties)
        if self.hubspot_id:
            body["hubspotId"] = self.hubspot_id
        if self.kept:
            body["kept"] = sorted(self.kept)
        return body


#: Examples a report keeps.
MAX_EXAMPLES = 10


@dataclass
class MembershipFinding:
    email: str
    audience_id: str
    list_id: str
    #: what the contact handed to the list: a member (``realized``) or not
    member: bool
    repaired: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "audienceId": self.audience_id,
            "listId": self.list_id,
            "expected": "member" if self.member else "not a member",
            "repaired": self.repaired,
        }


@dataclass
class MembershipDrift:
    """What the lists check found in a run."""

    #: (contact, audience) memberships compared
    checked: int = 0
    found: int = 0
    repaired: int = 0
    #: memberships not compared: HubSpot could not answer for the record
    skipped: int = 0
    examples: list[MembershipFinding] = field(default_factory=list)

    def add(self, finding: MembershipFinding) -> None:
        self.found += 1
        self.repaired += finding.repaired
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(finding)

    def as_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "found": self.found,
            "repaired": self.repaired,
            "skipped": self.skipped,
            "examples": [finding.as_json() for finding in self.examples],
        }


@dataclass
class ReconcileReport:
    dry_run: bool = False
    checked: int = 0
    drift: Counter[DriftKind] = field(default_factory=Counter)
    repaired: Counter[DriftKind] = field(default_factory=Counter)
    examples: list[Finding] = field(default_factory=list)
    #: where the next call goes on (None: from the start, or the walk is complete; see ``more``)
    cursor: str | None = None
    #: HubSpot calls made
    calls: int = 0
    #: contacts skipped because a flush is about to write them (pending) or they moved on meanwhile
    skipped: int = 0
    #: why the run stopped before its end (``backlog``, ``daily_share``, ``deadline``, ``hubspot``)
    stopped_by: str | None = None
    started_at_ms: int = 0
    ended_at_ms: int = 0
    #: the audiences' lists checked (None: lists are not kept, and the answer says nothing of them)
    membership: MembershipDrift | None = None

    @property
    def stopped(self) -> bool:
        return self.stopped_by is not None

    @property
    def more(self) -> bool:
        """Contacts are left to check: call again with ``cursor`` (None: from the start, or the
        same contacts named). A run held by the budget (``stopped_by``) has more, however early
        it stopped."""
        return self.cursor is not None or self.stopped_by is not None

    def found(self, finding: Finding) -> None:
        self.drift[finding.kind] += 1
        if finding.repaired:
            self.repaired[finding.kind] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(finding)

    def as_json(self) -> dict[str, Any]:
        body = {
            "dryRun": self.dry_run,
            "checked": self.checked,
            "drift": {kind.value: self.drift.get(kind, 0) for kind in DriftKind},
            "repaired": sum(self.repaired.values()),
            "repairedByKind": {kind.value: self.repaired.get(kind, 0) for kind in DriftKind},
            "examples": [finding.as_json() for finding in self.examples],
            "more": self.more,
            "cursor": self.cursor,
            "calls": self.calls,
            "skipped": self.skipped,
            "stoppedBy": self.stopped_by,
            "startedAt": self.started_at_ms,
            "endedAt": self.ended_at_ms,
        }
        if self.membership is not None:
            body["membershipDrift"] = self.membership.as_json()
        return body
