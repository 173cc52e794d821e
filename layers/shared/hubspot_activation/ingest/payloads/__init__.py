"""Turn any supported request body into canonical ContactUpdates.

Three formats are auto-detected per profile: AEP profile export (raw XDM
profile with identityMap / segmentMembership), Destination SDK output (identities /
AdobeExperiencePlatformSegments) and the native format (email / attributes / audiences). The
envelope can be a single profile, a bare array, or ``{"profiles": [...]}``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Any

from ...http_errors import InvalidInput
from ...model import ContactUpdate, Exclusion, ProfileWarning
from .aep import is_aep_profile, parse_aep_profile
from .common import ParseOptions, ProfileContext, ProfileExcluded, WarningLog, require_object
from .native import is_native_profile, parse_native_profile
from .sdk import is_sdk_profile, parse_sdk_profile

__all__ = ["InvalidRequest", "ParseOptions", "ParsedRequest", "TooManyProfiles", "parse_activation"]


class InvalidRequest(InvalidInput):
    """The body can never succeed (AEP does not retry a 400): ``field`` names what is wrong."""


class TooManyProfiles(InvalidRequest):
    """More profiles than one request may carry (413): the caller must split the request."""

    error = "too_many_profiles"
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


@dataclass
class ParsedRequest:
    #: (index in the request, update) for every accepted profile, in request order.
    updates: list[tuple[int, ContactUpdate]] = field(default_factory=list)
    #: At most one per profile, so bounded by ``ParseOptions.max_profiles``.
    excluded: list[Exclusion] = field(default_factory=list)
    log: WarningLog = field(default_factory=WarningLog)
    #: Rule -> fields of the request it dropped, one per profile and property.
    skipped_by_rule: Counter[str] = field(default_factory=Counter)

    @property
    def warnings(self) -> list[ProfileWarning]:
        """The first warnings (``log.count`` has them all)."""
        return self.log.listed


def _profiles(document: Any) -> tuple[list[Any], Mapping[str, Any]]:
    """The list of profiles and the envelope they came in (for envelope-level audience fields)."""
    if isinstance(document, list):
        return document, {}
    if not isinstance(document, Mapping):
        raise InvalidRequest("body", "body must be a JSON object or array of profiles")
    if "profiles" in document:
        profiles = document["profiles"]
        if not isinstance(profiles, list):
            raise InvalidRequest("profiles", "'profiles' must be an array of profile objects")
        return profiles, document
    if "profile" in document and isinstance(document["profile"], Mapping):
        return [document["profile"]], document
    if is_aep_profile(document) or is_sdk_profile(document) or is_native_profile(document):
        return [document], {}
    raise InvalidRequest(
        "body",
        "body is not a recognised activation: expected an AEP profile (identityMap/segmentMembership), "
        'an array of profiles, or {"profiles": [...]}',
    )


def _parse_profile(ctx: ProfileContext, raw: Any, envelope: Mapping[str, Any]) -> ContactUpdate:
    profile = require_object(raw)
    if is_aep_profile(profile):
        return parse_aep_profile(ctx, profile)
    if is_sdk_profile(profile):
        return parse_sdk_profile(ctx, profile, envelope)
    if is_native_profile(profile):
        return parse_native_profile(ctx, profile)
    raise ProfileExcluded("unrecognised profile: expected identityMap, identities or email")


def parse_activation(document: Any, options: ParseOptions) -> ParsedRequest:
    profiles, envelope = _profiles(document)
    if not profiles:
        raise InvalidRequest("profiles", "the request contains no profiles")
    if len(profiles) > options.max_profiles:
        raise TooManyProfiles(
            "profiles",
            f"the request has {len(profiles)} profiles, over the limit of {options.max_profiles}: "
            "send fewer per request",
        )
    result = ParsedRequest()
    for index, raw in enumerate(profiles):
        ctx = ProfileContext(index, options, result.log, result.skipped_by_rule)
        try:
            update = _parse_profile(ctx, raw, envelope)
            if not update.audiences and not update.attributes:
                raise ProfileExcluded(
                    "nothing to sync: no allowed audience membership and no mapped attribute", update.email
                )
        except ProfileExcluded as excluded:
            result.excluded.append(Exclusion(index, excluded.reason, excluded.email))
            continue
        result.updates.append((index, replace(update, received_ms=options.received_at_ms, position=index)))
    return result
