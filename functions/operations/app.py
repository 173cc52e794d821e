"""Operations Lambda: the operator's routes (sync health, audience metadata, replay) ->
hubspot_activation.operations (the shared layer) -> HTTP response."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from hubspot_activation.observability import logger, tracer
from hubspot_activation.operations.api import OperationsApi
from hubspot_activation.operations.wiring import build_api
from hubspot_activation.settings import OperationsSettings


@cache
def _api() -> OperationsApi:
    # Built on the first invocation so settings errors surface in a request's logs.
    return build_api(OperationsSettings.from_env())


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The API publishes its metrics itself, only when a route counted something.
    return _api().handle(event, context)
