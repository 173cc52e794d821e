"""HubSpot's webhooks journal (2026-03), the calls the journal poller needs: the contact
subscriptions, the journal's offsets and its entries read by offset, and the entries' files.

An OAuth app's journal holds the events of its subscriptions for 3 days; every entry is
``{currentOffset, expiresAt, url}``, the URL a short-lived link to a JSON file of the entry's
events (no bearer token: it is pre-signed). Each call here goes through a ``HubSpotClient``, so
credentials, the 401 refresh and the retries are the connector's own; HubSpot exempts these calls
from the 10-second and daily limits, so the client given should have a governor of its own
(``journal_client``), which keeps them out of the connector's window and daily budget while its
``requests_sent`` counts them.

Only OAuth apps can read the journal (``journal_enabled``): a private-app token or a service key
gets no journal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests

from .client import HubSpotClient
from .credentials import (
    CredentialError,
    Credentials,
    OAuthCredentials,
    RotatingCredentials,
    StaticTokenCredentials,
)
from .errors import ErrorKind, HubSpotError
from .governor import GovernorSettings, RateGovernor

JOURNAL = "/webhooks-journal/journal/2026-03"
SUBSCRIPTIONS = "/webhooks-journal/subscriptions/2026-03"
CONTACT_TYPE = "0-1"
#: the OBJECT subscription's actions the poller needs (a privacy deletion has its own subscription)
CONTACT_ACTIONS = ("UPDATE", "DELETE", "MERGE", "RESTORE")
GDPR_ACTIONS = ("GDPR_DELETE",)
#: the scopes reading the journal and managing its subscriptions take
JOURNAL_SCOPES = frozenset({"webhooks-journal-data-access", "webhooks-journal-subscription-management"})
#: the most entries one batch read returns (HubSpot's spec gives no maximum; the poller's unit)
MAX_BATCH = 100
FILE_TIMEOUT: tuple[float, float] = (3.05, 10)


class JournalUnavailable(HubSpotError):
    """The journal cannot be read with this credential (not an OAuth app, scopes missing, no
    account known): a person must act; polling cannot help."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(ErrorKind.CONFIGURATION, message, **kwargs)


class OffsetExpired(HubSpotError):
    """HubSpot no longer holds the offset (older than the journal keeps, or unknown): events after
    it may be lost; read again from the earliest offset and walk every contact."""

    def __init__(self, offset: str, **kwargs: Any) -> None:
        super().__init__(ErrorKind.PERMANENT, f"the journal no longer holds offset {offset}", **kwargs)
        self.offset = offset


class FileExpired(HubSpotError):
    """An entry's file link passed its ``expiresAt`` (403): read the entry again for a fresh link."""

    def __init__(self, offset: str, **kwargs: Any) -> None:
        super().__init__(ErrorKind.RETRYABLE, f"the file link of journal entry {offset} expired", **kwargs)
        self.offset = offset


@dataclass(frozen=True)
class JournalAccess:
    """Whether this credential can read the journal, and why not. True when it can."""

    enabled: bool
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.enabled


def journal_enabled(credentials: Credentials) -> JournalAccess:
    """Only an OAuth app has a webhooks journal; the kind is the secret's (see ``credentials``)."""
    current: Credentials = credentials
    if isinstance(credentials, RotatingCredentials):
        try:
            current = credentials.current()
        except CredentialError as error:
            return JournalAccess(False, f"the HubSpot credential is unusable: {error.message}")
    if isinstance(current, OAuthCredentials):
        return JournalAccess(True)
    if isinstance(current, StaticTokenCredentials):
        return JournalAccess(
            False,
            "the HubSpot credential is a private-app token or a service key; the webhooks journal "
            "is read by an OAuth app only",
        )
    return JournalAccess(False, f"the HubSpot credential kind {type(current).__name__} has no journal")


def exempt_governor() -> RateGovernor:
    """A governor for calls HubSpot exempts from its limits: no window of its own to fill and no
    daily count; it still follows a 429 (HubSpot's answer wins over its spec)."""
    return RateGovernor(GovernorSettings(limit_per_window=1_000_000, share=1.0, daily_reserve=0))


def journal_client(client: HubSpotClient) -> HubSpotClient:
    """``client``'s credentials and transport through ``exempt_governor``: journal calls neither
    wait for nor use up the connector's 10-second window and daily budget, and are counted apart."""
    return client.with_governor(exempt_governor())


@dataclass(frozen=True)
class JournalEntry:
    """One entry of the journal: its offset and the link to its events' file."""

    offset: str
    url: str
    expires_at: str

    @staticmethod
    def from_json(document: Any) -> JournalEntry:
        if not isinstance(document, dict) or not document.get("currentOffset") or not document.get("url"):
            raise HubSpotError(ErrorKind.RETRYABLE, "the journal answered an entry without offset or url")
        return JournalEntry(
            str(document["currentOffset"]), str(document["url"]), str(document.get("expiresAt") or "")
        )


class WebhooksJournal:
    """The journal's calls. ``client`` should be a ``journal_client`` (its own governor);
    ``files`` fetches the entries' pre-signed links (never with the bearer token)."""

    def __init__(
        self,
        client: HubSpotClient,
        files: requests.Session | None = None,
        file_timeout: tuple[float, float] = FILE_TIMEOUT,
    ) -> None:
        self.client = client
        self._files = files or requests.Session()
        self._file_timeout = file_timeout
        #: the entries' files fetched (links to storage, not HubSpot API calls)
        self.files_read = 0

    @property
    def calls(self) -> int:
        """HubSpot API calls made so far, every retry included."""
        return self.client.requests_sent

    # --- the account -------------------------------------------------------------------------------

    def portal_id(self) -> int:
        """The account the OAuth token is for (``hub_id`` of HubSpot's token answer); raises
        ``JournalUnavailable`` when the credential is no OAuth app, the answer named no account,
        or it lacks the journal's scopes."""
        credentials: Credentials = self.client.credentials
        if isinstance(credentials, RotatingCredentials):
            credentials = credentials.current()
        if not isinstance(credentials, OAuthCredentials):
            raise JournalUnavailable(journal_enabled(credentials).reason or "no OAuth app")
        portal, scopes = credentials.grant()
        if scopes is not None and not scopes >= JOURNAL_SCOPES:
            missing = ", ".join(sorted(JOURNAL_SCOPES - scopes))
            raise JournalUnavailable(f"the OAuth app lacks the scopes {missing}")
        if portal is None:
            raise JournalUnavailable("HubSpot's token answer names no account (hub_id)")
        return portal

    # --- subscriptions -----------------------------------------------------------------------------

    def subscriptions(self) -> list[dict[str, Any]]:
        _status, document = self._request("GET", SUBSCRIPTIONS)
        return [s for s in (document or {}).get("results") or [] if isinstance(s, dict)]

    def subscribe_contacts(self, portal_id: int, properties: Sequence[str]) -> dict[str, Any]:
        """The contact OBJECT subscription: deletions, merges, restores, and changes of
        ``properties`` (HubSpot keeps one per object type: this creates or updates it)."""
        body = {
            "subscriptionType": "OBJECT",
            "objectTypeId": CONTACT_TYPE,
            "portalId": portal_id,
            "actions": list(CONTACT_ACTIONS),
            "properties": sorted(set(properties)),
            "objectIds": [],
        }
        _status, document = self._request("POST", SUBSCRIPTIONS, body)
        return dict(document or {})

    def subscribe_privacy_deletions(self, portal_id: int) -> dict[str, Any]:
        body = {
            "subscriptionType": "GDPR_PRIVACY_DELETION",
            "objectTypeId": CONTACT_TYPE,
            "portalId": portal_id,
            "actions": list(GDPR_ACTIONS),
        }
        _status, document = self._request("POST", SUBSCRIPTIONS, body)
        return dict(document or {})

    # --- offsets and entries -----------------------------------------------------------------------

    def earliest(self) -> JournalEntry | None:
        """The oldest entry the journal holds (None: it holds none)."""
        return self._one("GET", f"{JOURNAL}/earliest", None)

    def latest(self) -> JournalEntry | None:
        """The newest entry (None: the journal holds none)."""
        return self._one("GET", f"{JOURNAL}/latest", None)

    def next_after(self, offset: str) -> JournalEntry | None:
        """The entry after ``offset`` (None: none yet); ``OffsetExpired`` when it is not held."""
        return self._one("GET", f"{JOURNAL}/offset/{offset}/next", offset)

    def batch_after(self, offset: str | None, count: int = MAX_BATCH) -> list[JournalEntry]:
        """Up to ``count`` entries after ``offset`` (None: from the earliest), oldest first;
        ``OffsetExpired`` when the offset is not held."""
        if not 1 <= count <= MAX_BATCH:
            raise ValueError(f"count must be 1 to {MAX_BATCH}, not {count}")
        path = (
            f"{JOURNAL}/batch/earliest/{count}"
            if offset is None
            else f"{JOURNAL}/batch/{offset}/next/{count}"
        )
        _status, document = self._request("GET", path, offset=offset)
        results = (document or {}).get("results") if isinstance(document, dict) else None
        return [JournalEntry.from_json(entry) for entry in results or []]

    def events(self, entry: JournalEntry) -> list[dict[str, Any]]:
        """The events of an entry's file; ``FileExpired`` when its link has expired."""
        self.files_read += 1
        try:
            response = self._files.get(entry.url, timeout=self._file_timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise HubSpotError(ErrorKind.RETRYABLE, f"{type(exc).__name__} reading a journal file") from None
        if response.status_code == 403:
            raise FileExpired(entry.offset, status=403)
        if response.status_code != 200:
            raise HubSpotError(
                ErrorKind.RETRYABLE,
                f"a journal file answered {response.status_code}",
                status=response.status_code,
            )
        try:
            document = response.json()
        except ValueError:
            raise HubSpotError(ErrorKind.RETRYABLE, "a journal file is not JSON") from None
        items = document if isinstance(document, list) else [document]
        return [event for event in items if isinstance(event, dict)]

    def _one(self, method: str, path: str, offset: str | None) -> JournalEntry | None:
        status, document = self._request(method, path, offset=offset)
        if status == 204 or not document:
            return None
        return JournalEntry.from_json(document)

    def _request(
        self, method: str, path: str, body: Any = None, offset: str | None = None
    ) -> tuple[int, Any]:
        try:
            return self.client.request(method, path, body)
        except HubSpotError as error:
            if error.status == 400 and offset is not None:
                raise OffsetExpired(offset, status=400, category=error.category, body=error.body) from None
            if error.status == 403:
                raise JournalUnavailable(
                    f"HubSpot refused the journal: {error.message}", status=403, category=error.category
                ) from None
            raise
