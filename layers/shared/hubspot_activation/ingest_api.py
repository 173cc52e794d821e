"""HTTP adapter of the ingest function: API Gateway events (REST v1 or HTTP API v2) -> IngestService.

This module and the consumer's adapter are the only ones that know Lambda event shapes.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import boto3
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from .auth import IngestAuthenticator, Unauthorized
from .ingest import IngestService
from .observability import logger, metrics
from .payloads import InvalidRequest
from .queue import EnqueueError, SqsFifoPublisher
from .settings import IngestSettings

_JSON_TYPES = ("application/json",)
#: How long a caller should wait after a 503 before retrying (AEP ignores it; curl users do not).
RETRY_AFTER_SECONDS = "5"


def error_response(
    status: HTTPStatus, error: str, message: str, request_id: str, **extra: Any
) -> Response[str]:
    body = {"error": error, "message": message, "requestId": request_id, **extra}
    headers = {"WWW-Authenticate": 'Bearer realm="activations"'} if status == HTTPStatus.UNAUTHORIZED else {}
    if status == HTTPStatus.SERVICE_UNAVAILABLE:
        headers["Retry-After"] = RETRY_AFTER_SECONDS
    return Response(
        status_code=status.value, content_type="application/json", body=json.dumps(body), headers=headers
    )


def _is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type in _JSON_TYPES or media_type.endswith("+json")


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
        self._http.include_router(router)
        self._rest.include_router(router)

    @classmethod
    def from_environment(cls) -> IngestApi:
        settings = IngestSettings.from_env()
        # Short timeouts and few retries: AEP gives up on us after 2 s, and a 503 makes it retry.
        sqs = boto3.client(
            "sqs",
            config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 2, "mode": "standard"}),
        )
        publisher = SqsFifoPublisher(sqs, settings.queue_url)

        # A provider of our own (not powertools' module-level default) so its client follows this
        # container's configuration; its cache still spans invocations.
        secrets = parameters.SecretsProvider(boto3_client=boto3.client("secretsmanager"))

        def fetch_secret(force: bool) -> Any:
            return secrets.get(
                settings.ingest_secret_id, max_age=settings.secret_max_age_seconds, force_fetch=force
            )

        return cls(
            IngestService(settings, publisher), IngestAuthenticator(fetch_secret), settings.max_body_bytes
        )

    def handle(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        resolver = self._http if event.get("version") == "2.0" else self._rest
        return resolver.resolve(dict(event), context)

    def _activations_route(self, router: Router) -> Any:
        def activations() -> Response[str]:
            event = router.current_event
            request_id = str((event.get("requestContext") or {}).get("requestId") or uuid.uuid4())
            return self._activations(
                event.headers, event.get("body"), event.is_base64_encoded or False, request_id
            )

        return activations

    def _activations(
        self, headers: Mapping[str, str], raw_body: str | None, is_base64: bool, request_id: str
    ) -> Response[str]:
        try:
            self._authenticator.authenticate(headers)
        except Unauthorized as exc:
            logger.info("ingest request rejected", extra={"reason": exc.reason, "requestId": request_id})
            return error_response(HTTPStatus.UNAUTHORIZED, "unauthorized", exc.reason, request_id)
        except GetParameterError:
            logger.exception("ingest secret unavailable")
            return error_response(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "secret_unavailable",
                "credentials could not be checked right now; retry",
                request_id,
            )
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        if not _is_json(content_type):
            return error_response(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                f"Content-Type must be application/json, got {content_type or 'none'}",
                request_id,
                field="Content-Type",
            )
        try:
            body = base64.b64decode(raw_body or "", validate=True) if is_base64 else (raw_body or "").encode()
        except binascii.Error:
            return error_response(
                HTTPStatus.BAD_REQUEST, "invalid_body", "body is not valid base64", request_id, field="body"
            )
        if len(body) > self._max_body_bytes:
            return error_response(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "body_too_large",
                f"body is {len(body)} bytes, over the limit of {self._max_body_bytes}: send fewer profiles",
                request_id,
                field="body",
            )
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "body is not UTF-8"
            return error_response(
                HTTPStatus.BAD_REQUEST,
                "invalid_json",
                f"body is not valid JSON: {reason}",
                request_id,
                field="body",
            )
        try:
            result = self._service.ingest(document, request_id)
        except InvalidRequest as exc:
            return error_response(
                HTTPStatus.BAD_REQUEST, "invalid_request", exc.message, request_id, field=exc.field
            )
        except EnqueueError as exc:
            logger.error(
                "enqueue failed", extra={"reason": exc.reason, "sent": exc.sent, "unsent": exc.unsent}
            )
            return error_response(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "queue_unavailable",
                "the request was not (fully) queued; retry it",
                request_id,
            )
        metrics.add_metric(name="ProfilesAccepted", unit="Count", value=result.accepted)
        metrics.add_metric(name="ProfilesExcluded", unit="Count", value=len(result.excluded))
        logger.info(
            "activation accepted",
            extra={
                "requestId": request_id,
                "accepted": result.accepted,
                "excluded": [item.to_json() for item in result.excluded],
                "warnings": len(result.warnings),
                "messages": result.messages,
                "sqsRequests": result.sqs_requests,
            },
        )
        return Response(
            status_code=HTTPStatus.ACCEPTED.value,
            content_type="application/json",
            body=json.dumps(result.to_response()),
        )
