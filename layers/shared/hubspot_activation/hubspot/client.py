"""The HubSpot CRM client the flusher, reconcile and the operator's relabel use: contacts batch
upsert, update and read, properties and groups.

Every call goes through the rate governor, refreshes credentials once on 401, retries transient
failures (429 ten-secondly, 423, 5xx, timeouts, dropped connections) within a time budget and, when
the caller gives one, a deadline, and maps batch results back to their inputs by
``objectWriteTraceId``.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from ..observability import logger, tracer
from .batch import (
    MAX_BATCH_INPUTS,
    BatchReadOutcome,
    PropertyCreateOutcome,
    ReadRecord,
    UpdateInput,
    UpsertInput,
    UpsertResult,
)
from .credentials import Credentials
from .errors import (
    DailyLimitReached,
    DeadlineReached,
    ErrorKind,
    HubSpotError,
    PropertyLimitReached,
    classify,
    parse_body,
    refusal_details,
)
from .governor import RateGovernor
from .versions import ApiVersion, Paths

DEFAULT_BASE_URL = "https://api.hubapi.com"

# X-Ray subsegments for HubSpot calls (and the OAuth token refresh, which shares the session):
# the shared tracer patches only boto3, so requests is patched where it is used. A no-op outside
# Lambda or with tracing disabled; patching twice is ignored.
tracer.patch(("requests",))


def new_session(pool_size: int = 10) -> requests.Session:
    """One pooled session per container: keeps TLS connections to HubSpot warm across invocations."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers.update({"Accept": "application/json", "User-Agent": "hubspot-activation/0.1"})
    return session


@dataclass(frozen=True)
class CallStats:
    """What the client has done so far, for reports and metrics (callers take differences)."""

    requests: int
    throttled: int
    #: HubSpot's X-HubSpot-RateLimit-Remaining on the latest answer (None before any)
    rate_limit_remaining: int | None


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    #: Total time one call may spend waiting before it gives up (the SQS redelivery is the long backoff).
    max_wait_seconds: float = 30.0
    base_backoff_seconds: float = 0.2
    locked_wait_seconds: float = 2.0


#: (connect, read) seconds of one HubSpot request.
DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 20)


class HubSpotClient:
    def __init__(
        self,
        credentials: Credentials,
        governor: RateGovernor,
        version: ApiVersion,
        base_url: str = DEFAULT_BASE_URL,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.credentials = credentials
        self.governor = governor
        self.paths = Paths(version)
        self.version = version
        self._base_url = base_url.rstrip("/")
        self._session = session or new_session()
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._jitter = random.Random()  # noqa: S311 - backoff jitter
        self.requests_sent = 0

    def with_governor(self, governor: RateGovernor) -> HubSpotClient:
        """A client sharing this one's credentials, session, timeouts and retries, whose calls go
        through ``governor`` and are counted apart (for calls HubSpot exempts from its limits)."""
        return HubSpotClient(
            self.credentials,
            governor,
            self.version,
            base_url=self._base_url,
            session=self._session,
            timeout=self._timeout,
            retry=self._retry,
            sleep=self._sleep,
            clock=self._clock,
        )

    def stats(self) -> CallStats:
        return CallStats(self.requests_sent, self.governor.throttled, self.governor.last_remaining)

    def ready_in(self) -> float:
        """Seconds until the governor would let the next call go."""
        return self.governor.ready_in()

    @property
    def max_call_seconds(self) -> float:
        """The longest one logical call can take: every retry wait plus the last attempt's timeouts."""
        return self._retry.max_wait_seconds + self.attempt_seconds

    @property
    def attempt_seconds(self) -> float:
        """The longest one attempt can take: its connect and read timeouts."""
        return sum(self._timeout)

    # --- transport -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> tuple[int, Any]:
        """Send one logical call; returns (status, body) for 2xx/207, raises HubSpotError otherwise
        (``deadline`` as in ``_call``)."""
        status, body, _ambiguous = self._call(method, path, json_body, params, deadline)
        return status, body

    @tracer.capture_method(capture_response=False, capture_error=False)
    def _call(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> tuple[int, Any, bool]:
        """``request``, also saying whether an earlier attempt may have been applied although it
        got no answer: HubSpot can apply it late, after the attempt that succeeded.

        ``deadline`` (on ``clock``, ``time.monotonic`` by default): an attempt starts only if,
        after the governor's hold, its timeouts end by then, and a backoff that would push the next
        attempt past it ends the call instead; the call then fails with the last error (or a
        ``DeadlineReached`` when nothing was sent), so it never runs past the deadline."""
        attempts = 0
        waited = 0.0
        refreshed = False
        ambiguous = False  # some attempt may have been applied without an answer saying so
        last: HubSpotError | None = None
        while attempts < self._retry.max_attempts:
            if not self._attempt_fits(deadline, 0.0):
                break
            self.governor.acquire()
            token = self.credentials.access_token()
            self.requests_sent += 1
            try:
                response = self._session.request(
                    method,
                    self._base_url + path,
                    json=json_body,
                    params=params,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=self._timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                # Only a connection never made is known not to have reached HubSpot.
                sent = not isinstance(exc, requests.ConnectTimeout)
                last = HubSpotError(
                    ErrorKind.RETRYABLE, f"{type(exc).__name__} talking to HubSpot", ambiguous=sent
                )
                ambiguous = ambiguous or sent
                attempts += 1
                slept = self._backoff(attempts, waited, deadline)
                if slept is None:
                    break
                waited += slept
                continue
            self.governor.observe(response.headers)
            body = parse_body(response.text)
            if 200 <= response.status_code < 300:
                return response.status_code, body, ambiguous
            error = classify(response.status_code, body, response.headers)
            if response.status_code == 401 and not refreshed:
                # Rotation or an expired OAuth token: re-read the secret once, then give up.
                refreshed = True
                self.credentials.invalidate()
                continue
            if error.kind is ErrorKind.RATE_LIMITED:
                wait = self.governor.on_throttled(error.policy_name, response.headers)
                logger.warning(
                    "HubSpot throttled a request", extra={"policy": error.policy_name, "waitSeconds": wait}
                )
                attempts += 1
                last = error
                if waited + wait > self._retry.max_wait_seconds:
                    break
                waited += wait  # acquire() holds the next request until the window has passed
                continue
            if error.kind is ErrorKind.RETRYABLE:
                attempts += 1
                last = error
                ambiguous = ambiguous or error.ambiguous
                minimum = self._retry.locked_wait_seconds if response.status_code == 423 else 0.0
                slept = self._backoff(attempts, waited, deadline, minimum)
                if slept is None:
                    break
                waited += slept
                continue
            raise error
        if last is None:
            # Nothing was attempted: the governor holds the first attempt past the deadline.
            raise DeadlineReached()
        last.ambiguous = last.ambiguous or ambiguous
        raise last

    def _attempt_fits(self, deadline: float | None, after: float) -> bool:
        """Whether an attempt started ``after`` seconds from now, and held by the governor as long
        as it says, would end by ``deadline`` at its timeouts."""
        if deadline is None:
            return True
        return self._clock() + after + self.governor.ready_in() + self.attempt_seconds <= deadline

    def _backoff(
        self, attempt: int, waited: float, deadline: float | None, minimum: float = 0.0
    ) -> float | None:
        """Sleep before the next attempt; the time slept, or None when the next attempt would end
        past ``deadline`` (the call gives up without waiting)."""
        exponential = (
            self._retry.base_backoff_seconds * float(2 ** (attempt - 1)) * (0.5 + self._jitter.random())
        )
        delay = max(minimum, exponential)
        delay = min(delay, max(0.0, self._retry.max_wait_seconds - waited))
        if attempt >= self._retry.max_attempts:
            return delay
        if not self._attempt_fits(deadline, delay):
            return None
        if delay > 0:
            self._sleep(delay)
        return delay

    # --- contacts --------------------------------------------------------------------------------

    def batch_upsert(
        self, inputs: Sequence[UpsertInput], deadline: float | None = None
    ) -> list[UpsertResult]:
        """Upsert contacts by email; one result per input, in input order. Permanent per-input
        errors are reported in the results; transient failures of the whole call raise, and so
        does a call that cannot be done by ``deadline`` (on ``clock``: see ``_call``). When a
        whole-batch 400 is split to isolate its bad inputs, the parts answered keep their results
        and the inputs of a part that then failed (``DeadlineReached`` included) carry that error
        as their result."""
        _check_batch(
            "batch upsert",
            [item.email for item in inputs],
            "batch upsert inputs must have distinct emails (HubSpot rejects the whole batch)",
        )
        writes = [
            _BatchWrite(
                item.email, {"id": item.email, "idProperty": "email", "properties": dict(item.properties)}
            )
            for item in inputs
        ]
        return self._write_or_bisect(self.paths.batch_upsert, writes, deadline) if writes else []

    def batch_update(
        self, inputs: Sequence[UpdateInput], deadline: float | None = None
    ) -> list[UpsertResult]:
        """Write contacts by record id (``batch/update``, which never creates); one result per
        input, in input order, reported under the input's ``email``, with ``batch_upsert``'s
        per-input errors, whole-batch-400 splitting and ``deadline``. A record HubSpot does not
        have (deleted, erased, never existed) is a permanent error of its input whose
        ``not_found`` is true (category ``OBJECT_NOT_FOUND``). An id a merge retired writes the
        record it became, and the result carries that record's id."""
        _check_batch(
            "batch update",
            [item.contact_id for item in inputs],
            "batch update inputs must have distinct record ids (HubSpot rejects the whole batch)",
        )
        writes = [
            _BatchWrite(
                item.email,
                {"id": item.contact_id, "properties": dict(item.properties)},
                named_by=item.contact_id,
            )
            for item in inputs
        ]
        return self._write_or_bisect(self.paths.batch_update, writes, deadline) if writes else []

    def _write_or_bisect(
        self, path: str, writes: list[_BatchWrite], deadline: float | None
    ) -> list[UpsertResult]:
        traces = [uuid.uuid4().hex for _ in writes]
        body = {
            "inputs": [
                {**write.body, "objectWriteTraceId": trace}
                for write, trace in zip(writes, traces, strict=True)
            ]
        }
        try:
            _status, document, ambiguous = self._call("POST", path, body, deadline=deadline)
        except HubSpotError as error:
            if error.status != 400 or error.kind is not ErrorKind.PERMANENT:
                raise
            if len(writes) == 1:
                return [
                    UpsertResult(writes[0].email, error=error, property_errors=refusal_details(error.body))
                ]
            # A whole-batch 400 despite trace ids: split until the bad inputs are isolated.
            middle = len(writes) // 2
            first = self._write_or_bisect(path, writes[:middle], deadline)
            try:
                second = self._write_or_bisect(path, writes[middle:], deadline)
            except HubSpotError as failure:
                # The first half's answers are known: they are kept, and the second half's inputs
                # carry the failure (the deadline reached, a transient error) as their result.
                second = [UpsertResult(write.email, error=failure) for write in writes[middle:]]
            return first + second
        results = self._map_batch(writes, traces, document)
        for result in results:
            result.unconfirmed = ambiguous
        return results

    @staticmethod
    def _map_batch(writes: list[_BatchWrite], traces: list[str], document: Any) -> list[UpsertResult]:
        document = document if isinstance(document, dict) else {}
        by_trace: dict[str, UpsertResult] = {}
        by_name: dict[str, UpsertResult] = {}
        for result in document.get("results") or []:
            written = UpsertResult("", contact_id=str(result.get("id")), created=bool(result.get("new")))
            trace = result.get("objectWriteTraceId")
            if trace is not None:
                by_trace[trace] = written
            # Without its trace id, a result found by the id it was written by (a record a merge
            # retired answers with another id, and is then left unaccounted for).
            by_name[str(result.get("id"))] = written
        for item in document.get("errors") or []:
            context = item.get("context") or {}
            error = classify(400, item)
            error.kind = ErrorKind.PERMANENT
            details = refusal_details(item)
            for trace in context.get("objectWriteTraceId") or []:
                by_trace[trace] = UpsertResult("", error=error, property_errors=list(details))
            # An error HubSpot files under the ids it could not find rather than a trace id.
            for name in context.get("ids") or []:
                by_name[str(name)] = UpsertResult("", error=error, property_errors=list(details))
        results = []
        for write, trace in zip(writes, traces, strict=True):
            found = by_trace.get(trace)
            if found is None and write.named_by is not None:
                found = by_name.get(write.named_by)
            if found is None:
                # A 2xx that does not account for an input: its fate is unknown, so retry it.
                found = UpsertResult(
                    "",
                    error=HubSpotError(
                        ErrorKind.RETRYABLE,
                        "HubSpot's answer did not account for this input",
                        ambiguous=True,
                    ),
                )
            found.email = write.email
            results.append(found)
        return results

    def batch_read(
        self,
        keys: Sequence[str],
        properties: Sequence[str],
        id_property: str | None = None,
        archived: bool = False,
        deadline: float | None = None,
    ) -> BatchReadOutcome:
        """Read contacts in one call (``batch/read``): by record id, or by ``id_property``
        (``email``, matched case-insensitively), at most 100 distinct keys; none makes no call.
        With ``archived`` HubSpot looks only among archived (deleted) contacts, without it only
        among live ones. Its answer holds a record for each key it found, in no promised order
        (a record id a merge retired answers with the record it became, whose id differs), and
        lists the keys it did not find among its ``errors`` (a 207, or a 200 in 2026-09); they are
        reported in ``missing`` as asked. Transient failures and ``deadline`` as in ``_call``."""
        by_email = id_property == "email"

        def fold(key: str) -> str:
            return key.strip().lower() if by_email else key

        _check_batch("batch read", [fold(key) for key in keys], "batch read keys must be distinct")
        if not keys:
            return BatchReadOutcome()
        # HubSpot's spec requires propertiesWithHistory (its official clients always send it);
        # empty asks for no history.
        body: dict[str, Any] = {
            "inputs": [{"id": key} for key in keys],
            "properties": list(properties),
            "propertiesWithHistory": [],
        }
        if id_property is not None:
            body["idProperty"] = id_property
        params = {"archived": "true" if archived else "false"}
        _status, document, _ambiguous = self._call(
            "POST", self.paths.batch_read, body, params=params, deadline=deadline
        )
        return _read_outcome(document, {fold(key): key for key in keys}, fold)

    # --- properties and groups -------------------------------------------------------------------

    def list_properties(self) -> list[dict[str, Any]]:
        _status, document = self.request("GET", self.paths.properties)
        return list((document or {}).get("results") or [])

    def create_properties(self, specs: Sequence[Mapping[str, Any]]) -> PropertyCreateOutcome:
        """Create many properties in one call; "already exists" counts as success and the
        account's custom-property limit raises PropertyLimitReached (a person must act)."""
        outcome = PropertyCreateOutcome()
        for start in range(0, len(specs), MAX_BATCH_INPUTS):
            chunk = [dict(spec) for spec in specs[start : start + MAX_BATCH_INPUTS]]
            _status, document = self.request("POST", self.paths.properties_batch_create, {"inputs": chunk})
            document = document if isinstance(document, dict) else {}
            outcome.created.extend(document.get("results") or [])
            for item in document.get("errors") or []:
                names = (item.get("context") or {}).get("name") or [""]
                error = classify(400, item)
                text = f"{error.message} {error.category} {error.sub_category}".lower()
                if "already exists" in text or error.category in ("OBJECT_ALREADY_EXISTS", "CONFLICT"):
                    outcome.existing.extend(names)
                elif "max_custom_properties" in text or "maximum number of custom properties" in text:
                    raise PropertyLimitReached(
                        error.message, category=error.category, sub_category=error.sub_category
                    )
                else:
                    error.kind = ErrorKind.PERMANENT
                    for name in names:
                        outcome.failed[name] = error
        return outcome

    def update_property(self, name: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        _status, document = self.request("PATCH", self.paths.property_path(name), dict(changes))
        return dict(document or {})

    def list_groups(self) -> list[dict[str, Any]]:
        _status, document = self.request("GET", self.paths.groups)
        return list((document or {}).get("results") or [])

    def ensure_group(self, name: str, label: str) -> None:
        try:
            self.request("POST", self.paths.groups, {"name": name, "label": label})
        except HubSpotError as error:
            if error.status == 409 or "already exists" in error.message.lower():
                return
            raise


@dataclass(frozen=True)
class _BatchWrite:
    """One input of a batch write: HubSpot's input without its trace id, the email its result is
    reported under, and the id HubSpot's ``errors`` may name it by (``context.ids``) instead of
    its trace id."""

    email: str
    body: dict[str, Any]
    named_by: str | None = None


def _check_batch(call: str, keys: Sequence[str], duplicates: str) -> None:
    if len(keys) > MAX_BATCH_INPUTS:
        raise ValueError(f"at most {MAX_BATCH_INPUTS} inputs per {call}, got {len(keys)}")
    if len(set(keys)) != len(keys):
        raise ValueError(duplicates)


def _read_outcome(document: Any, asked: Mapping[str, str], fold: Callable[[str], str]) -> BatchReadOutcome:
    """A batch read's answer as plain data; ``asked`` maps each folded key to the key as asked."""
    document = document if isinstance(document, dict) else {}
    outcome = BatchReadOutcome()
    for item in document.get("results") or []:
        if not isinstance(item, dict) or item.get("id") is None:
            continue
        values = item.get("properties") or {}
        outcome.records.append(
            ReadRecord(
                str(item["id"]),
                {str(name): None if value is None else str(value) for name, value in values.items()},
                archived=bool(item.get("archived")),
            )
        )
    for item in document.get("errors") or []:
        error = classify(400, item)
        error.kind = ErrorKind.PERMANENT
        for named in (item.get("context") or {}).get("ids") or []:
            key = asked.get(fold(str(named)))
            if key is None:
                continue
            if not error.not_found:
                outcome.failed[key] = error
            elif key not in outcome.missing:
                outcome.missing.append(key)
    return outcome


__all__ = [
    "BatchReadOutcome",
    "CallStats",
    "DailyLimitReached",
    "HubSpotClient",
    "HubSpotError",
    "PropertyCreateOutcome",
    "PropertyLimitReached",
    "ReadRecord",
    "RetryPolicy",
    "UpdateInput",
    "UpsertInput",
    "UpsertResult",
    "new_session",
]
