"""The list timer on SQS (``lists.timer.SqsListTimer``): what it sends, and when it sends nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hubspot_activation.lists.timer import MAX_DELAY_SECONDS, SqsListTimer


@dataclass
class Sent:
    messages: list[dict[str, Any]] = field(default_factory=list)

    def send_message(self, *, QueueUrl: str, MessageBody: str, DelaySeconds: int) -> object:
        self.messages.append({"url": QueueUrl, "body": json.loads(MessageBody), "delay": DelaySeconds})
        return {}


def test_a_timer_is_a_message_naming_the_audience_delayed_within_what_sqs_takes() -> None:
    sent = Sent()
    timer = SqsListTimer(sent, "https://sqs.example/timers")
    timer.start("gold", 30)
    timer.start("vip", 3600)
    timer.start("now", 0)
    assert sent.messages == [
        {"url": "https://sqs.example/timers", "body": {"audienceId": "gold"}, "delay": 30},
        {"url": "https://sqs.example/timers", "body": {"audienceId": "vip"}, "delay": MAX_DELAY_SECONDS},
        {"url": "https://sqs.example/timers", "body": {"audienceId": "now"}, "delay": 0},
    ]


def test_without_a_timer_queue_nothing_is_sent() -> None:
    sent = Sent()
    SqsListTimer(sent, "").start("gold", 30)
    assert sent.messages == []
