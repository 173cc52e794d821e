"""The ports the sync writes and records through (HubSpot's contact writes, the queue's
dead-letter queue and visibility, the held markers, the flusher's wake-up); the adapters are in
``adapter`` and ``ledger``, and tests swap them."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from ..hubspot.batch import UpdateInput, UpsertInput, UpsertResult
from ..hubspot.client import CallStats
from .plan import InboundMessage


class ContactWriter(Protocol):
    """The part of the HubSpot client the flusher writes through."""

    def batch_upsert(
        self, inputs: Sequence[UpsertInput], deadline: float | None = None
    ) -> list[UpsertResult]:
        """``deadline``, a value of the writer's monotonic clock: the call, its retries and waits
        included, ends by then (it raises a transient HubSpotError, ``DeadlineReached`` when
        nothing was sent, rather than run past it)."""
        ...

    def batch_update(
        self, inputs: Sequence[UpdateInput], deadline: float | None = None
    ) -> list[UpsertResult]:
        """Write contacts by record id (``batch/update``); one result per input, in input order,
        reported under the input's ``email``, with the same errors and ``deadline`` as
        ``batch_upsert``. A record HubSpot no longer has is a per-input error (not found)."""
        ...

    def stats(self) -> CallStats: ...

    @property
    def max_call_seconds(self) -> float:
        """The longest one call takes when nothing cuts it short: every retry and wait of it."""
        ...


class ReadContact(Protocol):
    """A contact as a batch read returned it."""

    @property
    def id(self) -> str:
        """Its record id."""
        ...

    @property
    def properties(self) -> Mapping[str, str | None]:
        """The properties asked for (None or absent: empty)."""
        ...


class ContactReader(Protocol):
    """HubSpot's contact batch reads the flusher makes before a ``fill_empty`` write, at most 100
    keys a call (the adapter: ``hubspot.reader``)."""

    def by_email(
        self, emails: Sequence[str], properties: Sequence[str], deadline: float | None = None
    ) -> Mapping[str, ReadContact]:
        """Live contacts by email, keyed by the email asked for in lower case; one HubSpot does not
        hold is absent. ``deadline`` as for ``ContactWriter.batch_upsert``."""
        ...

    def by_id(
        self, ids: Sequence[str], properties: Sequence[str], archived: bool, deadline: float | None = None
    ) -> Mapping[str, ReadContact]:
        """Contacts by record id, keyed by the id asked for (a merged-away id answers with the
        record it was merged into)."""
        ...


class DeadLetters(Protocol):
    def send(self, messages: Sequence[InboundMessage]) -> set[str]:
        """Move these messages to the dead-letter queue; returns the ids that could not be moved."""
        ...


class HeldMarkers(Protocol):
    """The held markers of the ledger (see ``ledger.keys``): (email, audience id) pairs."""

    def mark_held(self, marks: Sequence[tuple[str, str]], now_ms: int) -> None: ...

    def unmark_held(self, marks: Sequence[tuple[str, str]]) -> None: ...


class VisibilityExtender(Protocol):
    def extend(self, messages: Sequence[InboundMessage], seconds: int) -> None:
        """Make these received messages visible again in ``seconds`` (a retry backoff, or 0: at
        once)."""
        ...


class FlushWaker(Protocol):
    def wake(self, lanes: Collection[int], sweep: bool = False) -> None:
        """Start a flush of these lanes (a lane already being flushed is left to its run);
        ``sweep``: lane 0 also reads the partitions of lanes that no longer exist."""
        ...
