"""Moving dead letters back to the main queue (``POST /replay``).

A letter is sent with its body and group and a fresh deduplication id, and deleted from the DLQ
only once the main queue took it. A letter the merge function cannot decode is not moved: it is
set aside in the DLQ's group ``undecodable`` (so it never holds its group back) and listed by
message id. A refused send stops the move and makes the letters visible in the DLQ again at once;
a failed delete costs a duplicate, never a loss. The ordering rules make order and duplicates
harmless. Why, and every failure case: docs/architecture.md ("Replay").
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from ..messages import decode_message, decode_resume_job, is_resume_group
from ..observability import logger

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

#: SQS's limit of entries per batch call and of messages per receive.
_BATCH = 10
#: The DLQ's group of letters the consumer cannot decode (the consumer's own name for a letter
#: without a group; no contact's group has this name).
UNDECODABLE_GROUP = "undecodable"


@dataclass
class MoveReport:
    moved: int = 0
    #: decodable messages received but not moved (a send failed): visible in the DLQ again
    failed: int = 0
    #: the DLQ still had messages when the call stopped
    more: bool = False
    errors: list[str] = field(default_factory=list)
    #: messages left in the DLQ because the consumer could not decode them (their ids in the
    #: ``undecodable`` group)
    undecodable_ids: list[str] = field(default_factory=list)
    #: of those, how many this call set aside from the group they blocked
    set_aside: int = 0
    #: moved, but the DLQ delete failed: a later move sends them again
    undeleted: int = 0

    def error(self, text: str) -> None:
        if text not in self.errors:
            self.errors.append(text)

    @property
    def handled(self) -> int:
        return self.moved + self.failed + len(self.undecodable_ids)

    def to_json(self) -> dict[str, Any]:
        return {
            "moved": self.moved,
            "failed": self.failed,
            "undecodable": {
                "count": len(self.undecodable_ids),
                "messageIds": self.undecodable_ids,
                "setAside": self.set_aside,
            },
            "notDeleted": self.undeleted,
            "more": self.more,
            "errors": self.errors,
        }


class DeadLetterMover(Protocol):
    def move_back(self, max_messages: int, deadline: float) -> MoveReport: ...


def _decodable(message: Any) -> bool:
    """Whether the consumer can decode the letter, with the decoder it uses for the letter's group."""
    try:
        if is_resume_group(_group(message)):
            decode_resume_job(message["Body"])
        else:
            decode_message(message["Body"])
    except ValueError:
        return False
    return True


def _group(message: Any) -> str:
    return str(message.get("Attributes", {}).get("MessageGroupId", "replay"))


class SqsDeadLetterMover:
    def __init__(
        self,
        sqs: SQSClient,
        dead_letter_url: str,
        queue_url: str,
        clock: Callable[[], float] = time.monotonic,
        visibility_seconds: int = 60,
    ) -> None:
        self._sqs = sqs
        self._dlq = dead_letter_url
        self._queue = queue_url
        self._clock = clock
        self._visibility = visibility_seconds

    def move_back(self, max_messages: int, deadline: float) -> MoveReport:
        report = MoveReport()
        # Letters of the undecodable group stay invisible until the call ends, so it does not
        # receive them again and again; then they are made visible in the DLQ for the operator.
        held: list[Any] = []
        try:
            self._move_until_done(max_messages, deadline, report, held)
        finally:
            self._release(held, report)
            if report.undeleted:
                report.error(
                    f"{report.undeleted} moved message(s) could not be deleted from the DLQ: a later "
                    "move sends them again (a duplicate the ordering rules make harmless)"
                )
        return report

    def _move_until_done(
        self, max_messages: int, deadline: float, report: MoveReport, held: list[Any]
    ) -> None:
        while report.handled < max_messages:
            if self._clock() >= deadline:
                report.more = True
                return
            received = self._receive(min(_BATCH, max_messages - report.handled), report)
            if not received:
                return
            movable, blocking = [], []
            for message in received:
                # Checked before decoding: a set-aside letter has lost the group whose decoder
                # refused it (a broken resume job may still read as a message without updates).
                if _group(message) == UNDECODABLE_GROUP:
                    held.append(message)
                    if str(message["MessageId"]) not in report.undecodable_ids:
                        report.undecodable_ids.append(str(message["MessageId"]))
                elif _decodable(message):
                    movable.append(message)
                else:
                    blocking.append(message)
            if movable and not self._move(movable, report):
                self._release(blocking, report)
                return
            if blocking and not self._set_aside(blocking, report):
                return
        report.more = True

    def _receive(self, count: int, report: MoveReport) -> list[Any]:
        try:
            return list(
                self._sqs.receive_message(
                    QueueUrl=self._dlq,
                    MaxNumberOfMessages=count,
                    VisibilityTimeout=self._visibility,
                    WaitTimeSeconds=0,
                    MessageSystemAttributeNames=["MessageGroupId"],
                ).get("Messages", [])
            )
        except (ClientError, BotoCoreError) as exc:
            report.error(f"could not read the dead-letter queue: {type(exc).__name__}")
            return []

    def _move(self, messages: list[Any], report: MoveReport) -> bool:
        """Send one received batch to the main queue; False when the move must stop."""
        entries: list[Any] = [
            {
                "Id": str(position),
                "MessageBody": message["Body"],
                "MessageGroupId": _group(message),
                "MessageDeduplicationId": uuid.uuid4().hex,
            }
            for position, message in enumerate(messages)
        ]
        try:
            response = self._sqs.send_message_batch(QueueUrl=self._queue, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            report.failed += len(messages)
            report.error(
                f"could not send to the queue ({type(exc).__name__}); "
                "the messages received are visible in the DLQ again"
            )
            self._release(messages, report)
            return False
        failed_positions = {int(item["Id"]) for item in response.get("Failed", [])}
        unsent = [message for position, message in enumerate(messages) if position in failed_positions]
        sent = [message for position, message in enumerate(messages) if position not in failed_positions]
        if unsent:
            report.failed += len(unsent)
            report.error(f"{len(unsent)} message(s) could not be sent back; they stay in the DLQ")
            self._release(unsent, report)
        report.undeleted += self._delete(sent)
        report.moved += len(sent)
        return not unsent

    def _set_aside(self, messages: list[Any], report: MoveReport) -> bool:
        """Re-send undecodable letters, body unchanged, to the DLQ's undecodable group and delete
        them from the group they block; False when the move must stop."""
        entries: list[Any] = [
            {
                "Id": str(position),
                "MessageBody": message["Body"],
                "MessageGroupId": UNDECODABLE_GROUP,
                "MessageDeduplicationId": uuid.uuid4().hex,
            }
            for position, message in enumerate(messages)
        ]
        try:
            response = self._sqs.send_message_batch(QueueUrl=self._dlq, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            report.error(
                f"could not set undecodable messages aside in the DLQ ({type(exc).__name__}); "
                "they are visible in the DLQ again"
            )
            self._release(messages, report)
            return False
        failed_positions = {int(item["Id"]) for item in response.get("Failed", [])}
        unsent = [message for position, message in enumerate(messages) if position in failed_positions]
        if unsent:
            report.error(
                f"{len(unsent)} undecodable message(s) could not be set aside; they stay in their "
                "group in the DLQ, visible again"
            )
            self._release(unsent, report)
        new_ids = {str(item["Id"]): str(item["MessageId"]) for item in response.get("Successful", [])}
        sent = []
        for position, message in enumerate(messages):
            if position in failed_positions:
                continue
            sent.append(message)
            report.undecodable_ids.append(new_ids.get(str(position), str(message["MessageId"])))
            report.set_aside += 1
            logger.warning(
                "undecodable dead letter set aside",
                extra={
                    "messageId": message["MessageId"],
                    "group": _group(message),
                    "newMessageId": new_ids.get(str(position)),
                },
            )
        undeleted = self._delete(sent)
        if undeleted:
            # The original still heads its group, in flight, holding back the letters behind it
            # until its visibility timeout: they remain to be moved.
            report.more = True
            report.error(
                f"{undeleted} undecodable message(s) were set aside but could not be deleted from "
                f"their group: they hold it back for up to {self._visibility} s, then a later call "
                "sets them aside again (a second copy in the undecodable group)"
            )
        return not unsent

    def _delete(self, messages: Sequence[Any]) -> int:
        """Delete received messages from the DLQ; how many could not be deleted."""
        if not messages:
            return 0
        entries: list[Any] = [
            {"Id": str(position), "ReceiptHandle": message["ReceiptHandle"]}
            for position, message in enumerate(messages)
        ]
        try:
            deleted = self._sqs.delete_message_batch(QueueUrl=self._dlq, Entries=entries)
        except (ClientError, BotoCoreError):
            return len(entries)
        return len(deleted.get("Failed", []))

    def _release(self, messages: Sequence[Any], report: MoveReport) -> None:
        """Make messages visible in the DLQ again at once (instead of after the visibility timeout)."""
        for start in range(0, len(messages), _BATCH):
            entries: list[Any] = [
                {"Id": str(position), "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}
                for position, message in enumerate(messages[start : start + _BATCH])
            ]
            try:
                failed = self._sqs.change_message_visibility_batch(QueueUrl=self._dlq, Entries=entries).get(
                    "Failed", []
                )
            except (ClientError, BotoCoreError):
                failed = entries
            if failed:
                report.error(f"some messages left in the DLQ stay invisible for up to {self._visibility} s")
