"""The ports the list drain works through: HubSpot's list memberships (the adapter is the HubSpot
client's lists part) and the ledger's list buffers (``ledger.list_buffer``). Tests swap both."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .model import Appended, ListAudience, MembershipResult, Rank, RemoteList, Toggle


class ListMemberships(Protocol):
    """HubSpot's list memberships (the adapter is ``hubspot.list_ports``)."""

    def add_and_remove(self, list_id: str, add: list[str], remove: list[str]) -> MembershipResult:
        """One ``PUT /lists/{listId}/memberships/add-and-remove`` (never an id in both lists).
        Raises ``ListGone`` (a 404), ``ChunkTooLarge`` (refused for its size),
        ``MembershipUnavailable`` (may pass: retried as it is); anything else is not retried."""
        ...


class ListBuffer(Protocol):
    def append(self, audience_id: str, toggles: Sequence[Toggle], now_ms: int) -> bool:
        """Keep each record's newest change (``Toggle.precedence``) to send; an older or equal one
        than the record's newest kept or sent changes nothing. True when the list had nothing to
        send before (a timer starts). Raises ``BufferFull``."""
        ...

    def read(self, audience_id: str) -> list[Toggle]:
        """The changes waiting to be sent, oldest rank first (strongly consistent)."""
        ...

    def settle(self, audience_id: str, sent: Sequence[Toggle], now_ms: int) -> None:
        """Take out the changes HubSpot applied, each only if it is still the record's newest (a
        change appended meanwhile stays, to be sent next)."""
        ...


class DueLists(Protocol):
    def due(self, now_ms: int, limit: int = 100) -> list[str]:
        """The audiences whose list changes are due by ``now_ms`` (the first change waited its
        ListFlushSeconds, or a shard holds its share of a chunk), the longest due first."""
        ...

    def oldest(self, audience_id: str) -> int | None:
        """When the oldest change waiting arrived, at the latest (epoch ms; None: nothing waits):
        the list is due by age ListFlushSeconds after it."""
        ...

    def postpone(self, audience_id: str, due_ms: int) -> None:
        """Make the changes waiting for the list due at ``due_ms`` (a backoff, a parked list); a
        shard filled to its share of a chunk afterwards is due at once again."""
        ...


class ListTimer(Protocol):
    def start(self, audience_id: str, delay_seconds: int) -> None:
        """Wake a drain of the audience's list after ``delay_seconds`` (0: at once). Best effort:
        the lists function's schedule sweeps whatever a lost timer leaves due."""
        ...


class ListChanges(Protocol):
    """What the flusher hands membership changes to (``lists.changes.BufferedListChanges``)."""

    def append(self, audience_id: str, toggles: Sequence[Toggle], now_ms: int) -> None:
        """Keep these changes for the audience's list (each record's newest wins, whatever the
        order of the calls) and make sure a drain comes for them. Raises ``BufferFull`` (the
        changes it names were not kept, the others were) and ``LedgerUnavailable``."""
        ...


class ListAppender(Protocol):
    def append_changes(self, audience_id: str, toggles: Sequence[Toggle], now_ms: int) -> Appended:
        """``ListBuffer.append``, also saying whether the list's changes are now due at once."""
        ...


class ListLease(Protocol):
    def acquire(self, audience_id: str, owner: str, until_ms: int, now_ms: int) -> bool:
        """Take the audience's list for one drain until ``until_ms`` (False: another holds it)."""
        ...

    def release(self, audience_id: str, owner: str) -> None:
        """Let it go (only if ``owner`` still holds it)."""
        ...


class ListAudiences(Protocol):
    """The audiences' metadata as the lists function reads and writes it (``ledger.list_audiences``)."""

    def get(self, audience_id: str) -> ListAudience | None:
        """The audience as stored (strongly consistent), None when it was never PUT nor seen."""
        ...

    def store_list(
        self, audience_id: str, list_id: str, list_name: str, replacing: str | None
    ) -> ListAudience:
        """Keep the audience's list id and name, only if its stored id is still ``replacing``
        (None: no list yet); the first writer wins. The audience as stored after."""
        ...

    def next_generation(self, audience_id: str, generation: int) -> int:
        """Bump the list's generation from ``generation`` (conditional: a concurrent bump counts
        as this one); the generation after."""
        ...

    def start_refill(self, audience_id: str, generation: int, now_ms: int) -> None:
        """A refill of the list's generation ``generation`` starts (from the start); the audience
        waits in the due lists until it is done, so a sweep continues it."""
        ...

    def refill_from(self, audience_id: str, cursor: str | None, generation: int, now_ms: int) -> None:
        """Keep where the refill of ``generation`` goes on (None: it is done); nothing when a
        newer refill started meanwhile."""
        ...

    def record_flush(self, audience_id: str, now_ms: int, calls: int, error: str | None) -> int:
        """Per-list bookkeeping: the last drain's time, its error (None: fine) and its calls; the
        failed drains in a row after this one."""
        ...


class RemoteLists(Protocol):
    """HubSpot's lists themselves (the adapter is ``hubspot.list_ports``)."""

    def create(self, name: str) -> RemoteList:
        """A new MANUAL contact list; ``ListNameTaken`` when another list holds the name."""
        ...

    def find_by_name(self, name: str) -> RemoteList | None:
        """The live list with that name (without regard to case), or None."""
        ...

    def restore(self, list_id: str) -> bool:
        """Bring a deleted list back with its id: False when it cannot be (purged, never there);
        ``ListNameTaken`` when another list took its name meanwhile."""
        ...


class RealizedMembers(Protocol):
    """The ledger's contacts whose newest status handed to an audience's list is ``realized``."""

    def page(
        self, audience_id: str, cursor: str | None, limit: int
    ) -> tuple[list[tuple[str, Rank]], str | None]:
        """One page of about ``limit`` contacts read: each member's record id and the rank of its
        listed status without the generation (timestamp ms, order), and the cursor of the next
        page (None: that was the last)."""
        ...
