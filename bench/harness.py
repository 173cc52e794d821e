"""What the consumer benchmarks share: callers' profiles, a backlog packed by the real ingest
service, and the real upsert consumer (adapter, top-up, SyncService, planner, HubSpot client,
governor, credentials) wired to the in-memory queue and ledger of ``bench.fakes``."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from hubspot_activation.hubspot.batch import UpsertInput, UpsertResult
from hubspot_activation.hubspot.client import CallStats, HubSpotClient, new_session
from hubspot_activation.hubspot.governor import GovernorSettings, RateGovernor
from hubspot_activation.ingest.service import IngestService
from hubspot_activation.observability import logger, metrics
from hubspot_activation.settings import IngestSettings, UpsertSettings
from hubspot_activation.upsert.adapter import UpsertConsumer
from hubspot_activation.upsert.wiring import consumer, hubspot_client

from bench.fakes import MemoryDailyCounter, MemoryFifo, MemoryLedger
from local.template import load_sam, parameter_defaults

#: Logs and metrics are formatted as in Lambda (their cost is the product's) and thrown away.
_DISCARD: io.TextIOWrapper = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/000000000000/bench.fifo"
AUDIENCES = ["a1b2c3d4-0000-4000-8000-000000000001", "a1b2c3d4-0000-4000-8000-000000000002"]


def template_defaults() -> dict[str, Any]:
    """The deployed defaults (MaxConcurrency, limit, share, shards), read from template.yaml;
    ``BENCH_SHARDS`` overrides ShardCount, to compare shard counts without editing the template."""
    defaults = parameter_defaults(load_sam())
    if os.environ.get("BENCH_SHARDS"):
        defaults["ShardCount"] = int(os.environ["BENCH_SHARDS"])
    return defaults


def email(prefix: str, i: int) -> str:
    """A deterministic address whose shard (CRC32 mod ShardCount) is as scattered as real ones'.

    ``User{i}`` alone is not: CRC32 is affine in its input bits, so consecutive numbers fall on
    the shards in a rigid pattern (100 consecutive addresses hit exactly 8 of 16 shards, 12 or 13
    each, instead of ~16 shards with 1 to ~15 each), which shapes every message and every batch."""
    tag = hashlib.blake2b(f"{prefix}:{i}".encode(), digest_size=4).hexdigest()
    return f"{prefix}.User{i}.{tag}@Example.com"


def aep_profiles(
    count: int,
    prefix: str,
    offset: int = 0,
    qualified: str = "2026-11-20T09:15:00Z",
    changed: Callable[[int], bool] = lambda i: False,
) -> list[dict[str, Any]]:
    """AEP profile exports as the HTTP API destination sends them: two audiences, four attributes.
    ``qualified`` is every audience's qualification time; profile ``i`` gets another first name
    when ``changed(i)`` (a re-send where some profiles changed)."""
    return [
        {
            "identityMap": {"Email": [{"id": email(prefix, i)}]},
            "segmentMembership": {
                "ups": {
                    audience: {
                        "status": "realized" if (i + n) % 3 else "exited",
                        "lastQualificationTime": qualified,
                        "name": f"Audience {n}",
                    }
                    for n, audience in enumerate(AUDIENCES)
                }
            },
            "person": {
                "name": {"firstName": f"First{i}" + ("b" if changed(i) else ""), "lastName": f"Last{i}"}
            },
            "workAddress": {"city": "London", "country": "United Kingdom"},
        }
        for i in range(offset, offset + count)
    ]


def ingest_backlog(fifo: MemoryFifo, contacts: int, per_request: int, shards: int, prefix: str) -> int:
    """Queue ``contacts`` profiles as callers sending ``per_request`` at a time would (real parsing
    and packing); returns the number of queue messages."""
    service = IngestService(
        IngestSettings(queue_url=QUEUE_URL, ingest_secret_id="unused", shard_count=shards),  # noqa: S106
        fifo,
    )
    messages = 0
    for start in range(0, contacts, per_request):
        result = service.ingest(
            {"profiles": aep_profiles(min(per_request, contacts - start), prefix, start)}, f"req-{start}"
        )
        messages += result.messages
    return messages


@dataclass
class CallLog:
    """When each batch upsert ended and how many contacts it carried, across consumers."""

    calls: list[tuple[float, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, contacts: int) -> None:
        with self.lock:
            self.calls.append((time.monotonic(), contacts))


class RecordingWriter:
    """The HubSpot client as the service's ContactWriter, noting each batch upsert's end and size."""

    def __init__(self, client: HubSpotClient, log: CallLog) -> None:
        self._client = client
        self._log = log

    def batch_upsert(
        self, inputs: Sequence[UpsertInput], deadline: float | None = None
    ) -> list[UpsertResult]:
        results = self._client.batch_upsert(inputs, deadline)
        self._log.add(len(inputs))
        return results

    def stats(self) -> CallStats:
        return self._client.stats()

    @property
    def max_call_seconds(self) -> float:
        return self._client.max_call_seconds


@dataclass
class Consumer:
    """One upsert function container: the adapter's UpsertConsumer and its HubSpot client."""

    upsert: UpsertConsumer
    client: HubSpotClient
    session: requests.Session


def build_consumer(
    hubspot_url: str,
    token: str,
    governor: GovernorSettings,
    fifo: MemoryFifo,
    ledger: MemoryLedger,
    daily: MemoryDailyCounter,
    log: CallLog,
) -> Consumer:
    """The product's consumer (``upsert.wiring``'s builders) on the in-memory queue, ledger and
    daily counter, a static token, and no audience directory or dead-letter queue."""
    settings = UpsertSettings(
        ledger_table="memory",
        hubspot_secret_id="memory",  # noqa: S106
        queue_url=QUEUE_URL,
        hubspot_base_url=hubspot_url,
    )
    session = new_session()
    client = hubspot_client(
        settings,
        lambda force: {"accessToken": token},
        RateGovernor(governor, daily_counter=daily),
        session=session,
    )
    upsert = consumer(settings, client, fifo, ledger, None, RecordingWriter(client, log))  # type: ignore[arg-type]
    return Consumer(upsert, client, session)


def discard_logs() -> None:
    """Point the library's log handler at /dev/null, keeping its level: records are still built."""
    warnings.filterwarnings("ignore", "No application metrics to publish")
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(_DISCARD)


def invoke(consumer: Consumer, event: dict[str, Any]) -> dict[str, Any]:
    """One invocation as the handler runs it: the batch, then its metrics flushed (as log_metrics
    does at the end of every invocation)."""
    answer = consumer.upsert.handle(event)
    with contextlib.redirect_stdout(_DISCARD):
        metrics.flush_metrics()
    return answer
