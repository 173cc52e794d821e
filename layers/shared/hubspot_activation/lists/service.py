"""The drain of one audience's list: the buffered membership changes sent to HubSpot in chunks of
``add-and-remove``, each chunk taken out of the buffer only once HubSpot applied it.

- A chunk holds up to ``chunk_size`` record ids, adds and removes together (one entry per record,
  so never an id in both), oldest change first.
- Refused for its size (``ChunkTooLarge``): the same changes go again in chunks half as large, down
  to one id; the size that went through is reported, for the next drain to start from.
- A call that may pass (``MembershipUnavailable``) is made again after a pause, ``attempts`` times
  in all; then the drain stops, and every change not sent stays buffered (the call is idempotent,
  so a call that did go through costs nothing when sent again).
- The list gone (``ListGone``): the drain stops with ``gone``; the caller restores or recreates the
  list and refills it, and the buffer keeps what it holds for the new list.
- ``full_chunks_only`` (a list due because a chunk filled, not by age): only full chunks go; the
  rest waits for more or for its age, as the flusher waits for full batches.

The drain knows nothing of Lambda or DynamoDB: it works through ``ports``. One drain per list at a
time (the caller's lease): two would send the same changes twice, harmless but wasted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..observability import logger
from .model import ChunkTooLarge, ListGone, MembershipResult, MembershipUnavailable, Toggle
from .ports import ListBuffer, ListMemberships

#: HubSpot documents no per-call cap for add-and-remove; 500 is the only membership number it ever
#: documented (legacy lists v1), and 1,000 contacts in 2 audiences then cost 4 calls.
CHUNK_SIZE = 500
#: Calls of one chunk in all while HubSpot answers with a failure that may pass.
ATTEMPTS = 3
#: Pause before the second call of a chunk (seconds), doubled before each further one.
BACKOFF_SECONDS = 1.0


@dataclass
class DrainReport:
    calls: int = 0
    added: int = 0
    removed: int = 0
    #: record ids HubSpot does not hold (``recordIdsMissing``): their contacts need a reconcile
    missing: set[str] = field(default_factory=set)
    #: changes read and not sent by this drain (they stay buffered)
    remaining: int = 0
    #: the chunk size the last call went through with (smaller than asked after a refusal)
    chunk_size: int = CHUNK_SIZE
    #: HubSpot has no such list: restore or recreate it, then drain again
    gone: bool = False
    #: why the drain stopped before sending everything it read (None: it did not, or it held
    #: back a partial chunk on purpose)
    failure: str | None = None
    #: a partial chunk was held back on purpose (``full_chunks_only``)
    held_back: bool = False


class ListDrain:
    def __init__(
        self,
        buffer: ListBuffer,
        memberships: ListMemberships,
        *,
        chunk_size: int = CHUNK_SIZE,
        attempts: int = ATTEMPTS,
        backoff_seconds: float = BACKOFF_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        if chunk_size < 1 or attempts < 1:
            raise ValueError("chunk_size and attempts must be at least 1")
        self._buffer = buffer
        self._memberships = memberships
        self._chunk_size = chunk_size
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._sleep = sleep
        self._clock_ms = clock_ms

    def drain(self, audience_id: str, list_id: str, *, full_chunks_only: bool = False) -> DrainReport:
        changes = self._buffer.read(audience_id)
        report = DrainReport(chunk_size=self._chunk_size)
        while changes:
            if full_chunks_only and len(changes) < report.chunk_size:
                report.held_back = True
                break
            chunk = changes[: report.chunk_size]
            try:
                result = self._send(list_id, chunk, report)
            except ChunkTooLarge:
                if report.chunk_size == 1:
                    report.failure = "HubSpot refused a membership call of a single id for its size"
                    break
                report.chunk_size = max(1, report.chunk_size // 2)
                logger.warning("list chunk refused for its size: halved", extra={"chunk": report.chunk_size})
                continue
            except ListGone:
                report.gone = True
                break
            except MembershipUnavailable as exc:
                report.failure = f"HubSpot list memberships unavailable: {exc}"
                break
            self._buffer.settle(audience_id, chunk, self._clock_ms())
            report.added += sum(1 for toggle in chunk if toggle.member)
            report.removed += sum(1 for toggle in chunk if not toggle.member)
            report.missing.update(result.missing)
            changes = changes[len(chunk) :]
        report.remaining = len(changes)
        return report

    def _send(self, list_id: str, chunk: Sequence[Toggle], report: DrainReport) -> MembershipResult:
        add = [toggle.record_id for toggle in chunk if toggle.member]
        remove = [toggle.record_id for toggle in chunk if not toggle.member]
        pause = self._backoff
        attempt = 1
        while True:
            report.calls += 1
            try:
                return self._memberships.add_and_remove(list_id, add, remove)
            except MembershipUnavailable:
                if attempt >= self._attempts:
                    raise
            self._sleep(pause)
            pause *= 2
            attempt += 1
