"""The ingest use case: parse, validate, pack and enqueue one activation request (no HTTP here)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..messages import encode_update, fits_in_message, pack_encoded
from ..model import Exclusion, ProfileWarning
from ..settings import IngestSettings
from .exclusions import ExclusionStore, NoExclusionStore
from .payloads import ParseOptions, parse_activation
from .payloads.common import MAX_LISTED
from .publisher import MessagePublisher


@dataclass
class IngestResult:
    request_id: str
    accepted: int
    #: every excluded profile (at most one per profile, so bounded by the profile limit)
    excluded: list[Exclusion]
    #: the first warnings; ``warning_count`` counts them all
    warnings: list[ProfileWarning]
    warning_count: int = 0
    messages: int = 0
    sqs_requests: int = 0
    #: exclusions the operator's issues list could not keep (DynamoDB slow or down)
    exclusions_unstored: int = 0
    #: rule -> fields the field rules dropped (one per profile and property)
    skipped_by_rule: dict[str, int] = field(default_factory=dict)

    def excluded_by_reason(self) -> dict[str, int]:
        # Exclusion reasons are fixed texts (never the caller's values), so this stays small.
        return dict(Counter(item.reason for item in self.excluded))

    def to_response(self) -> dict[str, Any]:
        """At most ``MAX_LISTED`` exclusions and warnings are listed, with the counts of all of them:
        the answer stays far below API Gateway's and Lambda's response limits for any request."""
        body: dict[str, Any] = {
            "accepted": self.accepted,
            "excluded": [item.to_json() for item in self.excluded[:MAX_LISTED]],
            "excludedCount": len(self.excluded),
            "excludedByReason": self.excluded_by_reason(),
            "requestId": self.request_id,
        }
        if self.skipped_by_rule:
            # Rule names are fixed words, one count each: as small as the reasons above.
            body["skippedByRule"] = dict(self.skipped_by_rule)
        if self.warning_count:
            body["warnings"] = [item.to_json() for item in self.warnings[:MAX_LISTED]]
            body["warningCount"] = self.warning_count
        return body


class IngestService:
    def __init__(
        self,
        settings: IngestSettings,
        publisher: MessagePublisher,
        clock: Callable[[], float] = time.time,
        exclusions: ExclusionStore | None = None,
    ) -> None:
        self._settings = settings
        self._publisher = publisher
        self._clock = clock
        self._exclusions = exclusions or NoExclusionStore()

    def ingest(self, document: Any, request_id: str, body_digest: str | None = None) -> IngestResult:
        """Raises ``InvalidRequest`` for a body that can never succeed and ``EnqueueError`` when the
        queue did not take everything (the caller must retry; nothing is half-acknowledged).

        ``body_digest`` (a hash of the request body) keys the stored exclusions, so a caller's retry
        of the same body overwrites them instead of listing them twice; without it, the request id."""
        received_ms = int(self._clock() * 1000)
        options = ParseOptions(
            mapping=self._settings.mapping,
            audience_allowlist=self._settings.audience_allowlist,
            received_at_ms=received_ms,
            max_profiles=self._settings.max_profiles,
            rules=self._settings.field_rules,
        )
        parsed = parse_activation(document, options)
        excluded = list(parsed.excluded)
        encoded: list[tuple[str, str]] = []  # encoded once: checked for size, then packed
        for index, update in parsed.updates:
            text = encode_update(update)
            if fits_in_message(text, self._settings.max_message_bytes):
                encoded.append((update.email, text))
            else:
                excluded.append(
                    Exclusion(index, "profile is larger than the queue message limit", update.email)
                )
        excluded.sort(key=lambda item: item.index)
        messages = pack_encoded(
            encoded, self._settings.shard_count, self._settings.max_message_bytes, received_ms
        )
        requests = self._publisher.publish(messages, request_id) if messages else 0
        # Only once the request is queued: a 503 keeps nothing, and the caller's retry keeps them.
        unstored = (
            self._exclusions.store(excluded, request_id, received_ms, body_digest or request_id)
            if excluded
            else 0
        )
        return IngestResult(
            request_id=request_id,
            accepted=len(encoded),
            excluded=excluded,
            warnings=parsed.warnings,
            warning_count=parsed.log.count,
            messages=len(messages),
            sqs_requests=requests,
            exclusions_unstored=unstored,
            skipped_by_rule=dict(parsed.skipped_by_rule),
        )
