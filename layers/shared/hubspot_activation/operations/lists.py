"""What the operator's routes show of the audiences' HubSpot lists (``AudienceTarget`` list or
both): a contact's memberships (``GET /contacts/{email}``) and the lists with changes waiting
(``GET /sync/status``). Only when lists are kept: with ``property`` the routes answer without them.

A contact's membership as the ledger knows it: ``member`` is the newest status handed to the
list (``LedgerEntry.listed``) is ``realized``; ``pending`` says HubSpot's list may not show it
yet: a newer status waits to be handed (applied in ``audiences`` after the one listed, or the
list was made again since), or the one handed waits in the list's buffer to be sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..ledger.operations_store import MAX_LISTS_SHOWN, AudienceList, OperationsStore
from ..model import AudienceStatus
from ..timestamps import iso_from_ms
from ..upsert.ledger import LedgerEntry


def contact_lists(
    entry: LedgerEntry, audiences: Mapping[str, AudienceList], waiting: set[str]
) -> dict[str, Any]:
    """Per audience the contact was handed to a list or has a status of: ``{listId, member,
    pending}`` (``listId`` null until the lists function made the list)."""
    shown: dict[str, Any] = {}
    for audience_id in sorted({*entry.listed, *entry.audiences}):
        listed = entry.listed.get(audience_id)
        applied = entry.audiences.get(audience_id)
        audience = audiences.get(audience_id)
        newer = applied is not None and (
            listed is None or (applied.timestamp_ms, applied.order) > (listed.timestamp_ms, listed.order)
        )
        made_again = (
            listed is not None and audience is not None and listed.generation < audience.list_generation
        )
        shown[audience_id] = {
            "listId": audience.list_id if audience else None,
            "member": listed is not None and listed.status == AudienceStatus.REALIZED.value,
            "pending": newer or made_again or audience_id in waiting,
        }
    return shown


def _list_view(audience_id: str, adds: int, removes: int, audience: AudienceList | None) -> dict[str, Any]:
    last_flush = audience.last_flush_at_ms if audience else None
    return {
        "audienceId": audience_id,
        "listId": audience.list_id if audience else None,
        "listName": audience.list_name if audience else None,
        "audienceStatus": audience.status if audience else None,
        "pendingAdds": adds,
        "pendingRemoves": removes,
        "lastFlushAt": iso_from_ms(last_flush) if last_flush else None,
        "lastError": audience.last_error if audience else None,
        "flushCalls": audience.calls if audience else None,
    }


class AudienceLists:
    def __init__(self, store: OperationsStore, max_lists: int = MAX_LISTS_SHOWN) -> None:
        self._store = store
        self._max_lists = max_lists

    def of_contact(self, entry: LedgerEntry) -> dict[str, Any]:
        """``GET /contacts/{email}``'s ``lists``: a BatchGetItem of the audiences' items, and one
        of the buffer shards the contact's record lands in (none without a record id)."""
        audience_ids = sorted({*entry.listed, *entry.audiences})
        if not audience_ids:
            return {}
        audiences = self._store.audience_lists(audience_ids)
        # Changes are buffered before the list is made: every audience's buffer is looked at.
        waiting = self._store.waiting_in_lists(entry.hubspot_id, audience_ids) if entry.hubspot_id else set()
        return contact_lists(entry, audiences, waiting)

    def waiting(self) -> dict[str, Any]:
        """``GET /sync/status``'s ``lists``: the lists with membership changes not sent yet, the
        longest due first, at most ``max_lists`` (``more``: others wait too). A list in step
        (nothing waiting) is not shown."""
        found = self._store.lists_waiting(self._max_lists)
        return {
            "waiting": [
                _list_view(item.audience_id, item.adds, item.removes, item.audience) for item in found.lists
            ],
            "pendingAdds": sum(item.adds for item in found.lists),
            "pendingRemoves": sum(item.removes for item in found.lists),
            "more": found.more,
        }
