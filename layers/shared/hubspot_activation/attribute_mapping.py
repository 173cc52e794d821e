"""Which caller attribute feeds which HubSpot contact property."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")

#: Both shapes AEP sends: the XDM paths of a raw profile export (HTTP API destination) and the flat
#: target names a Destination SDK template renders. The email identity always maps to ``email``.
DEFAULT_MAPPING: dict[str, str] = {
    "person.name.firstName": "firstname",
    "person.name.lastName": "lastname",
    "workAddress.street1": "address",
    "workAddress.city": "city",
    "workAddress.country": "country",
    "mobilePhone.number": "phone",
    "firstName": "firstname",
    "lastName": "lastname",
    "street1": "address",
    "city": "city",
    "country": "country",
    "phone": "phone",
}


class MappingError(ValueError):
    pass


@dataclass(frozen=True)
class AttributeMapping:
    """``source path -> HubSpot property``; a source path is dotted (``person.name.firstName``)."""

    paths: Mapping[str, str]

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, str | None] | None = None) -> AttributeMapping:
        """The default mapping extended by ``overrides``; an override to null/"" removes a default."""
        merged = dict(DEFAULT_MAPPING)
        for source, target in (overrides or {}).items():
            if not isinstance(source, str) or not source.strip():
                raise MappingError(f"mapping source path {source!r} must be a non-empty string")
            if target in (None, ""):
                merged.pop(source, None)
                continue
            if not isinstance(target, str) or not PROPERTY_NAME.match(target):
                raise MappingError(
                    f"mapping target {target!r} for {source!r} is not a HubSpot property name "
                    "(lower-case letters, digits and underscores, starting with a letter)"
                )
            if target == "email":
                raise MappingError("the email property is fed by the email identity, not by a mapping")
            merged[source] = target
        return cls(paths=merged)

    @classmethod
    def from_json(cls, text: str | None) -> AttributeMapping:
        if not text or not text.strip():
            return cls.from_overrides()
        try:
            overrides = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MappingError(f"attribute mapping is not valid JSON: {exc.msg}") from exc
        if not isinstance(overrides, dict):
            raise MappingError("attribute mapping must be a JSON object of source path -> property")
        return cls.from_overrides(overrides)
