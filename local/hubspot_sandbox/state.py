"""The sandbox's in-memory account: contacts, property schema, tokens, limits and faults."""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ALL_SCOPES = frozenset(
    {
        "crm.objects.contacts.read",
        "crm.objects.contacts.write",
        "crm.schemas.contacts.read",
        "crm.schemas.contacts.write",
        "oauth",
    }
)
PORTAL_ID = 24_681_357
#: Counted calls kept per token for ``busiest_window`` (a long-running sandbox forgets older ones).
CALL_LOG_SIZE = 100_000
#: HubSpot's documented limits per tier (per app per 10 s, per account per day), 2026.
TIERS = {
    "free": (100, 250_000),
    "starter": (100, 250_000),
    "professional": (190, 625_000),
    "enterprise": (190, 1_000_000),
    "api-limit-increase": (250, 1_250_000),
    "marketplace-oauth": (110, 250_000),
}


@dataclass
class SandboxConfig:
    """Tier limits (Free/Starter by default) and fault injection; all changeable at run time."""

    ten_second_limit: int = 100
    window_ms: int = 10_000
    daily_limit: int = 250_000
    custom_property_limit: int = 1_000
    oauth_token_ttl_seconds: int = 1_800
    error_rate: float = 0.0  # share of API calls answered with error_status
    error_status: int = 502
    #: share of write calls (POST/PATCH/PUT) that are applied and then answered error_status: what a
    #: client sees when HubSpot's gateway fails after the write went through
    applied_error_rate: float = 0.0
    locked_rate: float = 0.0  # share answered 423 Locked
    latency_ms: int = 0
    drop_rate: float = 0.0  # share of connections closed without an answer
    force_429: int = 0  # the next N API calls get a TEN_SECONDLY_ROLLING 429
    #: False mimics endpoints that ignore objectWriteTraceId: one bad input fails the whole request.
    per_input_errors: bool = True
    omit_results: int = 0  # leave this many results out of the next batch answer
    seed: int = 7

    def update(self, changes: dict[str, Any]) -> None:
        """Change settings; ``{"tier": "professional"}`` sets that tier's documented limits."""
        changes = dict(changes)
        if "tier" in changes:
            tier = str(changes.pop("tier"))
            if tier not in TIERS:
                raise KeyError(f"tier {tier!r} (one of {', '.join(TIERS)})")
            self.ten_second_limit, self.daily_limit = TIERS[tier]
        for key, value in changes.items():
            if not hasattr(self, key):
                raise KeyError(key)
            current = getattr(self, key)
            setattr(
                self,
                key,
                value if isinstance(current, bool) and isinstance(value, bool) else type(current)(value),
            )


@dataclass
class Token:
    value: str
    scopes: frozenset[str]
    oauth: bool = False
    expires_at: float | None = None


def _default_properties() -> dict[str, dict[str, Any]]:
    def prop(
        name: str, label: str, kind: str = "string", field_type: str = "text", **extra: Any
    ) -> dict[str, Any]:
        return {
            "name": name,
            "label": label,
            "type": kind,
            "fieldType": field_type,
            "groupName": "contactinformation",
            "description": "",
            "displayOrder": -1,
            "hidden": False,
            "formField": True,
            "hubspotDefined": True,
            "options": extra.pop("options", []),
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": name == "email",
            "archived": False,
            "createdAt": "2019-08-06T02:41:08.029Z",
            "updatedAt": "2019-08-06T02:41:08.029Z",
            "modificationMetadata": {
                "archivable": False,
                "readOnlyDefinition": True,
                "readOnlyValue": extra.pop("read_only", False),
            },
            **extra,
        }

    stages = [
        {"label": s.title(), "value": s, "displayOrder": i, "hidden": False}
        for i, s in enumerate(["subscriber", "lead", "customer"])
    ]
    props = [
        prop("email", "Email"),
        prop("firstname", "First Name"),
        prop("lastname", "Last Name"),
        prop("address", "Street Address"),
        prop("city", "City"),
        prop("country", "Country/Region"),
        prop("phone", "Phone Number", field_type="phonenumber"),
        prop("company", "Company Name"),
        prop("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", options=stages),
        prop("hs_object_id", "Record ID", "number", "number", read_only=True),
        prop("createdate", "Create Date", "datetime", "date", read_only=True),
        prop("lastmodifieddate", "Last Modified Date", "datetime", "date", read_only=True),
    ]
    return {p["name"]: p for p in props}


@dataclass
class SandboxState:
    config: SandboxConfig = field(default_factory=SandboxConfig)
    clock: Callable[[], float] = time.time
    lock: threading.RLock = field(default_factory=threading.RLock)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    email_index: dict[str, str] = field(default_factory=dict)
    properties: dict[str, dict[str, Any]] = field(default_factory=_default_properties)
    groups: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "contactinformation": {
                "name": "contactinformation",
                "label": "Contact information",
                "displayOrder": 0,
                "archived": False,
            }
        }
    )
    tokens: dict[str, Token] = field(default_factory=dict)
    oauth_clients: dict[str, str] = field(default_factory=dict)  # client id -> secret
    refresh_tokens: dict[str, tuple[str, frozenset[str]]] = field(
        default_factory=dict
    )  # token -> (client, scopes)
    windows: dict[str, deque[float]] = field(default_factory=dict)
    #: when the 10-second limit counted each call, per token (the latest CALL_LOG_SIZE): what a
    #: client's pacing is judged by, since HubSpot counts a call on arrival, not when it is answered
    counted: dict[str, deque[float]] = field(default_factory=dict)
    daily_used: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)
    #: injected faults by kind (error, applied_error, locked, drop, latency) and refused tokens (auth)
    faults: Counter[str] = field(default_factory=Counter)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))

    def next_id(self) -> str:
        return str(next(self._ids))

    def add_private_app_token(self, scopes: frozenset[str] = ALL_SCOPES, value: str | None = None) -> str:
        token = value or f"pat-na1-{secrets.token_hex(4)}-{secrets.token_hex(2)}-sandbox"
        self.tokens[token] = Token(token, scopes)
        return token

    def revoke_token(self, token: str) -> bool:
        """Revoke an access token (a rotated private-app token): calls with it answer 401 from now
        on. True when the token existed."""
        with self.lock:
            return self.tokens.pop(token, None) is not None

    def add_oauth_app(self, scopes: frozenset[str] = ALL_SCOPES) -> tuple[str, str, str]:
        client_id, client_secret = secrets.token_hex(8), secrets.token_hex(16)
        refresh = f"na1-{secrets.token_hex(12)}"
        self.oauth_clients[client_id] = client_secret
        self.refresh_tokens[refresh] = (client_id, scopes)
        return client_id, client_secret, refresh

    def issue_access_token(self, scopes: frozenset[str]) -> Token:
        token = Token(
            f"sandbox-oauth-{secrets.token_hex(16)}",
            scopes,
            oauth=True,
            expires_at=self.clock() + self.config.oauth_token_ttl_seconds,
        )
        self.tokens[token.value] = token
        return token

    def busiest_window(self, token: str, since: float = float("-inf")) -> int:
        """The most calls of ``token`` counted since ``since`` in any window of the 10-second
        limit (which the limit would refuse past ``ten_second_limit``)."""
        with self.lock:
            times = [t for t in self.counted.get(token, ()) if t >= since]
        width = self.config.window_ms / 1000
        start = most = 0
        for end, moment in enumerate(times):
            while times[start] <= moment - width:
                start += 1
            most = max(most, end - start + 1)
        return most

    def custom_property_count(self) -> int:
        return sum(1 for p in self.properties.values() if not p.get("hubspotDefined"))

    def take_rate_limit(self, token: str) -> tuple[str | None, int, int]:
        """Count one call; returns (429 policy or None, remaining in window, daily remaining)."""
        now = self.clock()
        window = self.windows.setdefault(token, deque())
        horizon = now - self.config.window_ms / 1000
        while window and window[0] <= horizon:
            window.popleft()
        if self.config.force_429 > 0:
            self.config.force_429 -= 1
            return "TEN_SECONDLY_ROLLING", 0, self.config.daily_limit - self.daily_used
        if self.daily_used >= self.config.daily_limit:
            return "DAILY", max(0, self.config.ten_second_limit - len(window)), 0
        if len(window) >= self.config.ten_second_limit:
            return "TEN_SECONDLY_ROLLING", 0, self.config.daily_limit - self.daily_used
        window.append(now)
        self.counted.setdefault(token, deque(maxlen=CALL_LOG_SIZE)).append(now)
        self.daily_used += 1
        return None, self.config.ten_second_limit - len(window), self.config.daily_limit - self.daily_used
