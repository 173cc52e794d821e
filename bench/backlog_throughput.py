"""Backlog throughput against the HubSpot sandbox, and a naive connector in the same run.

A backlog of 50,000 contacts (callers sending 100, then 10 profiles per request - AEP's HTTP API
destination sends at most 10 - packed by the real ingest service; ``BENCH_PER_REQUEST`` changes
the list) is drained by 1 consumer, then by the template's ``MaxConcurrency`` (2) and by 4
(``BENCH_CONSUMERS`` changes the list), each run deployed with a MaxConcurrency of at least its
number of consumers. Each consumer is the real upsert path - the adapter's UpsertConsumer with its
top-up, SyncService, planner, property schema, HubSpot client, rate governor and credentials - talking
HTTP to the sandbox on loopback. SQS FIFO and DynamoDB (ledger, daily counter) are the in-memory
fakes of ``bench.fakes``; an event-source loop per consumer hands it up to 10 messages as Lambda's
does and deletes what the answer does not name.

HubSpot's 10-second window is scaled down (``BENCH_WINDOW_SECONDS``, 3 s by default) in the sandbox
and the governor alike: the figure is the ratio of contacts per second to the ceiling, configured
share x limit x 100 contacts per window. The first window's burst is left out of the rate (a
rolling window starts empty): rate = contacts of every call after the first window's budget /
time from the first call to the last. The busiest window is read from the sandbox's own count of
the calls (HubSpot counts a call when it arrives): at most the share x limit.

The naive connector writes one contact per request (POST, PATCH by email on 409), sequentially,
and on a 429 sleeps a fixed 10 s scaled like the window, as several open-source HubSpot targets do;
same sandbox, same limit (it may use all of it, more than our share).

Prints a table and writes bench/results/backlog_throughput.json.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from hubspot_activation.hubspot.governor import GovernorSettings
from hubspot_activation.upsert.properties import audience_property_name

from bench.fakes import MemoryDailyCounter, MemoryFifo, MemoryLedger, sqs_event
from bench.harness import (
    CallLog,
    Consumer,
    aep_profiles,
    build_consumer,
    discard_logs,
    ingest_backlog,
    invoke,
    template_defaults,
)
from local.hubspot_sandbox import SandboxConfig, SandboxServer, SandboxState

RESULTS = Path(__file__).resolve().parent / "results" / "backlog_throughput.json"
CONTACTS = int(os.environ.get("BENCH_CONTACTS", "50000"))
WINDOW_SECONDS = float(os.environ.get("BENCH_WINDOW_SECONDS", "3"))
PER_REQUEST = [int(n) for n in os.environ.get("BENCH_PER_REQUEST", "100,10").split(",")]
CONSUMERS = os.environ.get("BENCH_CONSUMERS", "")
NAIVE_WINDOWS = 5


def event_source(consumer: Consumer, fifo: MemoryFifo, stats: dict[str, int]) -> None:
    """Lambda's SQS event source for one concurrent function: batches of up to 10 messages, the
    messages not named in batchItemFailures deleted, the named ones left to their visibility."""
    while len(fifo):
        batch = fifo.receive(10)
        if not batch:
            time.sleep(0.002)  # every group with messages is in flight elsewhere
            continue
        answer = invoke(consumer, sqs_event(batch))
        failed = {item["itemIdentifier"] for item in answer["batchItemFailures"]}
        stats["failed_items"] += len(failed)
        for message in batch:
            if message.message_id not in failed:
                fifo.delete(message.receipt_handle)


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
    server: SandboxServer, consumers: int, per_request: int, defaults: dict[str, Any], prefix: str
) -> dict[str, Any]:
    limit = server.state.config.ten_second_limit
    governor = GovernorSettings(
        limit_per_window=limit,
        window_seconds=WINDOW_SECONDS,
        share=float(defaults["HubSpotLimitShare"]),
        # Running more consumers than the template's default is deploying a larger MaxConcurrency.
        concurrency=max(consumers, int(defaults["MaxConcurrency"])),
    )
    fifo, ledger, daily, log = MemoryFifo(), MemoryLedger(), MemoryDailyCounter(), CallLog()
    token = server.state.add_private_app_token()
    pool = [build_consumer(server.url, token, governor, fifo, ledger, daily, log) for _ in range(consumers)]
    # Property set-up (group, audience properties, one read of the definitions per container) is
    # counted apart: it happens once per set of audiences, not per contact.
    for index, consumer in enumerate(pool):
        ingest_backlog(fifo, 1, 1, int(defaults["ShardCount"]), f"{prefix}warmup{index}")
        event_source(consumer, fifo, {"failed_items": 0})
    setup_requests = sum(c.client.requests_sent for c in pool)
    time.sleep(WINDOW_SECONDS * 1.1)  # an empty window to start from
    log.calls.clear()
    counted_since = server.state.clock()
    messages = ingest_backlog(fifo, CONTACTS, per_request, int(defaults["ShardCount"]), prefix)
    throttled_before = sum(server.state.throttled.values())
    stats = {"failed_items": 0}
    started, cpu = time.monotonic(), time.process_time()
    threads = [threading.Thread(target=event_source, args=(c, fifo, stats)) for c in pool]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    calls = len(log.calls)
    written = sum(size for _, size in log.calls)
    ceiling = governor.budget * 100 / WINDOW_SECONDS
    rate = steady_rate(log.calls, governor.budget)
    return {
        "profiles_per_request": per_request,
        "consumers": consumers,
        "queue_messages": messages,
        "contacts_written": written,
        "batch_upsert_calls": calls,
        "contacts_per_call": round(written / calls, 1),
        # how far from full the calls were: {contacts: calls}, the partial ones are the loss
        "calls_by_size": dict(sorted(Counter(size for _, size in log.calls).items(), reverse=True)),
        # above the budget: the consumers together overran their share (as HubSpot counts calls)
        "most_calls_in_a_window": server.state.busiest_window(token, since=counted_since),
        "budget_per_window": governor.budget,
        "other_requests": sum(c.client.requests_sent for c in pool) - setup_requests - calls,
        "setup_requests": setup_requests,
        "throttled_429": sum(server.state.throttled.values()) - throttled_before,
        "failed_items": stats["failed_items"],
        "seconds": round(elapsed, 2),
        # consumers and the in-process sandbox together: the machine is not what limits the rate
        "process_cpu_seconds": round(cpu, 2),
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
    requests_made = 0
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
            response = session.post(base, json={"properties": properties}, timeout=10)
            if response.status_code == 409:
                requests_made += 1
                response = session.patch(
                    f"{base}/{email}", params={"idProperty": "email"}, json={"properties": properties}
                )
            if response.status_code != 429:
                break
            time.sleep(back_off)
        if response.ok:
            done.append(time.monotonic())
    rate = steady_rate([(t, 1) for t in done], server.state.config.ten_second_limit)
    return {
        "contacts_written": len(done),
        "requests": requests_made,
        "requests_per_contact": round(requests_made / max(1, len(done)), 3),
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
        default_counts = [1, int(defaults["MaxConcurrency"]), 4]
        counts = [int(n) for n in CONSUMERS.split(",")] if CONSUMERS else default_counts
        runs = [drain(server, n, size, defaults, f"s{size}c{n}") for size in PER_REQUEST for n in counts]
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
        f"backlog {CONTACTS:,} contacts, {defaults['ShardCount']} shards, window {WINDOW_SECONDS:g} s "
        f"(HubSpot's 10 s scaled), limit {config.ten_second_limit}, share {defaults['HubSpotLimitShare']}"
    )
    header = ("profiles/req", "consumers", "contacts/s", "ceiling", "share", "contacts/call", "429s", "s")
    print(
        f"{header[0]:>12} {header[1]:>9} {header[2]:>11} {header[3]:>8} {header[4]:>7} {header[5]:>13} "
        f"{header[6]:>5} {header[7]:>6}  calls in the busiest window / budget"
    )
    for run in runs:
        print(
            f"{run['profiles_per_request']:>12} {run['consumers']:>9} {run['contacts_per_second']:>11} "
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
