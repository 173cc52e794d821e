"""The consumer's memory of how many of its contacts needed a write: a re-send of mostly unchanged
profiles makes the next top-up receive more, so the writes still fill HubSpot calls."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hubspot_activation.observability import metrics
from hubspot_activation.upsert.adapter import UpsertConsumer
from hubspot_activation.upsert.plan import InboundMessage, Outcome
from hubspot_activation.upsert.service import SyncReport
from hubspot_activation.upsert.topup import MIN_WRITE_SHARE, TopUp


@pytest.fixture(autouse=True)
def _no_metrics_left_behind() -> Iterator[None]:
    # handle() adds metrics that only a decorated Lambda handler flushes.
    yield
    metrics.clear_metrics()


@dataclass
class ScriptedService:
    """Answers each batch with the next scripted outcomes."""

    outcomes: list[dict[str, Outcome]]
    hold_backs: list[Any] = field(default_factory=list)
    held: list[str] = field(default_factory=list)

    def process(
        self, messages: Sequence[InboundMessage], remaining: Any = None, hold_back: Any = None
    ) -> SyncReport:
        self.hold_backs.append(hold_back)
        report = SyncReport(outcomes=self.outcomes.pop(0), held_message_ids=list(self.held))
        report.count()
        return report


@dataclass
class RecordingTopUp:
    shares: list[float] = field(default_factory=list)
    backlog: bool = False
    released: list[str] = field(default_factory=list)

    def top_up(self, messages: Sequence[InboundMessage], poll: int = 0, write_share: float = 1.0) -> TopUp:
        self.shares.append(write_share)
        return TopUp(backlog=self.backlog)

    def settle(self, received: Sequence[InboundMessage], returned: Any) -> int:
        return 0

    def release(self, messages: Sequence[InboundMessage]) -> None:
        self.released.extend(m.message_id for m in messages)


def outcomes(synced: int, skipped: int) -> dict[str, Outcome]:
    return {
        **{f"s{i}@example.com": Outcome.SYNCED for i in range(synced)},
        **{f"k{i}@example.com": Outcome.SKIPPED for i in range(skipped)},
    }


EVENT: dict[str, Any] = {"Records": []}


def consumer(script: list[dict[str, Outcome]], topup: RecordingTopUp) -> Callable[[], Any]:
    target = UpsertConsumer(ScriptedService(script), topup)  # type: ignore[arg-type]
    return lambda: target.handle(EVENT)


def test_the_next_top_up_expects_the_share_of_writes_of_the_last_batch() -> None:
    topup = RecordingTopUp()
    handle = consumer([outcomes(50, 50), outcomes(90, 10), outcomes(1, 5), outcomes(0, 100), {}], topup)
    for _ in range(5):
        handle()
    # 1.0 at first; 0.5 after half skipped; 0.9; a batch of 6 says too little; never below the floor.
    assert topup.shares == [1.0, 0.5, 0.9, 0.9, MIN_WRITE_SHARE]


def test_the_service_is_given_a_hold_back_only_under_a_backlog() -> None:
    service = ScriptedService([{}, {}])
    topup = RecordingTopUp()
    target = UpsertConsumer(service, topup)  # type: ignore[arg-type]
    target.handle(EVENT)
    topup.backlog = True
    target.handle(EVENT)
    assert service.hold_backs[0] is None and callable(service.hold_backs[1])


def test_held_records_go_back_through_the_answer_and_visible_at_once() -> None:
    record = {
        "messageId": "r1",
        "receiptHandle": "h1",
        "body": "{}",
        "attributes": {"MessageGroupId": "c1", "ApproximateReceiveCount": "1"},
    }
    event = {"Records": [record, {**record, "messageId": "r2", "receiptHandle": "h2"}]}
    topup = RecordingTopUp(backlog=True)
    target = UpsertConsumer(ScriptedService([{}], held=["r2"]), topup)  # type: ignore[arg-type]
    assert target.handle(event) == {"batchItemFailures": [{"itemIdentifier": "r2"}]}
    assert topup.released == ["r2"]
