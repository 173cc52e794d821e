"""HTTP access to the hubspot-activation API: bearer token, retries, and errors worth reading."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

#: 429 (API Gateway or ingest throttling) and 5xx are worth another try; 503 from ingest says so.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
#: A request that is not idempotent is retried only when the API certainly did not act on it.
NOT_PROCESSED_STATUSES = frozenset({429, 503})
#: Longest single wait, whatever Retry-After says: an operator would rather see an error than hang.
MAX_WAIT_SECONDS = 300.0
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0


class ApiError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def api_base(url: str) -> str:
    """The API root. The deployment's output is the activations URL, so that is accepted too."""
    base = url.strip().rstrip("/")
    return base.removesuffix("/activations")


def retry_after_seconds(
    value: str | None, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> float | None:
    """Retry-After as seconds (it may be a number or an HTTP date), or None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now()).total_seconds())


def backoff_seconds(attempt: int) -> float:
    return float(min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))


def describe_error(response: requests.Response) -> str:
    """One line an operator can act on: the API's own error and message, plus a hint where useful."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        parts = [str(body.get("error") or ""), str(body.get("message") or "")]
        detail = ": ".join(part for part in parts if part)
        extras = [f"{key} {body[key]}" for key in ("field", "requestId") if body.get(key)]
        if extras:
            detail += f" ({', '.join(extras)})"
    else:
        detail = response.text.strip()[:200]
    text = f"HTTP {response.status_code}" + (f" {detail}" if detail else "")
    hint = _hint(response.status_code, body)
    return f"{text} - {hint}" if hint else text


def _hint(status: int, body: Any) -> str | None:
    if status in (401, 403):
        return "check the token (--token or HUBSPOT_ACTIVATION_TOKEN)"
    # API Gateway's own 404 ({"message": "Not Found"}) or the API's "no route": a wrong base URL or
    # a route this deployment does not have yet. A 404 about a contact is the API's answer, no hint.
    if status == 404 and (
        not isinstance(body, Mapping) or "error" not in body or body.get("field") == "path"
    ):
        return (
            "is --url the API base (https://<api-id>.execute-api.<region>.amazonaws.com) "
            "and does this deployment have the route?"
        )
    if status == 413:
        return "send fewer profiles per request (--batch-size)"
    return None


@dataclass
class ApiClient:
    base_url: str
    token: str
    max_retries: int = 5
    timeout: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    session: requests.Session = field(default_factory=requests.Session)
    #: Retries made so far, over every request of this client.
    retries: int = 0

    def __post_init__(self) -> None:
        self.base_url = api_base(self.base_url)
        self.session.headers["Authorization"] = f"Bearer {self.token}"
        self.session.headers["User-Agent"] = "hubspot-activation-cli"

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any, idempotent: bool = True) -> Any:
        return self.request("POST", path, body=body, idempotent=idempotent)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotent: bool = True,
    ) -> Any:
        """The JSON answer of a 2xx; ApiError otherwise, after retrying what is worth retrying."""
        url = f"{self.base_url}{path}"
        retryable = RETRYABLE_STATUSES if idempotent else NOT_PROCESSED_STATUSES
        attempt = 0
        while True:
            try:
                response = self.session.request(method, url, params=params, json=body, timeout=self.timeout)
            except requests.RequestException as exc:
                # A lost answer may hide a request that was processed: only idempotent ones go again.
                if not idempotent or attempt >= self.max_retries:
                    raise ApiError(f"cannot reach {url}: {exc}") from None
                self._wait(backoff_seconds(attempt))
            else:
                if response.status_code not in retryable or attempt >= self.max_retries:
                    return self._answer(response)
                waited = retry_after_seconds(response.headers.get("Retry-After"))
                self._wait(backoff_seconds(attempt) if waited is None else waited)
            attempt += 1

    def _wait(self, seconds: float) -> None:
        self.retries += 1
        self.sleep(min(seconds, MAX_WAIT_SECONDS))

    @staticmethod
    def _answer(response: requests.Response) -> Any:
        if response.status_code >= 400:
            raise ApiError(describe_error(response), response.status_code)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"HTTP {response.status_code} with an answer that is not JSON") from None
