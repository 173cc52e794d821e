"""HubSpot error responses, classified by what the caller should do about them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
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
        "sub_category": _text_of(document.get("subCategory")),
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


#: ``ErrorDetail.in`` naming a property: the bare name, or under ``properties``
_PROPERTY_IN = re.compile(r"^(?:properties[./])?([a-z][a-z0-9_]*)$")


def _text_of(value: Any) -> str | None:
    """A ``subCategory`` as text: HubSpot's specs give it as a string or as an object."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _names(value: Any) -> list[str]:
    """Property names from a structured field (a string or a list of strings)."""
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, str) and item]


def _sub_category(value: Any) -> tuple[str | None, list[str]]:
    """(a code, the property names) a ``subCategory`` carries: a string is a code; an object may
    name its code (``code``, ``type`` or ``name``) and its properties (``propertyName``)."""
    if isinstance(value, str):
        return value or None, []
    if not isinstance(value, Mapping):
        return None, []
    code = next((value[key] for key in ("code", "type", "name") if isinstance(value.get(key), str)), None)
    names = [*_names(value.get("propertyName")), *_names(value.get("propertyNames"))]
    return code, names


def _detail_names(detail: Mapping[str, Any]) -> list[str]:
    context = detail.get("context")
    names = _names(context.get("propertyName")) if isinstance(context, Mapping) else []
    where = detail.get("in")
    if not names and isinstance(where, str) and (match := _PROPERTY_IN.match(where)):
        names = [match.group(1)]
    return names


def refusal_details(error: Any) -> list[dict[str, Any]]:
    """The properties a refused write names, each as ``{"name", "error", "message"}`` (``name``
    None: a refusal that names no property), from every shape HubSpot uses: the JSON array
    embedded in ``message`` (``name``/``error``/``message``), the ``errors[]`` details
    (``context.propertyName`` or ``in``, with ``code`` or ``subCategory``), and the error's own
    ``context.propertyName`` and ``subCategory`` (a string, or an object naming its properties).
    A property is taken from these structured fields only, never from the free text of a message:
    a refusal HubSpot states only in words names none, and the whole contact fails on it."""
    if not isinstance(error, Mapping):
        return []
    message = str(error.get("message") or "")
    top_code, top_names = _sub_category(error.get("subCategory"))
    code = top_code or (str(error["category"]) if error.get("category") else None)
    found: dict[str | None, dict[str, Any]] = {}

    def add(
        name: str | None, item_code: Any, item_message: Any, extra: Mapping[str, Any] | None = None
    ) -> None:
        entry = found.setdefault(name, {**(extra or {}), "name": name})
        entry.setdefault("error", item_code if isinstance(item_code, str) and item_code else code)
        entry.setdefault("message", str(item_message or message))

    for item in property_errors(message):
        name = item.get("name")
        add(name if isinstance(name, str) and name else None, item.get("error"), item.get("message"), item)
    for detail in error.get("errors") or []:
        if not isinstance(detail, Mapping):
            continue
        detail_code, detail_names = _sub_category(detail.get("subCategory"))
        names: list[str | None] = [*(_detail_names(detail) or detail_names)]
        for name in names or [None]:
            add(name, detail.get("code") or detail_code, detail.get("message"))
    context = error.get("context")
    for name in [*(_names(context.get("propertyName")) if isinstance(context, Mapping) else []), *top_names]:
        if name not in found:
            add(name, code, message)
    return list(found.values())
