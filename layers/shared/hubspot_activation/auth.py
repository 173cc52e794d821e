"""Caller authentication for every route (ingest and operations): Bearer, Basic or x-api-key against
the ingest token secret. Neutral ground: the ingest and operations packages both use it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from .secret_store import SecretFetcher


class Unauthorized(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def presented_credentials(headers: Mapping[str, str]) -> list[str]:
    """Every token the request presents. With Basic, the password is the token (the user name is
    free, since AEP's form asks for one)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    found: list[str] = []
    authorization = lowered.get("authorization", "").strip()
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        found.append(value.strip())
    elif scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        _user, sep, password = decoded.partition(":")
        if sep and password:
            found.append(password)
    api_key = lowered.get("x-api-key", "").strip()
    if api_key:
        found.append(api_key)
    return found


def accepted_tokens(secret: Any) -> list[str]:
    """The secret is ``{"token": ..., "previousToken": ...}`` (the previous one eases rotation) or a
    plain string."""
    if isinstance(secret, str):
        try:
            secret = json.loads(secret)
        except json.JSONDecodeError:
            return [secret] if secret else []
    if isinstance(secret, str):
        return [secret] if secret else []
    if not isinstance(secret, Mapping):
        return []
    return [str(secret[key]) for key in ("token", "previousToken") if secret.get(key)]


def _digest(value: str) -> bytes:
    # Comparing fixed-length digests keeps compare_digest constant-time whatever the lengths.
    # surrogatepass: a header may carry any code point; it must be refused, not crash.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


class IngestAuthenticator:
    """Constant-time comparison against the cached secret; a refused credential may force a fresh
    read of the secret, so a rotated token works at once, under two budgets that keep bad callers
    from either hammering Secrets Manager or using up the reads a rotation needs:

    - at most one forced read per ``min_read_interval_seconds`` (5 s) per container, whoever asks:
      a token just put in the secret works within 5 s whatever other callers send;
    - a credential refused by a fresh read forces no other read for ``refused_retry_seconds``
      (60 s): a caller repeating a wrong token costs one read a minute, and a token refused
      *before* the operator put it in the secret works within 60 s.

    The secret is otherwise cached for ``SECRET_MAX_AGE_SECONDS``, which is how long a token
    removed from the secret keeps working at most. Refused credentials are remembered only as
    digests, ``max_remembered`` of them.
    """

    def __init__(
        self,
        fetch_secret: SecretFetcher,
        min_read_interval_seconds: float = 5.0,
        refused_retry_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_remembered: int = 1024,
    ) -> None:
        self._fetch = fetch_secret
        self._min_interval = min_read_interval_seconds
        self._refused_retry = refused_retry_seconds
        self._clock = clock
        self._max_remembered = max_remembered
        self._last_forced: float | None = None
        #: digest of a refused credential -> when the fresh read that refused it was made
        self._refused: OrderedDict[bytes, float] = OrderedDict()

    def authenticate(self, headers: Mapping[str, str]) -> None:
        presented = presented_credentials(headers)
        if not presented:
            raise Unauthorized("missing credentials: send Authorization: Bearer <token>, Basic, or x-api-key")
        if self._matches(presented, accepted_tokens(self._fetch(False))):
            return
        key = _digest("\n".join(presented))
        now = self._clock()
        if self._may_force_read(key, now):
            self._last_forced = now
            if self._matches(presented, accepted_tokens(self._fetch(True))):
                self._refused.pop(key, None)
                return
            self._remember_refused(key, now)
        raise Unauthorized("invalid credentials")

    def _may_force_read(self, key: bytes, now: float) -> bool:
        if self._last_forced is not None and now - self._last_forced < self._min_interval:
            return False
        refused_at = self._refused.get(key)
        return refused_at is None or now - refused_at >= self._refused_retry

    def _remember_refused(self, key: bytes, now: float) -> None:
        self._refused[key] = now
        self._refused.move_to_end(key)
        while len(self._refused) > self._max_remembered:
            self._refused.popitem(last=False)

    @staticmethod
    def _matches(presented: list[str], accepted: list[str]) -> bool:
        matched = False
        for candidate in presented:
            for token in accepted:
                matched |= hmac.compare_digest(_digest(candidate), _digest(token))
        return matched
