"""Keeping ingest's exclusions for the operator's issues list (``GET /sync/issues?status=excluded``):
the port ingest stores them through (the DynamoDB adapter is ``ledger.exclusion_store``).

Stored after the request was queued, and never at the cost of the answer: the caller's 202 (with
every exclusion listed) is what counts, and AEP gives up after 2 s. What was not stored is counted
in the ``ExclusionsNotStored`` metric and a log line (counts, no addresses) - a valid request never
turns into a 5xx because of the operator's list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..model import Exclusion


class ExclusionStore(Protocol):
    def store(
        self, exclusions: Sequence[Exclusion], request_id: str, received_ms: int, content_id: str
    ) -> int:
        """Keep the exclusions; returns how many could not be stored (never raises).

        Items are keyed by ``content_id`` (a hash of the request body) and the profile's index, not
        by the request id: a caller's retry of the same body rewrites the same items."""
        ...


class NoExclusionStore:
    """Where no table is configured (tests, a bare ingest): nothing is kept."""

    def store(
        self, exclusions: Sequence[Exclusion], request_id: str, received_ms: int, content_id: str
    ) -> int:
        return 0
