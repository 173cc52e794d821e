"""HubSpot batch-upsert calls per 1,000 contacts, from callers' requests to HubSpot.

Callers' requests are parsed and packed by the real ingest service into the queue while nothing
consumes (a backlog); then the merge functions (the template's MaxConcurrency) and the flush
function run until nothing is queued or pending: the product's functions, built by its builders
on the in-memory queue and ledger of ``bench.fakes``, writing to the HubSpot sandbox over HTTP
(``bench.harness``). The flush function runs the template's default lanes (1), or
``BENCH_LANES`` (results in ``pipeline_<n>_lanes.json`` then), each lane's run in its own
container with its own governor.

For callers sending 1, 10, 100 and 1,000 profiles per request (``BENCH_PER_REQUEST``):

- fresh: 1,000 new contacts (``BENCH_CONTACTS``) with 2 audiences, queued, then synced;
- re-send: the same contacts again, newer qualification times, half of them with a changed first
  name (the other half is a write identical to the last confirmed one).

Per row: batch-upsert calls per 1,000 contacts (goals: 10.5 fresh, 5.5 re-send), property set-up
calls (schema reads, group and property creation) counted apart, 429s, the time to sync, and the
contacts per call. Prints a table and writes bench/results/pipeline.json. Measured, never asserted.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import Sync, aep_profiles, build_sync, discard_logs, ingest_backlog, template_defaults
from local.hubspot_sandbox import SandboxServer

DEFAULT_LANES = int(template_defaults()["FlushLanes"])
LANES = int(os.environ.get("BENCH_LANES", str(DEFAULT_LANES)))
RESULTS = (
    Path(__file__).resolve().parent
    / "results"
    / ("pipeline.json" if LANES == DEFAULT_LANES else f"pipeline_{LANES}_lanes.json")
)
#: Contacts per load. The issue's figure is per 1,000; a larger load (``BENCH_CONTACTS``) shows how
#: much of it is the last partial call, paid once per drain rather than per 1,000 contacts.
CONTACTS = int(os.environ.get("BENCH_CONTACTS", "1000"))
PER_REQUEST = tuple(int(n) for n in os.environ.get("BENCH_PER_REQUEST", "1,10,100,1000").split(","))
UPSERT_ROUTE = "POST batch_upsert"


def load(
    prefix: str, qualified: str = "2026-11-20T09:15:00Z", changed: Callable[[int], bool] = lambda i: False
) -> list[dict[str, Any]]:
    return aep_profiles(CONTACTS, prefix, qualified=qualified, changed=changed)


def run(
    server: SandboxServer, sync: Sync, profiles: list[dict[str, Any]], per_request: int
) -> dict[str, Any]:
    state = server.state
    requests_before, throttled_before = Counter(state.requests), sum(state.throttled.values())
    calls_before = len(sync.log.calls)
    requests, messages = ingest_backlog(sync.fifo, profiles, per_request, sync.settings.shard_count)
    started = time.perf_counter()
    drained = sync.run()
    seconds = time.perf_counter() - started
    made = Counter(state.requests)
    made.subtract(requests_before)
    upserts = made.pop(UPSERT_ROUTE, 0)
    return {
        "requests": requests,
        "queue_messages": messages,
        "drained": drained,
        "upsert_calls": upserts,
        "upsert_calls_per_1000_contacts": round(upserts * 1000 / len(profiles), 1),
        "setup_calls": sum(count for count in made.values() if count > 0),
        "throttled_429": sum(state.throttled.values()) - throttled_before,
        "sync_seconds": round(seconds, 2),
        "contacts_per_call": dict(sorted(Counter(size for _, size in sync.log.calls[calls_before:]).items())),
    }


def measure() -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    server = SandboxServer().start()
    sync = build_sync(server.url, server.state.add_private_app_token(), lanes=LANES)
    try:
        for per_request in PER_REQUEST:
            prefix = f"R{per_request}"
            rows[f"{per_request}/req, fresh"] = run(server, sync, load(prefix), per_request)
            # Newer qualification times for everyone, a changed first name for every other contact.
            resend = load(prefix, "2026-11-21T09:15:00Z", changed=lambda i: i % 2 == 1)
            rows[f"{per_request}/req, re-send half changed"] = run(server, sync, resend, per_request)
    finally:
        sync.stop()
        server.stop()
    return rows


def table(rows: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"{'load':<32} {'upserts/1,000':>13} {'set-up':>6} {'429s':>5} {'seconds':>8}  contacts per call",
    ]
    for name, row in rows.items():
        sizes = ", ".join(f"{size}x{count}" for size, count in row["contacts_per_call"].items())
        lines.append(
            f"{name:<32} {row['upsert_calls_per_1000_contacts']:>13} {row['setup_calls']:>6} "
            f"{row['throttled_429']:>5} {row['sync_seconds']:>8}  {sizes}"
        )
    return "\n".join(lines)


def main() -> None:
    discard_logs()
    rows = measure()
    print(
        f"{LANES} flush lane(s), {template_defaults()['ShardCount']} shards\n{table(rows)}",
        file=sys.__stdout__,
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "pipeline",
                "date": datetime.now(UTC).strftime("%Y-%m-%d"),
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                "contacts_per_load": CONTACTS,
                "flush_lanes": LANES,
                "merge_functions": int(template_defaults()["MaxConcurrency"]),
                "shards": int(template_defaults()["ShardCount"]),
                "goals": {
                    "fresh_upsert_calls_per_1000": 10.5,
                    "resend_half_changed_upsert_calls_per_1000": 5.5,
                },
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
