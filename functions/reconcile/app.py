"""Reconcile Lambda: the schedule's walk (or its continuation) and the journal's poll ->
hubspot_activation.reconcile."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from hubspot_activation.observability import logger, metrics, tracer
from hubspot_activation.reconcile.adapter import ReconcileRunner
from hubspot_activation.reconcile.wiring import build_reconcile
from hubspot_activation.settings import UpsertSettings


@cache
def _runner() -> ReconcileRunner:
    # One per container: the HTTP session, the governor, the property schema, the OAuth token and
    # the journal poller are reused across invocations.
    return build_reconcile(UpsertSettings.from_env())


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _runner().handle(event, context)
