"""This project's own format: ``{"email", "attributes", "audiences": {id: {status, name, timestamp}}}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...model import AudienceChange, ContactUpdate
from .common import ProfileContext, audience_change, mapped_attributes, usable_email


def is_native_profile(profile: Mapping[str, Any]) -> bool:
    return "email" in profile


def _audiences(ctx: ProfileContext, audiences: Any) -> list[AudienceChange]:
    if audiences is None:
        return []
    entries: list[tuple[Any, Any]]
    if isinstance(audiences, Mapping):
        entries = list(audiences.items())
    elif isinstance(audiences, list):
        # A list of {"id": ..., "status": ...} is accepted too: easier to build from some tools.
        entries = [(item.get("id") if isinstance(item, Mapping) else None, item) for item in audiences]
    else:
        ctx.warn("audiences", "must be an object of audience id -> {status, name, timestamp}; ignored")
        return []
    changes: list[AudienceChange] = []
    for position, (audience_id, entry) in enumerate(entries):
        # An id that is not text is not quoted: it can be as large as the body.
        where = f"audiences.{audience_id}" if isinstance(audience_id, str) else f"audiences[{position}]"
        if isinstance(entry, str):
            entry = {"status": entry}
        if not isinstance(entry, Mapping):
            ctx.warn(where, "membership must be an object with a status; ignored")
            continue
        change = audience_change(
            ctx,
            audience_id,
            entry.get("status"),
            entry.get("timestamp", entry.get("lastQualificationTime")),
            entry.get("name"),
            where,
        )
        if change is not None:
            changes.append(change)
    return changes


def parse_native_profile(ctx: ProfileContext, profile: Mapping[str, Any]) -> ContactUpdate:
    email = usable_email([profile.get("email")])
    attribute_map = profile.get("attributes")
    if attribute_map is not None and not isinstance(attribute_map, Mapping):
        ctx.warn("attributes", "must be an object of attribute -> value; ignored")
        attribute_map = None
    attributes = mapped_attributes(ctx, None, attribute_map)
    return ContactUpdate(email, tuple(_audiences(ctx, profile.get("audiences"))), attributes, source="native")
