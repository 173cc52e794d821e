"""A HubSpot sandbox on a loopback port, and clients pointed at it for every API version."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hubspot_activation.hubspot.client import HubSpotClient, RetryPolicy, new_session
from hubspot_activation.hubspot.credentials import StaticTokenCredentials
from hubspot_activation.hubspot.governor import GovernorSettings, RateGovernor
from hubspot_activation.hubspot.versions import ApiVersion

from local.hubspot_sandbox import SandboxConfig, SandboxServer, SandboxState

VERSIONS = [ApiVersion.V3, ApiVersion.V2026_03, ApiVersion.V2026_09]
FAST_RETRY = RetryPolicy(
    max_attempts=4, max_wait_seconds=5, base_backoff_seconds=0.01, locked_wait_seconds=0.05
)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer(SandboxState(config=SandboxConfig(window_ms=1000))).start()
    yield server
    server.stop()


class TokenSecret:
    """Stands in for Secrets Manager: counts forced reads, can rotate."""

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = value
        self.forced_reads = 0

    def __call__(self, force: bool) -> dict[str, Any]:
        self.forced_reads += force
        return dict(self.value)


def governor_for(sandbox: SandboxServer, **overrides: Any) -> RateGovernor:
    config = sandbox.state.config
    settings = {
        "limit_per_window": config.ten_second_limit,
        "window_seconds": config.window_ms / 1000,
        "share": 0.9,
        "daily_reserve": 0,
        **overrides,
    }
    return RateGovernor(GovernorSettings(**settings))


@pytest.fixture(params=VERSIONS, ids=[v.value for v in VERSIONS])
def api_version(request: pytest.FixtureRequest) -> ApiVersion:
    """Every test that builds a client runs once per supported HubSpot API version."""
    version: ApiVersion = request.param
    return version


@pytest.fixture
def make_client(sandbox: SandboxServer, api_version: ApiVersion) -> Callable[..., HubSpotClient]:
    def build(
        version: ApiVersion = api_version,
        token: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        **governor: Any,
    ) -> HubSpotClient:
        secret = TokenSecret({"accessToken": token or sandbox.state.add_private_app_token()})
        return HubSpotClient(
            StaticTokenCredentials(secret),
            governor_for(sandbox, **governor),
            version,
            base_url=sandbox.url,
            session=new_session(),
            timeout=(1, 2),
            retry=FAST_RETRY,
            clock=clock,
        )

    return build


@pytest.fixture
def client(make_client: Callable[..., HubSpotClient]) -> HubSpotClient:
    built: HubSpotClient = make_client()
    return built
