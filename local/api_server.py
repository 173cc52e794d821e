"""Serve Lambda HTTP handlers on a local port, as API Gateway HTTP API (payload v2) events: like
`sam local start-api`, without Docker. Requests are routed like the HttpApi routes of the template
(``METHOD /path/{param}``), and a request no route matches gets API Gateway's own 404."""

from __future__ import annotations

import base64
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

from .wsgi import LocalWsgiServer

logger = logging.getLogger(__name__)

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class LocalContext:
    """Enough of LambdaContext for powertools' Logger and for code that watches its time left:
    the clock starts when the context is made, like an invocation's."""

    function_name: str = "local"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:local"
    aws_request_id: str = ""
    timeout_seconds: float = 10.0
    started_at: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.started_at + self.timeout_seconds - time.monotonic()) * 1000))


def http_api_event(request: Request) -> dict[str, Any]:
    body = request.get_data()
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    now = time.time()
    request_id = str(uuid.uuid4())
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request.path,
        "rawQueryString": request.query_string.decode("latin-1"),
        "headers": {key.lower(): value for key, value in request.headers.items()},
        "queryStringParameters": dict(request.args) or None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": request.host,
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "sourceIp": request.remote_addr or "127.0.0.1",
                "userAgent": request.headers.get("User-Agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": text if body else None,
        "isBase64Encoded": encoded,
    }


@dataclass(frozen=True)
class Route:
    """One HttpApi route of the template: ``METHOD /path/{param}`` -> a function's handler."""

    method: str
    path: str
    handler: LambdaHandler

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        # API Gateway: a {param} is one path segment (at least one character, no slash).
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        found = re.fullmatch(pattern, path)
        return found.groupdict() if found else None


def _not_found(_event: dict[str, Any], _context: Any) -> dict[str, Any]:
    # What an HTTP API answers for a request no route matches.
    return {
        "statusCode": 404,
        "body": '{"message":"Not Found"}',
        "headers": {"Content-Type": "application/json"},
    }


def route_of(routes: Sequence[Route], request: Request) -> tuple[Route | None, dict[str, str]]:
    for route in routes:
        params = route.match(request.method, request.path)
        if params is not None:
            return route, params
    return None, {}


def wsgi_app(handler: LambdaHandler | Sequence[Route]) -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
    """One handler for every request, or the template's routes (unmatched: API Gateway's 404)."""
    routes = None if callable(handler) else list(handler)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        event = http_api_event(request)
        target = handler if callable(handler) else _not_found
        if routes is not None:
            route, params = route_of(routes, request)
            if route is not None:
                target = route.handler
                event["routeKey"] = event["requestContext"]["routeKey"] = route.key
                event["pathParameters"] = params
        try:
            result = target(event, LocalContext(aws_request_id=event["requestContext"]["requestId"]))
        except Exception:
            # What API Gateway answers when the function fails; the traceback is the "CloudWatch log".
            logger.exception("the function raised")
            result = {
                "statusCode": 500,
                "body": '{"message":"Internal Server Error"}',
                "headers": {"Content-Type": "application/json"},
            }
        body = result.get("body") or ""
        payload = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
        response = Response(
            payload, status=int(result.get("statusCode", 200)), headers=result.get("headers") or {}
        )
        for cookie in result.get("cookies") or []:
            response.headers.add("Set-Cookie", cookie)
        return response(environ, start_response)

    return app


class LocalApiServer(LocalWsgiServer):
    def __init__(
        self, handler: LambdaHandler | Sequence[Route], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(wsgi_app(handler), host, port)
