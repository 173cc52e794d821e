"""Audience properties and attribute coercion against HubSpot's property schema.

Every audience becomes one enumeration property (``realized`` / ``exited``) whose internal name is
derived from the audience id, so renaming the audience in the CDP only changes the label.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .hubspot.client import HubSpotClient
from .hubspot.errors import PropertyLimitReached
from .model import AttributeValue, AudienceStatus
from .timestamps import TimestampError, iso_from_ms, to_epoch_ms

MAX_NAME_LENGTH = 100
UNKNOWN_REFRESH_SECONDS = 60.0
MAX_STRING_LENGTH = 65_536
STATUS_OPTIONS = [
    {"label": "Realized", "value": AudienceStatus.REALIZED.value, "hidden": False, "displayOrder": 0},
    {"label": "Exited", "value": AudienceStatus.EXITED.value, "hidden": False, "displayOrder": 1},
]
_NOT_NAME_CHARACTER = re.compile(r"[^a-z0-9]+")


def audience_property_name(audience_id: str, prefix: str) -> str:
    """A stable HubSpot internal name for an audience: ``^[a-z][a-z0-9_]*$``, at most 100
    characters, never starting with ``hs_`` (the prefix is validated to start with a letter)."""
    slug = _NOT_NAME_CHARACTER.sub("_", audience_id.lower()).strip("_") or "audience"
    name = f"{prefix}{slug}"
    if len(name) > MAX_NAME_LENGTH:
        digest = hashlib.sha256(audience_id.encode("utf-8")).hexdigest()[:12]
        name = f"{name[: MAX_NAME_LENGTH - 13]}_{digest}"
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


@dataclass
class AudienceProperty:
    audience_id: str
    name: str
    error: str | None = None


@dataclass
class PropertySchema:
    """The contact property definitions, cached per container (DESIGN.md section 5.3)."""

    client: HubSpotClient
    group_name: str
    group_label: str
    prefix: str
    max_age_seconds: float = 600.0
    clock: Callable[[], float] = time.monotonic
    _definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    _loaded_at: float | None = None
    _group_ready: bool = False
    #: Audiences whose property could not be created, with the reason (kept until the next refresh).
    _unavailable: dict[str, str] = field(default_factory=dict)

    def definitions(self) -> dict[str, dict[str, Any]]:
        if self._loaded_at is None or self.clock() - self._loaded_at > self.max_age_seconds:
            self.refresh()
        return self._definitions

    def definitions_for(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The definitions, re-read when some of ``names`` are unknown (someone may have created
        them in HubSpot since) - at most once a minute, so a name that stays unknown costs nothing."""
        definitions = self.definitions()
        if unknown_names(definitions, names) and (
            self._loaded_at is None or self.clock() - self._loaded_at > UNKNOWN_REFRESH_SECONDS
        ):
            self.refresh()
        return self._definitions

    def refresh(self) -> None:
        self._definitions = {p["name"]: p for p in self.client.list_properties()}
        self._loaded_at = self.clock()
        self._unavailable.clear()

    def ensure_audiences(self, audiences: Mapping[str, str | None]) -> dict[str, AudienceProperty]:
        """Make sure every audience (id -> name or None) has its property, creating the missing ones
        in one batch call and updating labels when a name arrives or changes."""
        definitions = self.definitions()
        result: dict[str, AudienceProperty] = {}
        missing: list[dict[str, Any]] = []
        for audience_id, name in audiences.items():
            prop_name = audience_property_name(audience_id, self.prefix)
            result[audience_id] = AudienceProperty(audience_id, prop_name, self._unavailable.get(audience_id))
            existing = definitions.get(prop_name)
            if existing is None and audience_id not in self._unavailable:
                missing.append(
                    audience_property_spec(prop_name, name or audience_id, self.group_name, audience_id)
                )
            elif existing is not None and name and existing.get("label") != name:
                existing.update(self.client.update_property(prop_name, {"label": name}))
        if missing:
            self._create(missing, result)
        return result

    def _create(self, specs: list[dict[str, Any]], result: dict[str, AudienceProperty]) -> None:
        if not self._group_ready:
            if self.group_name not in {g["name"] for g in self.client.list_groups()}:
                self.client.ensure_group(self.group_name, self.group_label)
            self._group_ready = True
        by_name = {prop.name: prop for prop in result.values()}
        try:
            outcome = self.client.create_properties(specs)
        except PropertyLimitReached as limit:
            reason = (
                f"HubSpot's custom property limit is reached; no property for this audience ({limit.message})"
            )
            for spec in specs:
                self._mark_unavailable(by_name[spec["name"]], reason)
            return
        for created in outcome.created:
            self._definitions[created["name"]] = created
        if outcome.existing:
            self.refresh()  # created by someone else meanwhile: take HubSpot's definition
        for name, refusal in outcome.failed.items():
            if name in by_name:
                self._mark_unavailable(
                    by_name[name], f"HubSpot refused the audience property: {refusal.message}"
                )

    def _mark_unavailable(self, prop: AudienceProperty, reason: str) -> None:
        prop.error = reason
        self._unavailable[prop.audience_id] = reason


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
    "PropertySchema",
    "audience_property_name",
    "coerce",
    "coerce_attributes",
]
