"""What the tests build with the product's own pieces, where the product builds it otherwise."""

from __future__ import annotations

from collections.abc import Iterable

from hubspot_activation.messages import DEFAULT_MAX_MESSAGE_BYTES, QueueMessage, encode_update, pack_encoded
from hubspot_activation.model import ContactUpdate


def pack(
    updates: Iterable[ContactUpdate], shard_count: int, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> list[QueueMessage]:
    """Queue messages of ``updates`` as ingest packs a request's: by shard, request order kept inside
    each shard; updates received at different times never share a message (the envelope has one
    receive time)."""
    messages: list[QueueMessage] = []
    by_receive_time: dict[int, list[tuple[str, str]]] = {}
    for update in updates:
        by_receive_time.setdefault(update.received_ms, []).append((update.email, encode_update(update)))
    for received_ms, encoded in by_receive_time.items():
        messages.extend(pack_encoded(encoded, shard_count, max_message_bytes, received_ms))
    return messages


def is_contact_key(key: str) -> bool:
    """Contacts are keyed by their email; every other item kind's key is without ``@`` (ledger/keys.py)."""
    return "@" in key
