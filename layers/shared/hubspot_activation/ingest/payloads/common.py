"""Helpers shared by the payload formats: attribute values, audiences, the per-profile context."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...emails import email_problem, looks_hashed, normalize_email
from ...model import AttributeValue, AudienceChange, AudienceStatus, ProfileWarning
from ...timestamps import TimestampError, to_epoch_ms
from ..mapping import PROPERTY_NAME, AttributeMapping

_STATUS_ALIASES = {
    "realized": AudienceStatus.REALIZED,
    "existing": AudienceStatus.REALIZED,  # deprecated by Adobe in 2023: "already a member" is still a member
    "exited": AudienceStatus.EXITED,
}

_ABSENT = object()


class ProfileExcluded(Exception):
    """The profile cannot be synced; ``reason`` goes back to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ParseOptions:
    mapping: AttributeMapping
    #: Audience ids to keep; empty keeps all (AEP's HTTP API also sends unmapped audiences).
    audience_allowlist: frozenset[str] = frozenset()
    #: When a membership carries no timestamp: the time the request was received.
    received_at_ms: int = 0


@dataclass
class ProfileContext:
    index: int
    options: ParseOptions
    warnings: list[ProfileWarning] = field(default_factory=list)

    def warn(self, field_name: str, reason: str) -> None:
        self.warnings.append(ProfileWarning(self.index, field_name, reason))


def usable_email(candidates: list[Any]) -> str:
    """The first valid clear-text email among ``candidates``; otherwise the exclusion reason."""
    problems: list[str] = []
    for candidate in candidates:
        if not isinstance(candidate, str):
            continue
        email = normalize_email(candidate)
        problem = email_problem(email)
        if problem is None:
            return email
        problems.append(problem)
    if not problems:
        raise ProfileExcluded("no email identity")
    if all("hashed" in problem for problem in problems):
        raise ProfileExcluded("only a hashed email identity; HubSpot needs a clear-text address")
    raise ProfileExcluded(problems[0])


def is_hashed_namespace(namespace: str) -> bool:
    return "sha256" in namespace.lower() or "hash" in namespace.lower()


def hashed_only(values: list[Any]) -> bool:
    return bool(values) and all(isinstance(v, str) and looks_hashed(v) for v in values)


def scalar_value(raw: Any) -> Any:
    """Unwrap ``{"value": x}``; ``{}``/``null``/missing mean "no change" and return ``_ABSENT``."""
    if isinstance(raw, dict):
        if not raw:
            return _ABSENT
        if set(raw) == {"value"}:
            return scalar_value(raw["value"])
    if raw is None:
        return _ABSENT
    return raw


def lookup_path(document: Mapping[str, Any], path: str) -> Any:
    """A dotted path in nested objects, falling back to a literal key that contains dots."""
    if path in document:
        return document[path]
    node: Any = document
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def add_attribute(
    ctx: ProfileContext, attributes: dict[str, AttributeValue], source: str, prop: str, raw: Any
) -> None:
    value = scalar_value(raw)
    if value is _ABSENT:
        return
    if not isinstance(value, str | int | float | bool):
        ctx.warn(source, "attribute value is not a string, number or boolean; ignored")
        return
    if prop in attributes and attributes[prop] != value:
        # Two sources for one property (a raw path and a flat name): the first mapped one wins.
        ctx.warn(source, f"also maps to {prop!r}, which is already set by another attribute; ignored")
        return
    attributes[prop] = value


def mapped_attributes(
    ctx: ProfileContext, profile: Mapping[str, Any] | None, attribute_map: Mapping[str, Any] | None
) -> dict[str, AttributeValue]:
    """Attributes from the mapping's paths (in ``profile``, the XDM root of a raw export, then in the
    attributes map) and the map's remaining keys when they already are HubSpot property names."""
    attributes: dict[str, AttributeValue] = {}
    consumed: set[str] = set()
    mapping = ctx.options.mapping
    for source, prop in mapping.paths.items():
        raw = lookup_path(profile, source) if profile is not None else _ABSENT
        if raw is _ABSENT and attribute_map is not None:
            raw = lookup_path(attribute_map, source)
            if raw is not _ABSENT:
                consumed.add(source.split(".", 1)[0] if source not in attribute_map else source)
        if raw is not _ABSENT:
            add_attribute(ctx, attributes, source, prop, raw)
    for key, raw in (attribute_map or {}).items():
        if key in consumed or key == "email":
            continue
        if PROPERTY_NAME.match(key):
            add_attribute(ctx, attributes, key, key, raw)
        elif scalar_value(raw) is not _ABSENT:
            ctx.warn(f"attributes.{key}", "no mapping to a HubSpot property; ignored")
    return attributes


def audience_change(
    ctx: ProfileContext, audience_id: Any, status: Any, timestamp: Any, name: Any, where: str
) -> AudienceChange | None:
    """One membership, or None (with a warning) when it cannot be used or is not allowed."""
    if not isinstance(audience_id, str) or not audience_id.strip():
        ctx.warn(where, "audience id must be a non-empty string; membership ignored")
        return None
    audience_id = audience_id.strip()
    allowlist = ctx.options.audience_allowlist
    if allowlist and audience_id not in allowlist:
        return None
    normalized = _STATUS_ALIASES.get(status.strip().lower()) if isinstance(status, str) else None
    if normalized is None:
        ctx.warn(where, f"unknown audience status {status!r} (expected realized or exited); ignored")
        return None
    timestamp_ms = ctx.options.received_at_ms
    if timestamp not in (None, ""):
        try:
            timestamp_ms = to_epoch_ms(timestamp)
        except TimestampError as exc:
            ctx.warn(where, f"{exc}; used the time the request was received")
    label = name.strip() if isinstance(name, str) and name.strip() else None
    return AudienceChange(audience_id, normalized, timestamp_ms, label)


def require_object(profile: Any) -> Mapping[str, Any]:
    if not isinstance(profile, Mapping):
        raise ProfileExcluded("profile is not a JSON object")
    return profile
