"""The ports reconcile reads and records through; the adapters are ``hubspot.reader`` (HubSpot's
batch reads) and ``ledger.reconcile_store`` (the contacts' items), and tests swap them."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Protocol

from ..upsert.state import ContactState
from .model import HubSpotRecord, ReconcileReport, Repair


class HubSpotReader(Protocol):
    """HubSpot's contact batch reads (``POST .../contacts/batch/read``), at most 100 keys a call:
    each method makes exactly one call."""

    def by_email(self, emails: Sequence[str], properties: Sequence[str]) -> dict[str, HubSpotRecord]:
        """Live contacts by email (``idProperty=email``), keyed by the email asked for (lower
        case); one HubSpot does not hold is absent."""
        ...

    def by_id(
        self, ids: Sequence[str], properties: Sequence[str], archived: bool
    ) -> dict[str, HubSpotRecord]:
        """Contacts by record id, keyed by the id asked for: live ones (a merged-away id answers
        with the record it was merged into), or with ``archived`` only archived ones."""
        ...


class MembershipReader(Protocol):
    """HubSpot's lists memberships batch read (``records/memberships/batch/read``), at most 100
    record ids a call: exactly one call."""

    def memberships(self, record_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        """The list ids each contact record is a member of, keyed by the record id asked for; a
        record HubSpot did not answer for (not found, an error of its own) is absent. Raises
        ``HubSpotError`` when the call fails."""
        ...


class TrackedContacts(Protocol):
    """The contacts the ledger tracks."""

    def page(self, cursor: str | None, limit: int) -> tuple[list[ContactState], str | None]:
        """About ``limit`` contacts from ``cursor`` (None: the start), and the cursor after them
        (None: no more)."""
        ...

    def read(self, emails: Sequence[str]) -> dict[str, ContactState]:
        """These contacts' states (one the ledger does not track is absent)."""
        ...

    def store(self, repairs: Sequence[Repair], now_ms: int) -> set[str]:
        """Store each repair if its contact is still at the version read and not pending; a
        repair with ``pending`` marks the contact pending for the flusher. Returns the emails
        stored."""
        ...


class ReconcileBudget(Protocol):
    """What reconcile may spend: the HubSpot budget live traffic leaves."""

    def hold(self) -> str | None:
        """Why reconcile must stop now (``backlog``: live traffic is waiting; ``daily_share``:
        its part of the daily budget is spent), or None."""
        ...

    def spent(self, calls: int) -> None:
        """Count calls made."""
        ...


class ContactReconciler(Protocol):
    """``service.Reconciler`` as the reconcile function, the journal poller and ``POST /reconcile``
    call it."""

    def run(
        self,
        *,
        dry_run: bool = False,
        cursor: str | None = None,
        emails: Collection[str] | None = None,
        deadline: float | None = None,
        max_contacts: int | None = None,
        progress: Callable[[ReconcileReport], None] | None = None,
    ) -> ReconcileReport: ...
