"""Eight consumers, each with its own governor (as eight Lambda instances would) that alone could use
the whole share, divide one app's 10-second limit through HubSpot's Remaining header: the sandbox
must never answer 429."""

from __future__ import annotations

import threading
import time

from hubspot_activation.hubspot.client import HubSpotClient, UpsertInput, new_session
from hubspot_activation.hubspot.credentials import StaticTokenCredentials
from hubspot_activation.hubspot.governor import GovernorSettings, RateGovernor
from hubspot_activation.hubspot.versions import ApiVersion

from local.hubspot_sandbox import SandboxServer
from tests.hubspot.conftest import FAST_RETRY, TokenSecret

CONSUMERS = 8


def test_eight_concurrent_consumers_draw_no_429(sandbox: SandboxServer) -> None:
    config = sandbox.state.config  # 100 requests per 1 s window (a fast stand-in for 10 s)
    token = sandbox.state.add_private_app_token()
    settings = GovernorSettings(
        limit_per_window=config.ten_second_limit,
        window_seconds=config.window_ms / 1000,
        share=0.9,
        concurrency=CONSUMERS,
        daily_reserve=0,
    )
    clients = [
        HubSpotClient(
            StaticTokenCredentials(TokenSecret({"accessToken": token})),
            RateGovernor(settings),
            ApiVersion.V2026_09,
            base_url=sandbox.url,
            session=new_session(),
            retry=FAST_RETRY,
        )
        for _ in range(CONSUMERS)
    ]
    deadline = time.monotonic() + 2.5
    failures: list[BaseException] = []

    def consume(index: int, client: HubSpotClient) -> None:
        sequence = 0
        try:
            while time.monotonic() < deadline:
                batch = [UpsertInput(f"c{index}-{sequence}-{i}@example.com", {"city": "x"}) for i in range(5)]
                assert all(result.ok for result in client.batch_upsert(batch))
                sequence += 1
        except BaseException as exc:  # surfaced in the main thread below
            failures.append(exc)

    threads = [threading.Thread(target=consume, args=(i, c)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sandbox.state.throttled == {}
    assert sum(client.governor.throttled for client in clients) == 0
    sent = sum(client.requests_sent for client in clients)
    assert sent == sandbox.state.requests["POST batch_upsert"]
    assert sent > 2 * settings.budget  # the load really exceeded the app's share, window after window
