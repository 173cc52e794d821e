"""Destination SDK output: what Adobe's canonical Pebble template renders for a streaming destination."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...model import AudienceChange, AudienceStatus, ContactUpdate
from .common import (
    ProfileContext,
    ProfileExcluded,
    audience_change,
    hashed_only,
    is_hashed_namespace,
    mapped_attributes,
    usable_email,
)


def is_sdk_profile(profile: Mapping[str, Any]) -> bool:
    return "identities" in profile or "AdobeExperiencePlatformSegments" in profile


def _email(profile: Mapping[str, Any]) -> str:
    identities = profile.get("identities")
    candidates: list[Any] = []
    hashed: list[Any] = []
    if isinstance(identities, list):
        for identity in identities:
            if not isinstance(identity, Mapping):
                continue
            raw_kind = identity.get("type")
            kind = raw_kind.lower() if isinstance(raw_kind, str) else ""
            if kind == "email":
                candidates.append(identity.get("id"))
            elif is_hashed_namespace(kind) and "email" in kind:
                hashed.append(identity.get("id"))
    elif isinstance(identities, Mapping):
        # Some templates render identities as a namespace map, like AEP's identityMap.
        for namespace, ids in identities.items():
            values = ids if isinstance(ids, list) else [ids]
            plain = [v.get("id") if isinstance(v, Mapping) else v for v in values]
            if namespace.lower() == "email":
                candidates.extend(plain)
            elif is_hashed_namespace(namespace) and "email" in namespace.lower():
                hashed.extend(plain)
    if not candidates and hashed_only(hashed):
        raise ProfileExcluded("only a hashed email identity; HubSpot needs a clear-text address")
    return usable_email(candidates)


def _segment_ids(ctx: ProfileContext, segments: Mapping[str, Any], key: str) -> list[tuple[Any, Any]]:
    """``add``/``remove`` entries: audience ids, or objects with an id (and optionally a name)."""
    entries = segments.get(key) or []
    if not isinstance(entries, list):
        ctx.warn(f"AdobeExperiencePlatformSegments.{key}", "must be a list of audience ids; ignored")
        return []
    result: list[tuple[Any, Any]] = []
    for entry in entries:
        if isinstance(entry, Mapping):
            result.append((entry.get("id") or entry.get("segmentId"), entry.get("name")))
        else:
            result.append((entry, None))
    return result


def _audiences(
    ctx: ProfileContext, profile: Mapping[str, Any], envelope: Mapping[str, Any]
) -> list[AudienceChange]:
    changes: list[AudienceChange] = []
    segments = profile.get("AdobeExperiencePlatformSegments")
    if isinstance(segments, Mapping):
        for key, status in (("add", AudienceStatus.REALIZED), ("remove", AudienceStatus.EXITED)):
            for audience_id, name in _segment_ids(ctx, segments, key):
                where = f"AdobeExperiencePlatformSegments.{key}"
                change = audience_change(ctx, audience_id, status.value, None, name, where)
                if change is not None:
                    changes.append(change)
    elif segments is not None:
        ctx.warn("AdobeExperiencePlatformSegments", "must be an object with add/remove lists; ignored")
    # Configurable aggregation with includeSegmentId: one call per audience, named at the top level.
    if not changes and envelope.get("audienceId") is not None:
        envelope_status = envelope.get("audienceStatus") or envelope.get("segmentStatus") or "realized"
        change = audience_change(
            ctx, envelope.get("audienceId"), envelope_status, None, envelope.get("audienceName"), "audienceId"
        )
        if change is not None:
            changes.append(change)
    return changes


def parse_sdk_profile(
    ctx: ProfileContext, profile: Mapping[str, Any], envelope: Mapping[str, Any]
) -> ContactUpdate:
    email = _email(profile)
    attribute_map = profile.get("attributes")
    attributes = mapped_attributes(ctx, None, attribute_map if isinstance(attribute_map, Mapping) else None)
    return ContactUpdate(email, tuple(_audiences(ctx, profile, envelope)), attributes, source="sdk")
