"""The error answer every route shares (ingest and operations): ``{"error", "message", "field"?,
"requestId"}`` with the status, raised anywhere below a route and turned into a response once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response

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
