"""AEP profile export, as the HTTP API destination POSTs it (the raw XDM profile)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...model import AudienceChange, ContactUpdate
from .common import (
    ProfileContext,
    ProfileExcluded,
    audience_change,
    hashed_only,
    is_hashed_namespace,
    lookup_path,
    mapped_attributes,
    usable_email,
)

_EMAIL_NAMESPACES = ("email",)
_FALLBACK_EMAIL_PATHS = ("personalEmail.address", "workEmail.address")


def is_aep_profile(profile: Mapping[str, Any]) -> bool:
    return "segmentMembership" in profile or "identityMap" in profile


def _email(profile: Mapping[str, Any]) -> str:
    identity_map = profile.get("identityMap")
    candidates: list[Any] = []
    hashed: list[Any] = []
    if isinstance(identity_map, Mapping):
        for namespace, identities in identity_map.items():
            ids = (
                [item.get("id") for item in identities if isinstance(item, Mapping)]
                if isinstance(identities, list)
                else []
            )
            if namespace.lower() in _EMAIL_NAMESPACES:
                candidates.extend(ids)
            elif is_hashed_namespace(namespace) and "email" in namespace.lower():
                hashed.extend(ids)
    for path in _FALLBACK_EMAIL_PATHS:
        value = lookup_path(profile, path)
        if isinstance(value, str):
            candidates.append(value)
    if not candidates and hashed_only(hashed):
        raise ProfileExcluded("only a hashed email identity; HubSpot needs a clear-text address")
    return usable_email(candidates)


def _audiences(ctx: ProfileContext, profile: Mapping[str, Any]) -> list[AudienceChange]:
    membership = profile.get("segmentMembership")
    if membership is None:
        return []
    if not isinstance(membership, Mapping):
        ctx.warn("segmentMembership", "must be an object of namespace -> audience id -> membership")
        return []
    changes: list[AudienceChange] = []
    for namespace, audiences in membership.items():
        if not isinstance(audiences, Mapping):
            ctx.warn(f"segmentMembership.{namespace}", "must be an object of audience id -> membership")
            continue
        for audience_id, entry in audiences.items():
            where = f"segmentMembership.{namespace}.{audience_id}"
            if not isinstance(entry, Mapping):
                ctx.warn(where, "membership must be an object with a status")
                continue
            change = audience_change(
                ctx,
                audience_id,
                entry.get("status"),
                entry.get("lastQualificationTime"),
                entry.get("name"),
                where,
            )
            if change is not None:
                changes.append(change)
    return changes


def parse_aep_profile(ctx: ProfileContext, profile: Mapping[str, Any]) -> ContactUpdate:
    email = _email(profile)
    attribute_map = profile.get("attributes")
    attributes = mapped_attributes(
        ctx, profile, attribute_map if isinstance(attribute_map, Mapping) else None
    )
    return ContactUpdate(email, tuple(_audiences(ctx, profile)), attributes, source="aep")
