"""Per-contact sync state: what was applied to HubSpot, so stale changes and identical writes are
skipped and every outcome is recorded. Plain data; the DynamoDB adapter is ``ledger.contact_state``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

SYNCED = "synced"
FAILED = "failed"
#: A contact whose only known write had an ambiguous outcome (it may or may not be in HubSpot).
UNCONFIRMED = "unconfirmed"
#: A contact deleted (archived) in HubSpot, found by reconcile: not written again until the source
#: sends a changed update (or ``HubSpotDeletions=recreate``).
DELETED = "deleted"

#: What HubSpot did to the contact's record behind the connector's back, when it changes how the
#: contact is written (``LedgerEntry.hubspot_state``):
#: erased (GDPR delete): HubSpot refuses the email; never sent again until an operator's replay;
ERASED = "erased"
#: merged into a record with another primary email: written by record id, never by email (a write
#: by email could create a duplicate where HubSpot does not match additional emails).
MERGED = "merged"


#: (receive time in ms, position in the request): the order in which the ingest API received an update.
Order = tuple[int, int]
#: The order of anything recorded before updates carried one: older than every real order.
UNORDERED: Order = (0, 0)


@dataclass
class AppliedAudience:
    status: str
    timestamp_ms: int
    order: Order = UNORDERED


@dataclass(frozen=True)
class ListedAudience:
    """The newest status of an audience handed to its HubSpot list's buffer for this contact (a
    member while ``realized``), and the list's generation then (a list made again takes every
    member again)."""

    status: str
    timestamp_ms: int
    order: Order
    generation: int


@dataclass
class PendingAudience:
    """An audience change that could not be applied for a reason an operator can fix (no property
    for the audience): kept until it is applied or a newer change replaces it."""

    status: str
    timestamp_ms: int
    order: Order = UNORDERED
    name: str | None = None


@dataclass
class PendingAttribute:
    """An attribute value that could not be written because HubSpot has no such property yet."""

    value: str | int | float | bool
    order: Order = UNORDERED


@dataclass
class LedgerEntry:
    email: str
    status: str
    hubspot_id: str | None = None
    #: audience id -> the newest status written to HubSpot, its timestamp and receive order
    audiences: dict[str, AppliedAudience] = field(default_factory=dict)
    #: property -> value of the last successful write (identical writes are skipped)
    written: dict[str, str] = field(default_factory=dict)
    #: attribute property -> receive order of the newest update that asked for its written value
    attribute_order: dict[str, Order] = field(default_factory=dict)
    #: changes kept for a replay after an operator's fix (property limit, missing property), and
    #: the newest change of each audience deleted when it arrived (written when it is PUT again)
    pending_audiences: dict[str, PendingAudience] = field(default_factory=dict)
    pending_attributes: dict[str, PendingAttribute] = field(default_factory=dict)
    reason: str | None = None
    warnings: dict[str, str] = field(default_factory=dict)
    updated_at_ms: int = 0
    #: fingerprint of the last write HubSpot refused for good: the same write is not sent again
    rejected: str | None = None
    #: when a write's outcome was last ambiguous (a timeout, a dropped connection, a 5xx): HubSpot
    #: may apply it late, so what ``written`` says is not trusted until a later write is confirmed
    unconfirmed_at_ms: int | None = None
    #: None, ``ERASED`` or ``MERGED`` (see there)
    hubspot_state: str | None = None
    #: ``fill_empty`` property -> the value HubSpot was seen to hold that the connector did not
    #: write: HubSpot's value wins, so the source's is not written (and no read asks again)
    held: dict[str, str] = field(default_factory=dict)
    #: property -> fingerprint (``value_fingerprint``) of the value HubSpot's validation refused for
    #: it: that value is not sent again until it changes or an operator replays the contact
    refused_values: dict[str, str] = field(default_factory=dict)
    #: audience id -> the newest status handed to the audience's list (``AudienceTarget`` list or
    #: both): a newer applied status, or a newer list generation, is handed to the list again
    listed: dict[str, ListedAudience] = field(default_factory=dict)

    def forgotten(self, status: str, now_ms: int, **changes: Any) -> LedgerEntry:
        """This contact as the connector must see it when HubSpot holds nothing of it any more
        (deleted to be re-created, erased): no record, nothing written, applied or in a list (a
        re-created record is a new id, which every list must take again), no refusal remembered;
        what it keeps for a replay stays."""
        nothing: dict[str, Any] = {
            "status": status,
            "hubspot_id": None,
            "hubspot_state": None,
            "audiences": {},
            "listed": {},
            "written": {},
            "attribute_order": {},
            "held": {},
            "rejected": None,
            "updated_at_ms": now_ms,
        }
        return replace(self, **{**nothing, **changes})

    @property
    def erased(self) -> bool:
        return self.hubspot_state == ERASED

    @property
    def written_by_id(self) -> bool:
        return self.hubspot_state == MERGED and self.hubspot_id is not None

    @property
    def replayable(self) -> bool:
        return bool(self.pending_audiences or self.pending_attributes)

    @property
    def holds_changes(self) -> bool:
        """Changes kept without a failure: those of audiences deleted when they arrived (every
        other pending change fails the contact). A PUT re-activating an audience resumes them."""
        return self.status != FAILED and bool(self.pending_audiences)


def value_fingerprint(value: str) -> str:
    """A short, stable stand-in for a property value (values run to 65,536 characters)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


class LedgerUnavailable(Exception):
    """The ledger could not be read or written: the messages go back to the queue."""
