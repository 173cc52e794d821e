"""The reconcile function on the local stack: scheduled as the template says, and invoked as its
schedule does, it finds what changed in the sandbox and the flusher writes it back."""

from __future__ import annotations

import time

from hubspot_activation.ledger.reconcile_progress import DynamoDbReconcileProgress

from local import stack as local_stack
from local.template import function_schedules
from tests.e2e.test_local_stack import contact, post, profile


def reconciled(stack: local_stack.LocalStack, timeout: float = 120) -> None:
    """Wait until the reconcile function is idle and what it repaired is settled."""
    assert stack.reconciler is not None
    deadline = time.monotonic() + timeout
    while not stack.reconciler.idle():
        assert time.monotonic() < deadline, "the reconcile function never went idle"
        time.sleep(0.05)
    assert local_stack.settle(stack, timeout)


def test_the_local_stack_schedules_reconcile_as_the_template_does(running: local_stack.LocalStack) -> None:
    assert running.reconciler is not None
    assert running.reconciler.name == "local-reconcile"
    scheduled = sorted((schedule.seconds, schedule.event) for schedule in running.reconcile_schedules)
    assert scheduled == [(60.0, {"journal": True}), (86_400.0, {"walk": "schedule"})]
    assert scheduled == sorted(function_schedules(running.aws.cfn, running.aws.resolver, "ReconcileFunction"))


def test_a_walk_on_the_local_stack_writes_back_what_changed_in_hubspot(
    running: local_stack.LocalStack,
) -> None:
    post(
        running,
        {
            "profiles": [
                profile("ada@example.com", "realized", name="Gold", firstname="Ada", city="London"),
                profile("bob@example.com", "realized", name="Gold", firstname="Bob"),
            ]
        },
    )
    assert local_stack.drain(running, show=False)
    assert running.sandbox is not None
    state = running.sandbox.state
    state.contacts[state.email_index["ada@example.com"]]["properties"]["city"] = "Paris"

    running.reconcile()
    reconciled(running)

    assert contact(running, "ada@example.com")["city"] == "London"
    assert contact(running, "bob@example.com")["firstname"] == "Bob"
    progress = DynamoDbReconcileProgress(
        running.aws.client("dynamodb"), running.aws.physical_id("LedgerTable")
    )
    last = progress.last()
    assert last is not None and last["source"] == "schedule" and last["complete"] is True
    assert last["checked"] == 2 and last["drift"]["edited"] == 1 and last["repaired"] == 1
