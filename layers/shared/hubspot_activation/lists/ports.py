"""The ports the list drain works through: HubSpot's list memberships (the adapter is the HubSpot
client's lists part) and the ledger's list buffers (``ledger.list_buffer``). Tests swap both."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .model import MembershipResult, Toggle


class ListMemberships(Protocol):
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
