"""An audience's metadata (written by the operator's routes, read by the merge and the flusher), one
item per audience keyed by ``keys.audience_key``; the item keeps the id itself in ``audienceId``
(a hashed key cannot be read back)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..upsert.audiences import AudienceMetadata
from .keys import KEY, audience_key
from .values import Item, integer, number, string, text

ACTIVE = "active"
DELETED = "deleted"
#: Set by a DELETE, cleared once a PUT queued the audience's resume job: the next PUT queues one.
RESUME_DUE = "resumeDue"


@dataclass(frozen=True)
class AudienceRecord:
    audience_id: str
    name: str | None
    description: str | None
    status: str
    updated_at_ms: int
    #: the PUT that saved this record must queue a resume job: the audience was deleted, or a PUT
    #: since re-activated it without queueing one (its send failed)
    resume_due: bool = False
    #: the audience's HubSpot list, its name there (the audience's, or suffixed on a clash) and
    #: its generation (``AudienceMetadata.list_generation``)
    list_id: str | None = None
    list_name: str | None = None
    list_generation: int = 0
    #: the list's last drain (None: never drained)
    list_flush: ListFlushRecord | None = None


@dataclass(frozen=True)
class ListFlushRecord:
    """The per-list bookkeeping the lists function keeps on the audience item: when its list was
    last drained (epoch ms), the error of that drain (None: it went through), the HubSpot calls
    of every drain so far, and the failed drains in a row (the backoff's exponent)."""

    last_flush_at_ms: int
    last_error: str | None
    calls: int
    failures: int = 0


def audience_key_item(audience_id: str) -> Item:
    return {KEY: string(audience_key(audience_id))}


def item_key(item: Mapping[str, Any]) -> str:
    """The table key an item was read under."""
    return str(item[KEY]["S"])


LIST_ID = "listId"
LIST_NAME = "listName"
LIST_GENERATION = "listGeneration"
#: ``ListFlushRecord``: the last drain's time (ms), its error (absent when fine), the calls (ADD)
#: and the failures in a row (absent after a drain that went through)
LIST_LAST_FLUSH_AT = "listLastFlushAt"
LIST_LAST_ERROR = "listLastError"
LIST_CALLS = "listCalls"
LIST_FAILURES = "listFailures"
#: a refill of the list from the ledger under way: the generation it refills, and the last
#: contact key read (absent: from the start). While it is under way the item also carries the
#: ``pending`` index's ``pendingPartition`` "lists" and ``dueAt``, so the sweep comes back to it.
LIST_REFILL_GENERATION = "listRefillGeneration"
LIST_REFILL_AFTER = "listRefillAfter"

#: What the consumer reads of an item (BatchGetItem's projection): its key, name, status and list.
METADATA_PROJECTION: dict[str, Any] = {
    "ProjectionExpression": "#k, #n, #s, #l, #g",
    "ExpressionAttributeNames": {
        "#k": KEY,
        "#n": "name",
        "#s": "status",
        "#l": LIST_ID,
        "#g": LIST_GENERATION,
    },
}


def metadata_from_item(item: Mapping[str, Any]) -> AudienceMetadata:
    return AudienceMetadata(
        item.get("name", {}).get("S"),
        item.get("status", {}).get("S") == DELETED,
        list_id=text(item, LIST_ID),
        list_generation=integer(item, LIST_GENERATION) or 0,
    )


def list_flush_from_item(item: Mapping[str, Any]) -> ListFlushRecord | None:
    """The list's bookkeeping on an audience item, None when its list was never drained."""
    at = integer(item, LIST_LAST_FLUSH_AT)
    if at is None:
        return None
    return ListFlushRecord(
        last_flush_at_ms=at,
        last_error=text(item, LIST_LAST_ERROR),
        calls=integer(item, LIST_CALLS) or 0,
        failures=integer(item, LIST_FAILURES) or 0,
    )


def record_from_item(item: Mapping[str, Any]) -> AudienceRecord:
    return AudienceRecord(
        audience_id=text(item, "audienceId") or "",
        name=text(item, "name"),
        description=text(item, "description"),
        status=text(item, "status") or ACTIVE,
        updated_at_ms=integer(item, "updatedAt") or 0,
        list_id=text(item, LIST_ID),
        list_name=text(item, LIST_NAME),
        list_generation=integer(item, LIST_GENERATION) or 0,
        list_flush=list_flush_from_item(item),
    )


def save_update(audience_id: str, name: str, description: str | None, now_ms: int) -> dict[str, Any]:
    """The UpdateItem arguments (less the table) that create or update, and re-activate, an
    audience, answering the item as it was before."""
    values: dict[str, Any] = {
        ":id": string(audience_id),
        ":name": string(name),
        ":active": string(ACTIVE),
        ":now": number(now_ms),
    }
    update = (
        "SET audienceId = :id, #n = :name, #st = :active, updatedAt = :now, "
        "createdAt = if_not_exists(createdAt, :now)"
    )
    if description is not None:
        values[":d"] = string(description)
        update += ", description = :d"
    update += " REMOVE deletedAt"
    return {
        "Key": audience_key_item(audience_id),
        "UpdateExpression": update,
        "ExpressionAttributeNames": {"#n": "name", "#st": "status"},
        "ExpressionAttributeValues": values,
        "ReturnValues": "ALL_OLD",
    }


def saved_record(
    audience_id: str, name: str, description: str | None, now_ms: int, before: Mapping[str, Any] | None
) -> AudienceRecord:
    """The audience as ``save_update`` left it, from the item as it was before (None: new)."""
    return AudienceRecord(
        audience_id=audience_id,
        name=name,
        description=description if description is not None else (text(before or {}, "description")),
        status=ACTIVE,
        updated_at_ms=now_ms,
        resume_due=bool(before) and (text(before or {}, "status") == DELETED or RESUME_DUE in (before or {})),
    )


def resume_queued_update(record: AudienceRecord) -> dict[str, Any]:
    """The UpdateItem arguments (less the table) that clear ``RESUME_DUE`` after the PUT that saved
    ``record`` queued its job; conditional on no DELETE or PUT since (the newest one decides)."""
    return {
        "Key": audience_key_item(record.audience_id),
        "UpdateExpression": "REMOVE " + RESUME_DUE,
        "ConditionExpression": "updatedAt = :at",
        "ExpressionAttributeValues": {":at": number(record.updated_at_ms)},
    }


def delete_update(audience_id: str, now_ms: int) -> dict[str, Any]:
    """The UpdateItem arguments (less the table) that mark an audience deleted (recorded so, if it
    never existed), answering the item as it is after."""
    return {
        "Key": audience_key_item(audience_id),
        "UpdateExpression": (
            "SET audienceId = :id, #st = :deleted, updatedAt = :now, "
            "deletedAt = if_not_exists(deletedAt, :now), createdAt = if_not_exists(createdAt, :now), "
            + RESUME_DUE
            + " = :due"
        ),
        "ExpressionAttributeNames": {"#st": "status"},
        "ExpressionAttributeValues": {
            ":id": string(audience_id),
            ":deleted": string(DELETED),
            ":now": number(now_ms),
            ":due": {"BOOL": True},
        },
        "ReturnValues": "ALL_NEW",
    }
