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


@dataclass(frozen=True)
class RemoteList:
    """A HubSpot list as the lists function needs it: its id, its name, and whether it is a MANUAL
    contact list (the only kind whose members the connector may set)."""

    list_id: str
    name: str
    manual_contacts: bool


@dataclass(frozen=True)
class ListAudience:
    """An audience as the lists function reads it from its metadata: its name, whether it is
    deleted, and its HubSpot list (id, name there, generation) once one was made for it."""

    audience_id: str
    name: str | None
    deleted: bool
    list_id: str | None = None
    list_name: str | None = None
    list_generation: int = 0
    #: a refill of the list from the ledger is under way (after the list was made again)
    refilling: bool = False
    #: where the refill's next page starts (None: at the start)
    refill_cursor: str | None = None


@dataclass(frozen=True)
class Appended:
    """What an append did to a list's buffer: whether the list had nothing waiting before (a timer
    starts), and whether a shard now holds its share of a chunk (due at once)."""

    started: bool
    due_now: bool


class ListNameTaken(Exception):
    """Another HubSpot list holds the name (HubSpot compares names without regard to case)."""

    def __init__(self, name: str | None) -> None:
        super().__init__(f"another HubSpot list holds the name {name!r}")
        self.name = name


class ListsStopped(Exception):
    """HubSpot refuses every lists call for now: the daily limit is spent, or the credential lacks
    the crm.lists scopes (a person must act). The run stops; nothing is lost (buffers stay)."""


class ListRefused(Exception):
    """HubSpot refused a lists call for a reason a retry of the same call cannot change (neither
    its size nor availability): recorded on the audience, retried after a backoff."""
