"""Upsert Lambda: SQS batch -> hubspot_activation (the shared layer) -> partial batch response."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from hubspot_activation.observability import logger, metrics, tracer
from hubspot_activation.settings import UpsertSettings
from hubspot_activation.upsert.adapter import build_sync_service, handle
from hubspot_activation.upsert.service import SyncService


@cache
def _service() -> SyncService:
    # One per container: the HTTP session, the property schema and the OAuth token are reused
    # across invocations.
    return build_sync_service(UpsertSettings.from_env())


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(_service(), event, context)
