"""Filling the event source's batch from the function's own queue, so HubSpot calls carry 100
contacts when there is a backlog.

A FIFO event source hands the function at most ten messages, and callers that send a few profiles
per request make small messages: the batch would fill a fraction of a 100-contact HubSpot call.
The function therefore receives more messages itself. FIFO keeps order for free: SQS never hands
out a message of a group that has one in flight (the event source's messages included). The
messages received here are settled here, as the event source settles its own: deleted on success;
on failure left undeleted (the service already made them visible again after the backoff, with
every later message of their group); a crash leaves them to reappear after the visibility timeout.
Receive counts and the DLQ redrive are SQS's own, untouched.

When the top-up shows a backlog, the batch's partial tail is deferred (``defer_tail``): 112
contacts to write would cost two calls, one of them for 12; those 12 wait, their messages handed
back, and ride in the next invocation's full calls instead. What counts is the contacts that need
a HubSpot write, known only once the ledger is read: the service asks then, and a re-send where
half the contacts are unchanged tops up to about twice the contacts (``write_share``, learnt from
the container's previous batch) so that its writes still make full calls.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..hubspot.batch import MAX_BATCH_INPUTS
from ..observability import logger, tracer
from .plan import InboundMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

#: SQS hands out at most ten messages per ReceiveMessage.
RECEIVE_MAX = 10
#: A message received this many times is never held back again: each hold-back costs a receive
#: count, and hold-backs must not push a healthy message toward the dead-letter queue
#: (MaxReceiveCount, 20 by default).
HOLD_BACK_MAX_RECEIVES = 3
#: The top-up aims this much past the contacts that should make full calls when only a share of
#: them needs a write: the share is an estimate, and a few writes too many are held back (they
#: come back at once) where a few too few would cost a partial call.
WRITE_SHARE_MARGIN = 1.1
#: The lowest write share the top-up believes: a batch of mostly unchanged contacts does not make
#: it receive more than this many times a full call's contacts.
MIN_WRITE_SHARE = 0.2
#: Receiving more for a share of writes stops at ten full calls' contacts: a batch that is already
#: large needs no top-up to fill calls, and a bound keeps memory and the hold-back's search small.
WRITE_SHARE_MAX_CONTACTS = 1000


@dataclass(frozen=True)
class TopUp:
    """The messages a top-up received, and whether the queue showed a backlog: the top-up stopped
    at its target or its message cap with every receive answered in full, rather than on an empty
    or short receive (the queue drained, or its other groups in flight)."""

    messages: list[InboundMessage] = field(default_factory=list)
    backlog: bool = False


def _emails(message: InboundMessage) -> set[str]:
    try:
        document = json.loads(message.body)
        return {str(update["email"]) for update in document["updates"]}
    except (ValueError, KeyError, TypeError, RecursionError):
        # Not one of ours: the sync sets it apart; it counts for no contact here.
        return set()


def defer_tail(
    messages: Sequence[InboundMessage],
    writes: Sequence[tuple[str, Sequence[str]]],
    max_receives: int = HOLD_BACK_MAX_RECEIVES,
) -> set[str]:
    """The emails whose writes wait for a later invocation so that the rest make only full HubSpot
    calls: the last ``len(writes) % 100`` contacts of ``writes`` (email, message ids; in batch
    order). A contact's updates in the batch are all written now or all wait. The messages of the
    waiting ones go back to the queue with every later message of their group (a contact's
    messages are all in its group), so order holds; the other contacts of those messages are
    written now and skipped as unchanged when the messages return.

    Asked only under a backlog (otherwise the tail would come back alone, and late). Nothing waits
    at one call's worth or less, when the writes already make full calls, or when the tail cannot
    wait whole; a contact never waits if that would send back a message already received
    ``max_receives`` times, so hold-backs cannot walk a healthy message toward the DLQ."""
    tail = len(writes) % MAX_BATCH_INPUTS
    if len(writes) <= MAX_BATCH_INPUTS or tail == 0:
        return set()
    position = {message.message_id: index for index, message in enumerate(messages)}
    last_guarded: dict[str, int] = {}
    for index, message in enumerate(messages):
        if message.receive_count >= max_receives:
            last_guarded[message.group_id] = index
    deferred: set[str] = set()
    for email, message_ids in reversed(writes):
        first = min((position[mid] for mid in message_ids if mid in position), default=None)
        if first is None or first <= last_guarded.get(messages[first].group_id, -1):
            continue
        deferred.add(email)
        if len(deferred) == tail:
            return deferred
    return set()


def fill_target(contacts: int) -> int:
    """The next multiple of a full HubSpot call: nothing to fill when the batch is already one."""
    return max(MAX_BATCH_INPUTS, math.ceil(contacts / MAX_BATCH_INPUTS) * MAX_BATCH_INPUTS)


def contacts_target(contacts: int, write_share: float = 1.0) -> int:
    """How many contacts to hold so that the ones needing a write (``write_share`` of them) make
    the next multiple of a full call, with a margin when the share is an estimate; with every
    contact written, that is ``fill_target`` exactly (0: the batch is already full calls)."""
    if write_share >= 1.0:
        return 0 if contacts % MAX_BATCH_INPUTS == 0 else fill_target(contacts)
    share = max(MIN_WRITE_SHARE, write_share)
    writes = fill_target(math.ceil(contacts * share))
    wanted = math.ceil(round(writes * WRITE_SHARE_MARGIN / share, 6))
    return max(contacts, min(wanted, WRITE_SHARE_MAX_CONTACTS))


def messages_wanted(contacts_missing: int, contacts_per_message: float) -> int:
    """How many messages to ask for to close the gap to the target without overshooting it: a
    receive that brings 7 contacts past a multiple of 100 costs a whole extra HubSpot call."""
    return max(1, math.ceil(contacts_missing / max(1.0, contacts_per_message)))


def change_visibility(
    client: SQSClient, queue_url: str, messages: Sequence[InboundMessage], seconds: int, failure: str
) -> None:
    """ChangeMessageVisibilityBatch, ten messages a call; a refused call is logged as ``failure``
    and the next chunk still tried (what SQS refuses keeps its current visibility)."""
    for start in range(0, len(messages), RECEIVE_MAX):
        entries: list[Any] = [
            {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": seconds}
            for i, m in enumerate(messages[start : start + RECEIVE_MAX])
            if m.receipt_handle
        ]
        if not entries:
            continue
        try:
            client.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            logger.warning(failure, extra={"error": str(exc)[:300]})


class QueueTopUp:
    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        max_messages: int = 100,
        max_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._queue_url = queue_url
        self._max_messages = max_messages
        self._max_seconds = max_seconds
        self._clock = clock

    @tracer.capture_method(capture_response=False, capture_error=False)
    def top_up(
        self, messages: Sequence[InboundMessage], long_poll_seconds: int = 0, write_share: float = 1.0
    ) -> TopUp:
        """Messages received to bring the batch's writes up to a multiple of 100 contacts (or until
        the queue is empty, or the caps), and whether the queue showed a backlog.
        ``long_poll_seconds`` > 0 only when HubSpot's budget would make the next call wait anyway:
        waiting for messages then costs nothing. ``write_share``: the expected share of contacts
        that need a write (the rest are unchanged and cost no call)."""
        seen: set[str] = set()
        for message in messages:
            seen.update(_emails(message))
        have = len(seen)
        target = contacts_target(have, write_share)
        if have == 0 or target <= have:
            return TopUp()
        extra: list[InboundMessage] = []
        deadline = self._clock() + self._max_seconds
        answered_in_full = True
        while have < target and len(extra) < self._max_messages and self._clock() < deadline:
            wanted = messages_wanted(target - have, have / (len(messages) + len(extra)))
            asked = min(RECEIVE_MAX, self._max_messages - len(extra), wanted)
            received = self._receive(asked, long_poll_seconds)
            answered_in_full = len(received) >= asked
            if not received:
                break
            extra.extend(received)
            # Counted as they arrive: a batch of hundreds of small messages is parsed once, not
            # once per receive.
            for message in received:
                seen.update(_emails(message))
            have = len(seen)
        stopped_at_cap = have >= target or len(extra) >= self._max_messages
        return TopUp(extra, backlog=stopped_at_cap and answered_in_full)

    @tracer.capture_method(capture_response=False, capture_error=False)
    def release(self, messages: Sequence[InboundMessage]) -> None:
        """Make held-back messages visible at once, unprocessed: the event source's and our own
        alike (the event source would otherwise return its failures after the visibility timeout).
        A message of a group whose earlier message is still in flight stays behind it: SQS FIFO
        hands out nothing of a group while one of its messages is in flight."""
        # They come back after the visibility timeout instead when SQS refuses: later, never lost.
        change_visibility(self._client, self._queue_url, messages, 0, "could not release held-back messages")

    def _receive(self, count: int, wait_seconds: int) -> list[InboundMessage]:
        try:
            response = self._client.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=count,
                WaitTimeSeconds=wait_seconds,
                MessageSystemAttributeNames=["MessageGroupId", "ApproximateReceiveCount"],
            )
        except (ClientError, BotoCoreError) as exc:
            logger.warning("could not top up the batch", extra={"error": str(exc)[:300]})
            return []
        return [_inbound(message) for message in response.get("Messages", [])]

    @tracer.capture_method(capture_response=False, capture_error=False)
    def settle(self, received: Sequence[InboundMessage], returned: Iterable[str]) -> int:
        """Delete the messages received here that succeeded; the others stay (already scheduled to
        reappear). Returns how many were deleted."""
        keep = set(returned)
        done = [message for message in received if message.message_id not in keep]
        deleted = 0
        for start in range(0, len(done), 10):
            entries: list[Any] = [
                {"Id": str(i), "ReceiptHandle": m.receipt_handle}
                for i, m in enumerate(done[start : start + 10])
            ]
            try:
                response = self._client.delete_message_batch(QueueUrl=self._queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                # They reappear after the visibility timeout and are skipped as unchanged: no loss.
                logger.warning("could not delete topped-up messages", extra={"error": str(exc)[:300]})
                continue
            deleted += len(response.get("Successful", []))
        return deleted


def _inbound(message: Any) -> InboundMessage:
    attributes = message.get("Attributes", {})
    return InboundMessage(
        message_id=message["MessageId"],
        group_id=attributes.get("MessageGroupId", ""),
        body=message.get("Body", ""),
        receipt_handle=message["ReceiptHandle"],
        receive_count=int(attributes.get("ApproximateReceiveCount", "1")),
    )
