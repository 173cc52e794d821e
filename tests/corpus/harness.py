"""The hostile corpus: requests as data (``cases.jsonl``), and how one is turned into an API Gateway
event and driven through the real ingest handler (moto for SQS and Secrets Manager).

A case is one JSON object per line:
``{"name", "method"?, "path"?, "headers"?, "auth"?, "body" | "body_b64" | "body_repeat", "status",
"response"}``.
``headers`` replace the defaults (``content-type: application/json`` and, unless ``auth`` is false,
the bearer token); a header set to null is removed. ``body_repeat`` builds large bodies:
``head + unit * count + tail``. ``response`` is the exact JSON answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from local.functions import load_function
from tests.conftest import INGEST_TOKEN, FakeContext

CASES = Path(__file__).with_name("cases.jsonl")
REQUEST_ID = "corpus"
#: Every case is received at this time (2026-11-30T00:53:20Z), so timestamps relative to it are stable.
RECEIVED_AT = 1_796_000_000.0

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def load_cases() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line.strip()]


def _body(case: dict[str, Any]) -> tuple[str | None, bool]:
    if "body_b64" in case:
        return str(case["body_b64"]), True
    if "body_repeat" in case:
        spec = case["body_repeat"]
        return spec["head"] + spec["unit"] * spec["count"] + spec["tail"], False
    body = case.get("body")
    return (None if body is None else str(body)), False


def event_of(case: dict[str, Any]) -> dict[str, Any]:
    """An API Gateway HTTP API (payload v2) event for ``case``."""
    headers: dict[str, str | None] = {"content-type": "application/json"}
    if case.get("auth", True):
        headers["authorization"] = f"Bearer {INGEST_TOKEN}"
    headers.update(case.get("headers", {}))
    method = case.get("method", "POST")
    path = case.get("path", "/activations")
    body, is_base64 = _body(case)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {name: value for name, value in headers.items() if value is not None},
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9"},
            "requestId": REQUEST_ID,
            "stage": "$default",
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }


@contextmanager
def ingest_handler(setenv: Callable[[str, str], None]) -> Iterator[tuple[Handler, str]]:
    """The ingest handler against a moto FIFO queue and ingest secret, with a fixed receive time;
    yields it and the queue URL. ``setenv`` sets the function's environment variables."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue = sqs.create_queue(QueueName="corpus.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        secret = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="corpus-ingest-token", SecretString=json.dumps({"token": INGEST_TOKEN})
        )["ARN"]
        for name, value in {"QUEUE_URL": queue, "INGEST_SECRET_ID": secret, "SHARD_COUNT": "8"}.items():
            setenv(name, value)
        module = load_function("ingest")
        module._api.cache_clear()
        api = module._api()
        api._service._clock = lambda: RECEIVED_AT

        def call(event: dict[str, Any]) -> dict[str, Any]:
            response: dict[str, Any] = module.lambda_handler(event, FakeContext())
            return response

        try:
            yield call, queue
        finally:
            module._api.cache_clear()


def set_fake_aws_environment(patch: Any) -> None:
    """Fake credentials, a region and no tracing: what a module-scoped handler fixture needs, which
    the function-scoped AWS isolation of tests/conftest.py does not reach."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "1",
    }.items():
        patch.setenv(name, value)


def isolated_ingest_handler() -> Iterator[Handler]:
    """The ingest handler on moto with fake credentials, for a module-scoped fixture (the
    function-scoped AWS isolation of tests/conftest.py does not reach those)."""
    import pytest

    with pytest.MonkeyPatch.context() as patch:
        set_fake_aws_environment(patch)
        with ingest_handler(patch.setenv) as (call, _queue):
            yield call
