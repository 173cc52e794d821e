"""HTTP adapter of the ingest function: API Gateway events (REST v1 or HTTP API v2) -> IngestService.

This module and the upsert adapter are the only ones that know Lambda event shapes. The body is read
by ``http_body`` and every error leaves through ``http_errors.map_errors``, as on the operator's
routes, so every answer that is not a 202 has the same body: ``{"error", "message", "field"?,
"requestId"}``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver, Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from ..auth import IngestAuthenticator, Unauthorized
from ..http_body import parse_json, read_body
from ..http_errors import ApiError, error_response, map_errors
from ..http_errors import quoted as _quoted
from ..http_errors import request_id as _request_id
from ..ledger.exclusion_store import DynamoDbExclusionStore
from ..observability import logger, metrics
from ..secret_store import SecretFetcher, secrets_manager_fetcher
from ..settings import IngestSettings
from .publisher import EnqueueError, SqsFifoPublisher
from .service import IngestResult, IngestService

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

#: The routes this API serves, and their methods (anything else: 404, or 405 with ``Allow``).
ROUTES: dict[str, tuple[str, ...]] = {"/activations": ("POST",)}
#: Exclusions listed in the "activation accepted" log line (all are counted by reason).
LOGGED_EXCLUSIONS = 10
#: Seconds one exclusion-storing call may take to connect, then to read DynamoDB's answer.
EXCLUSIONS_CONNECT_TIMEOUT = 0.2
EXCLUSIONS_READ_TIMEOUT = 0.3


#: The 503s of this API, by the exception that says a dependency failed.
UNAVAILABLE: dict[type[Exception], ApiError] = {
    EnqueueError: ApiError(
        HTTPStatus.SERVICE_UNAVAILABLE, "queue_unavailable", "the request was not (fully) queued; retry it"
    )
}


def _log_error(exc: Exception, error: ApiError, request_id: str) -> None:
    if isinstance(exc, EnqueueError):
        logger.error("enqueue failed", extra={"reason": exc.reason, "sent": exc.sent, "unsent": exc.unsent})
    elif isinstance(exc, GetParameterError):
        logger.exception("ingest secret unavailable")
    elif isinstance(exc, Unauthorized):
        logger.info("ingest request rejected", extra={"reason": exc.reason, "requestId": request_id})


def _unknown_route(path: str, method: str) -> ApiError:
    route = path.rstrip("/") or "/"
    allowed = ROUTES.get(route)
    if allowed is None:
        return ApiError(HTTPStatus.NOT_FOUND, "not_found", f"no route {_quoted(path)}", "path")
    if method in allowed:
        # Only the spelling differs (a trailing slash): the method is right, the path is not.
        return ApiError(HTTPStatus.NOT_FOUND, "not_found", f"no route {_quoted(path)}; use {route}", "path")
    return ApiError(
        HTTPStatus.METHOD_NOT_ALLOWED,
        "method_not_allowed",
        f"{_quoted(method)} is not allowed on {_quoted(path)}; use {', '.join(allowed)}",
        "method",
        headers={"Allow": ", ".join(allowed)},
    )


def exclusions_config(read_timeout: float = EXCLUSIONS_READ_TIMEOUT) -> Config:
    """DynamoDB for the exclusion list: exactly one attempt per call (``total_max_attempts`` counts
    the first one; botocore's ``max_attempts`` would allow a retry) and short timeouts, so the
    operator's list never costs the caller's answer (see ``ledger.exclusion_store``)."""
    return Config(
        connect_timeout=EXCLUSIONS_CONNECT_TIMEOUT,
        read_timeout=read_timeout,
        retries={"total_max_attempts": 1, "mode": "standard"},
    )


def ingest_api(
    settings: IngestSettings, sqs: SQSClient, fetch_secret: SecretFetcher, dynamodb: DynamoDBClient | None
) -> IngestApi:
    """The ingest API on these clients; exclusions are kept only with ``dynamodb`` and a table."""
    exclusions = None
    if settings.ledger_table and dynamodb is not None:
        exclusions = DynamoDbExclusionStore(
            dynamodb,
            settings.ledger_table,
            settings.exclusion_retention_days,
            budget_seconds=settings.exclusion_store_seconds,
        )
    service = IngestService(settings, SqsFifoPublisher(sqs, settings.queue_url), exclusions=exclusions)
    return IngestApi(service, IngestAuthenticator(fetch_secret), settings.max_body_bytes)


class IngestApi:
    """Routes: ``POST /activations``. Both API Gateway payload versions are served, so the same
    function works behind an HTTP API (v2), a REST API (v1), or ``sam local``."""

    def __init__(
        self, service: IngestService, authenticator: IngestAuthenticator, max_body_bytes: int
    ) -> None:
        self._service = service
        self._authenticator = authenticator
        self._max_body_bytes = max_body_bytes
        router = Router()  # type: ignore[no-untyped-call]
        router.post("/activations")(self._activations_route(router))
        self._http = APIGatewayHttpResolver()
        self._rest = APIGatewayRestResolver()
        for resolver in (self._http, self._rest):
            resolver.include_router(router)
            self._map_errors(resolver)

    @classmethod
    def from_environment(cls) -> IngestApi:
        """The ingest function's composition root: its boto3 clients, built once each here."""
        settings = IngestSettings.from_env()
        # Short timeouts and few retries: AEP gives up on us after 2 s, and a 503 makes it retry.
        sqs = boto3.client(
            "sqs",
            config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 2, "mode": "standard"}),
        )
        secrets = boto3.client("secretsmanager")
        dynamodb = (
            boto3.client("dynamodb", config=exclusions_config(settings.exclusion_store_seconds))
            if settings.ledger_table
            else None
        )
        fetch_secret = secrets_manager_fetcher(
            settings.ingest_secret_id, settings.secret_max_age_seconds, secrets
        )
        return ingest_api(settings, sqs, fetch_secret, dynamodb)

    def handle(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        resolver = self._http if event.get("version") == "2.0" else self._rest
        return resolver.resolve(dict(event), context)

    @staticmethod
    def _map_errors(resolver: ApiGatewayResolver) -> None:
        map_errors(resolver, UNAVAILABLE, _log_error)

        @resolver.not_found
        def not_found(_exc: NotFoundError) -> Response[str]:
            event = resolver.current_event
            return error_response(_unknown_route(event.path, event.http_method), _request_id(event))

    def _activations_route(self, router: Router) -> Callable[[], Response[str]]:
        def activations() -> Response[str]:
            event = router.current_event
            return self._activations(
                event.headers, event.get("body"), event.is_base64_encoded or False, _request_id(event)
            )

        return activations

    def _activations(
        self, headers: Mapping[str, str], raw_body: str | None, is_base64: bool, request_id: str
    ) -> Response[str]:
        self._authenticator.authenticate(headers)
        body = read_body(headers, raw_body, is_base64, self._max_body_bytes, ": send fewer profiles")
        # Keys the stored exclusions: a retry of the same body replaces them rather than adding more.
        digest = hashlib.sha256(body).hexdigest()[:32]
        result = self._service.ingest(parse_json(body, "a JSON activation"), request_id, digest)
        self._record(result, request_id)
        return Response(
            status_code=HTTPStatus.ACCEPTED.value,
            content_type="application/json",
            body=json.dumps(result.to_response()),
        )

    @staticmethod
    def _record(result: IngestResult, request_id: str) -> None:
        metrics.add_metric(name="ProfilesAccepted", unit="Count", value=result.accepted)
        metrics.add_metric(name="ProfilesExcluded", unit="Count", value=len(result.excluded))
        if result.exclusions_unstored:
            metrics.add_metric(name="ExclusionsNotStored", unit="Count", value=result.exclusions_unstored)
            logger.warning(
                "exclusions not kept for the issues list",
                extra={"requestId": request_id, "unstored": result.exclusions_unstored},
            )
        # Bounded whatever the request: a few exclusions by index, the rest as counts by reason.
        logger.info(
            "activation accepted",
            extra={
                "requestId": request_id,
                "accepted": result.accepted,
                "excluded": [item.to_json() for item in result.excluded[:LOGGED_EXCLUSIONS]],
                "excludedCount": len(result.excluded),
                "excludedByReason": result.excluded_by_reason(),
                "skippedByRule": result.skipped_by_rule,
                "warnings": result.warning_count,
                "messages": result.messages,
                "sqsRequests": result.sqs_requests,
            },
        )
