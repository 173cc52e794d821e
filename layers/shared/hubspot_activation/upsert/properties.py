"""Audience property names and definitions, and attribute coercion to HubSpot's property types.

Pure: the property definitions come in as data (see ``schema`` for reading them from HubSpot).

Every audience becomes one enumeration property (``realized`` / ``exited``) whose internal name is
derived from the audience id, so renaming the audience in the CDP only changes the label.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..model import AttributeValue, AudienceStatus
from ..timestamps import TimestampError, iso_from_ms, to_epoch_ms

MAX_NAME_LENGTH = 100
MAX_STRING_LENGTH = 65_536
STATUS_OPTIONS = [
    {"label": "Realized", "value": AudienceStatus.REALIZED.value, "hidden": False, "displayOrder": 0},
    {"label": "Exited", "value": AudienceStatus.EXITED.value, "hidden": False, "displayOrder": 1},
]
_NOT_NAME_CHARACTER = re.compile(r"[^a-z0-9]+")
_NAME_LIKE_ID = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_UNDERSCORED_UUID = re.compile(r"[0-9a-f]{8}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{12}")


def audience_property_name(audience_id: str, prefix: str) -> str:
    """A stable HubSpot internal name for an audience: ``^[a-z][a-z0-9_]*$``, at most 100
    characters, never starting with ``hs_`` (the prefix is validated to start with a letter).

    Two kinds of id keep the readable name they always had: ids that already are a name
    (``gold_members``) and AEP's lower-case UUIDs (hyphens read as underscores; no name-like id has
    that shape). Any other id, which a name could only approximate (``VIP`` and ``vip!`` would both
    read ``vip``), gets a short hash of the exact id after a double underscore that no readable
    name contains, so distinct audiences never share a property."""
    slug = _NOT_NAME_CHARACTER.sub("_", audience_id.lower()).strip("_") or "audience"
    name = f"{prefix}{slug}"
    digest = hashlib.sha256(audience_id.encode("utf-8")).hexdigest()[:12]
    readable = _UUID.fullmatch(audience_id) or (
        _NAME_LIKE_ID.fullmatch(audience_id) and not _UNDERSCORED_UUID.fullmatch(audience_id)
    )
    if not readable:
        return f"{name[: MAX_NAME_LENGTH - 14]}__{digest}"
    if len(name) > MAX_NAME_LENGTH:
        return f"{name[: MAX_NAME_LENGTH - 13]}_{digest}"
    return name


def audience_property_spec(name: str, label: str, group: str, audience_id: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label[: MAX_NAME_LENGTH * 4],
        "type": "enumeration",
        "fieldType": "select",
        "groupName": group,
        "description": f"Status of the contact in audience {audience_id} (synced by hubspot-activation)",
        "options": STATUS_OPTIONS,
        "formField": False,
    }


@dataclass
class AudienceProperty:
    """The property an audience's status is written to; ``error`` says why it cannot be used."""

    audience_id: str
    name: str
    error: str | None = None
    #: the audience was deleted through its metadata: its changes are dropped, not written
    deleted: bool = False
    #: ``AudienceTarget=list``: no property is made or written; the status goes to the audience's
    #: list alone (``name`` is empty)
    list_only: bool = False


class CoercionError(ValueError):
    pass


def _number_text(value: AttributeValue) -> str:
    if isinstance(value, bool):
        raise CoercionError("a boolean is not a number")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CoercionError("not a finite number")
        return str(int(value)) if value.is_integer() else repr(value)
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        raise CoercionError(f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise CoercionError("not a finite number")
    return text


_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off"}


def _bool_text(value: AttributeValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip().lower()
    if text in _TRUE:
        return "true"
    if text in _FALSE:
        return "false"
    raise CoercionError(f"{value!r} is not a boolean")


def _epoch_ms(value: AttributeValue) -> int:
    if isinstance(value, bool):
        raise CoercionError("a boolean is not a date")
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            parsed = datetime.strptime(value.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise CoercionError(f"{value!r} is not a date") from None
        return int(parsed.timestamp() * 1000)
    try:
        return to_epoch_ms(value)
    except TimestampError as exc:
        raise CoercionError(str(exc)) from None


def _enumeration_text(definition: Mapping[str, Any], value: AttributeValue) -> str:
    options = definition.get("options") or []
    by_value = {str(o["value"]): str(o["value"]) for o in options}
    by_label = {str(o.get("label", "")).strip().lower(): str(o["value"]) for o in options}
    raw = ("true" if value else "false") if isinstance(value, bool) else str(value)
    parts = raw.split(";") if definition.get("fieldType") == "checkbox" else [raw]
    chosen = []
    for part in parts:
        item = part.strip()
        if item in by_value:
            chosen.append(by_value[item])
        elif item.lower() in by_label:
            chosen.append(by_label[item.lower()])
        else:
            raise CoercionError(f"{item!r} is not one of the options of {definition['name']}")
    return ";".join(chosen)


def coerce(definition: Mapping[str, Any], value: AttributeValue) -> str:
    """The string HubSpot accepts for ``value`` in a property of this definition."""
    if isinstance(value, str) and value == "":
        return ""  # an explicit empty string clears the property
    if definition.get("modificationMetadata", {}).get("readOnlyValue"):
        raise CoercionError(f"{definition['name']} is read-only in HubSpot")
    kind = definition.get("type", "string")
    if kind == "number":
        return _number_text(value)
    if kind == "bool":
        return _bool_text(value)
    if kind == "date":
        epoch = _epoch_ms(value)
        return datetime.fromtimestamp(epoch / 1000, tz=UTC).strftime("%Y-%m-%d")
    if kind == "datetime":
        return iso_from_ms(_epoch_ms(value))
    if kind == "enumeration":
        return _enumeration_text(definition, value)
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = str(value)
    if len(text) > MAX_STRING_LENGTH:
        raise CoercionError(f"longer than {MAX_STRING_LENGTH} characters")
    return text


def coerce_attributes(
    definitions: Mapping[str, Mapping[str, Any]], attributes: Mapping[str, AttributeValue]
) -> tuple[dict[str, str], dict[str, str]]:
    """(properties to write, warnings property -> reason) for one contact's attributes."""
    properties: dict[str, str] = {}
    warnings: dict[str, str] = {}
    for name, value in attributes.items():
        definition = definitions.get(name)
        if definition is None:
            warnings[name] = "HubSpot has no such contact property; field not written"
            continue
        try:
            properties[name] = coerce(definition, value)
        except CoercionError as exc:
            warnings[name] = (
                f"invalid value for a {definition.get('type')} property: {exc}; field not written"
            )
    return properties, warnings


def unknown_names(definitions: Mapping[str, Any], names: Iterable[str]) -> set[str]:
    return {name for name in names if name not in definitions}


__all__ = [
    "AudienceProperty",
    "CoercionError",
    "audience_property_name",
    "coerce",
    "coerce_attributes",
]
