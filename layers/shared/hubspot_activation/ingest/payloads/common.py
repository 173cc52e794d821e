"""Helpers shared by the payload formats: attribute values, audiences, the per-profile context."""

from __future__ import annotations

import functools
import math
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...attribute_mapping import PROPERTY_NAME, AttributeMapping
from ...emails import MAX_EMAIL_LENGTH, email_problem, looks_hashed, normalize_email
from ...field_rules import FieldRule, FieldRules
from ...model import AttributeValue, AudienceChange, AudienceStatus, ProfileWarning, is_unicode
from ...timestamps import TimestampError, audience_epoch_ms

_STATUS_ALIASES = {
    "realized": AudienceStatus.REALIZED,
    "existing": AudienceStatus.REALIZED,  # deprecated by Adobe in 2023: "already a member" is still a member
    "exited": AudienceStatus.EXITED,
}

_ABSENT = object()

#: HubSpot refuses longer property values; dropping them here keeps the queue free of writes that fail.
MAX_ATTRIBUTE_CHARACTERS = 65_536
#: A clock skew between the sender and us that is tolerated; an audience timestamp further in the
#: future is a sender's bug (a wrong unit, a placeholder date) and would freeze the membership, since
#: only newer changes are applied: it is replaced by the receive time.
MAX_FUTURE_SKEW_MS = 5 * 60 * 1000
#: Warnings listed in a response (and kept in memory); the rest are only counted.
MAX_LISTED = 100
#: A warning quotes the caller's field name, cut to this length so answers stay small.
_MAX_FIELD_CHARACTERS = 200
_LARGEST_FLOAT_INT = int(sys.float_info.max)


class ProfileExcluded(Exception):
    """The profile cannot be synced; ``reason`` goes back to the caller."""

    def __init__(self, reason: str, email: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        #: the unusable address the profile gave, if any (for the operator, never the answer)
        self.email = email


@dataclass(frozen=True)
class ParseOptions:
    mapping: AttributeMapping
    #: Audience ids to keep; empty keeps all (AEP's HTTP API also sends unmapped audiences).
    audience_allowlist: frozenset[str] = frozenset()
    #: When a membership carries no timestamp: the time the request was received.
    received_at_ms: int = 0
    #: More profiles in one request answer 413 (the worst body must fit the function's memory and time).
    max_profiles: int = 10_000
    #: Which side wins per property: ingest applies what depends on null versus missing.
    rules: FieldRules = field(default_factory=FieldRules)


@dataclass
class WarningLog:
    """Every warning of a request is counted; only the first ``MAX_LISTED`` are kept."""

    listed: list[ProfileWarning] = field(default_factory=list)
    count: int = 0

    def add(self, warning: ProfileWarning) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED:
            self.listed.append(warning)


@dataclass
class ProfileContext:
    index: int
    options: ParseOptions
    log: WarningLog = field(default_factory=WarningLog)
    #: Rule -> the request's fields it dropped (one per profile and property): a count, not a
    #: warning, since a rule doing its job is not a problem of the contact.
    skipped_by_rule: Counter[str] = field(default_factory=Counter)

    def warn(self, field_name: str, reason: str) -> None:
        if len(field_name) > _MAX_FIELD_CHARACTERS:
            field_name = field_name[: _MAX_FIELD_CHARACTERS - 3] + "..."
        self.log.add(ProfileWarning(self.index, field_name, reason))


def shown(value: Any) -> str:
    """A caller's value quoted in a warning: short, whatever was sent."""
    scalar = isinstance(value, str | int | float | bool) or value is None
    text = repr(value) if scalar else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def usable_email(candidates: list[Any]) -> str:
    """The first valid clear-text email among ``candidates``; otherwise the exclusion reason."""
    problems: list[tuple[str, str]] = []
    for candidate in candidates:
        if not isinstance(candidate, str):
            continue
        email = normalize_email(candidate)
        problem = email_problem(email)
        if problem is None:
            return email
        problems.append((problem, email))
    if not problems:
        raise ProfileExcluded("no email identity")
    if all("hashed" in problem for problem, _email in problems):
        raise ProfileExcluded("only a hashed email identity; HubSpot needs a clear-text address")
    problem, email = problems[0]
    raise ProfileExcluded(problem, email[:MAX_EMAIL_LENGTH] if is_unicode(email) else None)


def is_hashed_namespace(namespace: str) -> bool:
    return "sha256" in namespace.lower() or "hash" in namespace.lower()


def hashed_only(values: list[Any]) -> bool:
    return bool(values) and all(isinstance(v, str) and looks_hashed(v) for v in values)


def scalar_value(raw: Any) -> Any:
    """Unwrap ``{"value": x}``; ``{}`` and ``null`` carry no value and return ``_ABSENT`` (no change,
    unless the property's rule clears on null). A loop, not recursion: wrappers nest as deep as the
    body does."""
    while isinstance(raw, dict) and len(raw) == 1 and "value" in raw:
        raw = raw["value"]
    if raw is None or (isinstance(raw, dict) and not raw):
        return _ABSENT
    return raw


def _value_problem(value: Any) -> str | None:
    """Why a scalar attribute value cannot be written to HubSpot, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "attribute value is not a finite number (NaN or infinite); ignored"
    if isinstance(value, int) and abs(value) > _LARGEST_FLOAT_INT:
        return "attribute value is too large a number; ignored"
    if isinstance(value, str):
        if len(value) > MAX_ATTRIBUTE_CHARACTERS:
            return f"attribute value is over HubSpot's {MAX_ATTRIBUTE_CHARACTERS:,} characters; ignored"
        if not is_unicode(value):
            return "attribute value is not valid Unicode (a lone surrogate); ignored"
    return None


@functools.cache
def _path_parts(path: str) -> tuple[str, ...]:
    # The mapping's few paths are looked up in every profile: split each once.
    return tuple(path.split("."))


def lookup_path(document: Mapping[str, Any], path: str) -> Any:
    """A dotted path in nested objects, falling back to a literal key that contains dots."""
    if path in document:
        return document[path]
    node: Any = document
    for part in _path_parts(path):
        # JSON objects are dicts: the exact check spares the ABC machinery on the hot path.
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node


@dataclass
class _ProfileAttributes:
    """One profile's attributes as the field rules let them through."""

    ctx: ProfileContext
    values: dict[str, AttributeValue] = field(default_factory=dict)
    #: properties a source carried as null whose rule clears on null
    nulls: set[str] = field(default_factory=set)
    #: property -> the rule that dropped its value
    skipped: dict[str, FieldRule] = field(default_factory=dict)

    def add(self, source: str, prop: str, raw: Any) -> None:
        rule = self.ctx.options.rules.rule_for(prop)
        value = scalar_value(raw)
        if value is _ABSENT:
            # Present as null (``null``, ``{"value": null}``, or ``{}``: AEP's SDK renders a
            # profile's missing value so); a missing field never reaches here.
            if rule.clears_on_null:
                self.nulls.add(prop)
            return
        if rule is FieldRule.NEVER or (rule.ignores_blank and value == ""):
            self.skipped[prop] = rule
            return
        if not isinstance(value, str | int | float | bool):
            self.ctx.warn(source, "attribute value is not a string, number or boolean; ignored")
            return
        problem = _value_problem(value)
        if problem is not None:
            self.ctx.warn(source, problem)
            return
        if prop in self.values and self.values[prop] != value:
            # Two sources for one property (a raw path and a flat name): the first mapped one wins.
            self.ctx.warn(
                source, f"also maps to {prop!r}, which is already set by another attribute; ignored"
            )
            return
        self.values[prop] = value

    def result(self) -> dict[str, AttributeValue]:
        # A null clears only when no other source of the property carried a value, and "" is the
        # queue's one way to say "clear".
        for prop in sorted(self.nulls - self.values.keys()):
            self.values[prop] = ""
        self.ctx.skipped_by_rule.update(
            rule.value for prop, rule in self.skipped.items() if prop not in self.values
        )
        return self.values


def mapped_attributes(
    ctx: ProfileContext, profile: Mapping[str, Any] | None, attribute_map: Mapping[str, Any] | None
) -> dict[str, AttributeValue]:
    """Attributes from the mapping's paths (in ``profile``, the XDM root of a raw export, then in the
    attributes map) and the map's remaining keys when they already are HubSpot property names,
    with the field rules applied (``ctx.skipped_by_rule`` counts what they dropped)."""
    attributes = _ProfileAttributes(ctx)
    consumed: set[str] = set()
    mapping = ctx.options.mapping
    for source, prop in mapping.paths.items():
        raw = lookup_path(profile, source) if profile is not None else _ABSENT
        if raw is _ABSENT and attribute_map is not None:
            raw = lookup_path(attribute_map, source)
            if raw is not _ABSENT:
                consumed.add(source.split(".", 1)[0] if source not in attribute_map else source)
        if raw is not _ABSENT:
            attributes.add(source, prop, raw)
    for key, raw in (attribute_map or {}).items():
        if key in consumed or key == "email":
            continue
        if PROPERTY_NAME.match(key):
            attributes.add(key, key, raw)
        elif scalar_value(raw) is not _ABSENT:
            ctx.warn(f"attributes.{key}", "no mapping to a HubSpot property; ignored")
    return attributes.result()


def audience_change(
    ctx: ProfileContext, audience_id: Any, status: Any, timestamp: Any, name: Any, where: str
) -> AudienceChange | None:
    """One membership, or None (with a warning) when it cannot be used or is not allowed."""
    if not isinstance(audience_id, str) or not audience_id.strip():
        ctx.warn(where, "audience id must be a non-empty string; membership ignored")
        return None
    if not is_unicode(audience_id):
        ctx.warn(where, "audience id is not valid Unicode (a lone surrogate); membership ignored")
        return None
    audience_id = audience_id.strip()
    allowlist = ctx.options.audience_allowlist
    if allowlist and audience_id not in allowlist:
        return None
    normalized = _STATUS_ALIASES.get(status.strip().lower()) if isinstance(status, str) else None
    if normalized is None:
        ctx.warn(where, f"unknown audience status {shown(status)} (expected realized or exited); ignored")
        return None
    return AudienceChange(
        audience_id, normalized, _audience_timestamp(ctx, timestamp, where), _audience_name(ctx, name, where)
    )


def _audience_timestamp(ctx: ProfileContext, timestamp: Any, where: str) -> int:
    received_ms = ctx.options.received_at_ms
    if timestamp in (None, ""):
        return received_ms
    try:
        timestamp_ms = audience_epoch_ms(timestamp)
    except TimestampError as exc:
        ctx.warn(where, f"{exc}; used the time the request was received")
        return received_ms
    if timestamp_ms > received_ms + MAX_FUTURE_SKEW_MS:
        ctx.warn(where, "timestamp is in the future; used the time the request was received")
        return received_ms
    return timestamp_ms


def _audience_name(ctx: ProfileContext, name: Any, where: str) -> str | None:
    if not isinstance(name, str) or not name.strip():
        return None
    if not is_unicode(name):
        ctx.warn(where, "audience name is not valid Unicode (a lone surrogate); name ignored")
        return None
    return name.strip()


def require_object(profile: Any) -> Mapping[str, Any]:
    if not isinstance(profile, Mapping):
        raise ProfileExcluded("profile is not a JSON object")
    return profile
