"""The flusher's side of the lists: membership changes buffered (``ports.ListAppender``) and a
drain woken for them (``ports.ListTimer``): ListFlushSeconds after a list's first waiting change, so
changes gather into large calls, and at once when a shard of the list holds its share of a chunk."""

from __future__ import annotations

from collections.abc import Sequence

from ..observability import logger
from .model import Toggle
from .ports import ListAppender, ListTimer


class BufferedListChanges:
    def __init__(self, buffer: ListAppender, timer: ListTimer | None, *, flush_seconds: int) -> None:
        self._buffer = buffer
        self._timer = timer
        self._flush_seconds = flush_seconds

    def append(self, audience_id: str, toggles: Sequence[Toggle], now_ms: int) -> None:
        if not toggles:
            return
        appended = self._buffer.append_changes(audience_id, toggles, now_ms)
        if self._timer is None or not (appended.started or appended.due_now):
            return
        try:
            self._timer.start(audience_id, 0 if appended.due_now else self._flush_seconds)
        except Exception as exc:  # the schedule's sweep drains what a lost timer leaves
            logger.warning("list timer not started", extra={"error": str(exc)[:300]})
