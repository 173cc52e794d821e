"""The upsert Lambda handler in-process: an SQS event in, batchItemFailures and EMF metrics out,
with moto (ledger table, credential secret, queue) and the HubSpot sandbox on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hubspot_activation.messages import pack
from hubspot_activation.model import AudienceChange, AudienceStatus, ContactUpdate
from moto import mock_aws

from local.functions import handler
from local.hubspot_sandbox import SandboxServer
from tests.conftest import FakeContext


@pytest.fixture
def upsert_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SandboxServer, str]]:
    sandbox = SandboxServer().start()
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName="ledger",
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "email", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "email", "AttributeType": "S"}],
        )
        secret = boto3.client("secretsmanager").create_secret(
            Name="hubspot", SecretString=json.dumps({"accessToken": sandbox.state.add_private_app_token()})
        )["ARN"]
        queue = boto3.client("sqs").create_queue(QueueName="q.fifo", Attributes={"FifoQueue": "true"})[
            "QueueUrl"
        ]
        for name, value in {
            "LEDGER_TABLE": "ledger",
            "HUBSPOT_SECRET_ID": secret,
            "QUEUE_URL": queue,
            "HUBSPOT_BASE_URL": sandbox.url,
            "POWERTOOLS_SERVICE_NAME": "hubspot-activation",
        }.items():
            monkeypatch.setenv(name, value)
        yield sandbox, queue
    sandbox.stop()


def sqs_event(updates: list[ContactUpdate]) -> dict[str, Any]:
    records = [
        {
            "messageId": f"m{i}",
            "receiptHandle": f"rh{i}",
            "body": message.body,
            "attributes": {"MessageGroupId": message.group_id, "ApproximateReceiveCount": "1"},
            "eventSource": "aws:sqs",
        }
        for i, message in enumerate(pack(updates, 4))
    ]
    return {"Records": records}


def test_handler_syncs_records_reports_failures_and_emits_metrics(
    upsert_env: tuple[SandboxServer, str], capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox, _queue = upsert_env
    lambda_handler = handler("upsert", cold_start=True)
    gold = AudienceChange("gold", AudienceStatus.REALIZED, 1000, "Gold")
    event = sqs_event(
        [
            ContactUpdate("ada@example.com", (gold,), {"firstname": "Ada"}),
            ContactUpdate("grace@example.com", (), {"lastname": "Hopper"}),
        ]
    )
    assert lambda_handler(event, FakeContext()) == {"batchItemFailures": []}
    assert {c["properties"].get("firstname") for c in sandbox.state.contacts.values()} == {"Ada", None}
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert emf[-1]["ContactsUpserted"] == [2.0]
    assert emf[-1]["RateLimitRemaining"] is not None

    sandbox.state.config.error_rate = 1.0  # HubSpot down: everything goes back to the queue
    failing = sqs_event([ContactUpdate("new@example.com", (), {"firstname": "New"})])
    result = lambda_handler(failing, FakeContext())
    assert result == {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in failing["Records"]]}


def test_handler_with_a_broken_setting_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGER_TABLE", raising=False)
    lambda_handler = handler("upsert", cold_start=True)
    with pytest.raises(ValueError, match="LEDGER_TABLE"):
        lambda_handler({"Records": []}, FakeContext())


def test_handler_hands_everything_back_when_the_invocation_has_no_time_left(
    upsert_env: tuple[SandboxServer, str],
) -> None:
    sandbox, _queue = upsert_env

    class AlmostOut(FakeContext):
        def get_remaining_time_in_millis(self) -> int:
            return 5_000

    event = sqs_event([ContactUpdate("ada@example.com", (), {"firstname": "Ada"})])
    result = handler("upsert", cold_start=True)(event, AlmostOut())
    assert result == {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}
    assert sandbox.state.contacts == {}
