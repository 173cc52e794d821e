"""SQS FIFO receive and delete as SQS does them, patched into moto for the local stack and tests.

moto 5 departs from SQS FIFO in ways the upsert function's top-up depends on (probes in
tests/integration/test_local_fifo.py pin each one):

- ReceiveMessage hands out messages in global send order, one group after another message by
  message, where SQS returns as many messages of the same group as it can before moving to the next
  available group. With interleaved groups moto locks every group after a few messages, so a second
  receive (the function's top-up) finds nothing and batches stay small.
- moto decides that a group is locked from a set of "pending" messages it cleans only while
  scanning, so when a group's in-flight messages become visible again together it skips the first
  (its neighbours still look pending) and hands out a later one first: order broken, and the DLQ
  redrive can move a later message before an earlier one.
- a message moved to the DLQ goes through the DLQ's deduplication, so a second message with the
  same deduplication id within five minutes vanishes instead of landing there.
- DeleteMessage with a receipt handle of an earlier receive deletes the message; SQS documents that
  only the most recent handle deletes (an older one succeeds without effect), so a consumer that
  lost a message to a later receive cannot delete it from under the new holder.

Here a group is locked while any of its messages is in flight (received, not deleted, visibility
not over), whoever received it; a receive takes the available groups in the order of their oldest
message, each from its head, as many messages as fit; a message already received maxReceiveCount
times goes to the DLQ (in its group, unchanged) instead of being handed out, and the group's next
message follows. Standard queues keep moto's own behaviour. ``install()`` is idempotent and touches
nothing but these two methods; it applies in-process (``mock_aws``) and to a ThreadedMotoServer,
which runs in this process.
"""

from __future__ import annotations

import threading
from copy import deepcopy
from typing import Any

from moto.core.utils import unix_time
from moto.sqs import models as sqs_models
from moto.sqs.models import Message, Queue, SQSBackend

#: ReceiveMessage is atomic in SQS: two receives never hand out the same message.
_RECEIVE_LOCK = threading.Lock()
#: How often a long poll looks again for messages whose visibility ran out (nothing notifies that).
_LONG_POLL_STEP = 0.05
_MARKER = "_faithful_fifo"


def install() -> None:
    if getattr(SQSBackend.receive_message, _MARKER, False):
        return
    original_receive = SQSBackend.receive_message
    original_delete = Queue.delete_message

    def receive_message(
        self: SQSBackend,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> list[Message]:
        queue = self.get_queue(queue_name)
        if not queue.fifo_queue:
            return original_receive(
                self, queue_name, count, wait_seconds_timeout, visibility_timeout, message_attribute_names
            )
        deadline = unix_time() + wait_seconds_timeout
        while True:
            with _RECEIVE_LOCK:
                result = receive_fifo(queue, count, visibility_timeout, message_attribute_names or [])
            left = deadline - unix_time()
            if result or left <= 0:
                return result
            with queue._messages_lock:  # woken by a send; visibility expiry is polled
                queue._messages_lock.wait(timeout=min(left, _LONG_POLL_STEP))

    def delete_message(self: Queue, receipt_handle: str) -> None:
        with _RECEIVE_LOCK:  # both rebuild the queue's message list
            for message in self._messages:
                if receipt_handle != message.receipt_handle and message.had_receipt_handle(receipt_handle):
                    return  # a handle of an earlier receive: accepted, without effect
            original_delete(self, receipt_handle)

    setattr(receive_message, _MARKER, True)
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
    Queue.delete_message = delete_message  # type: ignore[method-assign]


def receive_fifo(
    queue: Queue, count: int, visibility_timeout: int, attribute_names: list[str]
) -> list[Message]:
    """One ReceiveMessage on a FIFO queue: up to ``count`` messages, whole groups first."""
    groups: dict[str | None, list[Message]] = {}
    for message in queue._messages:  # send order
        groups.setdefault(message.group_id, []).append(message)
    max_receives = (queue.redrive_policy or {}).get("maxReceiveCount") if queue.dead_letter_queue else None
    result: list[Message] = []
    to_dead_letters: list[Message] = []
    for messages in groups.values():
        if len(result) >= count:
            break
        if any(not message.visible for message in messages):
            continue  # in flight: the whole group waits until it is deleted or visible again
        for message in messages:
            if message.delayed or len(result) >= count:
                break  # a delayed message holds back the rest of its group
            queue.pending_messages.discard(message)
            if max_receives is not None and message.approximate_receive_count >= int(max_receives):
                to_dead_letters.append(message)
                continue
            message.mark_received(visibility_timeout=visibility_timeout)
            queue.pending_messages.add(message)
            copy = deepcopy(message)
            sqs_models._filter_message_attributes(copy, attribute_names)
            result.append(copy)
    if to_dead_letters:
        moved = set(map(id, to_dead_letters))
        queue._messages = [message for message in queue._messages if id(message) not in moved]
        dead_letters: Any = queue.dead_letter_queue
        with dead_letters._messages_lock:
            dead_letters._messages.extend(to_dead_letters)
            dead_letters._messages_lock.notify_all()
    return result
