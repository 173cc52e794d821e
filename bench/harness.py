"""What the sync benchmarks share: callers' profiles, a backlog packed by the real ingest service,
and the real merge and flush functions, built by the product's builders (``upsert.wiring``
``merge_consumer`` and ``flush_runner``) on the in-memory queue and ledger of ``bench.fakes``,
talking HTTP to a HubSpot sandbox.

The functions run as Lambda runs them: the merge functions as event-source loops (batches of up to
10 messages, what the answer does not name deleted), and the flush function on its asynchronous
invocations (the merges' and its own wake-ups, and its schedule), each concurrent invocation in an
execution environment of its own (``local.lambda_async``): its HubSpot client, governor and
property schema.

With ``AudienceTarget`` list or both, the lists function runs as deployed too (its composition
root ``list_function.wiring.lists_function``): on the flusher's timers (``bench.fakes``'
``MemoryTimerQueue``: delayed, one record an event, a failure back after a while) and on its
schedule's sweep every minute, each concurrent invocation in a container of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hubspot_activation.field_rules import FieldRules
from hubspot_activation.hubspot.batch import UpdateInput, UpsertInput, UpsertResult
from hubspot_activation.hubspot.client import CallStats, HubSpotClient, new_session
from hubspot_activation.hubspot.governor import RateGovernor
from hubspot_activation.ingest.service import IngestService
from hubspot_activation.ledger.keys import PENDING_PARTITION
from hubspot_activation.list_function.wiring import lists_function, lists_governor_settings
from hubspot_activation.lists.target import AudienceTarget
from hubspot_activation.observability import logger, metrics
from hubspot_activation.settings import IngestSettings, UpsertSettings
from hubspot_activation.upsert.adapter import MergeConsumer
from hubspot_activation.upsert.wiring import flush_runner, governor_settings, hubspot_client, merge_consumer

from bench.fakes import (
    MemoryDailyCounter,
    MemoryDynamoDb,
    MemoryFifo,
    MemoryTimerQueue,
    RoutedSqs,
    sqs_event,
)
from local.api_server import LocalContext
from local.lambda_async import LocalAsyncFunction, LocalSchedule
from local.stack import BatchReports
from local.template import load_sam, parameter_defaults

#: Logs and metrics are formatted as in Lambda (their cost is the product's) and thrown away.
_DISCARD: io.TextIOWrapper = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
_METRICS_LOCK = threading.Lock()

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/000000000000/bench.fifo"
LEDGER_TABLE = "bench-ledger"
AUDIENCES = ["a1b2c3d4-0000-4000-8000-000000000001", "a1b2c3d4-0000-4000-8000-000000000002"]
#: The flush function's Timeout in template.yaml.
FLUSH_TIMEOUT_SECONDS = 900.0
#: The lists function's Timeout in template.yaml.
LISTS_TIMEOUT_SECONDS = 300.0
LIST_TIMER_QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/000000000000/bench-list-timers"


def template_defaults() -> dict[str, Any]:
    """The deployed defaults (limit, share, shards, lanes), read from template.yaml;
    ``BENCH_SHARDS`` overrides ShardCount, to compare shard counts without editing the template."""
    defaults = parameter_defaults(load_sam())
    if os.environ.get("BENCH_SHARDS"):
        defaults["ShardCount"] = int(os.environ["BENCH_SHARDS"])
    return defaults


def email(prefix: str, i: int) -> str:
    """A deterministic address whose shard and pending partition (CRC32 of the address) are as
    scattered as real ones'.

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
    version: int = 0,
) -> list[dict[str, Any]]:
    """AEP profile exports as the HTTP API destination sends them: two audiences, four attributes.
    ``qualified`` is every audience's qualification time; profile ``i`` gets another first name
    when ``changed(i)`` (a re-send where some profiles changed). A ``version`` above 0 is a later
    round of changes: other first names, other memberships."""
    return [
        {
            "identityMap": {"Email": [{"id": email(prefix, i)}]},
            "segmentMembership": {
                "ups": {
                    audience: {
                        "status": "realized" if (i + n + version) % 3 else "exited",
                        "lastQualificationTime": qualified,
                        "name": f"Audience {n}",
                    }
                    for n, audience in enumerate(AUDIENCES)
                }
            },
            "person": {
                "name": {
                    "firstName": f"First{i}"
                    + ("b" if changed(i) else "")
                    + (f"v{version}" if version else ""),
                    "lastName": f"Last{i}",
                }
            },
            "workAddress": {"city": "London", "country": "United Kingdom"},
        }
        for i in range(offset, offset + count)
    ]


def ingest_backlog(
    fifo: MemoryFifo, profiles: Sequence[dict[str, Any]], per_request: int, shards: int
) -> tuple[int, int]:
    """Queue ``profiles`` as callers sending ``per_request`` at a time would (real parsing and
    packing); returns (requests, queue messages)."""
    service = IngestService(
        IngestSettings(queue_url=QUEUE_URL, ingest_secret_id="unused", shard_count=shards),  # noqa: S106
        fifo,
    )
    messages = requests = 0
    for start in range(0, len(profiles), per_request):
        result = service.ingest({"profiles": list(profiles[start : start + per_request])}, f"req-{start}")
        messages += result.messages
        requests += 1
    return requests, messages


@dataclass
class CallLog:
    """When each batch upsert ended and how many contacts it carried, across flush containers."""

    calls: list[tuple[float, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, contacts: int) -> None:
        with self.lock:
            self.calls.append((time.monotonic(), contacts))


class RecordingWriter:
    """The HubSpot client as the flusher's ContactWriter, noting each batch write's end and size
    (upserts by email, and updates by record id: merged contacts)."""

    def __init__(self, client: HubSpotClient, log: CallLog) -> None:
        self._client = client
        self._log = log

    def batch_upsert(
        self, inputs: Sequence[UpsertInput], deadline: float | None = None
    ) -> list[UpsertResult]:
        results = self._client.batch_upsert(inputs, deadline)
        self._log.add(len(inputs))
        return results

    def batch_update(
        self, inputs: Sequence[UpdateInput], deadline: float | None = None
    ) -> list[UpsertResult]:
        results = self._client.batch_update(inputs, deadline)
        self._log.add(len(inputs))
        return results

    def stats(self) -> CallStats:
        return self._client.stats()

    @property
    def max_call_seconds(self) -> float:
        return self._client.max_call_seconds


class AsyncWaker:
    """The FlushWaker of the functions: an asynchronous invocation of the flush function per lane.
    While ``held``, the lanes to wake are noted and woken on ``release`` (a backlog merged before
    any flush starts)."""

    def __init__(self) -> None:
        self.function: LocalAsyncFunction | None = None
        self.held = False
        self._noted: set[int] = set()
        self._lock = threading.Lock()

    def wake(self, lanes: Collection[int], sweep: bool = False) -> None:
        with self._lock:
            if self.held:
                self._noted.update(lanes)
                return
        assert self.function is not None
        for lane in sorted(lanes):
            self.function.invoke({"lane": lane})

    def release(self) -> None:
        with self._lock:
            self.held, noted = False, sorted(self._noted)
            self._noted.clear()
        self.wake(noted)


def discard_logs() -> None:
    """Point the library's log handler at /dev/null, keeping its level: records are still built."""
    warnings.filterwarnings("ignore", "No application metrics to publish")
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(_DISCARD)


def with_metrics_flushed(function: Callable[[dict[str, Any], Any], dict[str, Any]]) -> Any:
    """One invocation as the handler runs it: the work, then its metrics flushed (as log_metrics
    does at the end of every invocation), to /dev/null."""

    def call(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        answer = function(event, context)
        with _METRICS_LOCK, contextlib.redirect_stdout(_DISCARD):
            metrics.flush_metrics()
        return answer

    return call


class SyncFunction:
    """A function invoked synchronously (by its event source, or its schedule), each concurrent
    invocation in an execution environment of its own, kept for the next."""

    def __init__(self, name: str, new_container: Callable[[], Any], timeout_seconds: float) -> None:
        self._name = name
        self._new_container = new_container
        self._timeout = timeout_seconds
        self._idle: list[Any] = []
        self._busy = 0
        self._lock = threading.Lock()
        self.invocations = 0

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._busy += 1
            self.invocations += 1
            handler = self._idle.pop() if self._idle else None
        try:
            handler = handler or self._new_container()
            context = LocalContext(
                function_name=self._name, aws_request_id=os.urandom(8).hex(), timeout_seconds=self._timeout
            )
            answer: dict[str, Any] = handler(event, context)
            return answer
        finally:
            with self._lock:
                self._busy -= 1
                if handler is not None:
                    self._idle.append(handler)

    def idle(self) -> bool:
        with self._lock:
            return self._busy == 0


@dataclass
class Lists:
    """The lists function of a deployment that keeps lists: its timers and its sweep."""

    function: SyncFunction
    timers: MemoryTimerQueue
    clients: list[HubSpotClient]
    sweep_seconds: float = 60.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _sweeping: bool = False

    def start_sweep(self) -> None:
        """The schedule's ``rate(1 minute)``, from the first run on."""
        if self._sweeping:
            return
        self._sweeping = True

        def sweep() -> None:
            while not self._stop.wait(self.sweep_seconds):
                self.function({})

        threading.Thread(target=sweep, name="lists-schedule", daemon=True).start()

    def idle(self) -> bool:
        return self.function.idle() and not self.timers.in_flight()

    def stop(self) -> None:
        self._stop.set()
        self.timers.stop()


@dataclass
class Sync:
    """The merge and flush functions of one deployment, on one in-memory queue and ledger."""

    settings: UpsertSettings
    fifo: MemoryFifo
    dynamodb: MemoryDynamoDb
    log: CallLog
    flush: LocalAsyncFunction
    waker: AsyncWaker
    merges: list[MergeConsumer]
    reports: BatchReports
    #: every flush container's HubSpot client (set-up calls are counted from them)
    clients: list[HubSpotClient] = field(default_factory=list)
    #: the flush function's schedule, from the first run on
    schedule: LocalSchedule | None = None
    #: the lists function (AudienceTarget list or both)
    lists: Lists | None = None

    def merge_loop(self, merge: MergeConsumer, stop: threading.Event) -> None:
        """Lambda's SQS event source for one concurrent merge function, until ``stop``."""
        handle = with_metrics_flushed(merge.handle)
        while not stop.is_set():
            batch = self.fifo.receive(10)
            if not batch:
                stop.wait(0.01)  # empty, or every group with messages is in flight elsewhere
                continue
            answer = handle(sqs_event(batch))
            failed = {item["itemIdentifier"] for item in answer["batchItemFailures"]}
            for message in batch:
                if message.message_id not in failed:
                    self.fifo.delete(message.receipt_handle)

    def pending(self) -> int:
        return sum(1 for item in self.dynamodb.items() if PENDING_PARTITION in item)

    def run(self, timeout: float = 1800.0, merge_first: bool = False) -> bool:
        """Merge the queue and flush until nothing is queued, no flush runs and no contact is
        pending: True, or False after ``timeout``. ``merge_first`` merges the whole queue before
        the flush function is woken (its schedule too)."""
        stop = threading.Event()
        loops = [
            threading.Thread(target=self.merge_loop, args=(merge, stop), name=f"merge-{i}", daemon=True)
            for i, merge in enumerate(self.merges)
        ]
        deadline = time.monotonic() + timeout
        self.waker.held = merge_first
        for loop in loops:
            loop.start()
        try:
            while merge_first and len(self.fifo) and time.monotonic() < deadline:
                time.sleep(0.1)
            self.waker.release()
            if self.schedule is None:
                self.schedule = LocalSchedule(self.flush, seconds=60.0).start()  # rate(1 minute)
            if self.lists is not None:
                self.lists.start_sweep()
            while time.monotonic() < deadline:
                if self.settled():
                    return True
                time.sleep(0.1)
            return False
        finally:
            stop.set()
            for loop in loops:
                loop.join()

    def settled(self) -> bool:
        """Nothing queued, no function running, no contact pending nor list change waiting (the
        list buffers are in the pending index while they hold changes)."""
        lists_idle = self.lists is None or self.lists.idle()
        return not len(self.fifo) and self.flush.idle() and lists_idle and not self.pending()

    def stop(self) -> None:
        from hubspot_activation.observability import logger as library_logger

        library_logger._logger.removeHandler(self.reports)
        if self.schedule is not None:
            self.schedule.stop()
        if self.lists is not None:
            self.lists.stop()
        self.flush.stop()


def build_sync(
    hubspot_url: str,
    token: str,
    lanes: int | None = None,
    merges: int | None = None,
    window_seconds: float | None = None,
    limit: int | None = None,
    field_rules: FieldRules | None = None,
    audience_target: AudienceTarget = AudienceTarget.PROPERTY,
    list_flush_seconds: int | None = None,
) -> Sync:
    """A deployment with the template's defaults (``lanes``, merge ``MaxConcurrency``, HubSpot
    ``limit``, ``ListFlushSeconds`` otherwise, no ``field_rules``, audiences as properties),
    HubSpot's window scaled to ``window_seconds`` in the governor when given."""
    defaults = template_defaults()
    settings = UpsertSettings(
        ledger_table=LEDGER_TABLE,
        hubspot_secret_id="memory",  # noqa: S106
        queue_url=QUEUE_URL,
        hubspot_base_url=hubspot_url,
        tier_limit=limit or int(defaults["HubSpotTenSecondLimit"]),
        share=float(defaults["HubSpotLimitShare"]),
        flush_lanes=lanes or int(defaults["FlushLanes"]),
        flush_parallel_calls=int(defaults["FlushParallelCalls"]),
        flush_max_delay_seconds=int(defaults["FlushMaxDelaySeconds"]),
        shard_count=int(defaults["ShardCount"]),
        field_rules=field_rules or FieldRules(),
        audience_target=audience_target,
        list_flush_seconds=list_flush_seconds or int(defaults["ListFlushSeconds"]),
        list_chunk_size=int(defaults["ListChunkSize"]),
        list_timer_queue_url=LIST_TIMER_QUEUE_URL if audience_target.keeps_lists else "",
    )
    fifo, dynamodb, daily, log = MemoryFifo(), MemoryDynamoDb(), MemoryDailyCounter(), CallLog()
    lists: Lists | None = None
    sqs: Any = fifo
    if audience_target.keeps_lists:
        list_clients: list[HubSpotClient] = []

        def lists_container() -> Any:
            client = hubspot_client(
                settings,
                lambda force: {"accessToken": token},
                RateGovernor(lists_governor_settings(settings), daily_counter=daily),
                session=new_session(),
            )
            list_clients.append(client)
            return with_metrics_flushed(lists_function(settings, client, dynamodb, sqs).handle)  # type: ignore[arg-type]

        function = SyncFunction("bench-lists", lists_container, LISTS_TIMEOUT_SECONDS)
        timers = MemoryTimerQueue(function)
        sqs = RoutedSqs(fifo, {LIST_TIMER_QUEUE_URL: timers})
        lists = Lists(function, timers, list_clients)
    governor = governor_settings(settings)
    if window_seconds is not None:
        governor = replace(governor, window_seconds=window_seconds)
    waker = AsyncWaker()
    clients: list[HubSpotClient] = []

    def flush_container() -> Any:
        client = hubspot_client(
            settings,
            lambda force: {"accessToken": token},
            RateGovernor(governor, daily_counter=daily),
            session=new_session(),
        )
        clients.append(client)
        runner = flush_runner(settings, client, dynamodb, sqs, waker, RecordingWriter(client, log))  # type: ignore[arg-type]
        return with_metrics_flushed(runner.handle)

    # A container a lane, and one for the wake-ups that find their lane taken (as the local stack).
    flush = LocalAsyncFunction(
        "bench-flush", flush_container, FLUSH_TIMEOUT_SECONDS, settings.flush_lanes + 1
    )
    waker.function = flush.start()
    merge_count = merges or int(defaults["MaxConcurrency"])
    consumers = [merge_consumer(settings, dynamodb, fifo, waker) for _ in range(merge_count)]  # type: ignore[arg-type]
    reports = BatchReports()
    from hubspot_activation.observability import logger as library_logger

    library_logger._logger.addHandler(reports)
    return Sync(settings, fifo, dynamodb, log, flush, waker, consumers, reports, clients, lists=lists)
