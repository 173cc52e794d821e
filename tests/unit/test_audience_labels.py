"""A rename's relabel never costs the PUT its answer: bounded in time, every failure a reason."""

from __future__ import annotations

import threading

from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from hubspot_activation.operations.audiences import (
    RELABEL_BUDGET_SECONDS,
    BudgetedLabels,
    ListRename,
    NameTaken,
)


class StuckLabels:
    """A relabel that never returns until the test lets it (HubSpot or Secrets Manager hanging)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()

    def relabel(self, property_name: str, label: str) -> str | None:
        self.started.set()
        self.release.wait()
        return None


class FailingLabels:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def relabel(self, property_name: str, label: str) -> str | None:
        raise self.error


class DoneLabels:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def relabel(self, property_name: str, label: str) -> str | None:
        self.calls.append((property_name, label))
        return None


def test_the_budget_is_at_most_five_seconds() -> None:
    assert RELABEL_BUDGET_SECONDS <= 5


def test_a_relabel_that_hangs_is_given_up_with_a_reason() -> None:
    stuck = StuckLabels()
    try:
        problem = BudgetedLabels(stuck, budget_seconds=0.01).relabel("aud_gold", "Gold")
        assert stuck.started.wait(5)
        assert problem is not None and "the next sync of the audience sets it" in problem
    finally:
        stuck.release.set()


def test_a_credential_failure_is_a_reason_not_an_error() -> None:
    for error in (GetParameterError("secret unreadable"), RuntimeError("anything else")):
        problem = BudgetedLabels(FailingLabels(error)).relabel("aud_gold", "Gold")
        assert problem is not None and type(error).__name__ in problem
        assert "secret unreadable" not in problem  # the type only: messages may quote anything


def test_a_relabel_that_works_reports_nothing() -> None:
    done = DoneLabels()
    assert BudgetedLabels(done).relabel("aud_gold", "Gold") is None
    assert done.calls == [("aud_gold", "Gold")]


class TakenNames:
    """HubSpot's lists: ``taken`` names are held by other lists."""

    def __init__(self, *taken: str) -> None:
        self.taken = set(taken)
        self.calls: list[tuple[str, str]] = []

    def relabel(self, property_name: str, label: str) -> str | None:
        return None

    def rename_list(self, list_id: str, name: str) -> str | None:
        self.calls.append((list_id, name))
        if name in self.taken:
            raise NameTaken(name)
        return None


def test_a_list_rename_takes_the_suffixed_name_on_a_clash_and_says_why_when_both_are_taken() -> None:
    lists = TakenNames("Gold")
    outcome = BudgetedLabels(lists, lists=lists).rename_list("70001", "gold", "Gold", 1.0)
    assert outcome == ListRename("Gold (gold)") and lists.calls == [
        ("70001", "Gold"),
        ("70001", "Gold (gold)"),
    ]
    lists = TakenNames("Gold", "Gold (gold)")
    outcome = BudgetedLabels(lists, lists=lists).rename_list("70001", "gold", "Gold", 1.0)
    assert outcome.name is None and outcome.problem is not None
    assert "'Gold (gold)'" in outcome.problem and "the next PUT of the audience renames it" in outcome.problem


def test_a_list_rename_left_no_time_by_the_relabel_makes_no_call() -> None:
    lists = TakenNames()
    outcome = BudgetedLabels(lists, lists=lists).rename_list("70001", "gold", "Gold", 0.0)
    assert outcome.name is None and "no time was left" in str(outcome.problem) and lists.calls == []
