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
- SendMessage deduplicates only against messages still in the queue, across the whole queue: SQS
  remembers every deduplication id it accepted for five minutes, received and deleted or not, per
  message group when the queue's DeduplicationScope is ``messageGroup``. A duplicate is accepted
  (the answer carries the first message's MessageId and SequenceNumber) and not queued.
- every SendMessage rebuilds the queue's attributes, approximate counts included, up to four times
  per message (each a scan of the queue), so a send slows down as the queue grows; GetQueueAttributes
  rebuilds them twice per attribute asked for; DeleteMessage and ChangeMessageVisibility look for
  their receipt handle message by message.

Here a group is locked while any of its messages is in flight (received, not deleted, visibility not
over), whoever received it; a receive takes the available groups in the order of their oldest
message, each from its head, as many messages as fit; a message already received maxReceiveCount
times goes to the DLQ (in its group, unchanged) instead of being handed out, and the group's next
message follows. A FIFO send validates and deduplicates without looking at the queue's messages, and
a receipt handle finds its message in an index. Standard queues keep moto's own behaviour.
``install()`` is idempotent and touches nothing but the methods named above; it applies in-process
(``mock_aws``) and to a ThreadedMotoServer, which runs in this process.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import threading
import uuid
from collections import OrderedDict
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from moto.core.utils import unix_time
from moto.sqs import models as sqs_models
from moto.sqs.exceptions import InvalidAttributeName, InvalidParameterValue, MissingParameter
from moto.sqs.models import Message, Queue, SQSBackend

#: ReceiveMessage is atomic in SQS: two receives never hand out the same message.
_RECEIVE_LOCK = threading.Lock()
#: How often a long poll looks again for messages whose visibility ran out (nothing notifies that).
_LONG_POLL_STEP = 0.05
_MARKER = "_faithful_fifo"
#: SQS drops a FIFO message whose deduplication id (in its scope) it accepted this recently.
DEDUPLICATION_WINDOW_MS = 300_000
#: A message's visibility may not run past 12 hours after it was sent.
_MAX_VISIBILITY_MS = 43_200_000


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
            handles = _handles(self)
            found = handles.get(receipt_handle)
            if found is not None:
                if receipt_handle != found.receipt_handle:
                    return  # a handle of an earlier receive: accepted, without effect
                with contextlib.suppress(ValueError):  # else gone another way (a purge): moto decides
                    self._messages.remove(found)
                    self.pending_messages.discard(found)
                    self.deleted_messages.update(found.all_receipt_handles)  # type: ignore[arg-type]
                    _forget(handles, found)
                    return
                _forget(handles, found)
            for message in self._messages:
                if receipt_handle != message.receipt_handle and message.had_receipt_handle(receipt_handle):
                    return  # a handle of an earlier receive: accepted, without effect
            original_delete(self, receipt_handle)

    setattr(receive_message, _MARKER, True)
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
    Queue.delete_message = delete_message  # type: ignore[method-assign]
    _install_send()
    _install_lookups()


def _handles(queue: Queue) -> dict[str, Message]:
    """Every receipt handle the FIFO receive handed out for a message still in the queue: delete and
    change visibility find their message without scanning the queue."""
    found: dict[str, Message] | None = getattr(queue, "_receipt_handles", None)
    if found is None:
        found = {}
        queue._receipt_handles = found  # type: ignore[attr-defined]
    return found


def _forget(handles: dict[str, Message], message: Message) -> None:
    for handle in message.all_receipt_handles:
        handles.pop(str(handle), None)


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
            _handles(queue)[str(message.receipt_handle)] = message
            queue.pending_messages.add(message)
            copy = deepcopy(message)
            sqs_models._filter_message_attributes(copy, attribute_names)
            result.append(copy)
    if to_dead_letters:
        moved = set(map(id, to_dead_letters))
        for message in to_dead_letters:
            _forget(_handles(queue), message)
        queue._messages = [message for message in queue._messages if id(message) not in moved]
        dead_letters: Any = queue.dead_letter_queue
        with dead_letters._messages_lock:
            dead_letters._messages.extend(to_dead_letters)
            dead_letters._messages_lock.notify_all()
    return result


@dataclass(frozen=True, slots=True)
class _Accepted:
    sent_ms: int
    message_id: str
    sequence_number: str | None


class _Deduplication:
    """The deduplication ids a FIFO queue accepted within the window, oldest first."""

    def __init__(self) -> None:
        self.accepted: OrderedDict[tuple[str | None, str], _Accepted] = OrderedDict()
        self.sequence = itertools.count(1)

    def first_of(self, queue: Queue, message: Message) -> _Accepted | None:
        """The message this one duplicates, or None after recording it as accepted."""
        now = int(message.sent_timestamp or 0)
        while self.accepted:
            oldest = next(iter(self.accepted.values()))
            if now - oldest.sent_ms < DEDUPLICATION_WINDOW_MS:
                break
            self.accepted.popitem(last=False)
        per_group = getattr(queue, "deduplication_scope", "queue") == "messageGroup"
        key = (message.group_id if per_group else None, str(message.deduplication_id))
        first = self.accepted.get(key)
        if first is None:
            message.sequence_number = f"{next(self.sequence):020d}"
            self.accepted[key] = _Accepted(now, message.id, message.sequence_number)
        return first


def _deduplication(queue: Queue) -> _Deduplication:
    found: _Deduplication | None = getattr(queue, "_deduplication", None)
    if found is None:
        found = _Deduplication()
        queue._deduplication = found  # type: ignore[attr-defined]
    return found


def _validate_fifo(
    queue: Queue, body: str, delay_seconds: int, deduplication_id: str | None, group_id: str | None
) -> None:
    """moto's checks of a FIFO message, reading the queue's settings instead of its attributes."""
    if not group_id:
        raise MissingParameter("MessageGroupId")
    if not deduplication_id and not queue.content_based_deduplication:  # type: ignore[attr-defined]
        raise InvalidParameterValue(
            "The queue should either have ContentBasedDeduplication enabled or "
            "MessageDeduplicationId provided explicitly"
        )
    if delay_seconds > 0:
        raise InvalidParameterValue(
            f"Value {delay_seconds} for parameter DelaySeconds is invalid. Reason: "
            "The request include parameter that is not valid for this queue type."
        )
    if len(body) > queue.maximum_message_size:  # type: ignore[attr-defined]
        raise InvalidParameterValue(
            "One or more parameters are invalid. Reason: Message must be shorter than "
            f"{queue.maximum_message_size} bytes."  # type: ignore[attr-defined]
        )


def _install_send() -> None:
    original_validate = SQSBackend._validate_message
    original_send = SQSBackend.send_message
    original_add = Queue.add_message

    def validate_message(
        self: SQSBackend,
        queue: Queue,
        message_body: str,
        delay_seconds: int,
        deduplication_id: str | None = None,
        group_id: str | None = None,
        validate_group_id: bool = True,
    ) -> None:
        if not queue.fifo_queue:
            original_validate(
                self, queue, message_body, delay_seconds, deduplication_id, group_id, validate_group_id
            )
            return
        _validate_fifo(queue, message_body, delay_seconds, deduplication_id, group_id)

    def send_message(
        self: SQSBackend,
        queue_name: str,
        message_body: str,
        message_attributes: dict[str, Any] | None = None,
        delay_seconds: int | None = None,
        deduplication_id: str | None = None,
        group_id: str | None = None,
        system_attributes: dict[str, Any] | None = None,
        validate_group_id: bool = True,
    ) -> Message:
        queue = self.get_queue(queue_name)
        if not queue.fifo_queue:
            return original_send(
                self,
                queue_name,
                message_body,
                message_attributes,
                delay_seconds,
                deduplication_id,
                group_id,
                system_attributes,
                validate_group_id,
            )
        _validate_fifo(queue, message_body, int(delay_seconds or 0), deduplication_id, group_id)
        message = Message(str(uuid.uuid4()), message_body, system_attributes)
        message.deduplication_id = deduplication_id or hashlib.sha256(message_body.encode()).hexdigest()
        message.group_id = group_id
        if message_attributes:
            message.message_attributes = message_attributes
        message.mark_sent(delay_seconds=int(queue.delay_seconds or 0))  # type: ignore[attr-defined]
        queue.add_message(message)
        return message

    def add_message(self: Queue, message: Message) -> None:
        if not self.fifo_queue or self.lambda_event_source_mappings:
            original_add(self, message)  # moto's own Lambda event sources: left as they are
            return
        with self._messages_lock:
            first = _deduplication(self).first_of(self, message)
            if first is not None:
                message.id = first.message_id
                message.sequence_number = first.sequence_number
                return
            self._messages.append(message)
            self._messages_lock.notify_all()

    SQSBackend._validate_message = validate_message  # type: ignore[method-assign]
    SQSBackend.send_message = send_message  # type: ignore[method-assign]
    Queue.add_message = add_message  # type: ignore[method-assign]


def _install_lookups() -> None:
    original_attributes = SQSBackend.get_queue_attributes
    original_visibility = SQSBackend.change_message_visibility

    def get_queue_attributes(self: SQSBackend, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
        queue = self.get_queue(queue_name)
        valid = {"All", *queue.BASE_ATTRIBUTES, *queue.FIFO_ATTRIBUTES, *queue.KMS_ATTRIBUTES}
        invalid = next((name for name in attribute_names if name not in valid), None)
        if invalid is not None:
            raise InvalidAttributeName(invalid)
        if not attribute_names or "All" in attribute_names:
            return dict(original_attributes(self, queue_name, attribute_names))
        attributes = queue.attributes  # one scan of the queue for the counts, not two per name
        return {name: attributes[name] for name in attribute_names if attributes.get(name) is not None}

    def change_message_visibility(
        self: SQSBackend, queue_name: str, receipt_handle: str, visibility_timeout: int
    ) -> None:
        queue = self.get_queue(queue_name)
        message = _handles(queue).get(receipt_handle)
        if message is None:
            original_visibility(self, queue_name, receipt_handle, visibility_timeout)
            return
        now_ms = sqs_models.unix_time_millis()  # type: ignore[attr-defined]  # moto's clock, moved by tests
        total_ms = now_ms + int(visibility_timeout) * 1000 - int(message.sent_timestamp or 0)
        if total_ms > _MAX_VISIBILITY_MS:
            raise InvalidParameterValue(
                f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. Reason: Total "
                "VisibilityTimeout for the message is beyond the limit [43200 seconds]"
            )
        message.change_visibility(visibility_timeout)
        if message.visible:
            queue.pending_messages.discard(message)

    SQSBackend.change_message_visibility = change_message_visibility  # type: ignore[method-assign]
    SQSBackend.get_queue_attributes = get_queue_attributes  # type: ignore[method-assign]
