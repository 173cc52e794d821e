"""The reconciler: reads what HubSpot holds for tracked contacts (100 a call, only the managed
properties), compares it with each contact's confirmed state, and repairs through the flusher.
It knows nothing about Lambda: the handlers pass what to check and until when."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from ..upsert.ports import FlushWaker
from ..upsert.schema import PropertySchema
from .model import DeletionPolicy, ReconcileReport
from .ports import HubSpotReader, ReconcileBudget, TrackedContacts


@dataclass(frozen=True)
class ReconcileSettings:
    deletions: DeletionPolicy = DeletionPolicy.RESPECT
    #: contacts read per HubSpot call (HubSpot's batch read takes at most 100)
    page_size: int = 100
    #: flush lanes (a repaired contact's lane is woken)
    lanes: int = 1


class Reconciler:
    def __init__(
        self,
        contacts: TrackedContacts,
        reader: HubSpotReader,
        schema: PropertySchema,
        budget: ReconcileBudget,
        settings: ReconcileSettings = ReconcileSettings(),
        waker: FlushWaker | None = None,
        lane_of: Callable[[str], int] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._contacts = contacts
        self._reader = reader
        self._schema = schema
        self._budget = budget
        self._settings = settings
        self._waker = waker
        self._lane_of = lane_of
        self._clock = clock
        self._monotonic = monotonic

    def run(
        self,
        *,
        dry_run: bool = False,
        cursor: str | None = None,
        emails: Collection[str] | None = None,
        deadline: float | None = None,
        max_contacts: int | None = None,
        progress: Callable[[ReconcileReport], None] | None = None,
    ) -> ReconcileReport:
        """Check the contacts named by ``emails`` (normalized; untracked ones are not counted), or
        else walk the tracked contacts from ``cursor``, until ``deadline`` (on ``monotonic``),
        ``max_contacts`` checked, or the budget holds. ``dry_run``: find, store nothing, write
        nothing. ``progress`` is called after each page."""
        raise NotImplementedError
