"""Field rules: HubSpot calls per 1,000 contacts with one ``fill_empty`` property.

1,000 contacts (``BENCH_CONTACTS``; AEP exports with two audiences and first name, last name, city
and country) go through the merge and flush functions (``bench.harness``: the product's builders
on the in-memory queue and ledger of ``bench.fakes``) into the HubSpot sandbox, deployed with
``FieldRules={"city": "fill_empty"}``. Before the first pass, a fifth of the contacts are put in
HubSpot by someone else (through its API, unknown to the connector): half of them with a city.

Passes, each measured on its own (HubSpot batch reads and batch writes, per 1,000 contacts):

1. **fresh**: every contact; even-numbered ones carry a city, odd-numbered ones a blank city
   (nothing to fill). The ledger knows nothing: a read before each call's write;
2. **re-send, half changed, city new**: the odd-numbered half get another first name and a city
   the ledger has never seen for them: read, then written where HubSpot's city is empty;
3. **re-send, other half changed, city known**: the even-numbered half get another first name and
   another city; HubSpot is known to hold one (written, or held), so no read, and only the first
   name is written;
4. **re-send, unchanged**: the last pass again.

The same passes run on a deployment without rules (``overwrite``: no read, HubSpot's cities
overwritten), and both again with HubSpot answering every call after ``BENCH_HUBSPOT_LATENCY_MS``
(300 ms). Checks per deployment: the cities someone else put in HubSpot that are still there, the
contacts whose held value the ledger records, the cities the connector wrote. Prints a table and
writes bench/results/field_rules.json. Measured, never asserted.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hubspot_activation.field_rules import FieldRule, FieldRules
from hubspot_activation.hubspot.batch import UpsertInput
from hubspot_activation.hubspot.client import new_session
from hubspot_activation.hubspot.governor import RateGovernor
from hubspot_activation.upsert.wiring import governor_settings, hubspot_client

from bench.fakes import MemoryDailyCounter
from bench.harness import Sync, aep_profiles, build_sync, discard_logs, email, ingest_backlog
from local.hubspot_sandbox import SandboxServer

RESULTS = Path(__file__).resolve().parent / "results" / "field_rules.json"
CONTACTS = int(os.environ.get("BENCH_CONTACTS", "1000"))
LATENCY_MS = int(os.environ.get("BENCH_HUBSPOT_LATENCY_MS", "300"))
PER_REQUEST = 1000
READ_ROUTE = "POST batch_read"
WRITE_ROUTES = ("POST batch_upsert", "POST batch_update")
FILL_CITY = FieldRules({"city": FieldRule.FILL_EMPTY})
SALES_CITY = "Set in HubSpot"
#: The issue's ceilings: fresh, and a re-send with half the contacts changed (per 1,000 contacts).
GOALS = {"fresh": 10.5, "half_changed": 5.5}


def seeded(i: int) -> bool:
    """A fifth of the contacts are in HubSpot before the first pass."""
    return i % 5 == 0


def seeded_with_city(i: int) -> bool:
    """Half of those hold a city (as many odd- as even-numbered)."""
    return i % 20 in (0, 5)


def profiles(prefix: str, first_names: Mapping[int, str], cities: Mapping[int, str]) -> list[dict[str, Any]]:
    exported = aep_profiles(CONTACTS, prefix)
    for i, profile in enumerate(exported):
        profile["person"]["name"]["firstName"] = first_names[i]
        profile["workAddress"]["city"] = cities[i]
    return exported


def seed(server: SandboxServer, sync: Sync, prefix: str) -> None:
    """Someone else's contacts, through HubSpot's API (not counted in the passes)."""
    client = hubspot_client(
        sync.settings,
        lambda force: {"accessToken": server.state.add_private_app_token()},
        RateGovernor(governor_settings(sync.settings), daily_counter=MemoryDailyCounter()),
        session=new_session(),
    )
    inputs = [
        UpsertInput(email(prefix, i).lower(), {"company": "Buyer Ltd"} | city)
        for i in range(CONTACTS)
        if seeded(i)
        for city in [{"city": SALES_CITY} if seeded_with_city(i) else {}]
    ]
    for start in range(0, len(inputs), 100):
        results = client.batch_upsert(inputs[start : start + 100])
        assert all(result.ok for result in results), [r.error for r in results if not r.ok][:1]


def deployment(name: str, rules: FieldRules, latency_ms: int) -> dict[str, Any]:
    server = SandboxServer().start()
    prefix = f"fr{len(rules.rules)}x{latency_ms}"
    try:
        state = server.state
        sync = build_sync(server.url, state.add_private_app_token(), field_rules=rules)
        try:
            seed(server, sync, prefix)
            state.config.latency_ms = latency_ms
            first = {i: f"First{i}" for i in range(CONTACTS)}
            city = {i: "London" if i % 2 == 0 else "" for i in range(CONTACTS)}
            passes = []

            def measure(label: str, changed: Callable[[int], bool], new_city: str | None, mark: str) -> None:
                for i in range(CONTACTS):
                    if changed(i):
                        first[i] += mark
                        if new_city is not None:
                            city[i] = new_city
                passes.append(one_pass(label, server, sync, profiles(prefix, first, city)))

            measure("fresh", lambda i: False, None, "")
            measure("re-send, half changed, city new", lambda i: i % 2 == 1, "Leeds", "b")
            measure("re-send, other half changed, city known", lambda i: i % 2 == 0, "York", "c")
            measure("re-send, unchanged", lambda i: False, None, "")
            state.config.latency_ms = 0
            checks = outcome(server, sync, prefix)
        finally:
            sync.stop()
    finally:
        server.stop()
    rules_json = rules.as_json()
    return {"deployment": name, "rules": rules_json, "latency_ms": latency_ms, "passes": passes, **checks}


def one_pass(label: str, server: SandboxServer, sync: Sync, exported: list[dict[str, Any]]) -> dict[str, Any]:
    print(f"... {label}", file=sys.__stdout__, flush=True)
    before = Counter(server.state.requests)
    ingest_backlog(sync.fifo, exported, PER_REQUEST, sync.settings.shard_count)
    started = time.perf_counter()
    drained = sync.run()
    seconds = time.perf_counter() - started
    made = Counter(server.state.requests) - before
    reads = made[READ_ROUTE]
    writes = sum(made[route] for route in WRITE_ROUTES)
    per_1000 = 1000 / CONTACTS
    return {
        "pass": label,
        "drained": drained,
        "reads": reads,
        "writes": writes,
        "reads_per_1000": round(reads * per_1000, 2),
        "writes_per_1000": round(writes * per_1000, 2),
        "other_hubspot_requests": {
            route: n for route, n in sorted(made.items()) if route != READ_ROUTE and route not in WRITE_ROUTES
        },
        "seconds": round(seconds, 2),
    }


def outcome(server: SandboxServer, sync: Sync, prefix: str) -> dict[str, Any]:
    """Where HubSpot's cities came from, and what the ledger holds."""
    state = server.state
    cities = {
        i: state.contacts[state.email_index[email(prefix, i).lower()]]["properties"].get("city")
        for i in range(CONTACTS)
    }
    held = sum(1 for item in sync.dynamodb.items() if item.get("held", {}).get("M"))
    return {
        "cities_set_in_hubspot": sum(1 for i in range(CONTACTS) if seeded_with_city(i)),
        "cities_set_in_hubspot_still_there": sum(
            1 for i in range(CONTACTS) if seeded_with_city(i) and cities[i] == SALES_CITY
        ),
        "contacts_with_held_values_in_the_ledger": held,
        "cities_written_by_the_connector": dict(
            sorted(Counter(c for c in cities.values() if c and c != SALES_CITY).items())
        ),
        "contacts_without_a_city": sum(1 for c in cities.values() if not c),
    }


def table(runs: list[dict[str, Any]]) -> str:
    lines = [f"{'deployment':<12} {'latency':>7} {'pass':<42} {'reads/1k':>8} {'writes/1k':>9} {'s':>6}"]
    for run in runs:
        for row in run["passes"]:
            lines.append(
                f"{run['deployment']:<12} {run['latency_ms']:>5}ms {row['pass']:<42} "
                f"{row['reads_per_1000']:>8} {row['writes_per_1000']:>9} {row['seconds']:>6}"
            )
    return "\n".join(lines)


def main() -> None:
    discard_logs()
    runs = [
        deployment("fill_empty", FILL_CITY, 0),
        deployment("no rules", FieldRules(), 0),
        deployment("fill_empty", FILL_CITY, LATENCY_MS),
        deployment("no rules", FieldRules(), LATENCY_MS),
    ]
    result = {
        "benchmark": "field_rules",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "contacts": CONTACTS,
        "seeded_in_hubspot": sum(1 for i in range(CONTACTS) if seeded(i)),
        "goals_per_1000": {
            "fresh": {"reads": GOALS["fresh"], "writes": GOALS["fresh"]},
            "re-send, half changed": {"reads": GOALS["half_changed"], "writes": GOALS["half_changed"]},
            "no rule reading": {"reads": 0},
        },
        "deployments": runs,
    }
    print(table(runs), file=sys.__stdout__)
    for run in runs:
        checks = {k: v for k, v in run.items() if k not in ("passes", "rules")}
        print(json.dumps(checks), file=sys.__stdout__)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
