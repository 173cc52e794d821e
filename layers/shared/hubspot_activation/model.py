"""The canonical, format-independent description of what a caller asked us to sync."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

#: A JSON scalar as the caller sent it; coercion to HubSpot's types happens in the consumer,
#: where the property schema is known.
AttributeValue = str | int | float | bool


#: Bound of the integers a message carries (epoch ms, positions): far past any real one, and within
#: what every store of them takes.
MAX_MESSAGE_INTEGER = 2**53


def as_integer(value: Any, name: str) -> int:
    """An integer field of a queue message; ``ValueError`` for anything ``int()`` cannot make a
    bounded integer of (an infinite or NaN float raises OverflowError or ValueError there)."""
    try:
        number = int(value)
    except (OverflowError, TypeError):
        raise ValueError(f"{name} is not an integer: {str(value)[:40]}") from None
    if abs(number) > MAX_MESSAGE_INTEGER:
        raise ValueError(f"{name} is out of range: {str(value)[:40]}")
    return number


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} is not text")
    return value


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

    def to_json(self, received_ms: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.audience_id, "status": self.status.value}
        if self.timestamp_ms != received_ms:
            data["ts"] = self.timestamp_ms
        if self.name:
            data["name"] = self.name
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], received_ms: int = 0) -> AudienceChange:
        name = data.get("name")
        return cls(
            audience_id=_text(data["id"], "audience id"),
            status=AudienceStatus(data["status"]),
            timestamp_ms=as_integer(data.get("ts", received_ms), "ts"),
            name=None if name is None else _text(name, "audience name"),
        )


@dataclass(frozen=True, slots=True)
class ContactUpdate:
    """One contact's desired state: upserted by email, absent attributes mean "no change"."""

    email: str
    audiences: tuple[AudienceChange, ...] = ()
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    #: Which payload format it came from ("aep", "sdk", "native"): for logs and support.
    source: str = "native"
    #: When the ingest API received it (epoch ms) and its profile's position in that request:
    #: together the order in which updates were received, which decides between attribute values
    #: and breaks ties between audience changes of the same timestamp.
    #: (Not part of equality: two updates asking for the same state are the same update.)
    received_ms: int = field(default=0, compare=False)
    position: int = field(default=0, compare=False)

    @property
    def order(self) -> tuple[int, int]:
        return (self.received_ms, self.position)

    def to_json(self) -> dict[str, Any]:
        """The update without its receive time (the message envelope carries it, outside what
        deduplicates a caller's retry); an audience timestamp equal to the receive time is left out
        and read back as the receive time."""
        data: dict[str, Any] = {"email": self.email, "source": self.source, "pos": self.position}
        if self.audiences:
            data["audiences"] = [change.to_json(self.received_ms) for change in self.audiences]
        if self.attributes:
            data["attributes"] = dict(self.attributes)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], received_ms: int = 0) -> ContactUpdate:
        attributes = data.get("attributes", {})
        if not isinstance(attributes, dict) or not all(
            isinstance(value, str | int | float | bool) for value in attributes.values()
        ):
            raise ValueError("attributes is not an object of JSON scalars")
        audiences = data.get("audiences", ())
        if not isinstance(audiences, list | tuple):
            raise ValueError("audiences is not a list")
        return cls(
            email=_text(data["email"], "email"),
            audiences=tuple(AudienceChange.from_json(item, received_ms) for item in audiences),
            attributes=dict(attributes),
            source=_text(data.get("source", "native"), "source"),
            received_ms=received_ms,
            position=as_integer(data.get("pos", 0), "pos"),
        )


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A profile we could not accept, reported back to the caller with its position in the request."""

    index: int
    reason: str
    #: The address the profile gave, when it gave one (an invalid one): kept for the operator's
    #: issues list, never part of the caller's answer.
    email: str | None = field(default=None, compare=False)

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


def is_unicode(text: str) -> bool:
    """False for text with a lone surrogate (JSON's ``\\ud800``): it has no UTF-8 form, so it can be
    neither queued nor written to HubSpot."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
