"""Merge Lambda: SQS batch -> hubspot_activation (the shared layer) -> partial batch response."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from hubspot_activation.observability import logger, metrics, tracer
from hubspot_activation.settings import UpsertSettings
from hubspot_activation.upsert.adapter import MergeConsumer
from hubspot_activation.upsert.wiring import build_merge


@cache
def _consumer() -> MergeConsumer:
    # One per container: the clients and the audience cache are reused across invocations.
    return build_merge(UpsertSettings.from_env())


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _consumer().handle(event, context)
