"""Backlog throughput against the HubSpot sandbox, and a naive connector in the same run.

A backlog of 50,000 contacts (callers sending 100, then 10 profiles per request - AEP's HTTP API
destination sends at most 10 - packed by the real ingest service; ``BENCH_PER_REQUEST`` changes
the list) is queued while nothing consumes, then synced: the merge functions (the template's
MaxConcurrency) merge it into the contacts' states while the flush function writes HubSpot from
them, with the template's default lanes (1) and with 4 (``BENCH_LANES`` changes the list), each
lane's run in its own container with its own governor. They are the product's functions, built
by its builders (``bench.harness``) on the in-memory queue and ledger of ``bench.fakes``, talking
HTTP to the sandbox on loopback.

``BENCH_MERGED_FIRST=1`` merges the whole backlog before the flush function is woken (results in
``backlog_throughput_merged_first.json``): the flush's own use of the share, apart from how fast
this machine's merges feed it (here they share the process and two CPUs with the flushes and the
sandbox; in AWS each merge has its own).

HubSpot's 10-second window is the sandbox's and the governor's (``BENCH_WINDOW_SECONDS`` scales
it in both; a shorter one asks more contacts per second of the in-process merges, flushes and
sandbox than two shared CPUs give): the figure is the ratio of contacts per second to the ceiling,
configured share x limit x 100 contacts per window. The first window's burst is left out of the
rate (a rolling window starts empty): rate = contacts of every call after the first window's
budget / time from the first call to the last. The busiest window is read from the sandbox's own
count of the calls (HubSpot counts a call when it arrives): at most the share x limit.

The naive connector writes one contact per request (POST, PATCH by email on 409), sequentially,
and on a 429 sleeps a fixed 10 s scaled like the window, as several open-source HubSpot targets do;
same sandbox, same limit (it may use all of it, more than our share).

Prints a table and writes bench/results/backlog_throughput.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from hubspot_activation.upsert.properties import audience_property_name

from bench.harness import aep_profiles, build_sync, discard_logs, ingest_backlog, template_defaults
from local.hubspot_sandbox import SandboxConfig, SandboxServer, SandboxState

#: Merge the whole backlog before the flush function is woken: the flush's use of the share, apart
#: from how fast this machine's merges (in the same process, on the same CPUs) feed it.
MERGED_FIRST = os.environ.get("BENCH_MERGED_FIRST", "") == "1"
RESULTS = (
    Path(__file__).resolve().parent
    / "results"
    / ("backlog_throughput_merged_first.json" if MERGED_FIRST else "backlog_throughput.json")
)
CONTACTS = int(os.environ.get("BENCH_CONTACTS", "50000"))
WINDOW_SECONDS = float(os.environ.get("BENCH_WINDOW_SECONDS", "10"))
PER_REQUEST = [int(n) for n in os.environ.get("BENCH_PER_REQUEST", "100,10").split(",")]
LANES = os.environ.get("BENCH_LANES", "")
NAIVE_WINDOWS = 5
#: Contacts synced before the measure, so every container's property set-up is done.
WARM_UP_CONTACTS = 200


def steady_rate(calls: list[tuple[float, int]], budget: int) -> float:
    """Contacts per second over whole windows. At the ceiling, calls k*budget .. (k+1)*budget - 1
    go out k windows after the first call, so whole windows run from the first call to the first
    call of a later window; the last window of a drain, partly used, is left out."""
    calls = sorted(calls)
    windows = (len(calls) - 1) // budget
    if windows < 1:
        return float("nan")
    end = windows * budget
    return sum(size for _, size in calls[:end]) / (calls[end][0] - calls[0][0])


def drain(
    server: SandboxServer, lanes: int, per_request: int, defaults: dict[str, Any], prefix: str
) -> dict[str, Any]:
    limit = server.state.config.ten_second_limit
    token = server.state.add_private_app_token()
    sync = build_sync(server.url, token, lanes=lanes, window_seconds=WINDOW_SECONDS, limit=limit)
    try:
        # Property set-up (group, audience properties, a read of the definitions per container) is
        # counted apart: it happens once per set of audiences, not per contact.
        ingest_backlog(
            sync.fifo, aep_profiles(WARM_UP_CONTACTS, f"{prefix}warmup"), 100, sync.settings.shard_count
        )
        assert sync.run(), "the warm-up did not sync"
        setup_requests = sum(client.requests_sent for client in sync.clients)
        time.sleep(WINDOW_SECONDS * 1.1)  # an empty window to start from
        sync.log.calls.clear()
        counted_since = server.state.clock()
        _requests, messages = ingest_backlog(
            sync.fifo, aep_profiles(CONTACTS, prefix), per_request, sync.settings.shard_count
        )
        throttled_before = sum(server.state.throttled.values())
        started, cpu = time.monotonic(), time.process_time()
        drained = sync.run(merge_first=MERGED_FIRST)
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
        reports = dict(sync.reports.totals)
    finally:
        sync.stop()
    budget = max(1, int(limit * sync.settings.share))
    calls = len(sync.log.calls)
    written = sum(size for _, size in sync.log.calls)
    ceiling = budget * 100 / WINDOW_SECONDS
    rate = steady_rate(sync.log.calls, budget)
    return {
        "profiles_per_request": per_request,
        "merged_first": MERGED_FIRST,
        "flush_lanes": lanes,
        "merge_functions": len(sync.merges),
        "queue_messages": messages,
        "drained": drained,
        "contacts_written": written,
        "batch_upsert_calls": calls,
        "contacts_per_call": round(written / calls, 1),
        # how far from full the calls were: {contacts: calls}, the partial ones are the loss
        "calls_by_size": dict(sorted(Counter(size for _, size in sync.log.calls).items(), reverse=True)),
        # above the budget: the lanes together overran their share (as HubSpot counts calls)
        "most_calls_in_a_window": server.state.busiest_window(token, since=counted_since),
        "budget_per_window": budget,
        "other_requests": sum(client.requests_sent for client in sync.clients) - setup_requests - calls,
        "setup_requests": setup_requests,
        "throttled_429": sum(server.state.throttled.values()) - throttled_before,
        "retried_later": reports.get("retriedLater", 0),
        "failed": reports.get("failed", 0),
        "seconds": round(elapsed, 2),
        # merges, flushes and the in-process sandbox together: the machine is not what limits the rate
        "process_cpu_seconds": round(cpu, 2),
        "dynamodb_calls": dict(sorted(sync.dynamodb.calls.items())),
        "contacts_per_second": round(rate, 1),
        "ceiling_contacts_per_second": round(ceiling, 1),
        "share_of_ceiling": round(rate / ceiling, 4),
    }


def naive(server: SandboxServer, prefix: str) -> dict[str, Any]:
    """One request per contact, a fixed back-off on 429, for ``NAIVE_WINDOWS`` windows."""
    token = server.state.add_private_app_token()
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}"})
    base = f"{server.url}/crm/v3/objects/contacts"
    back_off = 10.0 * WINDOW_SECONDS / 10.0  # the fixed 10 s, scaled like the window
    throttled_before = sum(server.state.throttled.values())
    done: list[float] = []
    requests_made = timeouts = 0
    deadline = time.monotonic() + NAIVE_WINDOWS * WINDOW_SECONDS
    index = 0
    while time.monotonic() < deadline:
        profile = aep_profiles(1, prefix, index)[0]
        index += 1
        email = profile["identityMap"]["Email"][0]["id"].lower()
        properties = {
            "email": email,
            "firstname": profile["person"]["name"]["firstName"],
            "lastname": profile["person"]["name"]["lastName"],
            "city": profile["workAddress"]["city"],
            "country": profile["workAddress"]["country"],
            **{
                audience_property_name(audience, "aud_"): membership["status"]
                for audience, membership in profile["segmentMembership"]["ups"].items()
            },
        }
        while True:
            requests_made += 1
            try:
                response = session.post(base, json={"properties": properties}, timeout=10)
                if response.status_code == 409:
                    requests_made += 1
                    response = session.patch(
                        f"{base}/{email}", params={"idProperty": "email"}, json={"properties": properties}
                    )
            except requests.RequestException:
                timeouts += 1  # given up on, as such a connector would
                break
            if response.status_code != 429:
                if response.ok:
                    done.append(time.monotonic())
                break
            time.sleep(back_off)
    rate = steady_rate([(t, 1) for t in done], server.state.config.ten_second_limit)
    return {
        "contacts_written": len(done),
        "requests": requests_made,
        "requests_per_contact": round(requests_made / max(1, len(done)), 3),
        "requests_timed_out": timeouts,
        "throttled_429": sum(server.state.throttled.values()) - throttled_before,
        "seconds": round(NAIVE_WINDOWS * WINDOW_SECONDS, 2),
        "contacts_per_second": round(rate, 1),
    }


def main() -> None:
    discard_logs()
    defaults = template_defaults()
    config = SandboxConfig(
        ten_second_limit=int(defaults["HubSpotTenSecondLimit"]), window_ms=int(WINDOW_SECONDS * 1000)
    )
    server = SandboxServer(SandboxState(config=config)).start()
    try:
        counts = [int(n) for n in LANES.split(",")] if LANES else [int(defaults["FlushLanes"]), 4]
        runs = []
        for size in PER_REQUEST:
            for lanes in counts:
                runs.append(drain(server, lanes, size, defaults, f"s{size}l{lanes}"))
                print(json.dumps(runs[-1]), file=sys.__stdout__, flush=True)
        # After ours: it writes the audience properties our first run created.
        baseline = naive(server, "naive")
    finally:
        server.stop()
    # The comparison uses our slowest run: the naive connector's rate does not depend on them.
    slowest = min(runs, key=lambda run: run["contacts_per_second"])
    ratio = slowest["contacts_per_second"] / baseline["contacts_per_second"]
    requests_per_contact = max(run["batch_upsert_calls"] / run["contacts_written"] for run in runs)
    _print(runs, baseline, defaults, config, ratio, requests_per_contact)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "backlog_throughput",
                "contacts": CONTACTS,
                "shards": int(defaults["ShardCount"]),
                "window_seconds": WINDOW_SECONDS,
                "limit_per_window": config.ten_second_limit,
                "share": float(defaults["HubSpotLimitShare"]),
                "runs": runs,
                "naive": baseline,
                "slowest_ours_vs_naive_contacts_per_second": round(ratio, 1),
                "ours_requests_per_contact_at_most": round(requests_per_contact, 4),
            },
            indent=2,
        )
        + "\n"
    )


def _print(
    runs: list[dict[str, Any]],
    baseline: dict[str, Any],
    defaults: dict[str, Any],
    config: SandboxConfig,
    ratio: float,
    requests_per_contact: float,
) -> None:
    print(
        f"backlog {CONTACTS:,} contacts, {defaults['ShardCount']} shards, window {WINDOW_SECONDS:g} s, "
        f"limit {config.ten_second_limit}, share {defaults['HubSpotLimitShare']}"
    )
    header = ("profiles/req", "lanes", "contacts/s", "ceiling", "share", "contacts/call", "429s", "s")
    print(
        f"{header[0]:>12} {header[1]:>9} {header[2]:>11} {header[3]:>8} {header[4]:>7} {header[5]:>13} "
        f"{header[6]:>5} {header[7]:>6}  calls in the busiest window / budget"
    )
    for run in runs:
        print(
            f"{run['profiles_per_request']:>12} {run['flush_lanes']:>9} {run['contacts_per_second']:>11} "
            f"{run['ceiling_contacts_per_second']:>8} {run['share_of_ceiling']:>7.1%} "
            f"{run['contacts_per_call']:>13} {run['throttled_429']:>5} {run['seconds']:>6}  "
            f"{run['most_calls_in_a_window']} / {run['budget_per_window']}"
        )
    print(
        f"naive (1 request per contact, fixed {WINDOW_SECONDS:g} s back-off): "
        f"{baseline['contacts_per_second']} contacts/s, {baseline['requests_per_contact']} requests per "
        f"contact, {baseline['throttled_429']} x 429. Ours, slowest run: {ratio:.0f}x its contacts per "
        f"second, at most {requests_per_contact:.3f} requests per contact"
    )


if __name__ == "__main__":
    main()
