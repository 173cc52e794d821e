"""HubSpot error responses, classified by what the caller should do about them."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from ..emails import scrub_emails

#: HubSpot's category for a record it does not have, on a whole call (404) and in a batch's
#: ``errors`` ("Could not get some CONTACT objects, they may be deleted or not exist").
NOT_FOUND_CATEGORY = "OBJECT_NOT_FOUND"


class ErrorKind(StrEnum):
    RETRYABLE = "retryable"  # 5xx, 423, timeouts, dropped connections: try again later
    RATE_LIMITED = "rate_limited"  # 429: the governor decides how long to wait
    PERMANENT = "permanent"  # the input is wrong: retrying cannot help
    CONFIGURATION = "configuration"  # credentials, scopes, limits: a person must act


class HubSpotError(Exception):
    """A failed HubSpot call. ``message`` is HubSpot's own text (it never contains our token)."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        status: int | None = None,
        category: str | None = None,
        correlation_id: str | None = None,
        policy_name: str | None = None,
        sub_category: str | None = None,
        body: Any = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.category = category
        self.correlation_id = correlation_id
        self.policy_name = policy_name
        self.sub_category = sub_category
        self.body = body
        #: the request may have been applied although no success came back (timeout, dropped
        #: connection, 5xx): whoever records the outcome must not count it as written, nor as not
        self.ambiguous = ambiguous

    @property
    def not_found(self) -> bool:
        """HubSpot does not have the record the call or input named (deleted, erased, or an id
        that never existed)."""
        return self.status == 404 or self.category == NOT_FOUND_CATEGORY

    def __str__(self) -> str:
        """For logs: HubSpot's message without the email addresses it may quote."""
        message = scrub_emails(self.message)
        parts = [f"HubSpot {self.status or 'request'} {self.category or self.kind.value}: {message}"]
        if self.correlation_id:
            parts.append(f"(correlationId {self.correlation_id})")
        return " ".join(parts)


class DailyLimitReached(HubSpotError):
    """The account's daily limit (or our reserve of it) is used up: stop until ``resets_at``."""

    def __init__(self, message: str, resets_at: float, **kwargs: Any) -> None:
        super().__init__(ErrorKind.RATE_LIMITED, message, **kwargs)
        self.resets_at = resets_at


class DeadlineReached(HubSpotError):
    """No attempt of the call could end by its deadline, so none was sent: the call is not known to
    have failed, it was not made."""

    def __init__(self, message: str = "no time before the call's deadline for an attempt") -> None:
        super().__init__(ErrorKind.RETRYABLE, message)


class PropertyLimitReached(HubSpotError):
    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(ErrorKind.CONFIGURATION, message, **kwargs)


_RETRYABLE_STATUSES = frozenset({408, 423, 500, 502, 503, 504, 521, 522, 523, 524})


def parse_body(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        return None


def classify(status: int, body: Any, headers: Any = None) -> HubSpotError:
    document = body if isinstance(body, dict) else {}
    message = str(document.get("message") or document.get("error_description") or f"HTTP {status}")
    category = document.get("category") or document.get("status") or document.get("errorType")
    correlation = document.get("correlationId") or (headers or {}).get("X-HubSpot-Correlation-Id")
    common: dict[str, Any] = {
        "status": status,
        "category": str(category) if category else None,
        "correlation_id": str(correlation) if correlation else None,
        "sub_category": document.get("subCategory"),
        "body": body,
    }
    if status == 429:
        return HubSpotError(ErrorKind.RATE_LIMITED, message, policy_name=document.get("policyName"), **common)
    if status in _RETRYABLE_STATUSES or status >= 500:
        # A 5xx may come after HubSpot applied the write; 408 and 423 say it was not processed.
        return HubSpotError(ErrorKind.RETRYABLE, message, ambiguous=status >= 500, **common)
    if status in (401, 403):
        return HubSpotError(ErrorKind.CONFIGURATION, message, **common)
    return HubSpotError(ErrorKind.PERMANENT, message, **common)


def property_errors(message: str) -> list[dict[str, Any]]:
    """HubSpot embeds per-property errors as a JSON array inside the message string."""
    prefix = "Property values were not valid: "
    if not message.startswith(prefix):
        return []
    try:
        details = json.loads(message[len(prefix) :])
    except json.JSONDecodeError:
        return []
    return [item for item in details if isinstance(item, dict)] if isinstance(details, list) else []
