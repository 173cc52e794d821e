"""The reconcile function's runner with fakes of the reconciler, the progress store and the journal:
what a walk's invocation stores, when it continues itself, how it yields to live traffic, and the
journal's poll."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import pytest
from hubspot_activation.reconcile.adapter import ReconcileRunner
from hubspot_activation.reconcile.model import DriftKind, Finding, ReconcileReport


@dataclass
class Clock:
    now: float = 1_000.0

    def time(self) -> float:
        return 1_796_000_000.0 + self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Context:
    remaining_ms: int = 900_000
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Walker:
    """A reconciler answering scripted reports; each run takes ``seconds`` of the clock."""

    clock: Clock
    script: list[Callable[[str | None], ReconcileReport]]
    seconds: float = 5.0
    runs: list[tuple[str | None, float | None]] = field(default_factory=list)

    def run(
        self,
        *,
        dry_run: bool = False,
        cursor: str | None = None,
        emails: Collection[str] | None = None,
        deadline: float | None = None,
        max_contacts: int | None = None,
        progress: Callable[[ReconcileReport], None] | None = None,
    ) -> ReconcileReport:
        assert emails is None and not dry_run
        self.runs.append((cursor, deadline))
        self.clock.now += self.seconds
        return self.script.pop(0)(cursor)


@dataclass
class Progress:
    stored: str | None = None
    holder: str | None = None
    records: list[tuple[ReconcileReport, str]] = field(default_factory=list)
    saved: list[str | None] = field(default_factory=list)
    released: list[str] = field(default_factory=list)

    def cursor(self) -> str | None:
        return self.stored

    def save_cursor(self, cursor: str | None) -> None:
        self.saved.append(cursor)
        self.stored = cursor

    def record(self, report: ReconcileReport, source: str) -> None:
        self.records.append((report, source))

    def claim(self, owner: str, until_ms: int, now_ms: int) -> bool:
        if self.holder not in (None, owner):
            return False
        self.holder = owner
        return True

    def release(self, owner: str) -> None:
        self.released.append(owner)
        if self.holder == owner:
            self.holder = None


def page(
    checked: int, after: str | None, stopped_by: str | None = None, **drift: int
) -> Callable[[str | None], ReconcileReport]:
    def answer(_cursor: str | None) -> ReconcileReport:
        report = ReconcileReport(
            checked=checked, calls=1 if checked else 0, cursor=after, stopped_by=stopped_by
        )
        for kind, count in drift.items():
            for i in range(count):
                report.found(Finding(f"c{i}@example.com", DriftKind(kind), repaired=True))
        return report

    return answer


def held(why: str) -> Callable[[str | None], ReconcileReport]:
    """A run the budget stopped before its first page: it answers the cursor it was given."""
    return lambda cursor: ReconcileReport(cursor=cursor, stopped_by=why)


@dataclass
class Runner:
    clock: Clock
    walker: Walker
    progress: Progress
    continued: list[str] = field(default_factory=list)

    def build(self, **kwargs: Any) -> ReconcileRunner:
        return ReconcileRunner(
            self.walker,
            self.progress,
            lambda: self.continued.append("walk"),
            margin_seconds=60.0,
            backlog_wait_seconds=10.0,
            clock=self.clock.time,
            monotonic=self.clock.monotonic,
            sleep=self.clock.sleep,
            **kwargs,
        )


def runner(*script: Callable[[str | None], ReconcileReport], stored: str | None = None) -> Runner:
    clock = Clock()
    return Runner(clock, Walker(clock, list(script)), Progress(stored=stored))


def test_a_walk_goes_on_from_the_stored_cursor_until_its_time_and_continues_in_a_new_invocation() -> None:
    run = runner(page(100, "c2", stopped_by="deadline", edited=2), stored="c1")
    summary = run.build().handle({"walk": "schedule"}, Context(remaining_ms=300_000))
    # From the stored cursor, until the time left less the margin.
    assert run.walker.runs == [("c1", 1_000.0 + 300 - 60)]
    assert run.progress.saved == ["c2"]
    assert [(report.checked, source) for report, source in run.progress.records] == [(100, "schedule")]
    assert run.continued == ["walk"]
    assert summary["checked"] == 100 and summary["drift"]["edited"] == 2 and summary["continued"] is True
    assert summary["complete"] is False and summary["stoppedBy"] == "deadline"
    # The lease is let go before the next invocation looks for it.
    assert run.progress.released == ["req-1"] and run.progress.holder is None


def test_a_walk_reaching_its_end_clears_the_cursor_and_stops() -> None:
    run = runner(page(40, None), stored="c9")
    summary = run.build().handle({}, Context())
    assert run.progress.saved == [None] and run.progress.stored is None
    assert summary["complete"] is True and summary["continued"] is False
    assert run.continued == []
    assert len(run.progress.records) == 1


@pytest.mark.parametrize("why", ["daily_share", "daily_limit", "hubspot"])
def test_a_walk_stopped_by_the_days_budget_or_hubspot_waits_for_the_next_schedule(why: str) -> None:
    run = runner(page(100, "c2", stopped_by=why))
    summary = run.build().handle({}, Context())
    assert run.continued == [] and summary["continued"] is False and summary["stoppedBy"] == why
    assert run.progress.stored == "c2"


def test_a_walk_held_by_live_traffic_waits_and_goes_on_in_the_same_invocation() -> None:
    run = runner(
        page(100, "c2", stopped_by="backlog"),
        held("backlog"),
        held("backlog"),
        page(50, None),
    )
    summary = run.build().handle({}, Context())
    # Each look after a wait goes on from where the walk stopped.
    assert [cursor for cursor, _ in run.walker.runs] == [None, "c2", "c2", "c2"]
    assert run.clock.now == 1_000 + 4 * 5 + 3 * 10  # four runs, three waits
    # Runs that checked nothing are not recorded; the cursor is stored as it moves.
    assert [report.checked for report, _ in run.progress.records] == [100, 50]
    assert run.progress.saved == ["c2", None]
    assert summary["complete"] is True and summary["checked"] == 150 and run.continued == []


def test_a_walk_still_held_at_its_deadline_continues_in_a_new_invocation() -> None:
    run = runner(*[held("backlog")] * 10, stored="c5")
    summary = run.build().handle({}, Context(remaining_ms=120_000))
    # 60 s to walk: runs of 5 s with waits of 10 s until the next wait would pass the deadline.
    assert len(run.walker.runs) == 4 and run.progress.records == [] and run.progress.saved == []
    assert summary["stoppedBy"] == "backlog" and run.continued == ["walk"]
    assert run.progress.stored == "c5"


def test_a_walk_stopped_before_its_first_page_is_not_a_complete_walk() -> None:
    """A run held at the start of a walk answers no cursor, like a complete walk: it is neither
    recorded as one nor ends the chain."""
    run = runner(held("deadline"))
    summary = run.build().handle({}, Context(remaining_ms=30_000))
    assert run.walker.runs == [(None, 1_000.0)]  # less time left than the margin: no time at all
    assert summary["complete"] is False and run.continued == ["walk"]
    assert run.progress.records == [] and run.progress.saved == []


def test_an_invocation_finding_the_walk_taken_leaves_it_to_its_holder() -> None:
    run = runner(page(1, None))
    run.progress.holder = "req-0"
    summary = run.build().handle({}, Context())
    assert summary == {"skipped": "another invocation walks"}
    assert run.walker.runs == [] and run.progress.released == [] and run.continued == []


def test_the_lease_is_let_go_when_the_walk_fails() -> None:
    def fails(_cursor: str | None) -> ReconcileReport:
        raise RuntimeError("ledger down")

    run = runner(fails)
    with pytest.raises(RuntimeError):
        run.build().handle({}, Context())
    assert run.progress.holder is None and run.continued == []


def test_a_run_publishes_drift_by_kind_and_logs_one_line(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from hubspot_activation.observability import metrics

    metrics.clear_metrics()  # what earlier tests' runs added
    run = runner(page(10, None, edited=2, merged=1))
    run.build().handle({}, Context())
    metrics.flush_metrics()
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    by_kind = {
        (name, document["Kind"]): document[name]
        for document in documents
        for name in ("DriftDetected", "DriftRepaired")
        if name in document
    }
    assert by_kind == {
        ("DriftDetected", "edited"): [2.0],
        ("DriftDetected", "merged"): [1.0],
        ("DriftRepaired", "edited"): [2.0],
        ("DriftRepaired", "merged"): [1.0],
    }
    for document in documents:
        if "DriftDetected" in document or "DriftRepaired" in document:
            (declared,) = document["_aws"]["CloudWatchMetrics"]
            assert declared["Dimensions"] == [["service", "Kind"]]
    assert sum(sum(d["ContactsReconciled"]) for d in documents if "ContactsReconciled" in d) == 10
    (line,) = [r for r in caplog.records if r.getMessage() == "reconcile run ended"]
    assert vars(line)["checked"] == 10 and vars(line)["drift"]["merged"] == 1
    assert "@example.com" not in str(vars(line))


@dataclass
class Outcome:
    reconcile: ReconcileReport | None = None
    more: bool = False
    full_walk_needed: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"more": self.more, "fullWalkNeeded": self.full_walk_needed}


@dataclass
class Journal:
    outcomes: list[Outcome]
    deadlines: list[float] = field(default_factory=list)

    def poll(self, deadline: float) -> Outcome:
        self.deadlines.append(deadline)
        return self.outcomes.pop(0)


def test_the_journal_is_not_read_unless_the_credential_can() -> None:
    run = runner()
    built: list[Journal] = []

    def journal() -> Journal:
        built.append(Journal([]))
        return built[-1]

    summary = run.build(journal=journal, journal_off=lambda: "a private-app token").handle(
        {"journal": True}, Context()
    )
    assert summary == {"journal": "off", "reason": "a private-app token"}
    assert built == [] and run.walker.runs == [] and run.progress.records == []


def test_the_journal_poll_reconciles_what_it_names_records_it_and_polls_while_more_is_left() -> None:
    run = runner()
    found = ReconcileReport(checked=2, calls=1)
    found.found(Finding("a@example.com", DriftKind.DELETED))
    journal = Journal([Outcome(found, more=True), Outcome(ReconcileReport(checked=1, calls=1))])
    summary = run.build(journal=lambda: journal).handle({"journal": True}, Context())
    # Each poll ends within 50 s, so the next minute's poll does not overlap it.
    assert journal.deadlines == [1_050.0, 1_050.0]
    assert [(report.checked, source) for report, source in run.progress.records] == [
        (2, "journal"),
        (1, "journal"),
    ]
    assert summary["checked"] == 3 and summary["drift"]["deleted"] == 1 and summary["polls"] == 2
    # The walk is left alone: no lease taken, no cursor moved.
    assert run.walker.runs == [] and run.progress.saved == [] and run.continued == []


def test_a_journal_that_lost_events_starts_a_walk() -> None:
    run = runner()
    journal = Journal([Outcome(None, full_walk_needed=True)])
    summary = run.build(journal=lambda: journal).handle({"journal": True}, Context())
    assert run.continued == ["walk"] and summary["walkStarted"] is True
    assert run.progress.records == []
