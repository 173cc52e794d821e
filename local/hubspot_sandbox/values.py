"""HubSpot's property value rules, as the sandbox enforces them on writes."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .emails import is_valid_email, normalize_email

MAX_STRING_LENGTH = 65_536
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DAY_MS = 86_400_000


class InvalidValue(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


#: (property definition, non-empty value as text) -> the string HubSpot stores
Validator = Callable[[dict[str, Any], str], str]


def _epoch_ms(text: str) -> int | None:
    return int(text) if re.fullmatch(r"-?\d{1,15}", text) else None


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _string(definition: dict[str, Any], value: str) -> str:
    if len(value) > MAX_STRING_LENGTH:
        raise InvalidValue("VALUE_TOO_LONG", f"value is longer than {MAX_STRING_LENGTH} characters")
    return value


def _email(definition: dict[str, Any], value: str) -> str:
    email = normalize_email(value)
    if not is_valid_email(email):
        raise InvalidValue("INVALID_EMAIL", f'Property value "{value}" is not a valid email')
    return email


def _number(definition: dict[str, Any], value: str) -> str:
    try:
        float(value)
    except ValueError:
        raise InvalidValue("INVALID_INTEGER", f"{value} was not a valid number") from None
    return value


def _bool(definition: dict[str, Any], value: str) -> str:
    if value.lower() not in ("true", "false"):
        raise InvalidValue("INVALID_BOOLEAN", f"{value} was not a valid boolean (true or false)")
    return value.lower()


def _date(definition: dict[str, Any], value: str) -> str:
    epoch = _epoch_ms(value)
    if epoch is not None:
        # Date properties hold a day, so an epoch must land exactly on a UTC midnight.
        if epoch % _DAY_MS:
            raise InvalidValue("INVALID_DATE", f"{value} is not at midnight UTC")
        return datetime.fromtimestamp(epoch / 1000, tz=UTC).strftime("%Y-%m-%d")
    try:
        if not _DATE.match(value):
            raise ValueError(value)
        datetime.strptime(value, "%Y-%m-%d")  # also refuses impossible days such as 2026-02-30
    except ValueError:
        raise InvalidValue("INVALID_DATE", f"{value} was not a valid date (YYYY-MM-DD)") from None
    return value


def _datetime(definition: dict[str, Any], value: str) -> str:
    epoch = _epoch_ms(value)
    if epoch is not None:
        return _utc_text(datetime.fromtimestamp(epoch / 1000, tz=UTC))
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidValue("INVALID_DATETIME", f"{value} was not a valid datetime") from None
    return _utc_text(parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC))


def _enumeration(definition: dict[str, Any], value: str) -> str:
    allowed = [option["value"] for option in definition.get("options", [])]
    # Multiple checkboxes hold several options in one value, separated by semicolons.
    chosen = value.split(";") if definition.get("fieldType") == "checkbox" else [value]
    for item in chosen:
        if item and item not in allowed:
            raise InvalidValue("INVALID_OPTION", f"{item} was not one of the allowed options: {allowed}")
    return value


#: Checks by property type; a type missing here (phone_number, or one the sandbox does not model)
#: gets the string rules, which every HubSpot value also obeys.
VALIDATORS: dict[str, Validator] = {
    "string": _string,
    "phone_number": _string,
    "number": _number,
    "bool": _bool,
    "date": _date,
    "datetime": _datetime,
    "enumeration": _enumeration,
}
#: Properties whose rules come from their meaning rather than their type (email is a string property).
BY_NAME: dict[str, Validator] = {"email": _email}


def _as_text(raw: Any) -> str:
    """Values arrive as JSON strings by the spec; clients also send null, booleans and numbers."""
    if raw is None:
        return ""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return raw if isinstance(raw, str) else str(raw)


def validate(definition: dict[str, Any], raw: Any) -> str:
    """The stored string for ``raw``, or InvalidValue with HubSpot's code and message."""
    name = definition["name"]
    value = _as_text(raw)
    if definition.get("modificationMetadata", {}).get("readOnlyValue"):
        raise InvalidValue("READ_ONLY_VALUE", f'Property "{name}" is read-only')
    if value == "":
        return ""  # clearing is always allowed
    check = BY_NAME.get(name) or VALIDATORS.get(definition["type"], _string)
    return check(definition, value)
