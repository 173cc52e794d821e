"""HubSpot's contact property definitions, cached per container, and the audience properties made
sure of before a batch is written."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..hubspot.batch import PropertyCreateOutcome
from ..hubspot.errors import PropertyLimitReached
from ..settings import AUDIENCE_PROPERTY_RETRY_SECONDS, SCHEMA_CACHE_SECONDS
from .properties import AudienceProperty, audience_property_name, audience_property_spec, unknown_names

#: A property name still unknown after a refresh is looked up again at most this often.
UNKNOWN_REFRESH_SECONDS = 60.0


class PropertyApi(Protocol):
    """The part of the HubSpot client the schema uses."""

    def list_properties(self) -> list[dict[str, Any]]: ...

    def create_properties(self, specs: Sequence[Mapping[str, Any]]) -> PropertyCreateOutcome: ...

    def update_property(self, name: str, changes: Mapping[str, Any]) -> dict[str, Any]: ...

    def list_groups(self) -> list[dict[str, Any]]: ...

    def ensure_group(self, name: str, label: str) -> None: ...


@dataclass
class PropertySchema:
    """The contact property definitions, cached per container."""

    client: PropertyApi
    group_name: str
    group_label: str
    prefix: str
    max_age_seconds: float = SCHEMA_CACHE_SECONDS.default
    #: An audience whose property could not be created (the custom property limit, a refusal) is
    #: tried again by the first update that asks for it after this long: an operator's fix (a
    #: raised limit, a freed property) is seen by every container within it, not only after the
    #: definitions' refresh. A replay refreshes at once.
    unavailable_retry_seconds: float = AUDIENCE_PROPERTY_RETRY_SECONDS.default
    clock: Callable[[], float] = time.monotonic
    _definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    _loaded_at: float | None = None
    _group_ready: bool = False
    #: Audiences whose property could not be created: the reason and when it was found (kept
    #: until the next refresh or for ``unavailable_retry_seconds``).
    _unavailable: dict[str, tuple[str, float]] = field(default_factory=dict)

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

    def expire(self) -> None:
        """The definitions are known to be out of date: the next read re-reads them."""
        self._loaded_at = None

    def refresh(self) -> None:
        self._definitions = {p["name"]: p for p in self.client.list_properties()}
        self._loaded_at = self.clock()
        self._unavailable.clear()

    def ensure_audiences(self, audiences: Mapping[str, str | None]) -> dict[str, AudienceProperty]:
        """Make sure every audience (id -> name or None) has its property, creating the missing ones
        in one batch call and updating labels when a name arrives or changes."""
        definitions = self.definitions()
        self._forget_old_refusals(audiences)
        result: dict[str, AudienceProperty] = {}
        missing: list[dict[str, Any]] = []
        for audience_id, name in audiences.items():
            prop_name = audience_property_name(audience_id, self.prefix)
            refusal = self._unavailable.get(audience_id)
            result[audience_id] = AudienceProperty(audience_id, prop_name, refusal[0] if refusal else None)
            existing = definitions.get(prop_name)
            if existing is None and refusal is None:
                missing.append(
                    audience_property_spec(prop_name, name or audience_id, self.group_name, audience_id)
                )
            elif existing is not None and name and existing.get("label") != name:
                existing.update(self.client.update_property(prop_name, {"label": name}))
        if missing:
            self._create(missing, result)
        return result

    def _forget_old_refusals(self, audience_ids: Iterable[str]) -> None:
        now = self.clock()
        for audience_id in audience_ids:
            refusal = self._unavailable.get(audience_id)
            if refusal is not None and now - refusal[1] >= self.unavailable_retry_seconds:
                del self._unavailable[audience_id]

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
        self._unavailable[prop.audience_id] = (reason, self.clock())


__all__ = ["PropertyApi", "PropertySchema"]
