"""What HubSpot's contact batch calls (upsert, update, read) take and give back: plain data, so
decisions about them need no HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import HubSpotError

#: HubSpot's batch endpoints take at most 100 inputs.
MAX_BATCH_INPUTS = 100


@dataclass(frozen=True)
class UpsertInput:
    email: str
    properties: Mapping[str, str]


@dataclass(frozen=True)
class UpdateInput:
    """A write of a contact by its record id (``batch/update``): for a contact whose record answers
    to another email (merged into another record), where a write by email could create a duplicate."""

    contact_id: str
    #: the contact's email in the ledger, which the result is reported under
    email: str
    properties: Mapping[str, str]


@dataclass
class UpsertResult:
    email: str
    contact_id: str | None = None
    created: bool | None = None
    error: HubSpotError | None = None
    #: HubSpot's per-property details (``name``, ``error`` code, ``message``) for a failed input.
    property_errors: list[dict[str, Any]] = field(default_factory=list)
    #: an earlier attempt of the same call got no answer and may still be applied late
    unconfirmed: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ReadRecord:
    """One record a batch read returned (HubSpot's ``SimplePublicObject``)."""

    id: str
    #: the properties asked for, as HubSpot answered them (None: empty)
    properties: dict[str, str | None]
    archived: bool = False


@dataclass
class BatchReadOutcome:
    """A batch read's answer: the records HubSpot returned, in its order (which need not be the
    keys' order, and a record can answer for more than one key: see ``HubSpotClient.batch_read``),
    and the keys it reported not found, as they were asked."""

    records: list[ReadRecord] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    #: keys HubSpot reported an error other than "not found" for, with that error
    failed: dict[str, HubSpotError] = field(default_factory=dict)


@dataclass
class PropertyCreateOutcome:
    created: list[dict[str, Any]] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    failed: dict[str, HubSpotError] = field(default_factory=dict)
