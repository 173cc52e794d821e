"""local/lambda_async.py: the local stand-in for Lambda's asynchronous invocations."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
from moto import mock_aws

from local.lambda_async import LocalAsyncFunction


def test_invocations_reach_the_function_whichever_default_session_the_caller_has() -> None:
    """moto's ``mock_aws`` gives each of its contexts a fresh default session: a function started
    in a later context still receives the invocations of clients made there."""
    for attempt in range(2):
        received: list[dict[str, Any]] = []

        def record(
            event: dict[str, Any], _context: Any, into: list[dict[str, Any]] = received
        ) -> dict[str, Any]:
            into.append(event)
            return {}

        with mock_aws():
            function = LocalAsyncFunction("stack-flush", lambda: record, 5.0)
            function.start()
            try:
                answer = boto3.client("lambda").invoke(
                    FunctionName="stack-flush", InvocationType="Event", Payload=json.dumps({"lane": attempt})
                )
                deadline = time.monotonic() + 30
                while not function.idle() and time.monotonic() < deadline:
                    time.sleep(0.01)
            finally:
                function.stop()
        assert answer["StatusCode"] == 202
        assert received == [{"lane": attempt}], attempt
