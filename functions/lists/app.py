"""Lists Lambda: a timer's SQS batch or the schedule -> hubspot_activation.lists (the audience
lists' membership changes sent to HubSpot)."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from hubspot_activation.list_function.adapter import ListsFunction
from hubspot_activation.list_function.wiring import build_lists
from hubspot_activation.observability import logger, metrics, tracer
from hubspot_activation.settings import UpsertSettings


@cache
def _function() -> ListsFunction:
    # One per container: the HTTP session, the governor and the OAuth token are reused.
    return build_lists(UpsertSettings.from_env())


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _function().handle(event, context)
