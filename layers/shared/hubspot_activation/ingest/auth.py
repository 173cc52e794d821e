"""Caller authentication for the ingest API: Bearer, Basic or x-api-key against the ingest secret."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..secret_store import SecretFetcher


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
    return hashlib.sha256(value.encode("utf-8")).digest()


class IngestAuthenticator:
    """Constant-time comparison; a mismatch re-reads the secret at most once per ``refresh_interval``
    so a rotated token works at once without letting bad callers hammer Secrets Manager."""

    def __init__(
        self,
        fetch_secret: SecretFetcher,
        refresh_interval_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch_secret
        self._refresh_interval = refresh_interval_seconds
        self._clock = clock
        self._last_forced: float | None = None

    def authenticate(self, headers: Mapping[str, str]) -> None:
        presented = presented_credentials(headers)
        if not presented:
            raise Unauthorized("missing credentials: send Authorization: Bearer <token>, Basic, or x-api-key")
        if self._matches(presented, accepted_tokens(self._fetch(False))):
            return
        now = self._clock()
        if self._last_forced is None or now - self._last_forced >= self._refresh_interval:
            self._last_forced = now
            if self._matches(presented, accepted_tokens(self._fetch(True))):
                return
        raise Unauthorized("invalid credentials")

    @staticmethod
    def _matches(presented: list[str], accepted: list[str]) -> bool:
        matched = False
        for candidate in presented:
            for token in accepted:
                matched |= hmac.compare_digest(_digest(candidate), _digest(token))
        return matched
