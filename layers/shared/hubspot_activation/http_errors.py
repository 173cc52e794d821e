"""The error answer every route shares (ingest and operations): ``{"error", "message", "field"?,
"requestId"}`` with the status, raised anywhere below a route and turned into a response once, by
the one mapping both APIs install (``map_errors``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from .auth import Unauthorized

#: How long a caller should wait after a 503 before retrying (AEP ignores it; curl users do not).
RETRY_AFTER_SECONDS = "5"


class ApiError(Exception):
    """An answer other than 202, raised anywhere below the route and turned into a response once."""

    def __init__(
        self,
        status: HTTPStatus,
        error: str,
        message: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.field = field
        self.headers = dict(headers or {})


class InvalidInput(ValueError):
    """A request that can never succeed as sent (a retry gets the same answer): a 4xx naming
    ``field``, the parameter, header or part of the body that is wrong."""

    #: The ``error`` code of the answer.
    error = "invalid_request"
    status = HTTPStatus.BAD_REQUEST

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


#: What a route answers when a dependency fails, by the exception that says so (a 503 each).
Unavailable = Mapping[type[Exception], ApiError]
#: Called with every mapped exception, its answer and the request id (for the route's own logging).
ErrorLog = Callable[[Exception, ApiError, str], None]


def as_api_error(exc: Exception, unavailable: Unavailable) -> ApiError:
    """The answer for ``exc``; an exception no route expects (a bug) is raised again: it must fail
    loudly."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, InvalidInput):
        return ApiError(exc.status, exc.error, exc.message, exc.field)
    if isinstance(exc, Unauthorized):
        return ApiError(HTTPStatus.UNAUTHORIZED, "unauthorized", exc.reason)
    if isinstance(exc, GetParameterError):
        return ApiError(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "secret_unavailable",
            "credentials could not be checked right now; retry",
        )
    for kind, error in unavailable.items():
        if isinstance(exc, kind):
            return error
    raise exc


def map_errors(resolver: ApiGatewayResolver, unavailable: Unavailable, log: ErrorLog) -> None:
    """Install the one error mapping on ``resolver``: every exception a route expects becomes its
    answer; anything else propagates (API Gateway's 500, the function's error metric and log)."""
    handled = [ApiError, InvalidInput, Unauthorized, GetParameterError, *unavailable]

    @resolver.exception_handler(handled)  # type: ignore[untyped-decorator]
    def mapped(exc: Exception) -> Response[str]:
        rid = request_id(resolver.current_event)
        error = as_api_error(exc, unavailable)
        log(exc, error, rid)
        return error_response(error, rid)


def error_response(error: ApiError, request_id: str) -> Response[str]:
    body: dict[str, Any] = {"error": error.error, "message": error.message}
    if error.field is not None:
        body["field"] = error.field
    body["requestId"] = request_id
    headers = dict(error.headers)
    if error.status == HTTPStatus.UNAUTHORIZED:
        headers["WWW-Authenticate"] = 'Bearer realm="activations"'
    if error.status == HTTPStatus.SERVICE_UNAVAILABLE:
        headers["Retry-After"] = RETRY_AFTER_SECONDS
    return Response(
        status_code=error.status.value,
        content_type="application/json",
        body=json.dumps(body),
        headers=headers,
    )


def request_id(event: Mapping[str, Any]) -> str:
    return str((event.get("requestContext") or {}).get("requestId") or uuid.uuid4())


def quoted(text: str | None, limit: int = 100) -> str:
    """Caller-controlled text echoed in an answer: cut so every answer stays small."""
    text = text or ""
    return text if len(text) <= limit else text[: limit - 3] + "..."
