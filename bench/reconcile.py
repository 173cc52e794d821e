"""Reconcile: HubSpot calls per 1,000 contacts reconciled, and the time to walk 10,000.

10,000 contacts (``BENCH_CONTACTS``; two audiences and three attributes each: first name, last
name, city) are synced by the merge and flush functions (``bench.harness``: the product's
builders on the in-memory queue and ledger of ``bench.fakes``) into the HubSpot sandbox. Then:

1. **in sync**: a full walk with nothing changed in HubSpot (a contact in sync costs no write);
2. **drift**: in the sandbox, 1% of the contacts get a managed property edited (an audience
   property or the city), another 1% an unmanaged one (not drift), 0.2% are archived, 0.1% erased
   and 0.1% merged in pairs; a full walk, then the flush function writes the repairs;
3. **restored**: half of the archived contacts are restored in HubSpot; a full walk;
4. **after repair**: a full walk with nothing changed since (the respected deletions stay);
5. the after-repair walk again with HubSpot answering each call after 300 ms and after 1 s (the
   sandbox's ``latency_ms``), and, to see what reading pages concurrently would give, the same
   pages' reads by email sent 4 at a time through the same governed client (reads only).

Each walk is what the scheduled function does: ``Reconciler.run`` from the stored cursor, each
call ending by a deadline (``BENCH_INVOCATION_SECONDS``, default 60 s), until the walk is done.
The reader's client is governed as the deployment's (the template's limit and share); the
local walks are also timed with a governor that never waits, to show the product's own time.
Reconcile's budget here never holds (live traffic is idle) and counts the calls.

Per walk: the HubSpot reads by kind (by email, by id, archived) and per 1,000 contacts checked,
every other HubSpot request, the drift found by kind, the repairs, the writes the flush made
(calls and contacts) against the contacts drifted, and the seconds. Checks that HubSpot ends as
reconcile's rules say (edited contacts hold their source values again, deleted ones stay
deleted, erased ones are failed in the ledger, no email is held by two live records). Prints a
table and writes bench/results/reconcile.json. Measured, never asserted.
"""

from __future__ import annotations

import json
import os
import platform
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hubspot_activation.hubspot.client import HubSpotClient, new_session
from hubspot_activation.hubspot.governor import RateGovernor
from hubspot_activation.hubspot.reader import HubSpotContactReader
from hubspot_activation.ledger.reconcile_store import DynamoDbTrackedContacts
from hubspot_activation.reconcile.model import IDENTITY_PROPERTIES, DriftKind, HubSpotRecord, ReconcileReport
from hubspot_activation.reconcile.service import Reconciler, ReconcileSettings
from hubspot_activation.upsert.ledger import DELETED, FAILED
from hubspot_activation.upsert.schema import PropertySchema
from hubspot_activation.upsert.wiring import governor_settings, hubspot_client, lane_of

from bench.fakes import MemoryDailyCounter
from bench.harness import LEDGER_TABLE, Sync, aep_profiles, build_sync, discard_logs, ingest_backlog
from local.hubspot_sandbox import SandboxServer

RESULTS = Path(__file__).resolve().parent / "results" / "reconcile.json"
CONTACTS = int(os.environ.get("BENCH_CONTACTS", "10000"))
INVOCATION_SECONDS = float(os.environ.get("BENCH_INVOCATION_SECONDS", "60"))
LATENCIES_MS = tuple(int(n) for n in os.environ.get("BENCH_LATENCIES_MS", "300,1000").split(",") if n)
CONCURRENT_READS = 4
PER_REQUEST = 1000
#: Shares of the contacts drifted in HubSpot; half the archived ones are restored later.
EDITED, UNMANAGED, ARCHIVED, ERASED, MERGED_PAIRS = 0.01, 0.01, 0.002, 0.001, 0.001
READ_ROUTE = "POST batch_read"
WRITE_ROUTES = ("POST batch_upsert", "POST batch_update")
#: HubSpot's ceiling the issue sets for a walk: reads per 1,000 contacts (writes only for drift).
READS_PER_1000_GOAL = 10.5


def profiles() -> list[dict[str, Any]]:
    """AEP exports with two audiences and three attributes (first name, last name, city)."""
    exported = aep_profiles(CONTACTS, "rec")
    for profile in exported:
        profile["workAddress"].pop("country")
    return exported


@dataclass
class CountingReader:
    """The product's reader, each call counted by kind and by the keys it asked for."""

    reader: HubSpotContactReader
    calls: Counter[str] = field(default_factory=Counter)
    keys: Counter[str] = field(default_factory=Counter)

    def by_email(self, emails: Sequence[str], properties: Sequence[str]) -> dict[str, HubSpotRecord]:
        self.calls["by_email"] += 1
        self.keys["by_email"] += len(emails)
        return self.reader.by_email(emails, properties)

    def by_id(
        self, ids: Sequence[str], properties: Sequence[str], archived: bool
    ) -> dict[str, HubSpotRecord]:
        kind = "archived" if archived else "by_id"
        self.calls[kind] += 1
        self.keys[kind] += len(ids)
        return self.reader.by_id(ids, properties, archived)


@dataclass
class IdleBudget:
    """Live traffic is idle: reconcile may always go on; it counts what it spends."""

    calls: int = 0

    def hold(self) -> str | None:
        return None

    def spent(self, calls: int) -> None:
        self.calls += calls


@dataclass
class Bench:
    server: SandboxServer
    sync: Sync
    token: str
    contacts: DynamoDbTrackedContacts

    def reader_client(self, governed: bool = True) -> HubSpotClient:
        governor = governor_settings(self.sync.settings)
        if not governed:
            governor = replace(governor, window_seconds=0.001)  # the share of a millisecond: never waits
        return hubspot_client(
            self.sync.settings,
            lambda force: {"accessToken": self.token},
            RateGovernor(governor, daily_counter=MemoryDailyCounter()),
            session=new_session(),
        )

    def walk(self, name: str, governed: bool = True, drifted: int = 0) -> dict[str, Any]:
        """A full walk as the scheduled function makes it, then the flush of its repairs."""
        settings = self.sync.settings
        client = self.reader_client(governed)
        reader = CountingReader(HubSpotContactReader(client))
        budget = IdleBudget()
        schema = PropertySchema(
            client,
            settings.property_group,
            settings.property_group_label,
            settings.property_prefix,
            max_age_seconds=settings.schema_cache_seconds,
        )
        reconciler = Reconciler(
            self.contacts,
            reader,
            schema,
            budget,
            ReconcileSettings(lanes=settings.flush_lanes),
            waker=self.sync.waker,
            lane_of=lambda email: lane_of(email, settings.flush_lanes),
        )
        before = Counter(self.server.state.requests)
        calls_logged = len(self.sync.log.calls)
        self.sync.waker.held = True  # the repairs are flushed after the walk, timed apart
        total = ReconcileReport()
        ledger_before = Counter(self.sync.dynamodb.calls)
        invocations = 0
        cursor: str | None = None
        started = time.perf_counter()
        while True:
            invocations += 1
            report = reconciler.run(cursor=cursor, deadline=time.monotonic() + INVOCATION_SECONDS)
            _add(total, report)
            cursor = report.cursor
            if cursor is None or report.stopped_by not in (None, "deadline"):
                break  # done, or HubSpot stopped it (the next schedule goes on from the cursor)
        walk_seconds = time.perf_counter() - started
        walked = Counter(self.server.state.requests) - before
        ledger_calls = Counter(self.sync.dynamodb.calls) - ledger_before
        started = time.perf_counter()
        drained = self.sync.run()
        flush_seconds = time.perf_counter() - started
        made = Counter(self.server.state.requests) - before
        writes = {route: made[route] for route in WRITE_ROUTES if made[route]}
        written = sum(size for _, size in self.sync.log.calls[calls_logged:])
        reads = sum(reader.calls.values())
        per_1000 = 1000 / total.checked if total.checked else 0.0
        items = self.sync.dynamodb.items()
        others = Counter(
            str(item["email"]["S"]).split("#")[1] for item in items if "@" not in item["email"]["S"]
        )
        return {
            "walk": name,
            "ledger_items": {"contacts": len(items) - sum(others.values()), **dict(sorted(others.items()))},
            "governor": "as deployed" if governed else "never waits",
            "invocations": invocations,
            "checked": total.checked,
            "skipped": total.skipped,
            "stopped_by": total.stopped_by,
            "reads": dict(sorted(reader.calls.items())),
            "keys_read": dict(sorted(reader.keys.items())),
            "reads_per_1000": round(reads * per_1000, 2),
            "reads_per_1000_by_kind": {
                kind: round(n * per_1000, 2) for kind, n in sorted(reader.calls.items())
            },
            "calls_reported": total.calls,
            "budget_counted": budget.calls,
            "other_hubspot_requests_in_walk": {
                route: n for route, n in sorted(walked.items()) if route != READ_ROUTE and n
            },
            "ledger_calls_in_walk": dict(sorted(ledger_calls.items())),
            "drift": {kind.value: total.drift.get(kind, 0) for kind in DriftKind},
            "repaired": {kind.value: total.repaired.get(kind, 0) for kind in DriftKind},
            "contacts_drifted_in_hubspot": drifted,
            "write_calls": writes,
            "contacts_written": written,
            "writes_per_1000": round(sum(writes.values()) * per_1000, 2),
            "flush_drained": drained,
            "walk_seconds": round(walk_seconds, 2),
            "flush_seconds": round(flush_seconds, 2),
        }

    def concurrent_reads(self, workers: int) -> dict[str, Any]:
        """The walk's reads by email, ``workers`` at a time through one governed client: the time
        reading pages concurrently would take (pages listed first, not timed; nothing stored)."""
        pages, cursor = [], None
        while True:
            states, cursor = self.contacts.page(cursor, 100)
            candidates = [s for s in states if not s.pending and s.confirmed and s.confirmed.hubspot_id]
            if candidates:
                names = {name for s in candidates if s.confirmed for name in s.confirmed.written}
                pages.append(([s.email for s in candidates], sorted(names | set(IDENTITY_PROPERTIES))))
            if cursor is None:
                break
        reader = HubSpotContactReader(self.reader_client())
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda page: reader.by_email(*page), pages))
        return {"workers": workers, "reads": len(pages), "seconds": round(time.perf_counter() - started, 2)}


def _add(total: ReconcileReport, report: ReconcileReport) -> None:
    total.checked += report.checked
    total.skipped += report.skipped
    total.calls += report.calls
    total.drift.update(report.drift)
    total.repaired.update(report.repaired)
    total.stopped_by = report.stopped_by


@dataclass
class Drift:
    edited: list[str]
    unmanaged: list[str]
    archived: list[str]
    erased: list[str]
    merged: list[tuple[str, str]]

    @property
    def contacts(self) -> int:
        return len(self.edited) + len(self.archived) + len(self.erased) + 2 * len(self.merged)


def drift(server: SandboxServer, emails: Sequence[str], audience_property: str) -> Drift:
    """Change HubSpot as people and HubSpot would: disjoint random sets of contacts."""
    state = server.state
    shuffled = random.Random(19).sample(list(emails), len(emails))

    def take(share: float) -> list[str]:
        taken = shuffled[: max(1, round(len(emails) * share))]
        del shuffled[: len(taken)]
        return taken

    changed = Drift(take(EDITED), take(UNMANAGED), take(ARCHIVED), take(ERASED), [])
    pairs = take(2 * MERGED_PAIRS)
    changed.merged = list(zip(pairs[::2], pairs[1::2], strict=False))
    with state.lock:
        for n, address in enumerate(changed.edited):
            held = state.contacts[state.email_index[address]]["properties"]
            if n % 2:
                held["city"] = "Paris"
            else:
                held[audience_property] = (
                    "exited" if held.get(audience_property) == "realized" else "realized"
                )
        for address in changed.unmanaged:
            state.contacts[state.email_index[address]]["properties"]["jobtitle"] = "Edited in HubSpot"
    for address in changed.archived:
        state.archive(state.email_index[address])
    for address in changed.erased:
        state.erase(state.email_index[address])
    for primary, other in changed.merged:
        state.merge(state.email_index[primary], state.email_index[other])
    return changed


def managed_values(
    server: SandboxServer, emails: Sequence[str], names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    state = server.state
    return {
        address: {name: state.contacts[state.email_index[address]]["properties"].get(name) for name in names}
        for address in emails
        if address in state.email_index
    }


def outcome(
    bench: Bench, changed: Drift, restored: Sequence[str], baseline: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Does HubSpot (and the ledger) end as reconcile's rules say?"""
    state = bench.server.state
    names = sorted(next(iter(baseline.values())))
    now = managed_values(bench.server, changed.edited, names)
    entries = bench.contacts.read([*changed.archived, *changed.erased])
    still_deleted = [a for a in changed.archived if a not in restored]

    def status(address: str) -> str | None:
        entry = entries[address].confirmed if address in entries else None
        return entry.status if entry is not None else None

    emails_held: Counter[str] = Counter(
        str(contact["properties"].get("email")).lower() for contact in state.contacts.values()
    )
    survivors = [state.email_index.get(primary) for primary, _ in changed.merged]
    merged_values = {
        f"{primary} + {other}": {
            "survivor": {
                name: state.contacts.get(state.email_index.get(primary, ""), {"properties": {}})[
                    "properties"
                ].get(name)
                for name in names
            },
            primary: baseline[primary],
            other: baseline[other],
        }
        for primary, other in changed.merged[:2]
    }
    return {
        "edited_contacts_holding_their_source_values": sum(now.get(a) == baseline[a] for a in changed.edited),
        "edited_contacts": len(changed.edited),
        "deleted_contacts_left_deleted": sum(
            a not in state.email_index and status(a) == DELETED for a in still_deleted
        ),
        "deleted_contacts": len(still_deleted),
        "restored_contacts_live": sum(a in state.email_index for a in restored),
        "erased_contacts_failed_in_the_ledger": sum(status(a) == FAILED for a in changed.erased),
        "erased_contacts": len(changed.erased),
        "merged_survivors_live": sum(1 for s in survivors if s in state.contacts),
        "merged_pairs": len(changed.merged),
        "emails_held_by_two_live_records": sum(1 for n in emails_held.values() if n > 1),
        "live_contacts_in_hubspot": len(state.contacts),
        "merged_examples": merged_values,
    }


def seed(server: SandboxServer, token: str) -> tuple[Bench, list[str], float]:
    sync = build_sync(server.url, token)
    exported = profiles()
    ingest_backlog(sync.fifo, exported, PER_REQUEST, sync.settings.shard_count)
    started = time.perf_counter()
    if not sync.run():
        raise SystemExit("the first sync did not drain")
    seconds = time.perf_counter() - started
    settings = sync.settings
    contacts = DynamoDbTrackedContacts(
        sync.dynamodb,  # type: ignore[arg-type]
        LEDGER_TABLE,
        settings.ledger_retention_days,
        lanes=settings.flush_lanes,
    )
    emails = [p["identityMap"]["Email"][0]["id"].lower() for p in exported]
    return Bench(server, sync, token, contacts), emails, seconds


def step(label: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    print(f"... {label}", file=sys.__stdout__, flush=True)
    return run()


def table(walks: list[dict[str, Any]]) -> str:
    lines = [
        f"{'walk':<22} {'latency':>7} {'checked':>7} {'email':>5} {'id':>4} {'arch':>4} {'reads/1k':>8} "
        f"{'drift':>5} {'drifted':>7} {'writes':>6} {'written':>7} {'walk s':>7} {'flush s':>7}"
    ]
    for w in walks:
        reads = w["reads"]
        label = w["walk"] + (" (no gov.)" if w["governor"] == "never waits" else "")
        lines.append(
            f"{label:<22} {w.get('latency_ms', 0):>5}ms {w['checked']:>7} {reads.get('by_email', 0):>5} "
            f"{reads.get('by_id', 0):>4} {reads.get('archived', 0):>4} {w['reads_per_1000']:>8} "
            f"{sum(w['drift'].values()):>5} {w['contacts_drifted_in_hubspot']:>7} "
            f"{sum(w['write_calls'].values()):>6} {w['contacts_written']:>7} {w['walk_seconds']:>7} "
            f"{w['flush_seconds']:>7}"
        )
    return "\n".join(lines)


def main() -> None:
    discard_logs()
    server = SandboxServer().start()
    try:
        token = server.state.add_private_app_token()
        bench, emails, seed_seconds = seed(server, token)
        try:
            first = server.state.contacts[server.state.email_index[emails[0]]]["properties"]
            audiences = sorted(n for n in first if n.startswith(bench.sync.settings.property_prefix))
            audience_property = audiences[0]
            names = ["firstname", "lastname", "city", *audiences]
            baseline = managed_values(server, emails, names)
            walks = [
                step("in sync", lambda: bench.walk("in sync")),
                step("in sync, no governor wait", lambda: bench.walk("in sync", governed=False)),
            ]
            changed = drift(server, emails, audience_property)
            walks.append(step("drift", lambda: bench.walk("drift", drifted=changed.contacts)))
            restored = changed.archived[: len(changed.archived) // 2]
            for address in restored:
                server.state.restore(_archived_id(server, address))
            walks.append(step("restored", lambda: bench.walk("restored", drifted=len(restored))))
            walks.append(step("after repair", lambda: bench.walk("after repair")))
            walks.append(
                step("after repair, no governor wait", lambda: bench.walk("after repair", governed=False))
            )
            ended = outcome(bench, changed, restored, baseline)
            concurrent: list[dict[str, Any]] = []
            for latency_ms in LATENCIES_MS:
                server.state.config.latency_ms = latency_ms
                row = step(f"after repair at {latency_ms} ms", lambda: bench.walk("after repair"))
                row["latency_ms"] = latency_ms
                walks.append(row)
                sequential = step(f"reads 1 at a time at {latency_ms} ms", lambda: bench.concurrent_reads(1))
                parallel = step(
                    f"reads {CONCURRENT_READS} at a time at {latency_ms} ms",
                    lambda: bench.concurrent_reads(CONCURRENT_READS),
                )
                concurrent.append(
                    {"latency_ms": latency_ms, "one_at_a_time": sequential, "concurrent": parallel}
                )
            server.state.config.latency_ms = 0
        finally:
            bench.sync.stop()
    finally:
        server.stop()
    result = {
        "benchmark": "reconcile",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "contacts": CONTACTS,
        "audiences": 2,
        "attributes": 3,
        "seed_sync_seconds": round(seed_seconds, 2),
        "invocation_seconds": INVOCATION_SECONDS,
        "governor": {
            "limit_per_10s": bench.sync.settings.tier_limit,
            "share": bench.sync.settings.share,
        },
        "drift": {
            "edited": len(changed.edited),
            "unmanaged_edits": len(changed.unmanaged),
            "archived": len(changed.archived),
            "restored_after_the_drift_walk": len(restored),
            "erased": len(changed.erased),
            "merged_pairs": len(changed.merged),
        },
        "goals": {"reads_per_1000_at_most": READS_PER_1000_GOAL, "writes_for_contacts_in_sync": 0},
        "walks": walks,
        "hubspot_after_repair": ended,
        "reads_by_email_concurrently": concurrent,
    }
    print(table(walks), file=sys.__stdout__)
    print(json.dumps({k: v for k, v in ended.items() if k != "merged_examples"}), file=sys.__stdout__)
    print(json.dumps(concurrent), file=sys.__stdout__)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


def _archived_id(server: SandboxServer, address: str) -> str:
    return next(
        contact_id
        for contact_id, contact in server.state.archived.items()
        if str(contact["properties"].get("email")).lower() == address
    )


if __name__ == "__main__":
    main()
