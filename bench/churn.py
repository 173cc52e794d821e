"""Churn in a backlog: every contact changes several times before the sync catches up.

1,000 contacts (``BENCH_CONTACTS``) x 5 rounds of changes (``BENCH_ROUNDS``: each round a newer
qualification time, other memberships and another first name for every contact), posted in
requests of 10 profiles (AEP's HTTP API destination sends at most 10) through the real ingest
service while nothing consumes: a backlog of 5,000 updates. Then the merge functions (the
template's MaxConcurrency) and the flush function (its default lanes) run until nothing is queued
or pending, built by the product's builders on the in-memory queue and ledger of ``bench.fakes``,
writing to the HubSpot sandbox over HTTP (``bench.harness``).

A state-driven sync writes the newest state of each contact once: 10 calls of 100 for 1,000
contacts (goal: at most 11), and HubSpot ends with the last round, for every contact. Reports the
batch upserts (and their sizes), the other HubSpot requests, whether every contact's properties in
the sandbox are the last round's, and the time. Prints a table and writes
bench/results/churn.json. Measured, never asserted.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hubspot_activation.upsert.properties import audience_property_name

from bench.harness import AUDIENCES, aep_profiles, build_sync, discard_logs, ingest_backlog, template_defaults
from local.hubspot_sandbox import SandboxServer

RESULTS = Path(__file__).resolve().parent / "results" / "churn.json"
CONTACTS = int(os.environ.get("BENCH_CONTACTS", "1000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
PER_REQUEST = 10
UPSERT_ROUTE = "POST batch_upsert"


def round_profiles(version: int) -> list[dict[str, Any]]:
    return aep_profiles(CONTACTS, "churn", qualified=f"2026-11-{20 + version}T09:15:00Z", version=version)


def last_round_held(server: SandboxServer, profiles: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """How many contacts HubSpot holds exactly as the last round says, and a few that it does not."""
    state = server.state
    wrong: list[str] = []
    for profile in profiles:
        address = profile["identityMap"]["Email"][0]["id"].lower()
        held = (
            state.contacts[state.email_index[address]]["properties"] if address in state.email_index else {}
        )
        wanted = {
            "firstname": profile["person"]["name"]["firstName"],
            **{
                audience_property_name(audience, "aud_"): membership["status"]
                for audience, membership in profile["segmentMembership"]["ups"].items()
            },
        }
        if any(held.get(name) != value for name, value in wanted.items()):
            wrong.append(address)
    return len(profiles) - len(wrong), wrong[:5]


def main() -> None:
    discard_logs()
    defaults = template_defaults()
    server = SandboxServer().start()
    try:
        sync = build_sync(server.url, server.state.add_private_app_token())
        try:
            messages = requests = 0
            for version in range(1, ROUNDS + 1):
                sent, queued = ingest_backlog(
                    sync.fifo, round_profiles(version), PER_REQUEST, int(defaults["ShardCount"])
                )
                requests += sent
                messages += queued
            started = time.perf_counter()
            drained = sync.run()
            seconds = time.perf_counter() - started
        finally:
            sync.stop()
        made = Counter(server.state.requests)
        upserts = made.pop(UPSERT_ROUTE, 0)
        right, wrong = last_round_held(server, round_profiles(ROUNDS))
    finally:
        server.stop()
    sizes = dict(sorted(Counter(size for _, size in sync.log.calls).items()))
    result = {
        "benchmark": "churn",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "contacts": CONTACTS,
        "rounds": ROUNDS,
        "updates": CONTACTS * ROUNDS,
        "profiles_per_request": PER_REQUEST,
        "requests_posted": requests,
        "queue_messages": messages,
        "flush_lanes": sync.settings.flush_lanes,
        "merge_functions": len(sync.merges),
        "audiences": len(AUDIENCES),
        "drained": drained,
        "batch_upserts": upserts,
        "contacts_per_call": sizes,
        "other_hubspot_requests": dict(sorted(made.items())),
        "contacts_with_the_last_round": right,
        "contacts_not_with_the_last_round": wrong,
        "seconds": round(seconds, 2),
        "goals": {"batch_upserts_at_most": 11, "contacts_with_the_last_round": CONTACTS},
    }
    print(
        f"{CONTACTS:,} contacts x {ROUNDS} rounds ({CONTACTS * ROUNDS:,} updates in {requests} requests, "
        f"{messages} queue messages) -> {upserts} batch upserts "
        f"({', '.join(f'{k}x{v}' for k, v in sizes.items())} contacts per call), "
        f"{right:,} of {CONTACTS:,} contacts hold the last round; {seconds:.1f} s"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
