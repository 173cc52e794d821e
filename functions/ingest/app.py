"""Ingest Lambda: API Gateway event -> hubspot_activation (the shared layer) -> HTTP response."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from hubspot_activation.ingest.api import IngestApi
from hubspot_activation.observability import logger, metrics, tracer


@cache
def _api() -> IngestApi:
    # Built on the first invocation (not at import) so settings errors surface in the logs of a
    # request, and tests can set the environment before it is read.
    return IngestApi.from_environment()


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _api().handle(event, context)
