"""The queue message format both functions share: packing ContactUpdates into FIFO messages,
and decoding them again.

All updates of one contact land in one message group (``c<crc32(email) mod shards>``) so the
consumer sees them in order and never concurrently; many updates share a message so a
1,000-profile request costs a couple of SQS calls, not a thousand.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .model import ContactUpdate

MESSAGE_FORMAT_VERSION = 1
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024
_ENVELOPE_OVERHEAD = len('{"v":1,"updates":[]}')


def shard_of(email: str, shard_count: int) -> str:
    """The FIFO message group of a contact; stable across deployments for a given shard count."""
    return f"c{zlib.crc32(email.encode('utf-8')) % shard_count}"


def encode_update(update: ContactUpdate) -> str:
    return json.dumps(update.to_json(), separators=(",", ":"), ensure_ascii=False)


def message_body(encoded_updates: Sequence[str]) -> str:
    return '{"v":%d,"updates":[%s]}' % (MESSAGE_FORMAT_VERSION, ",".join(encoded_updates))  # noqa: UP031


def decode_message(body: str) -> list[ContactUpdate]:
    document = json.loads(body)
    if not isinstance(document, dict) or document.get("v") != MESSAGE_FORMAT_VERSION:
        raise ValueError(f"unsupported message format: {str(document)[:80]}")
    return [ContactUpdate.from_json(item) for item in document["updates"]]


def fits_in_message(encoded_update: str, max_message_bytes: int) -> bool:
    return len(encoded_update.encode("utf-8")) + _ENVELOPE_OVERHEAD <= max_message_bytes


@dataclass(frozen=True, slots=True)
class QueueMessage:
    group_id: str
    body: str
    update_count: int

    @property
    def deduplication_id(self) -> str:
        """A caller's retry of the same request packs to the same bodies, which SQS then drops."""
        return hashlib.sha256(self.body.encode("utf-8")).hexdigest()

    @property
    def size(self) -> int:
        return len(self.body.encode("utf-8"))


def pack(
    updates: Iterable[ContactUpdate], shard_count: int, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> list[QueueMessage]:
    """Group updates by shard, keeping request order inside each shard, into messages of at most
    ``max_message_bytes``. Every update must already fit on its own (see ``fits_in_message``)."""
    return pack_encoded(((u.email, encode_update(u)) for u in updates), shard_count, max_message_bytes)


def pack_encoded(
    updates: Iterable[tuple[str, str]], shard_count: int, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> list[QueueMessage]:
    """``pack`` for updates already encoded, as (email, encoded update) pairs."""
    pending: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    messages: list[QueueMessage] = []
    for email, encoded in updates:
        if not fits_in_message(encoded, max_message_bytes):
            raise ValueError(f"an update of {len(encoded)} bytes does not fit in one message")
        group = shard_of(email, shard_count)
        size = len(encoded.encode("utf-8")) + 1  # the separating comma
        if group in pending and sizes[group] + size > max_message_bytes:
            messages.append(QueueMessage(group, message_body(pending[group]), len(pending[group])))
            del pending[group]
        if group not in pending:
            pending[group], sizes[group] = [], _ENVELOPE_OVERHEAD
        pending[group].append(encoded)
        sizes[group] += size
    messages.extend(QueueMessage(group, message_body(items), len(items)) for group, items in pending.items())
    return messages
