"""HubSpot's property value rules, as the sandbox enforces them on writes."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hubspot_activation.emails import email_problem, normalize_email

MAX_STRING_LENGTH = 65_536
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class InvalidValue(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _epoch_ms(text: str) -> int | None:
    return int(text) if re.fullmatch(r"-?\d{1,15}", text) else None


def validate(definition: dict[str, Any], raw: Any) -> str:
    """The stored string for ``raw``, or InvalidValue with HubSpot's code and message."""
    name = definition["name"]
    if raw is None:
        raw = ""
    if isinstance(raw, bool):
        raw = "true" if raw else "false"
    value = raw if isinstance(raw, str) else str(raw)
    if definition.get("modificationMetadata", {}).get("readOnlyValue"):
        raise InvalidValue("READ_ONLY_VALUE", f'Property "{name}" is read-only')
    if value == "":
        return ""  # clearing is always allowed
    if name == "email":
        return _email(value)
    check = _BY_TYPE.get(definition["type"])
    if check is not None:
        return check(definition, value)
    if len(value) > MAX_STRING_LENGTH:
        raise InvalidValue("VALUE_TOO_LONG", f"value is longer than {MAX_STRING_LENGTH} characters")
    return value


def _email(value: str) -> str:
    email = normalize_email(value)
    labels = email.rpartition("@")[2].split(".")
    # HubSpot also refuses syntactically valid addresses with a doubled top-level domain
    # (e.g. example@example.com.com), which a generic syntax check lets through.
    if email_problem(email) or (len(labels) > 2 and labels[-1] == labels[-2]):
        raise InvalidValue("INVALID_EMAIL", f'Property value "{value}" is not a valid email')
    return email


def _number(_definition: dict[str, Any], value: str) -> str:
    try:
        float(value)
    except ValueError:
        raise InvalidValue("INVALID_INTEGER", f"{value} was not a valid number") from None
    return value


def _bool(_definition: dict[str, Any], value: str) -> str:
    if value.lower() not in ("true", "false"):
        raise InvalidValue("INVALID_BOOLEAN", f"{value} was not a valid boolean (true or false)")
    return value.lower()


def _date(_definition: dict[str, Any], value: str) -> str:
    epoch = _epoch_ms(value)
    if epoch is not None:
        if epoch % 86_400_000:
            raise InvalidValue("INVALID_DATE", f"{value} is not at midnight UTC")
        return datetime.fromtimestamp(epoch / 1000, tz=UTC).strftime("%Y-%m-%d")
    if not _DATE.match(value):
        raise InvalidValue("INVALID_DATE", f"{value} was not a valid date (YYYY-MM-DD)")
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise InvalidValue("INVALID_DATE", f"{value} was not a valid date (YYYY-MM-DD)") from None
    return value


def _datetime(_definition: dict[str, Any], value: str) -> str:
    epoch = _epoch_ms(value)
    if epoch is not None:
        moment = datetime.fromtimestamp(epoch / 1000, tz=UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidValue("INVALID_DATETIME", f"{value} was not a valid datetime") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _enumeration(definition: dict[str, Any], value: str) -> str:
    allowed = [option["value"] for option in definition.get("options", [])]
    chosen = value.split(";") if definition.get("fieldType") == "checkbox" else [value]
    for item in chosen:
        if item and item not in allowed:
            raise InvalidValue("INVALID_OPTION", f"{item} was not one of the allowed options: {allowed}")
    return value


_BY_TYPE: dict[str, Callable[[dict[str, Any], str], str]] = {
    "number": _number,
    "bool": _bool,
    "date": _date,
    "datetime": _datetime,
    "enumeration": _enumeration,
}
