"""Audience lists: HubSpot calls per 1,000 contacts, and how soon a membership is in its list.

The merge, flush and lists functions run as deployed (``bench.harness``: the product's builders
on the in-memory queue and ledger of ``bench.fakes``, the lists function on its timers and its
sweep) against the HubSpot sandbox, with ``AudienceTarget`` ``list`` and ``both`` and the
template's ListChunkSize (500) and ListFlushSeconds (30, ``BENCH_LIST_FLUSH_SECONDS``).

1. **Backlog**: 1,000 contacts (``BENCH_CONTACTS``; AEP exports in two audiences, each contact
   realized or exited in each) queued first, then synced. HubSpot calls per 1,000 contacts, split
   into contact writes (batch upserts and updates), membership calls (``add-and-remove``), list
   creations and the rest; with the sandbox answering at once and after
   ``BENCH_HUBSPOT_LATENCY_MS`` (300 ms). The issue's goal: membership calls <= 4 per 1,000
   contacts in 2 audiences (2 a list, in chunks of 500), on top of the contact writes.
2. **Low load** (``both``, sandbox at 0 ms): a request of 1 to 5 profiles every 1 to 2 s for
   ``BENCH_LOW_LOAD_SECONDS`` (75). A membership's latency runs from the ingest accepting the
   request to the sandbox's list holding the record (the time HubSpot reports it was added); p50
   and p95 over every realized membership, against the goal ListFlushSeconds + 5 s.

Prints a table and writes bench/results/lists.json. Measured, never asserted.
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hubspot_activation.ledger.operations_store import OperationsStore
from hubspot_activation.lists.target import AudienceTarget

from bench.harness import AUDIENCES, Sync, aep_profiles, build_sync, discard_logs, email, ingest_backlog
from local.hubspot_sandbox import SandboxServer

RESULTS = Path(__file__).resolve().parent / "results" / "lists.json"
CONTACTS = int(os.environ.get("BENCH_CONTACTS", "1000"))
LATENCY_MS = int(os.environ.get("BENCH_HUBSPOT_LATENCY_MS", "300"))
FLUSH_SECONDS = int(os.environ.get("BENCH_LIST_FLUSH_SECONDS", "30"))
LOW_LOAD_SECONDS = float(os.environ.get("BENCH_LOW_LOAD_SECONDS", "75"))
PER_REQUEST = 1000
#: The issue's goals: membership calls per 1,000 contacts in 2 audiences on a backlog; the
#: membership latency's p95 at low load past ListFlushSeconds.
MEMBERSHIP_CALLS_GOAL = 4.0
LATENCY_SLACK_SECONDS = 5.0


def kind(route: str) -> str:
    """A sandbox route's share of the table."""
    if "batch_upsert" in route or "batch_update" in route:
        return "contact_writes"
    if "add_and_remove" in route:
        return "membership_calls"
    if "create_list" in route:
        return "list_creates"
    return "other"


def register_audiences(sync: Sync) -> None:
    """The audiences as AEP's destination declares them (``PUT /audiences/{id}``, through the
    operations' own store): a list is made for an audience the connector knows."""
    store = OperationsStore(sync.dynamodb, sync.settings.ledger_table)  # type: ignore[arg-type]
    for n, audience_id in enumerate(AUDIENCES):
        store.save_audience(audience_id, f"Audience {n}", None)


def backlog(target: AudienceTarget, latency_ms: int) -> dict[str, Any]:
    print(f"... backlog, {target.value}, {latency_ms} ms", file=sys.__stdout__, flush=True)
    server = SandboxServer().start()
    try:
        sync = build_sync(
            server.url,
            server.state.add_private_app_token(),
            audience_target=target,
            list_flush_seconds=FLUSH_SECONDS,
        )
        try:
            register_audiences(sync)
            server.state.config.latency_ms = latency_ms
            ingest_backlog(
                sync.fifo, aep_profiles(CONTACTS, f"lb{latency_ms}"), PER_REQUEST, sync.settings.shard_count
            )
            started = time.perf_counter()
            drained = sync.run(timeout=240.0)
            seconds = time.perf_counter() - started
            server.state.config.latency_ms = 0
            made = Counter(server.state.requests)
            members = {
                found.name: len(found.members)
                for found in server.state.lists.values()
                if found.deleted_at is None
            }
        finally:
            sync.stop()
    finally:
        server.stop()
    calls: Counter[str] = Counter()
    for route, count in made.items():
        calls[kind(route)] += count
    per_1000 = 1000 / CONTACTS
    return {
        "target": target.value,
        "latency_ms": latency_ms,
        "drained": drained,
        "seconds": round(seconds, 1),
        "per_1000": {name: round(calls[name] * per_1000, 2) for name in sorted(calls)},
        "routes": dict(sorted(made.items())),
        "list_members": members,
        "expected_members": {
            f"Audience {n}": sum(1 for i in range(CONTACTS) if (i + n) % 3) for n in range(len(AUDIENCES))
        },
    }


def low_load() -> dict[str, Any]:
    """Profiles a few at a time, every second or two; each realized membership's latency."""
    print(f"... low load, both, {LOW_LOAD_SECONDS:.0f} s of arrivals", file=sys.__stdout__, flush=True)
    server = SandboxServer().start()
    chance = random.Random(21)  # a fixed arrival pattern, the same every run
    accepted: dict[str, float] = {}
    realized: list[tuple[str, int]] = []
    try:
        sync = build_sync(
            server.url,
            server.state.add_private_app_token(),
            audience_target=AudienceTarget.BOTH,
            list_flush_seconds=FLUSH_SECONDS,
        )
        try:
            register_audiences(sync)
            runner = Runner(sync)
            runner.start()
            sent = 0
            ends = time.monotonic() + LOW_LOAD_SECONDS
            while time.monotonic() < ends:
                count = chance.randint(1, 5)
                exported = aep_profiles(count, "low", offset=sent)
                ingest_backlog(sync.fifo, exported, count, sync.settings.shard_count)
                at = time.time()
                for i in range(sent, sent + count):
                    accepted[email("low", i).lower()] = at
                    realized.extend(
                        (email("low", i).lower(), n) for n in range(len(AUDIENCES)) if (i + n) % 3
                    )
                sent += count
                time.sleep(chance.uniform(1.0, 2.0))
            drained = runner.finish(timeout=FLUSH_SECONDS * 3 + 60)
            latencies = membership_latencies(server, accepted, realized)
            written = sorted(contact_latencies(server, accepted))
        finally:
            sync.stop()
    finally:
        server.stop()
    ordered = sorted(latencies)
    return {
        "target": "both",
        "latency_ms": 0,
        "drained": drained,
        "contacts": sent,
        "memberships": len(realized),
        "memberships_seen": len(ordered),
        "p50_seconds": round(statistics.median(ordered), 1) if ordered else None,
        "p95_seconds": percentile(ordered, 0.95),
        "max_seconds": round(ordered[-1], 1) if ordered else None,
        "goal_p95_seconds": FLUSH_SECONDS + LATENCY_SLACK_SECONDS,
        # The part before the list's wait: the contact created in HubSpot (its record id known).
        "contact_created_p50_seconds": round(statistics.median(written), 1) if written else None,
        "contact_created_p95_seconds": percentile(written, 0.95),
        "membership_calls": sum(
            n for route, n in server.state.requests.items() if kind(route) == "membership_calls"
        ),
    }


class Runner:
    """The functions kept running while requests trickle in: ``Sync.run`` returns whenever all is
    settled, so it is run again until the arrivals end and everything settled."""

    def __init__(self, sync: Sync) -> None:
        import threading

        self._sync = sync
        self._arriving = True
        self._settled = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="low-load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def finish(self, timeout: float) -> bool:
        self._arriving = False
        return self._settled.wait(timeout)

    def _loop(self) -> None:
        while True:
            arriving = self._arriving
            if self._sync.run(timeout=10.0) and not arriving:
                self._settled.set()
                return
            time.sleep(0.2)


def percentile(ordered: list[float], share: float) -> float | None:
    """The nearest-rank percentile of sorted values."""
    return round(ordered[max(0, int(len(ordered) * share + 0.5) - 1)], 1) if ordered else None


def contact_latencies(server: SandboxServer, accepted: dict[str, float]) -> list[float]:
    state = server.state
    latencies = []
    for address, at in accepted.items():
        record_id = state.email_index.get(address)
        if record_id is not None:
            created = state.contacts[record_id]["createdAt"]
            latencies.append(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp() - at)
    return latencies


def membership_latencies(
    server: SandboxServer, accepted: dict[str, float], realized: list[tuple[str, int]]
) -> list[float]:
    state = server.state
    by_name = {found.name: found for found in state.lists.values() if found.deleted_at is None}
    latencies = []
    for address, n in realized:
        found = by_name.get(f"Audience {n}")
        record_id = state.email_index.get(address)
        added = found.members.get(str(record_id)) if found is not None and record_id is not None else None
        if added is None:
            continue
        at = datetime.fromisoformat(added.replace("Z", "+00:00")).timestamp()
        latencies.append(at - accepted[address])
    return latencies


def table(backlogs: list[dict[str, Any]], low: dict[str, Any]) -> str:
    lines = [
        f"{'target':<6} {'latency':>7} {'writes/1k':>9} {'membership/1k':>13} {'creates':>7} "
        f"{'other/1k':>8} {'s':>6}"
    ]
    for run in backlogs:
        per = run["per_1000"]
        lines.append(
            f"{run['target']:<6} {run['latency_ms']:>5}ms {per.get('contact_writes', 0):>9} "
            f"{per.get('membership_calls', 0):>13} {per.get('list_creates', 0):>7} "
            f"{per.get('other', 0):>8} {run['seconds']:>6}"
        )
    lines.append(
        f"low load (both, {low['contacts']} contacts, {low['memberships_seen']}/{low['memberships']} "
        f"memberships): p50 {low['p50_seconds']} s, p95 {low['p95_seconds']} s, max {low['max_seconds']} s "
        f"(goal p95 <= {low['goal_p95_seconds']} s), {low['membership_calls']} membership calls; "
        f"contact created p50 {low['contact_created_p50_seconds']} s, "
        f"p95 {low['contact_created_p95_seconds']} s"
    )
    return "\n".join(lines)


def main() -> None:
    discard_logs()
    backlogs = [
        backlog(target, latency)
        for latency in (0, LATENCY_MS)
        for target in (AudienceTarget.LIST, AudienceTarget.BOTH)
    ]
    low = low_load()
    result = {
        "benchmark": "lists",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "contacts": CONTACTS,
        "audiences": len(AUDIENCES),
        "list_flush_seconds": FLUSH_SECONDS,
        "goals": {
            "membership_calls_per_1000_on_a_backlog": MEMBERSHIP_CALLS_GOAL,
            "low_load_p95_seconds": FLUSH_SECONDS + LATENCY_SLACK_SECONDS,
        },
        "backlog": backlogs,
        "low_load": low,
    }
    print(table(backlogs, low), file=sys.__stdout__)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
