"""Shared fixtures: no test ever reaches real AWS (fake credentials, moto) or the internet."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hubspot_activation.attribute_mapping import AttributeMapping
from hubspot_activation.ingest.payloads import ParseOptions
from moto import mock_aws

from local import dynamodb_limits, sqs_fifo
from local.template import load_sam

INGEST_TOKEN = "test-ingest-token-0123456789"
RECEIVED_AT_MS = 1_796_000_000_000  # 2026-11-30, after every timestamp the tests send

# Every moto queue of the suite receives like SQS FIFO (group batching, locking, redrive order), as
# the local stack's does.
sqs_fifo.install()
# ... and every moto table refuses an over-long key on reads as DynamoDB does, not only on writes.
dynamodb_limits.install()


def create_fifo_queue_with_dlq(name: str, dlq_name: str, max_receive_count: int) -> tuple[str, str]:
    """A FIFO queue ``<name>.fifo`` redriving to ``<dlq_name>.fifo`` in moto: (queue URL, DLQ URL)."""
    sqs = boto3.client("sqs")
    dlq = sqs.create_queue(QueueName=f"{dlq_name}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}
    queue = sqs.create_queue(
        QueueName=f"{name}.fifo", Attributes={"FifoQueue": "true", "RedrivePolicy": json.dumps(redrive)}
    )["QueueUrl"]
    return queue, dlq


def create_ledger_table(name: str = "ledger", dynamodb: Any = None) -> str:
    """The ledger table as template.yaml declares it (its key, its attributes and every index with
    its projection), in moto (inside ``mock_aws``): a test's table never drifts from the deployed
    one (an index projecting less than the code reads would fail in AWS alone)."""
    properties = load_sam()["Resources"]["LedgerTable"]["Properties"]
    (dynamodb or boto3.client("dynamodb")).create_table(
        TableName=name,
        KeySchema=properties["KeySchema"],
        AttributeDefinitions=properties["AttributeDefinitions"],
        GlobalSecondaryIndexes=properties["GlobalSecondaryIndexes"],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture(autouse=True)
def _isolated_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "HubSpotActivationTests",
        "POWERTOOLS_TRACE_DISABLED": "1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def options() -> ParseOptions:
    return ParseOptions(mapping=AttributeMapping.from_overrides(), received_at_ms=RECEIVED_AT_MS)


@pytest.fixture
def aws_resources(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A FIFO queue with its DLQ and the ingest secret in moto, and the ingest function's settings."""
    with mock_aws():
        queue, _dlq = create_fifo_queue_with_dlq("activations", "dlq", max_receive_count=20)
        secret = boto3.client("secretsmanager").create_secret(
            Name="ingest-token", SecretString=json.dumps({"username": "aep", "token": INGEST_TOKEN})
        )["ARN"]
        settings = {"QUEUE_URL": queue, "INGEST_SECRET_ID": secret, "SHARD_COUNT": "16"}
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        yield settings


def drain(queue_url: str) -> list[Any]:
    """Receive (and delete) everything on a FIFO queue, in delivery order."""
    sqs = boto3.client("sqs")
    received: list[Any] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not batch:
            return received
        received.extend(batch)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )


def http_api_event(
    body: Any,
    headers: dict[str, str] | None = None,
    *,
    path: str = "/activations",
    method: str = "POST",
    raw: bool = False,
    base64_encoded: bool = False,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload v2) event."""
    text = body if raw else json.dumps(body)
    if base64_encoded:
        text = base64.b64encode(text.encode()).decode()
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", **(headers or {})},
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1"},
            "requestId": "req-v2",
            "stage": "$default",
        },
        "body": text,
        "isBase64Encoded": base64_encoded,
    }


def rest_api_event(
    body: Any, headers: dict[str, str] | None = None, *, path: str = "/activations"
) -> dict[str, Any]:
    """An API Gateway REST API (proxy, payload v1) event."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return {
        "resource": path,
        "path": path,
        "httpMethod": "POST",
        "headers": all_headers,
        "multiValueHeaders": {key: [value] for key, value in all_headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "requestContext": {
            "httpMethod": "POST",
            "path": f"/prod{path}",
            "requestId": "req-v1",
            "stage": "prod",
        },
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


class FakeContext:
    function_name = "ingest"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ingest"
    aws_request_id = "ctx-1"

    def get_remaining_time_in_millis(self) -> int:
        return 150_000  # the upsert function's Timeout
