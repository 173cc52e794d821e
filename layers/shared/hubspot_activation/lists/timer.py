"""``ports.ListTimer`` on SQS: a message to the list timer queue (``LIST_TIMER_QUEUE_URL``), delayed
by the list's ListFlushSeconds, wakes a drain of that audience's list when it becomes visible."""

from __future__ import annotations

import json
from typing import Protocol

#: SQS delays a message by at most 15 minutes.
MAX_DELAY_SECONDS = 900


class MessageSender(Protocol):
    """The part of boto3's SQS client the timer uses (the lists package imports no AWS library:
    the composition root plugs the client in)."""

    def send_message(self, *, QueueUrl: str, MessageBody: str, DelaySeconds: int) -> object: ...


class SqsListTimer:
    """Sends ``{"audienceId": ...}`` with ``DelaySeconds`` (0-900, a standard queue: FIFO queues
    take no per-message delay). No queue url: nothing is sent, the lists function's schedule
    sweeps the due buffers instead. A failed send raises; ``BufferedListChanges`` logs it."""

    def __init__(self, client: MessageSender, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def start(self, audience_id: str, delay_seconds: int) -> None:
        if not self._queue_url:
            return
        self._client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=json.dumps({"audienceId": audience_id}, separators=(",", ":")),
            DelaySeconds=max(0, min(MAX_DELAY_SECONDS, delay_seconds)),
        )
