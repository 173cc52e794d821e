"""Several consumers, each with its own governor (as several Lambda instances would) that alone could
use the whole share, divide one app's 10-second limit through HubSpot's Remaining header: the sandbox
never answers 429, and together they never count more than the share in any rolling window."""

from __future__ import annotations

import math
import threading
import time

import pytest
from hubspot_activation.hubspot.client import HubSpotClient, UpsertInput, new_session
from hubspot_activation.hubspot.credentials import StaticTokenCredentials
from hubspot_activation.hubspot.governor import GovernorSettings, RateGovernor
from hubspot_activation.hubspot.versions import ApiVersion

from local.hubspot_sandbox import SandboxServer
from tests.hubspot.conftest import FAST_RETRY, TokenSecret

CONSUMERS = 8


def test_eight_concurrent_consumers_draw_no_429(sandbox: SandboxServer) -> None:
    settings, clients = consumers(sandbox, CONSUMERS, share=0.9)
    drive(clients, until_sent=3 * settings.budget)
    assert sandbox.state.throttled == {}
    assert sum(client.governor.throttled for client in clients) == 0
    sent = sum(client.requests_sent for client in clients)
    assert sent == sandbox.state.requests["POST batch_upsert"]
    assert sent > 2 * settings.budget  # the load really exceeded the app's share, window after window


@pytest.mark.parametrize("count", [2, 4])
def test_concurrent_consumers_keep_to_the_share_in_every_rolling_window(
    sandbox: SandboxServer, count: int
) -> None:
    """The share is a ceiling on what all consumers together send in any window, as HubSpot counts
    them (on arrival): pacing from the Remaining header must not let them overrun it by the
    requests that leave the window while they switch from sending freely to reusing their own
    slots."""
    settings, clients = consumers(sandbox, count, share=0.8)
    drive(clients, until_sent=3 * settings.budget)
    (token,) = sandbox.state.counted
    sent = sum(client.requests_sent for client in clients)
    assert sent > 2 * settings.budget  # windows full of requests, not a trickle
    assert sandbox.state.busiest_window(token) <= settings.budget
    assert sandbox.state.throttled == {}


def test_flush_lanes_with_calls_in_parallel_keep_to_the_share_in_every_rolling_window(
    sandbox: SandboxServer,
) -> None:
    """Four lanes, each with eight calls in flight at once (as the flush function's): the calls
    in flight are not in HubSpot's Remaining figure, so each lane keeps to its part of the share."""
    settings, clients = consumers(sandbox, 4, share=0.8, lanes=4)
    share = math.floor(sandbox.state.config.ten_second_limit * 0.8)
    drive(clients, until_sent=3 * share, calls_per_client=8)
    (token,) = sandbox.state.counted
    assert settings.budget == share // 4
    assert sum(client.requests_sent for client in clients) > 2 * share  # windows full, not a trickle
    assert sandbox.state.busiest_window(token) <= share
    assert sandbox.state.throttled == {}


def consumers(
    sandbox: SandboxServer, count: int, share: float, lanes: int = 1
) -> tuple[GovernorSettings, list[HubSpotClient]]:
    """``count`` clients of one private app, each with its own governor (a Lambda instance each),
    the event source's MaximumConcurrency being ``count`` (or ``lanes`` flush lanes, each its part
    of the share)."""
    config = sandbox.state.config  # 100 requests per 1 s window (a fast stand-in for 10 s)
    token = sandbox.state.add_private_app_token()
    settings = GovernorSettings(
        limit_per_window=config.ten_second_limit,
        window_seconds=config.window_ms / 1000,
        share=share,
        concurrency=count if lanes == 1 else 1,
        lanes=lanes,
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
        for _ in range(count)
    ]
    return settings, clients


def drive(
    clients: list[HubSpotClient], until_sent: int, calls_per_client: int = 1, timeout: float = 60.0
) -> None:
    """Every client upserts batches of five contacts back to back, with ``calls_per_client`` calls
    in flight at once, until they have sent ``until_sent`` requests together: several windows full
    however fast this machine is (a slow one takes longer, it does not send a trickle). A governor
    that stalls them fails on ``timeout``."""
    deadline = time.monotonic() + timeout
    failures: list[BaseException] = []

    def sent() -> int:
        return sum(client.requests_sent for client in clients)

    def consume(index: int, client: HubSpotClient) -> None:
        sequence = 0
        try:
            while sent() < until_sent and time.monotonic() < deadline:
                batch = [UpsertInput(f"c{index}-{sequence}-{i}@example.com", {"city": "x"}) for i in range(5)]
                assert all(result.ok for result in client.batch_upsert(batch))
                sequence += 1
        except BaseException as exc:  # surfaced in the main thread below
            failures.append(exc)

    threads = [
        threading.Thread(target=consume, args=(i * calls_per_client + k, c))
        for i, c in enumerate(clients)
        for k in range(calls_per_client)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sent() >= until_sent, f"{sent()} of {until_sent} requests in {timeout} s: the governor stalled"
