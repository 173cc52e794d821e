"""The pipeline with HubSpot answering slowly: does an invocation still finish its batch?

The embedded local stack (ingest API -> local SQS FIFO -> upsert handler -> HubSpot sandbox, as in
``bench.pipeline``) with the sandbox answering every call after a fixed latency (its
``latency_ms`` fault setting): 300 ms, 700 ms (real HubSpot is often that slow) and 1 s. For each,
5,000 new contacts are posted in AEP-sized requests of 1,000 profiles while nothing consumes, then
drained by 2 consumers (the default ``MaxConcurrency``), each its own container (handler module,
HubSpot client, governor), polling the queue like the event source.

Per row: contacts sent back for time (the invocation had no time left to start their call:
``contactsOutOfTime`` in the function's logs), contacts retried after a failure, invocations,
drain time, the longest invocation against the function's timeout, HubSpot upsert calls and 429s.
Prints a table and writes bench/results/latency.json. Measured, never asserted.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import aep_profiles
from bench.pipeline import UPSERT_ROUTE, post_all
from local import stack as local_stack
from local.event_source import EventSourcePoller, Handler, PollerStats
from local.functions import handler

RESULTS = Path(__file__).resolve().parent / "results" / "latency.json"
CONTACTS = int(os.environ.get("BENCH_CONTACTS", "5000"))
PER_REQUEST = 1000
CONSUMERS = int(os.environ.get("BENCH_CONSUMERS", "2"))
LATENCIES_MS = tuple(int(n) for n in os.environ.get("BENCH_LATENCIES_MS", "300,700,1000").split(","))
FIELDS = ("synced", "failed", "retriedLater", "contactsOutOfTime", "contactsHeldBack", "hubspotRequests")
#: A drain that has not ended by then is reported as such.
DRAIN_TIMEOUT_SECONDS = 900.0


@dataclass
class Timed:
    """The handler of one container, noting how long each of its invocations took."""

    function: Handler
    seconds: list[float] = field(default_factory=list)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return self.function(event, context)
        finally:
            self.seconds.append(time.perf_counter() - started)


def consumers(stack: local_stack.LocalStack, count: int) -> list[tuple[EventSourcePoller, Timed]]:
    """``count`` consumers of the stack's queue: its own poller and more, each with a handler loaded
    anew (a container of its own: module caches, HubSpot client and governor)."""
    functions = [stack.poller.handler]
    functions += [
        local_stack.without_metrics_output(handler("upsert", cold_start=True)) for _ in range(count - 1)
    ]
    pollers = []
    for function in functions:
        timed = Timed(function)
        # Each poller its own counts and its own note of the visibilities its function set.
        poller = replace(stack.poller, handler=timed, stats=PollerStats(), visibility_set=set())
        pollers.append((poller, timed))
    return pollers


def drain(pollers: list[EventSourcePoller], timeout: float) -> bool:
    """Every poller polls until the queue is empty (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    drained = threading.Event()

    def consume(poller: EventSourcePoller) -> None:
        while not drained.is_set() and time.monotonic() < deadline:
            if poller.poll_once():
                continue
            if poller.pending() == 0:
                drained.set()
                return
            time.sleep(0.2)

    threads = [
        threading.Thread(target=consume, args=(p,), name=f"consumer-{i}") for i, p in enumerate(pollers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return drained.is_set()


def run(latency_ms: int) -> dict[str, Any]:
    saved = dict(os.environ)
    stack = local_stack.start()
    reports = local_stack.BatchReports(FIELDS)
    from hubspot_activation.observability import logger as library_logger  # loaded with the handlers

    library_logger._logger.addHandler(reports)
    try:
        assert stack.sandbox is not None
        state = stack.sandbox.state
        post_all(stack, aep_profiles(CONTACTS, f"L{latency_ms}-{uuid.uuid4().hex[:6]}"), PER_REQUEST)
        state.config.latency_ms = latency_ms
        pollers = consumers(stack, CONSUMERS)
        started = time.perf_counter()
        drained = drain([poller for poller, _ in pollers], DRAIN_TIMEOUT_SECONDS)
        drained_in = time.perf_counter() - started
        durations = [seconds for _, timed in pollers for seconds in timed.seconds]
        totals = reports.totals
        return {
            "latency_ms": latency_ms,
            "drained": drained,
            "contacts_sent_back_for_time": totals["contactsOutOfTime"],
            "contacts_retried_after_failure": totals["retriedLater"],
            "contacts_held_back": totals["contactsHeldBack"],
            "contacts_synced": totals["synced"],
            "contacts_in_hubspot": len(state.contacts),
            "invocations": sum(poller.stats.invocations for poller, _ in pollers),
            "drain_seconds": round(drained_in, 2),
            "longest_invocation_seconds": round(max(durations, default=0.0), 2),
            "function_timeout_seconds": stack.poller.function_timeout,
            "upsert_calls": state.requests[UPSERT_ROUTE],
            "throttled_429": sum(state.throttled.values()),
        }
    finally:
        library_logger._logger.removeHandler(reports)
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'latency':>8} {'sent back for time':>18} {'retried':>8} {'invocations':>11} "
        f"{'drain s':>8} {'longest s':>9} {'upserts':>7} {'429s':>5}"
    ]
    for row in rows:
        lines.append(
            f"{row['latency_ms']:>6}ms {row['contacts_sent_back_for_time']:>18} "
            f"{row['contacts_retried_after_failure']:>8} {row['invocations']:>11} {row['drain_seconds']:>8} "
            f"{row['longest_invocation_seconds']:>9} {row['upsert_calls']:>7} {row['throttled_429']:>5}"
        )
    return "\n".join(lines)


def main() -> None:
    rows = [run(latency_ms) for latency_ms in LATENCIES_MS]
    # The local functions' metrics go to a swapped sys.stdout while they run.
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
                "consumers": CONSUMERS,
                "goals": {"contacts_sent_back_for_time": 0},
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
