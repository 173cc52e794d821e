"""Per-contact sync state: what was applied to HubSpot, so stale changes and identical writes are
skipped and every outcome is recorded. Plain data and a Protocol; the DynamoDB adapter is in
``dynamodb_ledger``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

SYNCED = "synced"
FAILED = "failed"


@dataclass
class AppliedAudience:
    status: str
    timestamp_ms: int


@dataclass
class LedgerEntry:
    email: str
    status: str
    hubspot_id: str | None = None
    #: audience id -> the newest status written to HubSpot and its timestamp
    audiences: dict[str, AppliedAudience] = field(default_factory=dict)
    #: property -> value of the last successful write (identical writes are skipped)
    written: dict[str, str] = field(default_factory=dict)
    reason: str | None = None
    warnings: dict[str, str] = field(default_factory=dict)
    updated_at_ms: int = 0
    #: fingerprint of the last write HubSpot refused for good: the same write is not sent again
    rejected: str | None = None


class Ledger(Protocol):
    def get_many(self, emails: Sequence[str]) -> dict[str, LedgerEntry]: ...

    def put_many(self, entries: Sequence[LedgerEntry]) -> None: ...


class LedgerUnavailable(Exception):
    """The ledger could not be read or written: the messages go back to the queue."""
