"""Plain data of the list membership path: a membership change of one record, and the errors the
ports raise."""

from __future__ import annotations

from dataclasses import dataclass

#: How new a change is, compared element by element (the larger tuple is newer). The caller
#: chooses its parts; for an audience change: (timestamp ms, receive ms, position in the request,
#: the list's generation), so a newer change wins whatever order changes arrive in, and a list
#: recreated (a newer generation) takes the same change again.
Rank = tuple[int, ...]


@dataclass(frozen=True)
class Toggle:
    """A record's membership in an audience's list: added (``member``) or removed, and how new."""

    record_id: str
    member: bool
    rank: Rank

    @property
    def precedence(self) -> tuple[Rank, bool]:
        """Newer rank first; between equal ranks a removal wins, so the outcome never depends on
        which of the two arrived first."""
        return (self.rank, not self.member)


@dataclass(frozen=True)
class MembershipResult:
    """What HubSpot answered to one ``add-and-remove``: the ids it did not add or remove because no
    such record exists (``recordIdsMissing``)."""

    missing: frozenset[str] = frozenset()


class BufferFull(Exception):
    """A list buffer's item would pass its size bound with these changes: none of ``refused`` was
    appended (the others were), and the caller keeps those contacts pending until a drain makes
    room."""

    def __init__(self, audience_id: str, refused: frozenset[str]) -> None:
        super().__init__(f"list buffer of audience {audience_id!r} is full ({len(refused)} changes refused)")
        self.audience_id = audience_id
        self.refused = refused


class ListGone(Exception):
    """HubSpot has no such list (deleted or never there): the caller restores or recreates it."""

    def __init__(self, list_id: str) -> None:
        super().__init__(f"HubSpot list {list_id} is gone")
        self.list_id = list_id


class ChunkTooLarge(Exception):
    """HubSpot refused a membership call for the number of ids it carried."""


class MembershipUnavailable(Exception):
    """A membership call failed for a reason that may pass (a 429, a 5xx, a timeout, an ambiguous
    outcome): sending the same ids again is safe (add-and-remove is idempotent)."""
