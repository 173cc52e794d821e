"""The list timer on SQS (``list_function.adapter.SqsListTimer``, built by ``list_function.changes``):
what it sends, and when it sends nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hubspot_activation.list_function.adapter import MAX_DELAY_SECONDS, SqsListTimer
from hubspot_activation.list_function.changes import list_timer
from hubspot_activation.settings import UpsertSettings


@dataclass
class Sent:
    messages: list[dict[str, Any]] = field(default_factory=list)

    def send_message(self, *, QueueUrl: str, MessageBody: str, DelaySeconds: int) -> object:
        self.messages.append({"url": QueueUrl, "body": json.loads(MessageBody), "delay": DelaySeconds})
        return {}


def test_a_timer_is_a_message_naming_the_audience_delayed_within_what_sqs_takes() -> None:
    sent = Sent()
    timer = SqsListTimer(sent, "https://sqs.example/timers")  # type: ignore[arg-type]
    timer.start("gold", 30)
    timer.start("vip", 3600)
    timer.start("now", 0)
    assert sent.messages == [
        {"url": "https://sqs.example/timers", "body": {"audienceId": "gold"}, "delay": 30},
        {"url": "https://sqs.example/timers", "body": {"audienceId": "vip"}, "delay": MAX_DELAY_SECONDS},
        {"url": "https://sqs.example/timers", "body": {"audienceId": "now"}, "delay": 0},
    ]


def test_without_a_timer_queue_there_is_no_timer() -> None:
    settings = UpsertSettings(ledger_table="t", hubspot_secret_id="s")
    assert list_timer(settings, Sent()) is None  # type: ignore[arg-type]
