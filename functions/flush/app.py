"""Flush Lambda: a lane's run (an asynchronous wake-up or the schedule) -> hubspot_activation."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from hubspot_activation.observability import logger, metrics, tracer
from hubspot_activation.settings import UpsertSettings
from hubspot_activation.upsert.adapter import FlushRunner
from hubspot_activation.upsert.wiring import build_flush


@cache
def _runner() -> FlushRunner:
    # One per container: the HTTP session, the governor, the property schema and the OAuth token
    # are reused across invocations.
    return build_flush(UpsertSettings.from_env())


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _runner().handle(event, context)
