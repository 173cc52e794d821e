"""POST /reconcile, the sync's state and what HubSpot was last seen to hold, through the real
operations routes (moto for DynamoDB, SQS and Secrets Manager; the reconciler and the record of its
runs injected through the composition root, as ``build_api`` injects the deployed ones)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import boto3
import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext
from hubspot_activation.ledger.daily_calls_item import add_calls_update
from hubspot_activation.ledger.keys import (
    ISSUE_DELETED,
    SEEN,
    SEEN_AT,
    SEEN_DRIFT,
    SEEN_ID,
    pending_marker_key,
    pending_partition,
    pending_partition_value,
)
from hubspot_activation.ledger.rate_limit_holds import DynamoDbHeldRecorder
from hubspot_activation.operations.api import OperationsApi
from hubspot_activation.operations.wiring import operations_api
from hubspot_activation.reconcile.model import DriftKind, Finding, InvalidCursor, ReconcileReport
from hubspot_activation.secret_store import secrets_manager_fetcher
from hubspot_activation.settings import OperationsSettings, UpsertSettings
from moto import mock_aws

from hubspot_activation_cli.main import main as cli
from local.api_server import LocalApiServer
from tests.conftest import INGEST_TOKEN, FakeContext, create_fifo_queue_with_dlq, create_ledger_table
from tests.corpus.operations import event_of

TABLE = "ops-ledger"
DAILY_LIMIT, DAILY_RESERVE = 1000, 100


class FakeReconciler:
    """``Reconciler.run`` over a fixed list of tracked contacts, ``page`` of them a call."""

    def __init__(self, tracked: list[str], page: int = 2) -> None:
        self.tracked = tracked
        self.page = page
        self.calls: list[dict[str, Any]] = []

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
        self.calls.append(
            {
                "dry_run": dry_run,
                "cursor": cursor,
                "emails": emails,
                "deadline": deadline,
                "max": max_contacts,
            }
        )
        report = ReconcileReport(dry_run=dry_run, calls=1)
        if cursor is not None and not cursor.isdigit():
            raise InvalidCursor("cursor is not one a reconcile answered with")
        if emails is not None:
            chosen = [email for email in emails if email in self.tracked]
        else:
            start = int(cursor or 0)
            chosen = self.tracked[start : start + self.page]
            end = start + len(chosen)
            report.cursor = str(end) if end < len(self.tracked) else None
        report.checked = len(chosen)
        for email in chosen:
            if email.startswith("edited"):
                report.found(Finding(email, DriftKind.EDITED, ["firstname"], repaired=not dry_run))
        return report


@dataclass
class FakeHistory:
    records: list[tuple[ReconcileReport, str]] = field(default_factory=list)

    def record(self, report: ReconcileReport, source: str) -> None:
        self.records.append((report, source))

    def last(self) -> dict[str, Any] | None:
        if not self.records:
            return None
        report, source = self.records[-1]
        return {"source": source, **report.as_json()}


@dataclass
class Ops:
    api: OperationsApi
    reconciler: FakeReconciler
    history: FakeHistory
    builds: list[int]
    dynamodb: Any
    queue_url: str

    def call(
        self, method: str, route: str, body: Any = None, context: Any = None, **case: Any
    ) -> tuple[int, Any]:
        event = event_of(
            {"method": method, "route": route, "body": json.dumps(body) if body else None, **case}
        )
        response = self.api.handle(event, cast(LambdaContext, context or FakeContext()))
        return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def ops() -> Iterator[Ops]:
    with mock_aws():
        queue, dlq = create_fifo_queue_with_dlq("ops", "ops-dlq", max_receive_count=5)
        secrets = boto3.client("secretsmanager")
        secret = secrets.create_secret(Name="ops-token", SecretString=json.dumps({"token": INGEST_TOKEN}))
        create_ledger_table(TABLE)
        dynamodb = boto3.client("dynamodb")
        upsert = UpsertSettings(
            ledger_table=TABLE,
            hubspot_secret_id="unused",
            daily_limit=DAILY_LIMIT,
            daily_reserve=DAILY_RESERVE,
        )
        settings = OperationsSettings(
            ledger_table=TABLE, ingest_secret_id=secret["ARN"], queue_url=queue, dead_letter_queue_url=dlq
        )
        reconciler = FakeReconciler(["ada@example.com", "edited-bob@example.com", "cy@example.com"])
        history = FakeHistory()
        builds: list[int] = []

        def build() -> FakeReconciler:
            builds.append(1)
            return reconciler

        api = operations_api(
            settings,
            upsert,
            dynamodb,
            boto3.client("sqs"),
            boto3.client("cloudwatch"),
            secrets_manager_fetcher(secret["ARN"], 300, secrets),
            None,
            build,
            history,
        )
        yield Ops(api, reconciler, history, builds, dynamodb, queue)


def test_reconcile_builds_the_reconciler_once_runs_bounded_and_records_each_call(ops: Ops) -> None:
    ops.call("GET", "/sync/status")
    assert ops.builds == []  # the other routes never build it (nor the HubSpot client)
    started = time.monotonic()
    status, answer = ops.call("POST", "/reconcile", {"dryRun": True})
    assert status == 200, answer
    assert answer["checked"] == 2 and answer["more"] is True and answer["cursor"] == "2"
    assert answer["drift"] == {"edited": 1, "deleted": 0, "erased": 0, "merged": 0, "restored": 0}
    assert answer["repaired"] == 0 and answer["dryRun"] is True and answer["recorded"] is True
    assert answer["examples"] == [
        {"email": "edited-bob@example.com", "kind": "edited", "repaired": False, "properties": ["firstname"]}
    ]
    (call,) = ops.reconciler.calls
    assert call["dry_run"] is True and call["cursor"] is None and call["emails"] is None
    assert call["max"] == 5000
    # FakeContext has 150 s left: the call's own budget (20 s) bounds it.
    assert started + 19 <= call["deadline"] <= time.monotonic() + 20
    status, answer = ops.call("POST", "/reconcile", {"dryRun": False, "cursor": "2"})
    assert status == 200 and answer["checked"] == 1 and answer["more"] is False and answer["cursor"] is None
    assert ops.reconciler.calls[1]["cursor"] == "2" and ops.reconciler.calls[1]["dry_run"] is False
    assert ops.builds == [1]
    assert [(report.checked, source) for report, source in ops.history.records] == [(2, "api"), (1, "api")]


@dataclass
class ShortContext(FakeContext):
    remaining_ms: int = 10_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_reconcile_stops_before_the_invocation_ends(ops: Ops) -> None:
    before = time.monotonic()
    assert ops.call("POST", "/reconcile", None, context=ShortContext())[0] == 200
    deadline = ops.reconciler.calls[0]["deadline"]
    assert before + 6.5 <= deadline <= time.monotonic() + 7  # 10 s left, less the 3 s margin


def test_reconcile_checks_the_emails_named_normalized_once_each(ops: Ops) -> None:
    status, answer = ops.call(
        "POST",
        "/reconcile",
        {"emails": [" Edited-Bob@Example.com ", "edited-bob@example.com", "zed@example.com"]},
    )
    assert status == 200, answer
    assert ops.reconciler.calls[0]["emails"] == ["edited-bob@example.com", "zed@example.com"]
    assert ops.reconciler.calls[0]["cursor"] is None
    assert answer["checked"] == 1 and answer["more"] is False and answer["repaired"] == 1


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        ([], "body"),
        ({"dryRun": "yes"}, "dryRun"),
        ({"cursor": 5}, "cursor"),
        ({"cursor": ""}, "cursor"),
        ({"cursor": "c" * 2049}, "cursor"),
        ({"emails": "ada@example.com"}, "emails"),
        ({"emails": []}, "emails"),
        ({"emails": [f"u{i}@example.com" for i in range(101)]}, "emails"),
        ({"emails": ["ada@example.com", 7]}, "emails"),
        ({"emails": ["no-at-sign"]}, "emails"),
        ({"emails": ["ada@example.com"], "cursor": "2"}, "cursor"),
    ],
)
def test_reconcile_refuses_what_it_cannot_use_naming_the_field(ops: Ops, body: Any, field_name: str) -> None:
    event = event_of({"method": "POST", "route": "/reconcile", "body": json.dumps(body)})
    response = ops.api.handle(event, cast(LambdaContext, FakeContext()))
    status, answer = response["statusCode"], json.loads(response["body"])
    assert status == 400, answer
    assert answer["field"] == field_name and answer["error"]
    assert ops.reconciler.calls == [] and ops.builds == []


def test_a_cursor_the_reconciler_never_answered_with_is_refused_naming_it(ops: Ops) -> None:
    status, answer = ops.call("POST", "/reconcile", {"cursor": "not-a-cursor"})
    assert status == 400 and answer["field"] == "cursor", answer
    assert ops.history.records == []


def test_reconcile_needs_the_token(ops: Ops) -> None:
    status, answer = ops.call("POST", "/reconcile", {"dryRun": True}, auth=False)
    assert status == 401 and answer["error"] == "unauthorized"
    assert ops.reconciler.calls == []


# -- GET /sync/status ---------------------------------------------------------------------------------


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _count_calls(ops: Ops, calls: int) -> None:
    ops.dynamodb.update_item(TableName=TABLE, **add_calls_update(_today(), calls, int(time.time())))


def _pending_marker(ops: Ops, *emails: str) -> None:
    partition = pending_partition(emails[0])
    due_ms = int(time.time() * 1000)
    ops.dynamodb.put_item(
        TableName=TABLE,
        Item={
            "email": {"S": pending_marker_key(partition, list(emails), due_ms)},
            "pendingPartition": {"S": pending_partition_value(partition)},
            "dueAt": {"N": str(due_ms)},
            "emails": {"SS": list(emails)},
        },
    )


def test_status_says_no_active_sync_before_anything_was_synced(ops: Ops) -> None:
    status, answer = ops.call("GET", "/sync/status")
    assert status == 200
    assert answer["state"] == "no_active_sync"
    assert answer["backlog"] == {"queued": 0, "pendingContacts": 0, "pendingExact": True}
    assert answer["lastReconcile"] is None


def test_status_is_active_and_listening_once_synced_with_nothing_waiting(ops: Ops) -> None:
    _count_calls(ops, 10)
    assert ops.call("GET", "/sync/status")[1]["state"] == "active_and_listening"


def test_status_is_in_progress_with_the_backlog_of_pending_contacts_not_counted_in_sync(ops: Ops) -> None:
    _pending_marker(ops, "ada@example.com", "bob@example.com")
    _pending_marker(ops, "ada@example.com")  # a contact in two markers is one contact
    answer = ops.call("GET", "/sync/status")[1]
    assert answer["state"] == "in_progress"
    assert answer["backlog"]["pendingContacts"] == 2 and answer["backlog"]["pendingExact"] is True
    contacts = answer["contacts"]
    assert contacts["inSync"] is None or contacts["inSync"] <= max(0, contacts["tracked"] - 2)


def test_status_is_in_progress_while_the_queue_holds_updates(ops: Ops) -> None:
    boto3.client("sqs").send_message(
        QueueUrl=ops.queue_url, MessageBody="{}", MessageGroupId="g", MessageDeduplicationId="d"
    )
    answer = ops.call("GET", "/sync/status")[1]
    assert answer["state"] == "in_progress" and answer["backlog"]["queued"] == 1


def test_status_is_queued_by_the_daily_limit_once_today_reached_it_less_the_reserve(ops: Ops) -> None:
    _pending_marker(ops, "ada@example.com")
    _count_calls(ops, DAILY_LIMIT - DAILY_RESERVE)
    answer = ops.call("GET", "/sync/status")[1]
    assert answer["state"] == "queued_daily_limit" and answer["hubspotBudget"]["remaining"] == 0


def test_status_is_queued_by_the_rate_limit_while_hubspots_window_holds_the_flush(ops: Ops) -> None:
    _pending_marker(ops, "ada@example.com")
    DynamoDbHeldRecorder(ops.dynamodb, TABLE)()
    answer = ops.call("GET", "/sync/status")[1]
    assert answer["state"] == "queued_rate_limit"
    assert answer["hubspotBudget"]["rateLimitHeldAt"].startswith(_today())


def test_a_hold_long_past_no_longer_queues_the_backlog(ops: Ops) -> None:
    _pending_marker(ops, "ada@example.com")
    DynamoDbHeldRecorder(ops.dynamodb, TABLE, clock=lambda: time.time() - 120)()
    assert ops.call("GET", "/sync/status")[1]["state"] == "in_progress"


def test_status_shows_the_last_reconcile(ops: Ops) -> None:
    ops.call("POST", "/reconcile", {"dryRun": False, "emails": ["edited-bob@example.com"]})
    last = ops.call("GET", "/sync/status")[1]["lastReconcile"]
    assert last["source"] == "api" and last["checked"] == 1 and last["drift"]["edited"] == 1
    assert last["repaired"] == 1 and last["calls"] == 1


def test_status_counts_contacts_deleted_in_hubspot(ops: Ops) -> None:
    _contact(ops, "gone@example.com", issue=ISSUE_DELETED)
    contacts = ops.call("GET", "/sync/status")[1]["contacts"]
    assert contacts["deleted"] == 1 and contacts["deletedExact"] is True


# -- GET /contacts/{email} and GET /sync/issues?status=deleted ----------------------------------------

SEEN_MS = 1_796_000_000_000  # 2026-11-30T...


def _contact(
    ops: Ops, email: str, seen: bool = False, issue: str | None = None, at_ms: int = SEEN_MS
) -> None:
    item: dict[str, Any] = {"email": {"S": email}, "status": {"S": "synced"}, "hubspotId": {"S": "101"}}
    if seen:
        item[SEEN] = {"M": {"firstname": {"S": "Ada"}, "city": {"NULL": True}}}
        item[SEEN_AT] = {"N": str(at_ms)}
        item[SEEN_ID] = {"S": "101"}
        item[SEEN_DRIFT] = {"S": DriftKind.EDITED.value}
    if issue:
        item["issueStatus"] = {"S": issue}
        item["issueAt"] = {"N": str(at_ms)}
    ops.dynamodb.put_item(TableName=TABLE, Item=item)


def test_a_contact_shows_what_hubspot_was_last_seen_to_hold(ops: Ops) -> None:
    _contact(ops, "ada@example.com", seen=True)
    status, answer = ops.call("GET", "/contacts/{email}", params={"email": "Ada@Example.com"})
    assert status == 200, answer
    assert answer["hubspot"] == {
        "seenAt": datetime.fromtimestamp(SEEN_MS / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "id": "101",
        "properties": {"city": None, "firstname": "Ada"},
        "drift": "edited",
    }


def test_a_contact_never_reconciled_has_no_hubspot_view(ops: Ops) -> None:
    _contact(ops, "bob@example.com")
    answer = ops.call("GET", "/contacts/{email}", params={"email": "bob@example.com"})[1]
    assert answer["hubspot"] is None and answer["status"] == "synced"


def test_contacts_deleted_in_hubspot_are_listed_with_when(ops: Ops) -> None:
    _contact(ops, "gone@example.com", issue=ISSUE_DELETED, at_ms=SEEN_MS)
    _contact(ops, "older@example.com", issue=ISSUE_DELETED, at_ms=SEEN_MS - 1000)
    _contact(ops, "failed@example.com", issue="failed")
    status, answer = ops.call("GET", "/sync/issues", query={"status": "deleted"})
    assert status == 200, answer
    assert [(item["email"], item["status"]) for item in answer["items"]] == [
        ("gone@example.com", "deleted"),
        ("older@example.com", "deleted"),
    ]
    assert answer["items"][0]["deletedAt"] == answer["items"][0]["at"]
    assert answer["items"][0]["deletedAt"].startswith("2026-11-")


# -- the CLI against the routes over HTTP -------------------------------------------------------------


def _serve(ops: Ops) -> Iterator[str]:
    server = LocalApiServer(ops.api.handle).start()
    try:
        yield server.url
    finally:
        server.stop()


def run_cli(url: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli(
        ["reconcile", *argv, "--url", url, f"--token={INGEST_TOKEN}", "--max-retries", "0"], out=out, err=err
    )
    return code, out.getvalue(), err.getvalue()


def test_cli_reconcile_walks_every_contact_with_the_cursor_and_prints_the_totals(ops: Ops) -> None:
    for url in _serve(ops):
        code, out, err = run_cli(url, "--dry-run")
    assert code == 0, out + err
    assert [call["cursor"] for call in ops.reconciler.calls] == [None, "2"]
    assert all(call["dry_run"] for call in ops.reconciler.calls)
    assert "checked   3 contacts in 2 requests (dry run: nothing repaired)" in out
    assert "drift     1" in out and "         1  edited" in out
    assert "e.g. edited-bob@example.com: edited (firstname)" in out


def test_cli_reconcile_checks_just_the_emails_given(ops: Ops) -> None:
    for url in _serve(ops):
        code, out, _ = run_cli(url, "--email", "Edited-Bob@example.com", "--email", "cy@example.com")
    assert code == 0
    assert [call["emails"] for call in ops.reconciler.calls] == [["edited-bob@example.com", "cy@example.com"]]
    assert "checked   2 contacts in 1 requests" in out and "repaired  1" in out


def test_cli_reconcile_fails_on_an_error_and_says_why(ops: Ops) -> None:
    for url in _serve(ops):
        code, out, _ = run_cli(url, "--email", "not-an-email")
    assert code == 1
    assert "stopped: request 1 failed: HTTP 400 invalid" in out.replace("invalid_input", "invalid")
    assert "emails[0]" in out


def test_the_hold_is_recorded_at_most_every_ten_seconds_and_never_moves_back(ops: Ops) -> None:
    now = [time.time()]
    recorder = DynamoDbHeldRecorder(ops.dynamodb, TABLE, clock=lambda: now[0])
    recorder()
    first = ops.call("GET", "/sync/status")[1]["hubspotBudget"]["rateLimitHeldAt"]
    now[0] += 5
    recorder()
    assert ops.call("GET", "/sync/status")[1]["hubspotBudget"]["rateLimitHeldAt"] == first
    now[0] += 6
    recorder()
    later = ops.call("GET", "/sync/status")[1]["hubspotBudget"]["rateLimitHeldAt"]
    assert later > first
    DynamoDbHeldRecorder(ops.dynamodb, TABLE, clock=lambda: now[0] - 60)()  # another lane, behind
    assert ops.call("GET", "/sync/status")[1]["hubspotBudget"]["rateLimitHeldAt"] == later


def test_a_reconcile_publishes_the_drift_it_found_and_a_dry_run_publishes_none(
    ops: Ops, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert ops.call("POST", "/reconcile", {"dryRun": True})[0] == 200
    assert "DriftDetected" not in capsys.readouterr().out
    assert ops.call("POST", "/reconcile", {"dryRun": False})[0] == 200
    published = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    drift = [line for line in published if "DriftDetected" in line]
    assert [(line["Kind"], line["DriftDetected"]) for line in drift] == [("edited", [1.0])]
