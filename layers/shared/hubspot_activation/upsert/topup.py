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
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..hubspot.batch import MAX_BATCH_INPUTS
from ..observability import logger, tracer
from .plan import InboundMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

#: SQS hands out at most ten messages per ReceiveMessage.
RECEIVE_MAX = 10


def contacts_in(messages: Iterable[InboundMessage]) -> int:
    """How many distinct contacts the messages carry (an unreadable one carries none)."""
    emails: set[str] = set()
    for message in messages:
        try:
            document = json.loads(message.body)
            emails.update(str(update["email"]) for update in document["updates"])
        except (ValueError, KeyError, TypeError):
            continue
    return len(emails)


def fill_target(contacts: int) -> int:
    """The next multiple of a full HubSpot call: nothing to fill when the batch is already one."""
    return max(MAX_BATCH_INPUTS, math.ceil(contacts / MAX_BATCH_INPUTS) * MAX_BATCH_INPUTS)


def messages_wanted(contacts_missing: int, contacts_per_message: float) -> int:
    """How many messages to ask for to close the gap to the target without overshooting it: a
    receive that brings 7 contacts past a multiple of 100 costs a whole extra HubSpot call."""
    return max(1, math.ceil(contacts_missing / max(1.0, contacts_per_message)))


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
    def fill(self, messages: Sequence[InboundMessage], long_poll_seconds: int = 0) -> list[InboundMessage]:
        """Messages received to bring the batch up to a multiple of 100 contacts (or until the queue
        is empty, or the caps). ``long_poll_seconds`` > 0 only when HubSpot's budget would make the
        next call wait anyway: waiting for messages then costs nothing."""
        have = contacts_in(messages)
        if have == 0 or have % MAX_BATCH_INPUTS == 0:
            return []
        target = fill_target(have)
        extra: list[InboundMessage] = []
        deadline = self._clock() + self._max_seconds
        while have < target and len(extra) < self._max_messages and self._clock() < deadline:
            wanted = messages_wanted(target - have, have / (len(messages) + len(extra)))
            received = self._receive(
                min(RECEIVE_MAX, self._max_messages - len(extra), wanted), long_poll_seconds
            )
            if not received:
                break
            extra.extend(received)
            have = contacts_in([*messages, *extra])
        return extra

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
