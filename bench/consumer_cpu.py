"""Consumer CPU per 1,000 contacts, and the peak memory of a full batch, without network waits.

The real upsert path runs - the adapter's UpsertConsumer (event decoding, top-up, settling),
SyncService, the planner (coalesce, ledger diff, plan, coercion), the HubSpot client (request
bodies, answer mapping, governor) and the outcome records - on one thread whose CPU time
(``time.thread_time``) is measured. The property schema is loaded from the sandbox first; then the
client's HTTP session answers batch upserts in-process and instantly (``InstantHubSpot``, a
requests transport adapter), so no socket, no sandbox and no wait is counted, and the governor's
limit is raised so it never sleeps. SQS and DynamoDB are the in-memory fakes of ``bench.fakes``.

- CPU: a backlog of 20,000 contacts (AEP exports, 100 profiles per request, 8 shards) drained by
  event-source batches of 10 messages plus the top-up; then the same load again (every contact
  unchanged: ledger diff only).
- Memory (tracemalloc peak): one invocation of 10 event-source messages and a full top-up (90
  more) of the largest messages ingest makes (~256 KiB), with a ledger that keeps nothing (DynamoDB
  holds it in AWS, not the function's memory). Lambda gives the function 512 MB.

Prints a table and writes bench/results/consumer_cpu.json.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests
from hubspot_activation.hubspot.governor import GovernorSettings
from hubspot_activation.settings import UpsertSettings
from hubspot_activation.upsert.ledger import LedgerEntry
from requests.adapters import BaseAdapter

from bench.fakes import MemoryDailyCounter, MemoryFifo, MemoryLedger, sqs_event
from bench.harness import (
    CallLog,
    Consumer,
    build_consumer,
    discard_logs,
    ingest_backlog,
    invoke,
    template_defaults,
)
from local.hubspot_sandbox import SandboxServer, SandboxState

RESULTS = Path(__file__).resolve().parent / "results" / "consumer_cpu.json"
CONTACTS = 20_000


class InstantHubSpot(BaseAdapter):
    """HubSpot's batch upsert answered at once in-process: every input created, ids by trace."""

    def __init__(self) -> None:
        super().__init__()
        self._next_id = 1

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        assert request.url is not None and request.url.split("?")[0].endswith("/batch/upsert")
        assert request.body is not None
        inputs = json.loads(request.body)["inputs"]
        results = []
        for item in inputs:
            results.append(
                {
                    "id": str(self._next_id),
                    "new": True,
                    "objectWriteTraceId": item["objectWriteTraceId"],
                    "properties": item["properties"],
                }
            )
            self._next_id += 1
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps({"status": "COMPLETE", "results": results}).encode()
        response.headers.update({"Content-Type": "application/json", "X-HubSpot-RateLimit-Remaining": "99"})
        response.request = request
        response.url = request.url
        return response

    def close(self) -> None:
        return None


class ForgetfulLedger:
    """The ledger Protocol keeping nothing: in AWS the ledger lives in DynamoDB, not in memory."""

    def get_many(self, emails: Sequence[str]) -> dict[str, LedgerEntry]:
        return {}

    def put_many(self, entries: Sequence[LedgerEntry]) -> dict[str, str]:
        return {}


def consumer(server: SandboxServer, fifo: MemoryFifo, ledger: Any) -> Consumer:
    """A consumer whose property schema is loaded from the sandbox, then cut off from the network."""
    governor = GovernorSettings(limit_per_window=1_000_000, share=1.0)
    built = build_consumer(
        server.url,
        server.state.add_private_app_token(),
        governor,
        fifo,
        ledger,
        MemoryDailyCounter(),
        CallLog(),
    )
    ingest_backlog(fifo, 1, 1, 8, "warmup")  # creates the audience properties, loads the schema
    drain(built, fifo)
    built.session.mount("http://", InstantHubSpot())
    return built


def drain(built: Consumer, fifo: MemoryFifo) -> int:
    invocations = 0
    while len(fifo):
        batch = fifo.receive(10)
        answer = invoke(built, sqs_event(batch))
        # Nothing fails here; a returned message is one the function held back to keep its calls
        # full (it made it visible again itself): it comes back in a later receive.
        returned = {item["itemIdentifier"] for item in answer["batchItemFailures"]}
        for message in batch:
            if message.message_id not in returned:
                fifo.delete(message.receipt_handle)
        invocations += 1
    return invocations


def cpu_per_thousand(server: SandboxServer, shards: int) -> dict[str, Any]:
    fifo, ledger = MemoryFifo(), MemoryLedger()
    built = consumer(server, fifo, ledger)
    rows: dict[str, Any] = {}
    for load in ("fresh", "re-send (all unchanged)"):
        ingest_backlog(fifo, CONTACTS, 100, shards, "cpu")
        requests_before = built.client.requests_sent
        started = time.thread_time()
        invocations = drain(built, fifo)
        cpu = time.thread_time() - started
        rows[load] = {
            "contacts": CONTACTS,
            "invocations": invocations,
            "hubspot_requests": built.client.requests_sent - requests_before,
            "cpu_seconds": round(cpu, 3),
            "cpu_ms_per_1000_contacts": round(cpu * 1000 * 1000 / CONTACTS, 1),
        }
    return rows


def peak_memory(server: SandboxServer) -> dict[str, Any]:
    fifo = MemoryFifo()
    built = consumer(server, fifo, ForgetfulLedger())
    room = UpsertSettings(ledger_table="-", hubspot_secret_id="-").top_up_max_messages  # noqa: S106
    # Messages of 10,000-profile requests fill to the 256 KiB limit; 16 groups with 10 such
    # messages each, because a FIFO group hands out one receive (10 messages) at a time.
    ingest_backlog(fifo, 120_000, 10_000, 16, "mem")
    batch = fifo.receive(10)  # what the event source hands over
    while len(batch) < 10 + room:  # the top-up, received the way it receives
        received = fifo.receive(min(10, 10 + room - len(batch)))
        if not received:
            break
        batch.extend(received)
    # The whole batch at once: the top-up would stop at the next multiple of 100 contacts, long
    # before 90 messages this large; this is the bound its message cap allows.
    built.upsert.topup = None
    tracemalloc.start()
    answer = built.upsert.handle(sqs_event(batch))
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert not answer["batchItemFailures"]
    return {
        "messages": len(batch),
        "message_bytes_total": sum(len(m.body.encode()) for m in batch),
        "largest_message_bytes": max(len(m.body.encode()) for m in batch),
        "contacts": sum(len(json.loads(m.body)["updates"]) for m in batch),
        "peak_mib": round(peak / 2**20, 1),
    }


def _print(rows: Mapping[str, Any], memory: Mapping[str, Any]) -> None:
    print(f"{'load':<26} {'contacts':>8} {'HubSpot calls':>13} {'CPU s':>7} {'CPU ms/1000 contacts':>21}")
    for name, row in rows.items():
        print(
            f"{name:<26} {row['contacts']:>8} {row['hubspot_requests']:>13} {row['cpu_seconds']:>7} "
            f"{row['cpu_ms_per_1000_contacts']:>21}"
        )
    print(
        f"full batch: {memory['messages']} messages ({memory['message_bytes_total'] / 2**20:.1f} MiB, "
        f"{memory['contacts']:,} contacts): peak {memory['peak_mib']} MiB (tracemalloc)"
    )


def main() -> None:
    discard_logs()
    shards = int(template_defaults()["ShardCount"])
    server = SandboxServer(SandboxState()).start()
    try:
        rows = cpu_per_thousand(server, shards)
        memory = peak_memory(server)
    finally:
        server.stop()
    _print(rows, memory)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"benchmark": "consumer_cpu", "shards": shards, "cpu": rows, "full_batch_memory": memory},
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
