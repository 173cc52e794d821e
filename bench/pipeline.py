"""End-to-end benchmark on the embedded local stack: ingest API -> local SQS FIFO (moto with SQS's
FIFO receive, local/sqs_fifo.py) -> upsert handler (with its top-up) -> HubSpot sandbox.

The queue is drained by as many upsert function containers at once as the template's
MaxConcurrency (2), each with its own handler module (client, governor, schema cache) and its own
event source poller, as Lambda runs them; ``BENCH_CONSUMERS`` runs another number, deployed with
that MaxConcurrency (results in ``pipeline_<n>_consumers.json`` then).

For callers sending 1, 10, 100 and 1,000 profiles per request, with 8 and 16 shards:

- fresh: 1,000 new contacts with 2 audiences, posted while nothing consumes (a backlog), then drained;
- re-send: the same 1,000 contacts again, newer qualification times, half of them with a changed
  first name (the other half is a write identical to the last confirmed one).

Per row: HubSpot batch-upsert calls per 1,000 contacts, property set-up calls (schema reads,
group and property creation: a few per new set of audiences) counted apart, 429s, wall time
(posting + draining), and what explains the figure: contacts per upsert call and messages per
top-up receive. Prints a table and writes bench/results/pipeline.json. Measured, never asserted.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from bench.harness import aep_profiles, template_defaults
from local import stack as local_stack
from local.event_source import EventSourcePoller, PollerStats
from local.functions import handler

DEFAULT_CONSUMERS = int(template_defaults()["MaxConcurrency"])
#: Upsert containers consuming at once (the event source's MaximumConcurrency).
CONSUMERS = int(os.environ.get("BENCH_CONSUMERS", str(DEFAULT_CONSUMERS)))
RESULTS = (
    Path(__file__).resolve().parent
    / "results"
    / ("pipeline.json" if CONSUMERS == DEFAULT_CONSUMERS else f"pipeline_{CONSUMERS}_consumers.json")
)
#: Contacts per load. The issue's figure is per 1,000; a larger load (``BENCH_CONTACTS``) shows how
#: much of it is the drain's last partial calls, paid once per drain rather than per 1,000 contacts.
CONTACTS = int(os.environ.get("BENCH_CONTACTS", "1000"))
PER_REQUEST = tuple(int(n) for n in os.environ.get("BENCH_PER_REQUEST", "1,10,100,1000").split(","))
UPSERT_ROUTE = "POST batch_upsert"
#: Concurrent posters for the small-request rows (1,000 requests of one profile): more only make
#: the local queue (moto, in this process) answer slowly enough for read timeouts.
POSTERS = int(os.environ.get("BENCH_POSTERS", "1"))  # parallel posts overload moto on a 2-CPU machine


def load(
    prefix: str, qualified: str = "2026-11-20T09:15:00Z", changed: Callable[[int], bool] = lambda i: False
) -> list[dict[str, Any]]:
    return aep_profiles(CONTACTS, prefix, qualified=qualified, changed=changed)


class Probe:
    """Contacts per HubSpot upsert call and messages per top-up receive, read by wrapping the
    product's two methods for the run (the bench's instrument, not the product's)."""

    def __init__(self) -> None:
        self.call_sizes: list[int] = []
        self.receive_sizes: list[int] = []

    @contextmanager
    def installed(self) -> Iterator[Probe]:
        from hubspot_activation.hubspot.client import HubSpotClient
        from hubspot_activation.upsert.topup import QueueTopUp

        upsert, receive = HubSpotClient.batch_upsert, QueueTopUp._receive

        def counted_upsert(client: Any, inputs: Any, deadline: float | None = None) -> Any:
            self.call_sizes.append(len(inputs))
            return upsert(client, inputs, deadline)

        def counted_receive(topup: Any, count: int, wait: int) -> Any:
            received = receive(topup, count, wait)
            self.receive_sizes.append(len(received))
            return received

        HubSpotClient.batch_upsert = counted_upsert  # type: ignore[method-assign,assignment]
        QueueTopUp._receive = counted_receive  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            HubSpotClient.batch_upsert = upsert  # type: ignore[method-assign]
            QueueTopUp._receive = receive  # type: ignore[method-assign]


def post_all(stack: local_stack.LocalStack, profiles: list[dict[str, Any]], per_request: int) -> int:
    """Posts the load in requests of ``per_request`` profiles; returns how many requests."""
    bodies = [
        {"profiles": profiles[start : start + per_request]} for start in range(0, len(profiles), per_request)
    ]
    headers = {"Authorization": f"Bearer {stack.ingest_token}"}

    def post(session: requests.Session, body: dict[str, Any]) -> None:
        response = None
        for _ in range(5):
            # A 503 asks the caller to retry, and so does a read timeout: the local queue (moto in
            # this process, on a shared CPU) can be slow to answer parallel posts. A retried body
            # is queued once (SQS deduplicates it by content).
            try:
                response = session.post(stack.activations_url, json=body, timeout=60, headers=headers)
            except (requests.Timeout, requests.ConnectionError):
                continue
            if response.status_code != 503:
                break
        assert response is not None and response.status_code == 202, response and response.text
        assert response.json()["accepted"] == len(body["profiles"]), response.text

    sessions = [requests.Session() for _ in range(POSTERS)]
    with ThreadPoolExecutor(POSTERS) as pool:
        list(pool.map(post, [sessions[i % POSTERS] for i in range(len(bodies))], bodies))
    for session in sessions:
        session.close()
    return len(bodies)


def containers(stack: local_stack.LocalStack, count: int) -> list[EventSourcePoller]:
    """The stack's poller and ``count - 1`` more, each driving a cold-started upsert handler of
    its own: separate containers that share only the queue, the ledger and HubSpot."""
    extra = [
        replace(
            stack.poller,
            sqs=stack.aws.client("sqs"),
            handler=local_stack.without_metrics_output(handler("upsert", cold_start=True)),
            stats=PollerStats(),
            visibility_set=set(),
        )
        for _ in range(count - 1)
    ]
    return [stack.poller, *extra]


def drain(pollers: list[EventSourcePoller]) -> None:
    """Every container polls until the queue is empty, as the event source's concurrent batches do."""
    with ThreadPoolExecutor(len(pollers)) as pool:
        assert all(pool.map(lambda poller: poller.drain(timeout=900), pollers))


def run(
    stack: local_stack.LocalStack,
    pollers: list[EventSourcePoller],
    profiles: list[dict[str, Any]],
    per_request: int,
) -> dict[str, Any]:
    assert stack.sandbox is not None
    state = stack.sandbox.state
    requests_before, throttled_before = Counter(state.requests), sum(state.throttled.values())
    started = time.perf_counter()
    posted = post_all(stack, profiles, per_request)  # nothing consumes yet: a backlog
    posted_in = time.perf_counter() - started
    with Probe().installed() as probe:
        drain_started = time.perf_counter()
        drain(pollers)
        drained_in = time.perf_counter() - drain_started
    made = Counter(state.requests)
    made.subtract(requests_before)
    upserts = made.pop(UPSERT_ROUTE, 0)
    setup = sum(count for count in made.values() if count > 0)
    return {
        "requests_posted": posted,
        "upsert_calls": upserts,
        "upsert_calls_per_1000_contacts": round(upserts * 1000 / len(profiles), 1),
        "setup_calls": setup,
        "throttled_429": sum(state.throttled.values()) - throttled_before,
        "seconds": round(time.perf_counter() - started, 2),
        "post_seconds": round(posted_in, 2),
        "drain_seconds": round(drained_in, 2),
        "contacts_per_call": dict(sorted(Counter(probe.call_sizes).items())),
        "topup_receives": len(probe.receive_sizes),
        "messages_per_topup_receive": round(statistics.fmean(probe.receive_sizes), 2)
        if probe.receive_sizes
        else 0,
    }


def measure(shards: int) -> dict[str, dict[str, Any]]:
    saved = dict(os.environ)
    rows: dict[str, dict[str, Any]] = {}
    stack = local_stack.start(parameters={"ShardCount": shards, "MaxConcurrency": CONSUMERS})
    pollers = containers(stack, CONSUMERS)
    try:
        for per_request in PER_REQUEST:
            prefix = f"S{shards}R{per_request}"
            fresh = run(stack, pollers, load(prefix), per_request)
            rows[f"{shards} shards, {per_request}/req, fresh"] = fresh
            # Newer qualification times for everyone (so no body is a duplicate SQS would drop),
            # a changed first name for every other contact.
            resend = load(prefix, "2026-11-21T09:15:00Z", changed=lambda i: i % 2 == 1)
            rows[f"{shards} shards, {per_request}/req, re-send half changed"] = run(
                stack, pollers, resend, per_request
            )
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)
    return rows


def table(rows: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"{'load':<40} {'upserts/1,000':>13} {'set-up':>6} {'429s':>5} {'seconds':>8}  contacts per call",
    ]
    for name, row in rows.items():
        sizes = ", ".join(f"{size}x{count}" for size, count in row["contacts_per_call"].items())
        lines.append(
            f"{name:<40} {row['upsert_calls_per_1000_contacts']:>13} {row['setup_calls']:>6} "
            f"{row['throttled_429']:>5} {row['seconds']:>8}  {sizes}"
        )
    return "\n".join(lines)


def main() -> None:
    rows: dict[str, dict[str, Any]] = {}
    for shards in (int(value) for value in os.environ.get("BENCH_SHARDS", "8,16,48").split(",")):
        rows.update(measure(shards))
    # The local functions' metrics go to a swapped sys.stdout while requests run in parallel.
    print(f"{CONSUMERS} consumers\n{table(rows)}", file=sys.__stdout__)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "pipeline",
                "date": datetime.now(UTC).strftime("%Y-%m-%d"),
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                "contacts_per_load": CONTACTS,
                "consumers": CONSUMERS,
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
