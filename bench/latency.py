"""The sync with HubSpot answering slowly: are the contacts still written in full calls, once?

The merge and flush functions (``bench.harness``: the product's builders on the in-memory queue
and ledger of ``bench.fakes``) with the HubSpot sandbox answering every call after a fixed latency
(its ``latency_ms`` fault setting): 300 ms, 700 ms (real HubSpot is often that slow) and 1 s. For
each, 5,000 new contacts are queued in AEP-sized requests of 1,000 profiles while nothing
consumes, then synced with the template's defaults (merge MaxConcurrency, flush lanes and
parallel calls).

Per row: contacts synced, retried (a call that failed or ran out of time leaves its contacts
pending, due again after a backoff) and failed (from the flush runs' "flush run ended" records),
contacts in HubSpot, batch upserts and their sizes, 429s, flush invocations and the time to sync.
Prints a table and writes bench/results/latency.json. Measured, never asserted.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import aep_profiles, build_sync, discard_logs, ingest_backlog
from local.hubspot_sandbox import SandboxServer

RESULTS = Path(__file__).resolve().parent / "results" / "latency.json"
CONTACTS = int(os.environ.get("BENCH_CONTACTS", "5000"))
PER_REQUEST = 1000
LATENCIES_MS = tuple(int(n) for n in os.environ.get("BENCH_LATENCIES_MS", "300,700,1000").split(","))
UPSERT_ROUTE = "POST batch_upsert"
#: A sync that has not ended by then is reported as such.
SYNC_TIMEOUT_SECONDS = 900.0


def run(latency_ms: int) -> dict[str, Any]:
    server = SandboxServer().start()
    try:
        state = server.state
        sync = build_sync(server.url, state.add_private_app_token())
        try:
            ingest_backlog(
                sync.fifo, aep_profiles(CONTACTS, f"L{latency_ms}"), PER_REQUEST, sync.settings.shard_count
            )
            state.config.latency_ms = latency_ms
            started = time.perf_counter()
            drained = sync.run(SYNC_TIMEOUT_SECONDS)
            seconds = time.perf_counter() - started
        finally:
            sync.stop()
        totals = sync.reports.totals
        return {
            "latency_ms": latency_ms,
            "drained": drained,
            "contacts_synced": totals["synced"],
            "contacts_retried": totals["retriedLater"],
            "contacts_failed": totals["failed"],
            "contacts_in_hubspot": len(state.contacts),
            "upsert_calls": state.requests[UPSERT_ROUTE],
            "contacts_per_call": dict(sorted(Counter(size for _, size in sync.log.calls).items())),
            "throttled_429": sum(state.throttled.values()),
            "flush_invocations": sync.flush.stats.invocations,
            "flush_parallel_calls": sync.settings.flush_parallel_calls,
            "sync_seconds": round(seconds, 2),
        }
    finally:
        server.stop()


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'latency':>8} {'synced':>7} {'retried':>8} {'failed':>7} {'in HubSpot':>10} "
        f"{'upserts':>7} {'429s':>5} {'seconds':>8}"
    ]
    for row in rows:
        lines.append(
            f"{row['latency_ms']:>6}ms {row['contacts_synced']:>7} {row['contacts_retried']:>8} "
            f"{row['contacts_failed']:>7} {row['contacts_in_hubspot']:>10} {row['upsert_calls']:>7} "
            f"{row['throttled_429']:>5} {row['sync_seconds']:>8}"
        )
    return "\n".join(lines)


def main() -> None:
    discard_logs()
    rows = [run(latency_ms) for latency_ms in LATENCIES_MS]
    print(table(rows), file=sys.__stdout__)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "latency",
                "date": datetime.now(UTC).strftime("%Y-%m-%d"),
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                "contacts": CONTACTS,
                "profiles_per_request": PER_REQUEST,
                "goals": {"contacts_in_hubspot": CONTACTS, "upsert_calls": -(-CONTACTS // 100)},
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
