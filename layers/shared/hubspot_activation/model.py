"""The canonical, format-independent description of what a caller asked us to sync."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

#: A JSON scalar as the caller sent it; coercion to HubSpot's types happens in the consumer,
#: where the property schema is known.
AttributeValue = str | int | float | bool


class AudienceStatus(StrEnum):
    REALIZED = "realized"
    EXITED = "exited"


@dataclass(frozen=True, slots=True)
class AudienceChange:
    audience_id: str
    status: AudienceStatus
    #: Milliseconds since the epoch (UTC): when the profile entered or left the audience.
    timestamp_ms: int
    name: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.audience_id, "status": self.status.value, "ts": self.timestamp_ms}
        if self.name:
            data["name"] = self.name
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AudienceChange:
        return cls(
            audience_id=str(data["id"]),
            status=AudienceStatus(data["status"]),
            timestamp_ms=int(data["ts"]),
            name=data.get("name"),
        )


@dataclass(frozen=True, slots=True)
class ContactUpdate:
    """One contact's desired state: upserted by email, absent attributes mean "no change"."""

    email: str
    audiences: tuple[AudienceChange, ...] = ()
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    #: Which payload format it came from ("aep", "sdk", "native"): for logs and support.
    source: str = "native"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"email": self.email, "source": self.source}
        if self.audiences:
            data["audiences"] = [change.to_json() for change in self.audiences]
        if self.attributes:
            data["attributes"] = dict(self.attributes)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContactUpdate:
        return cls(
            email=str(data["email"]),
            audiences=tuple(AudienceChange.from_json(item) for item in data.get("audiences", ())),
            attributes=dict(data.get("attributes", {})),
            source=str(data.get("source", "native")),
        )


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A profile we could not accept, reported back to the caller with its position in the request."""

    index: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class ProfileWarning:
    """Something in an accepted profile that was ignored (unknown status, unmapped attribute...)."""

    index: int
    field: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason}
