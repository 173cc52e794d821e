"""The contact side of the audience lists (``AudienceTarget`` list or both), pure: which statuses a
contact's entry must hand to its audiences' lists, as membership changes (``lists.model.Toggle``).

A contact is in an audience's list exactly when its newest applied status for the audience
(``LedgerEntry.audiences``, the same ordering rules as the property) is ``realized``. The entry's
``listed`` remembers the newest status handed to each list's buffer; a status is handed when it is
newer by (timestamp, receive order) than that one, or when the list was made again since (a newer
``list_generation``: every member goes to the new list).

Nothing is handed for:
- a contact without a HubSpot record id (a list holds records: it is written first to learn it);
- a contact deleted in HubSpot (``DELETED``) or erased: HubSpot dropped its record from every list,
  so a removal is pointless and an addition would name a record that is gone. Its ``listed`` stays
  as it was while it stays deleted; the record that re-creates it is a new id, and ``forgotten``
  clears ``listed`` with ``audiences``, so every applied status is handed again under that id;
- an audience deleted through its metadata, or whose metadata cannot be read: absent from
  ``generations`` (its newest change is held or kept, as for the property).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..lists.model import Toggle
from ..model import AudienceStatus
from .ledger import DELETED, LedgerEntry, ListedAudience


@dataclass(frozen=True)
class HandOff:
    """One status for one audience's list: the change to buffer, and what ``listed`` records once
    it is buffered."""

    toggle: Toggle
    listed: ListedAudience


def list_hand_offs(entry: LedgerEntry, generations: Mapping[str, int]) -> dict[str, HandOff]:
    """Audience id -> the status of ``entry`` its list must be handed. ``generations``: the live
    audiences' list generations (``AudienceMetadata.list_generation``); an audience absent from it
    is handed nothing."""
    record_id = entry.hubspot_id
    if record_id is None or entry.status == DELETED or entry.erased:
        return {}
    due: dict[str, HandOff] = {}
    for audience_id, applied in entry.audiences.items():
        generation = generations.get(audience_id)
        if generation is None:
            continue
        handed = entry.listed.get(audience_id)
        if (
            handed is not None
            and (applied.timestamp_ms, applied.order) <= (handed.timestamp_ms, handed.order)
            and handed.generation >= generation
        ):
            continue
        toggle = Toggle(
            record_id,
            applied.status == AudienceStatus.REALIZED.value,
            (applied.timestamp_ms, applied.order[0], applied.order[1], generation),
        )
        due[audience_id] = HandOff(
            toggle, ListedAudience(applied.status, applied.timestamp_ms, applied.order, generation)
        )
    return due


__all__ = ["HandOff", "list_hand_offs"]
