"""HubSpot credentials from Secrets Manager: a static token (private app / service key) or OAuth.

Nothing here ever puts a token, client secret or refresh token into a log line, an exception
message or a repr.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import requests

from ..secret_store import SecretFetcher
from .errors import ErrorKind, HubSpotError, parse_body

#: Refresh this long before HubSpot's expiry (tokens live 30 minutes).
EXPIRY_MARGIN_SECONDS = 120


class CredentialError(HubSpotError):
    """The credential secret or HubSpot's answer to it needs a person's attention."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(ErrorKind.CONFIGURATION, message, **kwargs)


class Credentials(Protocol):
    def access_token(self) -> str:
        """A bearer token to use now."""
        ...

    def invalidate(self) -> None:
        """HubSpot answered 401: re-read the secret (rotation) and get a fresh token next time."""
        ...


def _secret_document(raw: Any) -> Mapping[str, Any]:
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise CredentialError("the HubSpot credential secret is not JSON") from None
    if not isinstance(raw, Mapping):
        raise CredentialError("the HubSpot credential secret must be a JSON object")
    return raw


class StaticTokenCredentials:
    """``{"accessToken": "pat-..."}``: a legacy private app token or a service key."""

    def __init__(self, fetch_secret: SecretFetcher) -> None:
        self._fetch = fetch_secret
        self._force_next = False

    def access_token(self) -> str:
        document = _secret_document(self._fetch(self._force_next))
        self._force_next = False
        token = document.get("accessToken")
        if not isinstance(token, str) or not token:
            raise CredentialError("the HubSpot credential secret has no accessToken")
        return token

    def invalidate(self) -> None:
        self._force_next = True

    def __repr__(self) -> str:
        return "StaticTokenCredentials(<hidden>)"


class OAuthCredentials:
    """``{"clientId", "clientSecret", "refreshToken"}``: access tokens from HubSpot's token endpoint,
    cached until shortly before they expire."""

    def __init__(
        self,
        fetch_secret: SecretFetcher,
        token_url: str,
        session: requests.Session,
        timeout: tuple[float, float] = (3.05, 10),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch_secret
        self._token_url = token_url
        self._session = session
        self._timeout = timeout
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._force_secret = False
        self._lock = threading.Lock()
        #: the account (``hub_id``) and scopes HubSpot's token answer names (both optional in it)
        self._portal_id: int | None = None
        self._scopes: frozenset[str] | None = None

    def access_token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at - EXPIRY_MARGIN_SECONDS:
                self._refresh()
            assert self._token is not None
            return self._token

    def grant(self) -> tuple[int | None, frozenset[str] | None]:
        """The account (``hub_id``) and scopes of the current token, as HubSpot's token endpoint
        named them (None: it did not); refreshes the token when it must."""
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at - EXPIRY_MARGIN_SECONDS:
                self._refresh()
            return self._portal_id, self._scopes

    def invalidate(self) -> None:
        with self._lock:
            self._token = None
            self._force_secret = True

    def _refresh(self) -> None:
        document = _secret_document(self._fetch(self._force_secret))
        self._force_secret = False
        missing = [key for key in ("clientId", "clientSecret", "refreshToken") if not document.get(key)]
        if missing:
            raise CredentialError(f"the HubSpot OAuth secret lacks {', '.join(missing)}")
        try:
            response = self._session.post(
                self._token_url,
                data={
                    "grant_type": "refresh_token",
                    "client_id": document["clientId"],
                    "client_secret": document["clientSecret"],
                    "refresh_token": document["refreshToken"],
                },
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise HubSpotError(
                ErrorKind.RETRYABLE, f"token endpoint unreachable: {type(exc).__name__}"
            ) from None
        body = parse_body(response.text)
        if response.status_code >= 500 or response.status_code == 429:
            raise HubSpotError(
                ErrorKind.RETRYABLE,
                f"token endpoint answered {response.status_code}",
                status=response.status_code,
            )
        if response.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
            status = body.get("status") if isinstance(body, dict) else None
            error = body.get("error") if isinstance(body, dict) else None
            if status == "BAD_REFRESH_TOKEN" or error == "invalid_grant":
                reason = "HubSpot refused the refresh token (BAD_REFRESH_TOKEN): re-authorize the app"
            elif status == "BAD_CLIENT_ID" or error == "invalid_client":
                reason = "HubSpot refused the OAuth client id or secret: check the credential secret"
            else:
                detail = status or error or "no detail"
                reason = f"HubSpot's token endpoint answered {response.status_code} ({detail})"
            raise CredentialError(reason, status=response.status_code, category=str(status or error or ""))
        self._token = str(body["access_token"])
        self._expires_at = self._clock() + float(body.get("expires_in", 1800))
        hub_id = str(body.get("hub_id"))
        self._portal_id = int(hub_id) if hub_id.isdigit() else None
        scopes = body.get("scopes")
        self._scopes = frozenset(str(scope) for scope in scopes) if isinstance(scopes, list) else None

    def __repr__(self) -> str:
        return "OAuthCredentials(<hidden>)"


def credentials_from_secret(
    fetch_secret: SecretFetcher, token_url: str, session: requests.Session
) -> StaticTokenCredentials | OAuthCredentials:
    """Pick the credential kind from the secret's keys."""
    document = _secret_document(fetch_secret(False))
    if document.get("accessToken"):
        return StaticTokenCredentials(fetch_secret)
    if document.get("refreshToken"):
        return OAuthCredentials(fetch_secret, token_url, session)
    raise CredentialError(
        'the HubSpot credential secret needs "accessToken", or "clientId", "clientSecret" and "refreshToken"'
    )


class RotatingCredentials:
    """The credential kind the secret holds now: an operator may move the secret from a private-app
    token to OAuth (or back) while consumers run. After HubSpot's 401 the secret is read again and,
    when its kind changed, the matching credentials replace the old ones."""

    def __init__(self, fetch_secret: SecretFetcher, token_url: str, session: requests.Session) -> None:
        self._fetch = fetch_secret
        self._token_url = token_url
        self._session = session
        self._current: StaticTokenCredentials | OAuthCredentials | None = None
        self._lock = threading.Lock()

    def access_token(self) -> str:
        with self._lock:
            if self._current is None:
                self._current = credentials_from_secret(self._fetch, self._token_url, self._session)
            current = self._current
        try:
            return current.access_token()
        except CredentialError:
            # The cached secret may have changed kind under us (its max age passed): pick again.
            with self._lock:
                self._current = credentials_from_secret(self._fetch, self._token_url, self._session)
                current = self._current
            return current.access_token()

    def current(self) -> StaticTokenCredentials | OAuthCredentials:
        """The credentials of the kind the secret holds (read from the secret when not yet known)."""
        with self._lock:
            if self._current is None:
                self._current = credentials_from_secret(self._fetch, self._token_url, self._session)
            return self._current

    def invalidate(self) -> None:
        with self._lock:
            if self._current is not None:
                self._current.invalidate()
            kind = type(self._current)
            document = _secret_document(self._fetch(True))
            fresh_kind = StaticTokenCredentials if document.get("accessToken") else OAuthCredentials
            if kind is not fresh_kind:
                self._current = None  # rebuilt from the rotated secret on the next call

    def __repr__(self) -> str:
        return "RotatingCredentials(<hidden>)"
