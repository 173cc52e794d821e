"""A HubSpot sandbox on loopback with a fast (1 s) rate window, and consumers wired to it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from hubspot_activation.hubspot.client import HubSpotClient, RetryPolicy, new_session
from hubspot_activation.hubspot.credentials import Credentials, OAuthCredentials, StaticTokenCredentials
from hubspot_activation.hubspot.governor import GovernorSettings, RateGovernor
from hubspot_activation.hubspot.versions import ApiVersion, Paths
from hubspot_activation.upsert.ledger import Ledger
from hubspot_activation.upsert.schema import PropertySchema
from hubspot_activation.upsert.service import SyncService, VisibilityExtender

from local.hubspot_sandbox import SandboxConfig, SandboxServer, SandboxState
from tests.faults.workload import PREFIX, CachedSecret

#: Short waits everywhere: the queue's redelivery is the long backoff, and it is short here too.
FAST_RETRY = RetryPolicy(
    max_attempts=4, max_wait_seconds=5, base_backoff_seconds=0.02, locked_wait_seconds=0.05
)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer(SandboxState(config=SandboxConfig(window_ms=1000))).start()
    yield server
    server.stop()


@dataclass
class Consumer:
    """What one upsert function instance holds: its client (own governor and credentials), its
    schema cache and its service."""

    name: str
    client: HubSpotClient
    service: SyncService
    secret: CachedSecret


def build_consumer(
    sandbox: SandboxServer,
    ledger: Ledger,
    *,
    name: str = "consumer",
    oauth: bool = False,
    version: ApiVersion = ApiVersion.V3,
    extender: VisibilityExtender | None = None,
    retry_base_seconds: int = 1,
    timeout: tuple[float, float] = (1.0, 2.0),
    wall_clock: Callable[[], float] = time.time,
    retry: RetryPolicy = FAST_RETRY,
) -> Consumer:
    state = sandbox.state
    session = new_session()
    credentials: Credentials
    if oauth:
        client_id, client_secret, refresh = state.add_oauth_app()
        secret = CachedSecret({"clientId": client_id, "clientSecret": client_secret, "refreshToken": refresh})
        credentials = OAuthCredentials(secret, sandbox.url + Paths(version).oauth_token, session)
    else:
        secret = CachedSecret({"accessToken": state.add_private_app_token()})
        credentials = StaticTokenCredentials(secret)
    governor = RateGovernor(
        GovernorSettings(
            limit_per_window=state.config.ten_second_limit,
            window_seconds=state.config.window_ms / 1000,
            share=0.9,
            daily_reserve=0,
        ),
        wall_clock=wall_clock,
    )
    client = HubSpotClient(
        credentials,
        governor,
        version,
        base_url=sandbox.url,
        session=session,
        timeout=timeout,
        retry=retry,
    )
    schema = PropertySchema(client, "audience_activations", "Audience activations", PREFIX)
    service = SyncService(client, schema, ledger, extender, retry_base_seconds=retry_base_seconds)
    return Consumer(name, client, service, secret)
