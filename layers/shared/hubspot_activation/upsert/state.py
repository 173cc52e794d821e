"""A contact's state in the ledger, as the merge and the flusher see it: what the updates ask for
(``desired``), what HubSpot was last confirmed to hold (``confirmed``, a ``LedgerEntry``), and
whether HubSpot must be written from it (``pending``, due at ``due_ms``). Plain data and the
ports; the DynamoDB adapter is ``ledger.contact_state``.

States: pending, in flight (nothing stored), confirmed, failed (replayable), unconfirmed (an
ambiguous write: pending with a backoff). Transitions: docs/architecture.md ("A contact's state").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .ledger import LedgerEntry
from .plan import PendingContact


@dataclass
class ContactState:
    email: str
    #: what HubSpot was last confirmed to hold (None: never recorded)
    confirmed: LedgerEntry | None = None
    #: every update merged so far, newest change of each field (None: no update yet)
    desired: PendingContact | None = None
    #: counts the changes of the desired state: a recording is conditional on it
    version: int = 0
    #: when the contact became pending (None: not pending)
    pending_since_ms: int | None = None
    #: when the flusher may take it (a backoff moves it later)
    due_ms: int | None = None
    #: transient failures since it was last settled
    attempts: int = 0
    #: an operator's replay asked for it: a write HubSpot refused is sent once more
    replay: bool = False

    @property
    def pending(self) -> bool:
        return self.pending_since_ms is not None


@dataclass(frozen=True)
class PendingRef:
    email: str
    due_ms: int


@dataclass(frozen=True)
class PendingPage:
    """Pending contacts as the index lists them, oldest first."""

    refs: list[PendingRef]
    #: every contact due is in ``refs``: no marker was left unread
    complete: bool

    def __iter__(self) -> Iterator[PendingRef]:
        return iter(self.refs)

    def __len__(self) -> int:
        return len(self.refs)


@dataclass
class MergeResult:
    #: emails whose desired state changed (or that a replay or resume touched)
    changed: list[str] = field(default_factory=list)
    #: emails that became pending with this merge (they were not before)
    newly_pending: list[str] = field(default_factory=list)
    #: email -> why the ledger refused the contact's state (recorded as failed)
    refused: dict[str, str] = field(default_factory=dict)


@dataclass
class Recording:
    """What a flush records for one contact, read at ``version``."""

    email: str
    version: int
    #: the confirmed state to store (None: nothing new is known of what HubSpot holds)
    entry: LedgerEntry | None = None
    #: True: settled, out of the pending index unless the version moved on; False: stays pending
    settled: bool = True
    #: a contact that stays pending: when it is due again, and its count of transient failures
    due_ms: int | None = None
    attempts: int = 0


class ContactStates(Protocol):
    def read(self, emails: Sequence[str], now_ms: int | None = None) -> dict[str, ContactState]:
        """The contacts' states, strongly consistent (a contact without an item is absent).
        ``now_ms``: a flusher's read, which tells the store which contacts are due."""
        ...

    def merge(self, contacts: Sequence[PendingContact], now_ms: int) -> MergeResult:
        """Merge each contact's updates into its desired state with a conditional write, and mark
        it pending when it changed. Raises LedgerUnavailable when the store cannot be reached."""
        ...

    def pending(self, partitions: Sequence[int], due_by_ms: int, limit: int) -> PendingPage:
        """Pending contacts of these partitions due by ``due_by_ms``, oldest first, about
        ``limit`` of them (the index is eventually consistent: read their state before acting)."""
        ...

    def next_due(self, partitions: Sequence[int]) -> int | None:
        """When the earliest pending contact of these partitions is due (None: none pending)."""
        ...

    def record(self, recordings: Sequence[Recording], now_ms: int) -> dict[str, str]:
        """Store the outcomes; returns email -> reason for each the store refused (those are
        recorded as failed instead)."""
        ...


class FlushLease(Protocol):
    def acquire(self, lane: int, owner: str, until_ms: int, now_ms: int) -> bool:
        """Take the lane for ``owner`` until ``until_ms``: False when another owner holds it."""
        ...

    def ask_again(self, lane: int, now_ms: int) -> bool:
        """Ask the run holding the lane to run once more after it lets the lane go (a wake-up came
        while it ran, and what woke it may be past the point the run looks at): False when no run
        holds the lane any more (the caller takes it instead)."""
        ...

    def release(self, lane: int, owner: str) -> bool:
        """Let the lane go; True when another run asked this one to run again meanwhile."""
        ...
