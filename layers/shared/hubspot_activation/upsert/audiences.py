"""Audience metadata as the merge and the flusher read it (written by the operations routes): the
stored name labels the audience's property, and a deleted audience's changes are held in the
ledger, not written (with a warning on the contact). Plain data and a Protocol; the DynamoDB
adapter is ``ledger.audience_directory``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class AudienceMetadata:
    name: str | None
    deleted: bool
    #: why DynamoDB refuses to read this audience's metadata (None when it was read): whether it
    #: is deleted is unknown, so its changes are kept for a replay instead of written
    unreadable: str | None = None
    #: the audience's HubSpot list (``AudienceTarget`` list or both), once one was made for it
    list_id: str | None = None
    #: bumped each time the list is made again (deleted in HubSpot): every member is sent again
    list_generation: int = 0


class AudienceDirectory(Protocol):
    def lookup(self, audience_ids: Iterable[str]) -> dict[str, AudienceMetadata]:
        """The metadata of the audiences that have some (the others are absent). A deleted status
        is read from the store, never from a cache: a change is held or written by the stored
        status, so a PUT that re-activated the audience is seen at once."""
        ...

    def forget(self, audience_ids: Iterable[str]) -> None:
        """Drop these audiences from the cache: their next lookup reads the store."""
        ...
