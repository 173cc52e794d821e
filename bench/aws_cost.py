"""AWS cost per million updates on the embedded local stack, at 1, 10 and 100 profiles per request.

Per row, a fresh local stack (empty ledger, new HubSpot sandbox) takes ``BENCH_CONTACTS`` (1,000)
new contacts, AEP-shaped (two audiences, four attributes), posted through the local API in
requests of N profiles while nothing consumes (a backlog), then drained into the sandbox (answering
every call after ``BENCH_HUBSPOT_LATENCY_MS``, 300 ms, as real HubSpot often does) by the
consumer as the deployed event source runs it. A :class:`bench.cost.CostMeter` watches every
function the stack runs and every AWS call they (and the event source) make, and prices the
units at us-east-1 list prices: dollars per million updates (one update: one profile posted),
line by line.

Fixed costs are left out: the event source's polling of an empty queue (counted, not priced),
secrets' monthly fees, storage, logs, traces (see bench/cost.py for what the meter cannot see).

Lambda GB-seconds come two ways, side by side: this machine's wall time (in which moto, in this
process, answers a conditional write in tens of milliseconds), and the same with every AWS call
the function's threads make billed at a modeled AWS latency instead of its local time
(:data:`bench.cost.AWS_LATENCY_MS`: DynamoDB 5 ms a single item, 10 ms a batch or a query, SQS
15-20 ms, Lambda's asynchronous Invoke 15 ms, Secrets Manager 30 ms). HubSpot's calls (the
sandbox's configured latency), sleeps and CPU keep their local time. The total, and the goal, use
the modeled figure; the CPU time of the functions' threads is in the details.

Prints the table and writes bench/results/aws_cost.json (``BENCH_COST_RESULT``: another file
name in bench/results). Measured, never asserted, except that every contact reached HubSpot.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from bench.cost import (
    AWS_LATENCY_MS,
    DEFAULT_AWS_LATENCY_MS,
    CostMeter,
    function_memory,
    table,
    units_table,
)
from bench.harness import aep_profiles
from local import stack as local_stack
from local.template import translate

RESULTS = Path(__file__).resolve().parent / "results" / os.environ.get("BENCH_COST_RESULT", "aws_cost.json")
CONTACTS = int(os.environ.get("BENCH_CONTACTS", "1000"))
PER_REQUEST = tuple(int(n) for n in os.environ.get("BENCH_PER_REQUEST", "1,10,100").split(","))
#: HubSpot's answer time during the drain: the consumer is billed while it waits (real HubSpot
#: answers a batch upsert in a few hundred milliseconds; the sandbox at once).
HUBSPOT_LATENCY_MS = int(os.environ.get("BENCH_HUBSPOT_LATENCY_MS", "300"))
GOAL_AT_10_PER_REQUEST = 2.50
MODELED = (
    "Lambda GB-s (AWS latency) and the totals and goal read on it: each AWS call the functions make "
    f"is billed at a modeled latency, not its local time (ms: {dict(AWS_LATENCY_MS)}, other calls "
    f"{DEFAULT_AWS_LATENCY_MS}); HubSpot's answers, sleeps and CPU keep their local time. "
    "Lambda GB-s (local wall time): as measured here, moto answering for DynamoDB and SQS."
)


# --- The consumer: the one part of this bench that knows the design --------------------------------


def consume(stack: local_stack.LocalStack, meter: CostMeter) -> None:
    """Drain the queue as deployed: the merge function on the event source's batches, the flush
    function on its wake-ups and schedule, until no contact is pending."""
    meter.observe_event_source(stack.poller.sqs)
    if not local_stack.drain(stack, show=False, timeout=900):
        raise RuntimeError("the queue did not drain in 15 minutes")


def post_all(stack: local_stack.LocalStack, profiles: list[dict[str, Any]], per_request: int) -> int:
    """Posts the load through the local API in requests of ``per_request`` profiles (a 503 or a
    read timeout is retried, as a caller would: SQS drops the duplicate); returns how many."""
    headers = {"Authorization": f"Bearer {stack.ingest_token}"}
    posted = 0
    with requests.Session() as session:
        for start in range(0, len(profiles), per_request):
            body = {"profiles": profiles[start : start + per_request]}
            response = None
            for _ in range(5):
                try:
                    response = session.post(stack.activations_url, json=body, timeout=60, headers=headers)
                except (requests.Timeout, requests.ConnectionError):
                    continue
                if response.status_code != 503:
                    break
            if response is None or response.status_code != 202:
                raise RuntimeError(f"a request was not accepted: {response and response.text}")
            posted += 1
    return posted


# --- The measurement -----------------------------------------------------------------------------------


def measure(per_request: int, memory: dict[str, int]) -> dict[str, Any]:
    saved = dict(os.environ)
    meter = CostMeter(memory).attach()  # before the stack: clients copy the session's handlers
    # The flush function's schedule as deployed (every minute), not the local stack's seconds.
    stack = local_stack.start(instrument=meter.function, schedule_seconds=60.0)
    try:
        assert stack.sandbox is not None
        profiles = aep_profiles(CONTACTS, f"C{per_request}")
        started = time.perf_counter()
        requests_posted = post_all(stack, profiles, per_request)
        posted = time.perf_counter()
        stack.sandbox.state.config.latency_ms = HUBSPOT_LATENCY_MS
        consume(stack, meter)
        drained = time.perf_counter()
        contacts = len(stack.sandbox.state.contacts)
        if contacts != CONTACTS:
            raise RuntimeError(f"{contacts} of {CONTACTS} contacts reached HubSpot")
        report = meter.report(updates=len(profiles))
        report["run"] = {
            "requests_posted": requests_posted,
            "hubspot_requests": sum(stack.sandbox.state.requests.values()),
            "post_seconds": round(posted - started, 2),
            "drain_seconds": round(drained - posted, 2),
        }
        return report
    finally:
        meter.detach()
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)


def main() -> None:
    memory = function_memory(translate())
    rows = {f"{n}/request": measure(n, memory) for n in PER_REQUEST}
    # The local functions' metrics go to a swapped sys.stdout while requests run in parallel.
    print(
        f"{CONTACTS} contacts per row\n{table(rows)}\n\n{units_table(rows)}\n\n{MODELED}", file=sys.__stdout__
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "aws_cost",
                "date": datetime.now(UTC).strftime("%Y-%m-%d"),
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                "contacts_per_row": CONTACTS,
                "memory_mb": memory,
                "hubspot_latency_ms": HUBSPOT_LATENCY_MS,
                "excluded": "fixed costs: idle queue polling, monthly secret fees, storage, logs, traces",
                "modeled": MODELED,
                "goals": {"usd_per_million_updates_at_10_per_request": GOAL_AT_10_PER_REQUEST},
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
