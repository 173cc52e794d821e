"""The queue message format both functions share: packing ContactUpdates into FIFO messages,
and decoding them again.

All updates of one contact land in one message group (``c<crc32(email) mod shards>``) so the
merge function never merges them concurrently; many updates share a message so a
1,000-profile request costs a couple of SQS calls, not a thousand.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from .ledger.keys import audience_digest
from .model import ContactUpdate, as_integer

#: v2 carries the receive time in the envelope and each update's position in its request.
MESSAGE_FORMAT_VERSION = 2
#: The ``source`` of the updates a replay enqueues: no change of their own, they make the consumer
#: apply what the ledger keeps pending and send a write HubSpot refused once more.
REPLAY_SOURCE = "replay"
#: The ``source`` of the updates a resume job enqueues for the contacts holding changes of a
#: re-activated audience: no change of their own, they make the consumer write what the ledger keeps
#: pending, and (unlike a replay) ask HubSpot for nothing more.
RESUME_SOURCE = "resume"
#: The message group of an audience's resume jobs starts with this (a contact's group is ``c<n>``).
RESUME_GROUP_PREFIX = "resume-"
#: Messages of the first format may still be on a queue when a new version is deployed.
_READABLE_VERSIONS = frozenset({1, 2})
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024
_ENVELOPE_OVERHEAD = len('{"v":2,"rcv":,"updates":[]}') + 20  # 20: the digits of any epoch in ms


def shard_of(email: str, shard_count: int) -> str:
    """The FIFO message group of a contact; stable across deployments for a given shard count."""
    return f"c{zlib.crc32(email.encode('utf-8')) % shard_count}"


def encode_update(update: ContactUpdate) -> str:
    return json.dumps(update.to_json(), separators=(",", ":"), ensure_ascii=False)


def decode_message(body: str) -> list[ContactUpdate]:
    """The updates of a queue message; ``ValueError``, and only that, for a body that is not one
    of ours: whatever a hostile body holds (nesting the decoder cannot descend, a number no integer
    holds, text with no UTF-8 form, values of the wrong type), the consumer and the replay set the
    message aside rather than fail on it."""
    with _not_ours():
        document = _load(body)
        version = document.get("v") if isinstance(document, dict) else None
        if type(version) is not int or version not in _READABLE_VERSIONS:
            raise ValueError(f"unsupported message format: version {str(version)[:20]}")
        received_ms = as_integer(document.get("rcv", 0), "rcv")
        updates = document["updates"]
        if not isinstance(updates, list):
            raise ValueError("unsupported message format: updates is not a list")
        return [ContactUpdate.from_json(item, received_ms) for item in updates]


@contextmanager
def _not_ours() -> Iterator[None]:
    """Whatever a hostile body makes the decoding raise becomes ``ValueError``."""
    try:
        yield
    except RecursionError:
        # The decoder gives up on nesting of about a thousand levels; no message of ours nests.
        raise ValueError("unsupported message format: nested too deep") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"unsupported message format: {type(exc).__name__} {str(exc)[:80]}") from None


def _load(body: str) -> Any:
    document = json.loads(body, parse_constant=_reject_constant, parse_float=_finite)
    if _ESCAPED_SURROGATE.search(body):
        _check_utf8(document)
    return document


#: Ours are written with ``ensure_ascii=False``: a ``\\uD800``-``\\uDFFF`` escape appears only in a
#: body someone else wrote (or before a literal backslash, which the full check then clears).
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _check_utf8(document: Any) -> None:
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("unsupported message format: text with no UTF-8 form (a lone surrogate)") from None


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"unsupported message format: {name} is not a number of ours")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"unsupported message format: {text[:40]} is not a finite number")
    return value


def fits_in_message(encoded_update: str, max_message_bytes: int) -> bool:
    return len(encoded_update.encode("utf-8")) + _ENVELOPE_OVERHEAD <= max_message_bytes


@dataclass(frozen=True, slots=True)
class QueueMessage:
    group_id: str
    #: the encoded updates, comma-separated: the message's content without its receive time
    content: str
    update_count: int
    received_ms: int = 0
    #: Set by a replay: the same content sent again on purpose must not be dropped as a duplicate.
    nonce: str = ""
    #: A resume job's own member of the envelope (``,"resume":{...}``), in place of the update
    #: list: a consumer that knows no jobs cannot decode the message and sends it to the DLQ, from
    #: where ``POST /replay`` brings it back, instead of deleting it as a message without updates.
    job: str = ""

    @property
    def body(self) -> str:
        if self.job:
            return '{"v":%d,"rcv":%d%s}' % (MESSAGE_FORMAT_VERSION, self.received_ms, self.job)  # noqa: UP031
        return '{"v":%d,"rcv":%d,"updates":[%s]}' % (  # noqa: UP031
            MESSAGE_FORMAT_VERSION,
            self.received_ms,
            self.content,
        )

    @property
    def deduplication_id(self) -> str:
        """A caller's retry of the same request packs to the same content, which SQS then drops
        within its 5-minute window, whatever the time each copy was received."""
        nonce = f":{self.nonce}" if self.nonce else ""
        return hashlib.sha256(f"{self.group_id}:{self.content}{self.job}{nonce}".encode()).hexdigest()

    @property
    def size(self) -> int:
        return len(self.body.encode("utf-8"))


def pack_encoded(
    updates: Iterable[tuple[str, str]],
    shard_count: int,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    received_ms: int = 0,
) -> list[QueueMessage]:
    """Group one request's encoded updates, as (email, encoded update) pairs, by shard, keeping
    request order inside each shard, into messages of at most ``max_message_bytes`` received at
    ``received_ms``. Every update must already fit on its own (see ``fits_in_message``)."""
    pending: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    messages: list[QueueMessage] = []

    def close(group: str) -> None:
        items = pending.pop(group)
        messages.append(QueueMessage(group, ",".join(items), len(items), received_ms))

    for email, encoded in updates:
        if not fits_in_message(encoded, max_message_bytes):
            raise ValueError(f"an update of {len(encoded)} bytes does not fit in one message")
        group = shard_of(email, shard_count)
        size = len(encoded.encode("utf-8")) + 1  # the separating comma
        if group in pending and sizes[group] + size > max_message_bytes:
            close(group)
        if group not in pending:
            pending[group], sizes[group] = [], _ENVELOPE_OVERHEAD
        pending[group].append(encoded)
        sizes[group] += size
    for group in list(pending):
        close(group)
    return messages


@dataclass(frozen=True)
class ResumeJob:
    """Resume the contacts holding changes of an audience an operator re-activated: the consumer
    reads one page of them (from ``cursor``), queues each an update of source ``resume``, and sends
    the job on with the next page's cursor. After the last page, a ``sweep`` job due ``due_ms``
    reads them all once more, for the changes held while the index had not caught up."""

    audience_id: str
    cursor: str | None = None
    sweep: bool = False
    #: not before this epoch ms (0: at once); a job received earlier goes back invisible until then
    due_ms: int = 0

    def message(self, nonce: str, received_ms: int) -> QueueMessage:
        """``nonce`` makes it a message of its own (a PUT's request id, or the id of the job it
        continues, so a job received twice continues once)."""
        job = {"audience": self.audience_id, "cursor": self.cursor, "sweep": self.sweep, "due": self.due_ms}
        member = ',"resume":' + json.dumps(job, separators=(",", ":"), ensure_ascii=False)
        return QueueMessage(self.group_id, "", 0, received_ms, nonce=nonce, job=member)

    @property
    def group_id(self) -> str:
        """The FIFO message group of the audience's jobs."""
        return RESUME_GROUP_PREFIX + audience_digest(self.audience_id)


def requeue_messages(
    emails: list[str], source: str, nonce: str, shard_count: int, received_ms: int
) -> list[QueueMessage]:
    """Messages that ask the consumer to write these contacts again from the ledger (an update
    with no change of its own, tagged with ``source``). ``nonce`` makes them new to SQS's
    deduplication, which would otherwise drop the same contacts sent within five minutes."""
    encoded = [
        (email, encode_update(ContactUpdate(email, source=source, received_ms=received_ms, position=i)))
        for i, email in enumerate(emails)
    ]
    return [
        replace(message, nonce=nonce)
        for message in pack_encoded(encoded, shard_count, DEFAULT_MAX_MESSAGE_BYTES, received_ms)
    ]


def is_resume_group(group_id: str) -> bool:
    return group_id.startswith(RESUME_GROUP_PREFIX)


def decode_resume_job(body: str) -> ResumeJob:
    """The job of a message in a resume group; ``ValueError`` for a body that is not one."""
    with _not_ours():
        document = _load(body)
        job = document["resume"] if isinstance(document, dict) else None
        if not isinstance(job, dict):
            raise ValueError("unsupported message format: no resume job")
        audience, cursor, sweep = job["audience"], job.get("cursor"), job.get("sweep", False)
        if not isinstance(audience, str) or not audience or not isinstance(sweep, bool):
            raise ValueError("unsupported message format: a resume job needs an audience")
        if cursor is not None and not isinstance(cursor, str):
            raise ValueError("unsupported message format: a resume cursor is a string")
        return ResumeJob(audience, cursor, sweep, as_integer(job.get("due", 0), "due"))
