"""The reconcile Lambda handler in-process, loaded from functions/reconcile/app.py as Lambda loads
it, on moto (the ledger, the queue, the credential) and the HubSpot sandbox: contacts synced by the
merge and flush handlers, changed in HubSpot, then walked by the schedule's event."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from hubspot_activation.hubspot.journal import JOURNAL_SCOPES
from hubspot_activation.ledger.reconcile_progress import DynamoDbReconcileProgress
from hubspot_activation.reconcile.budget import BACKLOG_MESSAGES

from local.functions import handler
from local.hubspot_sandbox.state import ALL_SCOPES
from local.lambda_async import LocalAsyncFunction
from local.template import translate
from tests.conftest import FakeContext
from tests.integration import test_merge_flush_handlers as handlers
from tests.integration.test_merge_flush_handlers import (
    AwsCalls,
    Sync,
    aws_calls,
    granted,
    logs,
    metric,
    profiles,
    published,
    sqs_event,
    sync,
    watched,
)

__all__ = ["aws_calls", "sync"]  # the fixtures, used by name

RECONCILE_FUNCTION = "hubspot-activation-reconcile"
SCHEDULED = {
    "version": "0",
    "id": "7bf73129-1428-4cd3-a780-95db273d1602",
    "detail-type": "Scheduled Event",
    "source": "aws.scheduler",
    "account": "123456789012",
    "time": "2026-12-06T03:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:scheduler:us-east-1:123456789012:schedule/default/reconcile"],
    "detail": '{"walk": "schedule"}',
}


class Context(FakeContext):
    function_name = "reconcile"

    def __init__(self, remaining_ms: int = 900_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


Continued = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def continued(sync: Sync) -> Iterator[Continued]:
    """The reconcile function's asynchronous invocations of itself, recorded (not run): the
    events so far, once each has been taken."""
    sync.monkeypatch.setenv("RECONCILE_FUNCTION_NAME", RECONCILE_FUNCTION)
    events: list[dict[str, Any]] = []

    def record(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        events.append(event)
        return {}

    function = LocalAsyncFunction(RECONCILE_FUNCTION, lambda: record, 900.0, concurrency=1).start()

    def taken() -> list[dict[str, Any]]:
        deadline = time.monotonic() + 60
        while not function.idle():
            assert time.monotonic() < deadline, "the reconcile function never went idle"
            time.sleep(0.01)
        return list(events)

    yield taken
    function.stop()


def synced(sync: Sync, count: int) -> list[str]:
    sync.flush = handler("flush", cold_start=True)
    updates = profiles(count)
    handler("merge", cold_start=True)(sqs_event(updates), FakeContext())
    sync.woken()
    assert sync.pending() == []
    return sorted(update.email for update in updates)


def edit(sync: Sync, email: str, **properties: str) -> None:
    """A person's edit in HubSpot."""
    state = sync.sandbox.state
    state.contacts[state.email_index[email]]["properties"].update(properties)


def test_the_scheduled_walk_repairs_an_edit_through_the_flusher_and_records_the_walk(
    sync: Sync,
    continued: Continued,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    emails = synced(sync, 30)
    edit(sync, emails[3], city="Edited in HubSpot")
    edit(sync, emails[7], aud_gold="")
    woken_before = len(sync.invocations)
    capsys.readouterr()

    summary = handler("reconcile", cold_start=True)(SCHEDULED, Context())

    assert summary["checked"] == 30 and summary["drift"]["edited"] == 2 and summary["repaired"] == 2
    assert summary["complete"] is True and summary["continued"] is False and continued() == []
    # The repairs woke the flusher, which wrote the source's values again.
    sync.woken()
    assert len(sync.invocations) > woken_before and sync.pending() == []
    hubspot = sync.hubspot()
    assert hubspot[emails[3]]["city"] == "City " + emails[3].removeprefix("user").split("@")[0]
    assert hubspot[emails[7]]["aud_gold"] == "realized"
    # The walk is recorded as the last reconcile, and its cursor cleared.
    progress = DynamoDbReconcileProgress(boto3.client("dynamodb"), "ledger")
    last = progress.last()
    assert last is not None and last["source"] == "schedule" and last["complete"] is True
    assert last["checked"] == 30 and last["drift"]["edited"] == 2 and progress.cursor() is None
    # Reconcile's calls are counted on its own day item besides the account-wide one.
    items = boto3.client("dynamodb").scan(TableName="ledger")["Items"]
    keys = {item["email"]["S"] for item in items}
    assert any(key.startswith("#reconcile-calls#") for key in keys)
    output = capsys.readouterr().out
    documents = [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]
    assert [(d["Kind"], d["DriftDetected"]) for d in documents if "DriftDetected" in d] == [("edited", [2.0])]
    assert metric(output, "ContactsReconciled") == 30
    (ended,) = logs(caplog, "reconcile run ended")
    assert ended["checked"] == 30
    assert "@example.com" not in output


@pytest.mark.parametrize(("rule", "found"), [("fill_empty", 1), ("never", 0)])
def test_the_walk_leaves_an_edit_as_hubspot_holds_it_under_the_deployed_field_rules(
    sync: Sync, continued: Continued, capsys: pytest.CaptureFixture[str], rule: str, found: int
) -> None:
    """FIELD_RULES as the template passes it: a ``fill_empty`` edit is found and kept, a ``never``
    property is not compared; neither is written, and nothing wakes the flusher."""
    emails = synced(sync, 5)
    sync.monkeypatch.setenv("FIELD_RULES", json.dumps({"city": rule}))
    edit(sync, emails[3], city="Edited in HubSpot")
    woken_before = len(sync.invocations)
    writes_before = sync.sandbox.state.requests["POST batch_upsert"]
    capsys.readouterr()

    summary = handler("reconcile", cold_start=True)(SCHEDULED, Context())

    assert summary["checked"] == 5 and summary["drift"]["edited"] == found and summary["repaired"] == 0
    output = capsys.readouterr().out
    assert metric(output, "DriftDetected") == found and metric(output, "DriftRepaired") == 0
    sync.woken()
    assert len(sync.invocations) == woken_before and sync.pending() == []
    assert sync.hubspot()[emails[3]]["city"] == "Edited in HubSpot"
    assert sync.sandbox.state.requests["POST batch_upsert"] == writes_before


def test_a_walk_in_sync_costs_one_read_and_no_write(sync: Sync, continued: Continued) -> None:
    synced(sync, 20)
    requests_before = dict(sync.sandbox.state.requests)
    summary = handler("reconcile", cold_start=True)({}, Context())
    assert summary["checked"] == 20 and summary["repaired"] == 0 and summary["calls"] == 1
    made = {
        key: count - requests_before.get(key, 0)
        for key, count in sync.sandbox.state.requests.items()
        if count != requests_before.get(key, 0)
    }
    # One batch read, and the property definitions a new container reads once (to compare values).
    assert made == {"POST batch_read": 1, "GET list_properties": 1}


def test_a_walk_out_of_time_continues_in_a_new_invocation_of_itself(sync: Sync, continued: Continued) -> None:
    synced(sync, 5)
    # Less time left than a page needs: nothing is read, the walk goes on in the next invocation.
    summary = handler("reconcile", cold_start=True)(SCHEDULED, Context(remaining_ms=60_000))
    assert summary["checked"] == 0 and summary["stoppedBy"] == "deadline" and summary["continued"] is True
    assert continued() == [{"walk": "continue"}]
    progress = DynamoDbReconcileProgress(boto3.client("dynamodb"), "ledger")
    assert progress.last() is None and progress.cursor() is None


def test_a_queue_backlog_holds_the_walk(sync: Sync, continued: Continued) -> None:
    synced(sync, 5)
    for index in range(BACKLOG_MESSAGES):
        boto3.client("sqs").send_message(
            QueueUrl=sync.queue, MessageBody="{}", MessageGroupId="g", MessageDeduplicationId=f"d{index}"
        )
    # Time for one look only: the backlog holds it, and the walk goes on later from where it was.
    summary = handler("reconcile", cold_start=True)(SCHEDULED, Context(remaining_ms=180_000))
    assert (
        summary["checked"] == 0
        and summary["stoppedBy"] == "backlog"
        and continued() == [{"walk": "continue"}]
    )


def test_every_aws_call_the_walk_makes_is_one_its_role_grants_and_it_publishes_the_drift_metrics(
    sync: Sync, continued: Continued, aws_calls: AwsCalls, capsys: pytest.CaptureFixture[str]
) -> None:
    """moto enforces no IAM: a call the role does not grant would fail only in AWS. A walk reads
    its progress, its credential, its day's count and the queue's depth, scans the contacts,
    stores repairs with their pending markers, wakes the flusher, records, and continues itself."""
    emails = synced(sync, 10)
    edit(sync, emails[0], city="Edited in HubSpot")
    sync.flush = None  # the wake-up is recorded, not run: only reconcile's own calls are seen
    sync.woken()
    capsys.readouterr()
    aws_calls.calls = set()
    summary = handler("reconcile", cold_start=True)(SCHEDULED, Context())
    assert summary["repaired"] == 1 and sync.woken()[-1] == {"lane": 0}
    calls = set(aws_calls.calls)
    # Out of time at once: it continues itself.
    handler("reconcile", cold_start=True)(SCHEDULED, Context(remaining_ms=60_000))
    assert continued() == [{"walk": "continue"}]
    calls |= aws_calls.calls
    assert {action for action, _resource in calls} >= {
        "secretsmanager:GetSecretValue",
        "sqs:GetQueueAttributes",
        "dynamodb:Scan",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:BatchWriteItem",
        "lambda:InvokeFunction",
    }
    logical = {**handlers._LOGICAL, RECONCILE_FUNCTION: ("${AWS::StackName}-reconcile",)}
    sync.monkeypatch.setattr(handlers, "_LOGICAL", logical)
    cfn = translate()
    assert [call for call in sorted(calls) if not granted(cfn, "ReconcileFunctionRole", *call)] == []
    drift = {"DriftDetected", "DriftRepaired"}
    assert drift <= watched() and drift <= published(capsys.readouterr().out)


def test_the_journal_event_reconciles_the_contacts_hubspot_names_with_calls_its_role_grants(
    sync: Sync, continued: Continued, aws_calls: AwsCalls
) -> None:
    """An OAuth app's credential: the every-minute event subscribes and starts from the newest
    entry, then reconciles only the contacts the journal names (a deletion and a GDPR erase)."""
    emails = synced(sync, 10)
    client_id, client_secret, refresh = sync.sandbox.state.add_oauth_app(ALL_SCOPES | JOURNAL_SCOPES)
    secrets = boto3.client("secretsmanager")
    secret_id = secrets.list_secrets()["SecretList"][0]["Name"]
    oauth = {"clientId": client_id, "clientSecret": client_secret, "refreshToken": refresh}
    secrets.put_secret_value(SecretId=secret_id, SecretString=json.dumps(oauth))
    journal = {"journal": True}
    aws_calls.calls = set()

    first = handler("reconcile", cold_start=True)(journal, Context())
    assert first["checked"] == 0 and first["journal"]["expired"] is False
    state = sync.sandbox.state
    state.archive(state.email_index[emails[2]])
    state.erase(state.email_index[emails[5]])
    edit(sync, emails[8], city="Not in the journal")  # no event: left to the walk

    second = handler("reconcile", cold_start=False)(journal, Context())
    assert second["checked"] == 2 and second["drift"]["deleted"] == 1 and second["drift"]["erased"] == 1
    progress = DynamoDbReconcileProgress(boto3.client("dynamodb"), "ledger").last()
    assert progress is not None and progress["source"] == "journal"
    logical = {**handlers._LOGICAL, RECONCILE_FUNCTION: ("${AWS::StackName}-reconcile",)}
    sync.monkeypatch.setattr(handlers, "_LOGICAL", logical)
    cfn = translate()
    assert [
        call for call in sorted(aws_calls.calls) if not granted(cfn, "ReconcileFunctionRole", *call)
    ] == []
