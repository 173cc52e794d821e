"""HubSpot client benchmark against the sandbox over real HTTP on loopback.

1. Requests per 1,000 contacts for a fresh batch (and for the same 1,000 again).
2. The governor with a backlog: 8 concurrent consumers, each with its own governor, against one
   app's rolling limit (a 1 s window stands in for HubSpot's 10 s so the run is short): 429s drawn
   and the share of the configured budget actually used.
Prints a table and writes bench/results/hubspot_client.json.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from hubspot_activation.hubspot.client import HubSpotClient, UpsertInput, new_session
from hubspot_activation.hubspot.credentials import StaticTokenCredentials
from hubspot_activation.hubspot.governor import GovernorSettings, RateGovernor
from hubspot_activation.hubspot.versions import ApiVersion

from local.hubspot_sandbox import SandboxConfig, SandboxServer, SandboxState

RESULTS = Path(__file__).resolve().parent / "results" / "hubspot_client.json"


def client_for(server: SandboxServer, token: str, settings: GovernorSettings) -> HubSpotClient:
    credentials = StaticTokenCredentials(lambda force: {"accessToken": token})
    return HubSpotClient(
        credentials, RateGovernor(settings), ApiVersion.V2026_09, base_url=server.url, session=new_session()
    )


def requests_per_thousand(server: SandboxServer) -> dict[str, Any]:
    token = server.state.add_private_app_token()
    client = client_for(server, token, GovernorSettings(limit_per_window=100, window_seconds=1, share=0.9))
    contacts = [
        UpsertInput(f"fresh{i}@example.com", {"firstname": f"F{i}", "city": "Paris"}) for i in range(1000)
    ]
    for start in range(0, 1000, 100):
        assert all(r.ok for r in client.batch_upsert(contacts[start : start + 100]))
    fresh = client.requests_sent
    for start in range(0, 1000, 100):
        client.batch_upsert(contacts[start : start + 100])
    return {
        "fresh_load_requests_per_1000": fresh,
        "repeat_load_requests_per_1000": client.requests_sent - fresh,
    }


def concurrent_backlog(server: SandboxServer, consumers: int = 8, seconds: float = 6.0) -> dict[str, Any]:
    config = server.state.config
    token = server.state.add_private_app_token()
    settings = GovernorSettings(
        limit_per_window=config.ten_second_limit,
        window_seconds=config.window_ms / 1000,
        share=0.9,
        concurrency=consumers,
        daily_reserve=0,
    )
    clients = [client_for(server, token, settings) for _ in range(consumers)]
    throttled_before = sum(server.state.throttled.values())
    deadline = time.monotonic() + seconds
    started = time.monotonic()

    def consume(index: int, client: HubSpotClient) -> None:
        sequence = 0
        while time.monotonic() < deadline:
            client.batch_upsert([UpsertInput(f"b{index}-{sequence}@example.com", {"city": "x"})])
            sequence += 1

    threads = [threading.Thread(target=consume, args=(i, c)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    sent = sum(c.requests_sent for c in clients)
    # The configured share is the app's, whatever the number of consumers dividing it.
    budget_per_window = settings.budget
    windows = elapsed / settings.window_seconds
    return {
        "consumers": consumers,
        "limit_per_window": config.ten_second_limit,
        "configured_budget_per_window": budget_per_window,
        "requests": sent,
        "throttled_429": sum(server.state.throttled.values()) - throttled_before,
        "budget_used": round(sent / (budget_per_window * windows), 3),
    }


def main() -> None:
    server = SandboxServer(SandboxState(config=SandboxConfig(window_ms=1000))).start()
    try:
        volume = requests_per_thousand(server)
        alone = concurrent_backlog(server, consumers=1)
        backlog = concurrent_backlog(server)
    finally:
        server.stop()
    print(f"fresh load:   {volume['fresh_load_requests_per_1000']} HubSpot requests per 1,000 contacts")
    print(
        f"repeat load:  {volume['repeat_load_requests_per_1000']} HubSpot requests per 1,000 contacts "
        "(the client alone; the consumer's ledger skips unchanged contacts)"
    )
    print(
        f"backlog:      1 consumer, {alone['requests']} requests, {alone['throttled_429']} x 429, "
        f"{alone['budget_used']:.1%} of the configured budget"
    )
    print(
        f"backlog:      {backlog['consumers']} consumers, {backlog['requests']} requests, "
        f"{backlog['throttled_429']} x 429, {backlog['budget_used']:.1%} of the configured budget "
        f"({backlog['configured_budget_per_window']}/window of a {backlog['limit_per_window']} limit)"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"benchmark": "hubspot_client", **volume, "backlog_one": alone, "backlog": backlog}, indent=2
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
