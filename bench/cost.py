"""An AWS cost meter for the benchmarks: what a run on the local stack would cost on AWS.

The meter watches the boto3 calls the functions make (the botocore events of boto3's default
session, which the functions' ``boto3.client(...)`` clients come from, plus any client handed to
:meth:`CostMeter.observe_event_source`) and the invocations of the functions it wraps
(:meth:`CostMeter.function`), counts billing units by AWS's rules and prices them at the
us-east-1 list prices of :data:`PRICES`.

Rules implemented (AWS's published billing rules, on-demand capacity, arm64 Lambda):

- **DynamoDB item size**: attribute name lengths plus value sizes: a string its UTF-8 bytes, a
  number 1 byte per two significant digits plus 1, a binary its bytes, a boolean or null 1 byte,
  a set the sum of its elements, a list or map 3 bytes plus 1 byte and the size of each element
  (a map's element with its key's length).
- **Writes** (PutItem, UpdateItem, DeleteItem, each PutRequest/DeleteRequest of BatchWriteItem):
  1 write request unit per started KB of the larger of the item before and after the write
  (minimum 1). Each global secondary index the write touches costs again: an item entering or
  leaving an index is one index write of its index entry's size (projected attributes and keys),
  an index key changing is two (a delete and a put), a projected attribute changing is one (of
  the larger entry); an index the write does not touch costs nothing. A write whose condition
  fails costs the units of the existing item (minimum 1) and no index write. Items left in
  UnprocessedItems cost nothing (they are counted when sent again). TransactWriteItems: twice
  the units of each item.
- **Reads**: GetItem and each key of BatchGetItem 1 read request unit per started 4 KB of the
  item (minimum 1, also for an item that does not exist); Query and Scan the summed size of the
  returned items, rounded up to 4 KB once per call (minimum 1); an index query reads index
  entries (projected size). Eventually consistent reads (the default, and every index read) cost
  half. TransactGetItems: twice.
- **SQS**: every API call is a request, and every started 64 KB of its payload (the messages
  sent by SendMessage / SendMessageBatch, bodies plus message attributes; the messages returned
  by ReceiveMessage) is one more; FIFO and standard queues are priced apart (by the ``.fifo``
  suffix of the queue URL).
- **Lambda**: one request per invocation and its duration rounded up to the millisecond times
  the function's memory (GB-seconds). Two durations are reported: the wall time of the wrapped
  handler on this machine, minus the meter's own bookkeeping in that thread; and the same with
  every AWS call of the invocation's threads (the handler's and those it starts, such as a
  thread pool's workers) taking the latency AWS would answer in (:data:`AWS_LATENCY_MS`, a model)
  instead of its local time. Threads running side by side are shortened together, not once each
  (:func:`seconds_saved`). The total is priced on the second.
- **API Gateway HTTP API**: one request per started 512 KB of the request body, for every
  invocation through an HTTP API event (payload format 2.0).
- **Secrets Manager**: every API call.

moto's own ``ConsumedCapacity`` (``ReturnConsumedCapacity=INDEXES``) is not used: moto 5 reports
1.0 unit for a 3 KB put into a table with an index (AWS: 3 for the table and 3 for the index),
0.5 for an UpdateItem, 0.5 for a strongly consistent GetItem, and nothing for a failed condition.

Approximations and blind spots, stated so the figures are read as what they are:

- Item sizes before and after a write are read from moto's in-process tables (the local stack's
  moto server runs in this process); another thread writing the same key between the two looks
  is attributed to this write. Index key changes are judged on the whole key values.
- A Query or Scan is charged for the items it returns; items a FilterExpression dropped or a
  ``Select=COUNT`` counted are read by DynamoDB too but not seen here (an under-count).
- Lambda durations: the local wall time is inflated by moto, which answers for DynamoDB and SQS
  in other threads of this process (tens of milliseconds a conditional write on a loaded
  machine); the modeled duration replaces each AWS call's time by a typical latency, not a
  measured one. Everything else keeps its local time: HubSpot's answers (the sandbox's configured
  latency), sleeps and waits, and CPU, which here is a full core shared with moto, not a 512 MB
  arm64 share (about a third of a vCPU: CPU-bound work would take about three times longer). A
  worker thread's work after its last AWS call is not seen. The CPU time of the handler's thread
  is reported too. The INIT phase of a cold start (billed since 2025-08-01) is not seen: the
  functions build their clients on the first invocation, which is counted, but the module import
  is not.
- Not metered at all: idle polling of the event source (empty receives, a fixed cost: counted
  apart, not priced), CloudWatch Logs ingestion and metrics, X-Ray traces, KMS, data transfer,
  DynamoDB storage and backups, Secrets Manager's monthly fee per secret, free tiers.
"""

from __future__ import annotations

import base64
import json
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Context, Decimal
from typing import Any

import boto3

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
Item = Mapping[str, Any]

#: us-east-1 list prices, dollars per unit, as of 2025-2026 (free tiers excluded). Sources: the
#: providers' pricing pages: aws.amazon.com/api-gateway/pricing (HTTP APIs, first 300 M requests),
#: aws.amazon.com/lambda/pricing (arm64, first 6 billion GB-seconds), aws.amazon.com/sqs/pricing,
#: aws.amazon.com/dynamodb/pricing/on-demand (after the November 2024 price cut),
#: aws.amazon.com/secrets-manager/pricing.
PRICES_DATE = "2025-2026"
PRICES: Mapping[str, float] = {
    "api_gateway_request": 1.00 / 1e6,
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000133334,
    "sqs_standard_request": 0.40 / 1e6,
    "sqs_fifo_request": 0.50 / 1e6,
    "dynamodb_write_unit": 0.625 / 1e6,
    "dynamodb_read_unit": 0.125 / 1e6,
    "secrets_manager_call": 0.05 / 1e4,
}

KB = 1024
WRITE_UNIT_BYTES = 1 * KB
READ_UNIT_BYTES = 4 * KB
SQS_CHUNK_BYTES = 64 * KB
API_GATEWAY_CHUNK_BYTES = 512 * KB
#: What Lambda assumes when a function declares no MemorySize.
DEFAULT_MEMORY_MB = 128


# --- DynamoDB item sizes and capacity units ------------------------------------------------------


def number_size(text: str) -> int:
    """1 byte per two significant digits (leading and trailing zeros dropped), plus 1."""
    # DynamoDB numbers have up to 38 significant digits: more than decimal's default 28.
    digits = (
        str(Decimal(text).normalize(Context(prec=40))).lstrip("-").split("E")[0].replace(".", "").lstrip("0")
    )
    return (len(digits) + 1) // 2 + 1


def _binary_size(value: bytes | str) -> int:
    # boto3 hands bytes; moto's tables hold the base64 text of the wire format.
    return len(value) if isinstance(value, bytes) else len(base64.b64decode(value))


def value_size(value: Mapping[str, Any]) -> int:
    """The size of one attribute value in DynamoDB's JSON form (``{"S": "..."}``, ...)."""
    ((kind, content),) = value.items()
    if kind == "S":
        return len(str(content).encode("utf-8"))
    if kind == "N":
        return number_size(str(content))
    if kind == "B":
        return _binary_size(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(element).encode("utf-8")) for element in content)
    if kind == "NS":
        return sum(number_size(str(element)) for element in content)
    if kind == "BS":
        return sum(_binary_size(element) for element in content)
    if kind == "L":
        return 3 + sum(1 + value_size(element) for element in content)
    if kind == "M":
        return 3 + sum(
            1 + len(name.encode("utf-8")) + value_size(element) for name, element in content.items()
        )
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: Item | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / WRITE_UNIT_BYTES))


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


@dataclass(frozen=True)
class Index:
    """A global secondary index: its key attributes and what it projects."""

    name: str
    keys: tuple[str, ...]
    projection: str = "ALL"
    non_key: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSchema:
    keys: tuple[str, ...]
    indexes: tuple[Index, ...] = ()

    @classmethod
    def from_description(cls, table: Mapping[str, Any]) -> TableSchema:
        """From a DescribeTable ``Table`` (or CreateTable's arguments)."""
        return cls(
            tuple(key["AttributeName"] for key in table["KeySchema"]),
            tuple(
                Index(
                    index["IndexName"],
                    tuple(key["AttributeName"] for key in index["KeySchema"]),
                    index.get("Projection", {}).get("ProjectionType", "ALL"),
                    tuple(index.get("Projection", {}).get("NonKeyAttributes", [])),
                )
                for index in table.get("GlobalSecondaryIndexes") or []
            ),
        )

    def key_of(self, item: Item) -> dict[str, Any]:
        return {name: item[name] for name in self.keys}

    def index(self, name: str) -> Index:
        return next(index for index in self.indexes if index.name == name)

    def entry(self, index: Index, item: Item | None) -> dict[str, Any] | None:
        """The item's entry in ``index``: None when the item lacks an index key (a sparse index)."""
        if not item or any(key not in item for key in index.keys):
            return None
        if index.projection == "ALL":
            return dict(item)
        kept = {*self.keys, *index.keys, *(index.non_key if index.projection == "INCLUDE" else ())}
        return {name: value for name, value in item.items() if name in kept}


def index_write_units(schema: TableSchema, before: Item | None, after: Item | None) -> dict[str, int]:
    """Units each index is written for one item going from ``before`` to ``after`` (None: absent)."""
    units: dict[str, int] = {}
    for index in schema.indexes:
        old, new = schema.entry(index, before), schema.entry(index, after)
        if old == new:  # both absent, or an untouched entry
            continue
        if old is None or new is None:
            spent = write_units(item_size(old or new))
        elif any(old[key] != new[key] for key in index.keys):
            spent = write_units(item_size(old)) + write_units(item_size(new))
        else:
            spent = write_units(max(item_size(old), item_size(new)))
        units[index.name] = spent
    return units


def item_write_units(
    schema: TableSchema, before: Item | None, after: Item | None, failed: bool = False
) -> dict[str, int]:
    """Units of one item write: ``"table"`` and each index written. ``failed``: the condition
    failed (the existing item's units, no index write)."""
    if failed:
        return {"table": write_units(item_size(before))}
    return {
        "table": write_units(max(item_size(before), item_size(after))),
        **index_write_units(schema, before, after),
    }


# --- SQS and API Gateway payloads -----------------------------------------------------------------


def _message_attributes_size(attributes: Mapping[str, Any] | None) -> int:
    size = 0
    for name, value in (attributes or {}).items():
        size += len(name.encode("utf-8")) + len(str(value.get("DataType", "")).encode("utf-8"))
        if "StringValue" in value:
            size += len(str(value["StringValue"]).encode("utf-8"))
        if "BinaryValue" in value:
            size += _binary_size(value["BinaryValue"])
    return size


def message_size(message: Mapping[str, Any]) -> int:
    """A sent or received message's payload: body plus message attributes."""
    return len(str(message.get("MessageBody", message.get("Body", ""))).encode("utf-8")) + (
        _message_attributes_size(message.get("MessageAttributes"))
    )


def sqs_requests(payload: int) -> int:
    """One request per started 64 KB of payload (at least one)."""
    return max(1, math.ceil(payload / SQS_CHUNK_BYTES))


def api_gateway_requests(event: Mapping[str, Any]) -> int:
    body = event.get("body") or ""
    size = len(base64.b64decode(body)) if event.get("isBase64Encoded") else len(str(body).encode("utf-8"))
    return max(1, math.ceil(size / API_GATEWAY_CHUNK_BYTES))


# --- Where item states come from -------------------------------------------------------------------


class MotoTables:
    """The tables of moto's in-process backends (the local stack's server and ``mock_aws`` alike):
    items as DynamoDB JSON, read without an API call so the meter adds no request of its own."""

    def _table(self, name: str) -> Any:
        from moto.dynamodb.models import dynamodb_backends

        for account in list(dynamodb_backends.keys()):
            for backend in list(dynamodb_backends[account].values()):
                table = backend.tables.get(name)
                if table is not None:
                    return table
        raise KeyError(f"no table {name} in moto")

    def schema(self, name: str) -> TableSchema:
        return TableSchema.from_description(self._table(name).describe()["TableDescription"])

    def get(self, name: str, key: Item) -> dict[str, Any] | None:
        from moto.dynamodb.models.dynamo_type import DynamoType

        table = self._table(name)
        hash_key = DynamoType(key[table.hash_key_attr])
        range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        found = table.get_item(hash_key, range_key)
        return None if found is None else dict(found.to_json()["Attributes"])


# --- Lambda durations at AWS's latency -------------------------------------------------------------

#: The latency an AWS call is modeled at from inside a Lambda function in the same region, in
#: milliseconds, by ``service`` or ``service.Operation`` (the more specific wins). Round figures
#: on the slow side of what AWS states or what is commonly measured, SDK work included:
#: DynamoDB's single-item operations average single-digit milliseconds (AWS's knowledge center on
#: DynamoDB latency; its SuccessfulRequestLatency excludes the network and the SDK, hence 5 ms),
#: batch operations and queries depend on how much they carry (10 ms); SQS answers in ten to a few
#: tens of milliseconds (15 ms, 20 ms for a batch send); an asynchronous Lambda Invoke is queued and
#: acknowledged (15 ms); Secrets Manager's GetSecretValue is the slowest of these (30 ms); any other
#: call 20 ms.
AWS_LATENCY_MS: Mapping[str, float] = {
    "dynamodb": 5.0,
    "dynamodb.BatchGetItem": 10.0,
    "dynamodb.BatchWriteItem": 10.0,
    "dynamodb.Query": 10.0,
    "dynamodb.Scan": 10.0,
    "dynamodb.TransactGetItems": 10.0,
    "dynamodb.TransactWriteItems": 10.0,
    "sqs": 15.0,
    "sqs.SendMessageBatch": 20.0,
    "lambda": 15.0,
    "secretsmanager": 30.0,
}
DEFAULT_AWS_LATENCY_MS = 20.0


def aws_latency_seconds(service: str, operation: str) -> float:
    """The modeled latency of one call (``service`` as botocore names it: ``secretsmanager``)."""
    return (
        AWS_LATENCY_MS.get(f"{service}.{operation}", AWS_LATENCY_MS.get(service, DEFAULT_AWS_LATENCY_MS))
        / 1000
    )


@dataclass
class ThreadTimeline:
    """One thread of an invocation (the handler's, or one it started, directly or not): when it
    started, what its AWS calls saved (their local wall time minus their modeled latency; negative
    when a call answered faster here than AWS would), when its last call ended, and the threads it
    started."""

    started: float
    saved: float = 0.0
    last: float = 0.0
    calls: int = 0
    call_seconds: float = 0.0
    modeled_seconds: float = 0.0
    children: list[ThreadTimeline] = field(default_factory=list)

    def call(self, started: float, ended: float, modeled: float) -> None:
        self.calls += 1
        self.call_seconds += ended - started
        self.modeled_seconds += modeled
        self.saved += ended - started - modeled
        self.last = max(self.last, ended)

    def end(self) -> float:
        """The end of the thread's last AWS call, or of its threads' (its work after that is not
        seen: a thread pool's worker idles until the pool shuts down)."""
        return max(self.started, self.last, *(child.end() for child in self.children))

    def all(self) -> Iterator[ThreadTimeline]:
        yield self
        for child in self.children:
            yield from child.all()


def seconds_saved(thread: ThreadTimeline) -> float:
    """How much sooner ``thread`` would finish if every AWS call took its modeled latency.

    A thread waits for the threads it starts (fork and join, as a ``with ThreadPoolExecutor``
    does). Threads whose spans overlap ran in parallel: together they finish when the latest of
    them would, each started at the same offset and shortened by what it saves; groups that do not
    overlap ran one after the other and their savings add up. Only AWS calls are shortened: what a
    thread waits on besides (HubSpot, a rate governor, a sleep) keeps its local duration."""
    saved = thread.saved
    spans = sorted(((child.started, child.end(), child) for child in thread.children), key=lambda s: s[0])
    group: list[tuple[float, float, ThreadTimeline]] = []
    for span in spans:
        if group and span[0] > max(end for _, end, _ in group):
            saved += _group_saved(group)
            group = []
        group.append(span)
    if group:
        saved += _group_saved(group)
    return saved


def _group_saved(group: Sequence[tuple[float, float, ThreadTimeline]]) -> float:
    first = min(started for started, _, _ in group)
    span = max(end for _, end, _ in group) - first
    shortened = max(started - first + end - started - seconds_saved(child) for started, end, child in group)
    return span - shortened


# --- The meter -------------------------------------------------------------------------------------


@dataclass
class FunctionUsage:
    invocations: int = 0
    #: local wall time, rounded up per invocation
    billed_ms: int = 0
    #: the same with every AWS call taking its modeled latency (:data:`AWS_LATENCY_MS`)
    aws_latency_billed_ms: int = 0
    cpu_seconds: float = 0.0
    memory_mb: int = DEFAULT_MEMORY_MB
    #: AWS calls made by the invocations' threads, their local wall time and their modeled latency
    aws_calls: int = 0
    aws_call_seconds: float = 0.0
    aws_call_modeled_seconds: float = 0.0

    @property
    def gb_seconds(self) -> float:
        return self.billed_ms / 1000 * self.memory_mb / 1024

    @property
    def aws_latency_gb_seconds(self) -> float:
        return self.aws_latency_billed_ms / 1000 * self.memory_mb / 1024


@dataclass
class Usage:
    """Units counted so far."""

    api_gateway_requests: int = 0
    sqs_fifo_requests: int = 0
    sqs_standard_requests: int = 0
    idle_receives: int = 0
    dynamodb_read_units: float = 0.0
    dynamodb_write_units: int = 0
    secrets_manager_calls: int = 0
    functions: dict[str, FunctionUsage] = field(default_factory=dict)
    #: write units by table and index (``table`` or ``table/index``), read units likewise
    write_units_by_target: Counter[str] = field(default_factory=Counter)
    read_units_by_target: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: Counter[str] = field(default_factory=Counter)

    @property
    def lambda_requests(self) -> int:
        return sum(usage.invocations for usage in self.functions.values())

    @property
    def lambda_gb_seconds(self) -> float:
        return sum(usage.gb_seconds for usage in self.functions.values())

    @property
    def lambda_aws_latency_gb_seconds(self) -> float:
        return sum(usage.aws_latency_gb_seconds for usage in self.functions.values())


@dataclass(frozen=True)
class Duration:
    """One invocation's duration: ``local``, the wall time here less the meter's own work;
    ``aws_latency``, the same with each AWS call taking its modeled latency."""

    local: float
    aws_latency: float
    timeline: ThreadTimeline


@dataclass(frozen=True)
class Line:
    name: str
    units: float
    usd: float


GB_SECONDS_LOCAL = "Lambda GB-s (local wall time)"
GB_SECONDS_AWS = "Lambda GB-s (AWS latency)"
#: The line items of a report, in the order of the table. The total prices the GB-seconds at AWS's
#: latency (:data:`GB_SECONDS_AWS`); the local wall time's line is shown beside it, outside the total.
LINES = (
    "API Gateway requests",
    "Lambda requests",
    GB_SECONDS_LOCAL,
    GB_SECONDS_AWS,
    "SQS requests",
    "DynamoDB read units",
    "DynamoDB write units",
    "Secrets Manager calls",
)

_WRITE_OPERATIONS = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")
_READ_OPERATIONS = ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems")
#: What Lambda's SQS event source calls (per batch); the local poller's other calls (its queue
#: depth checks, its shortened returns of failed records) stand in for no AWS request.
_EVENT_SOURCE_OPERATIONS = ("ReceiveMessage", "DeleteMessageBatch", "DeleteMessage")


class CostMeter:
    """Counts billing units while attached; :meth:`report` prices them per million updates."""

    def __init__(self, memory_mb: Mapping[str, int] | None = None, tables: MotoTables | None = None) -> None:
        self.usage = Usage()
        self._memory = dict(memory_mb or {})
        self._tables = tables or MotoTables()
        self._schemas: dict[str, TableSchema] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._attached = False
        self._registered: list[tuple[Any, str, Callable[..., Any]]] = []
        self._thread_start: Callable[[threading.Thread], None] | None = None

    # Attaching ------------------------------------------------------------------------------------

    def attach(self, session: Any = None) -> CostMeter:
        """Watch every client made from now on by ``session`` (boto3's default session): clients
        copy their session's handlers when they are made."""
        events = (session or boto3._get_default_session()).events
        self._attached = True
        # A call is timed from its first event to its last: the meter's own work on the call (in
        # the more specific events, which botocore calls first) falls inside, and is not billed.
        self._register(events, "provide-client-params", self._call_started)
        self._register(events, "after-call", self._call_ended)
        self._register(events, "after-call-error", self._call_ended)
        # Event names carry the hyphenated service id ("Secrets Manager": secrets-manager).
        for service in ("dynamodb", "sqs", "secrets-manager"):
            self._register(events, f"before-parameter-build.{service}", self._before)
            self._register(events, f"after-call.{service}", self._after)
        self._follow_threads()
        return self

    def observe_event_source(self, sqs_client: Any) -> None:
        """Count what Lambda's SQS event source would pay for on ``sqs_client``'s calls: batches
        received and deleted. An empty receive is idle polling, a fixed cost: counted apart."""
        self._register(sqs_client.meta.events, "provide-client-params.sqs", self._before_event_source)
        self._register(sqs_client.meta.events, "after-call.sqs", self._after)

    def detach(self) -> None:
        self._attached = False
        for events, name, handler in self._registered:
            events.unregister(name, handler)
        self._registered.clear()
        if self._thread_start is not None:
            threading.Thread.start = self._thread_start  # type: ignore[method-assign,assignment]
            self._thread_start = None

    def _follow_threads(self) -> None:
        """A thread started inside an invocation (a thread pool's worker) belongs to it: its AWS
        calls are timed on the invocation's timeline."""
        if self._thread_start is not None:
            return
        original = self._thread_start = threading.Thread.start
        local = self._local

        def start(thread: threading.Thread) -> None:
            parent: ThreadTimeline | None = getattr(local, "timeline", None)
            if parent is not None:
                timeline = ThreadTimeline(time.perf_counter())
                parent.children.append(timeline)
                run = thread.run

                def timed_run() -> None:
                    local.timeline = timeline
                    try:
                        run()
                    finally:
                        local.timeline = None

                thread.run = timed_run  # type: ignore[method-assign]
            original(thread)

        threading.Thread.start = start  # type: ignore[method-assign,assignment]

    @contextmanager
    def attached(self, session: Any = None) -> Iterator[CostMeter]:
        self.attach(session)
        try:
            yield self
        finally:
            self.detach()

    def _register(self, events: Any, name: str, handler: Callable[..., Any]) -> None:
        events.register(name, handler)
        self._registered.append((events, name, handler))

    # Lambda and API Gateway ---------------------------------------------------------------------------

    def function(self, logical_id: str, handler: Handler) -> Handler:
        """``handler`` invoked as Lambda bills it (and, for an HTTP API event, API Gateway)."""
        memory = self._memory.get(logical_id, DEFAULT_MEMORY_MB)

        def metered(event: dict[str, Any], context: Any) -> dict[str, Any]:
            overhead_before = getattr(self._local, "overhead", 0.0)
            outer = getattr(self._local, "timeline", None)
            started, cpu_started = time.perf_counter(), time.thread_time()
            timeline = self._local.timeline = ThreadTimeline(started)
            try:
                return handler(event, context)
            finally:
                elapsed = time.perf_counter() - started
                self._local.timeline = outer
                overhead = getattr(self._local, "overhead", 0.0) - overhead_before
                self._invoked(
                    logical_id,
                    memory,
                    event,
                    Duration(elapsed - overhead, elapsed - seconds_saved(timeline), timeline),
                    time.thread_time() - cpu_started,
                )

        return metered

    def _invoked(
        self, logical_id: str, memory: int, event: Mapping[str, Any], duration: Duration, cpu: float
    ) -> None:
        threads = list(duration.timeline.all())
        with self._lock:
            usage = self.usage.functions.setdefault(logical_id, FunctionUsage(memory_mb=memory))
            usage.invocations += 1
            usage.billed_ms += max(1, math.ceil(duration.local * 1000))
            usage.aws_latency_billed_ms += max(1, math.ceil(duration.aws_latency * 1000))
            usage.cpu_seconds += cpu
            usage.aws_calls += sum(thread.calls for thread in threads)
            usage.aws_call_seconds += sum(thread.call_seconds for thread in threads)
            usage.aws_call_modeled_seconds += sum(thread.modeled_seconds for thread in threads)
            if event.get("version") == "2.0" and "http" in (event.get("requestContext") or {}):
                self.usage.api_gateway_requests += api_gateway_requests(event)

    # botocore events -----------------------------------------------------------------------------------

    @contextmanager
    def _timed(self) -> Iterator[None]:
        """The meter's own time in this thread, which the invocation's duration leaves out."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self._local.overhead = getattr(self._local, "overhead", 0.0) + time.perf_counter() - started

    def _call_started(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        if self._attached and getattr(self._local, "timeline", None) is not None:
            context["cost_meter_call"] = (
                time.perf_counter(),
                aws_latency_seconds(model.service_model.service_name, model.name),
            )

    def _call_ended(self, context: dict[str, Any], **_: Any) -> None:
        call = context.pop("cost_meter_call", None)
        timeline: ThreadTimeline | None = getattr(self._local, "timeline", None)
        if call is not None and timeline is not None:
            started, modeled = call
            timeline.call(started, time.perf_counter(), modeled)

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if not self._attached:
            return
        with self._timed():
            context["cost_meter"] = {"params": params}
            if model.service_model.service_name == "dynamodb" and model.name in _WRITE_OPERATIONS:
                context["cost_meter"]["before"] = self._snapshot(model.name, params)

    def _before_event_source(
        self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        if self._attached and model.name in _EVENT_SOURCE_OPERATIONS:
            context["cost_meter"] = {"params": params, "event_source": True}

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        call = context.get("cost_meter")
        if call is None or not self._attached:
            return
        with self._timed():
            service = model.service_model.service_name
            with self._lock:
                self.usage.calls[f"{service}.{model.name}"] += 1
            if service == "dynamodb":
                self._dynamodb(model.name, call, parsed)
            elif service == "sqs":
                self._sqs(model.name, call, parsed)
            else:
                with self._lock:
                    self.usage.secrets_manager_calls += 1

    # SQS ---------------------------------------------------------------------------------------------

    def _sqs(self, operation: str, call: Mapping[str, Any], parsed: Mapping[str, Any]) -> None:
        params = call["params"]
        if operation == "SendMessage":
            requests = sqs_requests(message_size(params))
        elif operation == "SendMessageBatch":
            requests = sqs_requests(sum(message_size(entry) for entry in params.get("Entries", [])))
        elif operation == "ReceiveMessage":
            messages = parsed.get("Messages") or []
            if not messages and call.get("event_source"):
                with self._lock:
                    self.usage.idle_receives += 1
                return
            requests = sqs_requests(sum(message_size(message) for message in messages))
        else:
            requests = 1
        with self._lock:
            if str(params.get("QueueUrl", "")).endswith(".fifo"):
                self.usage.sqs_fifo_requests += requests
            else:
                self.usage.sqs_standard_requests += requests

    # DynamoDB ----------------------------------------------------------------------------------------

    def _schema(self, table: str) -> TableSchema:
        if table not in self._schemas:
            self._schemas[table] = self._tables.schema(table)
        return self._schemas[table]

    def _write_targets(self, operation: str, params: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(table, key) of every item the write call names, in request order."""
        if operation == "PutItem":
            return [(params["TableName"], self._schema(params["TableName"]).key_of(params["Item"]))]
        if operation in ("UpdateItem", "DeleteItem"):
            return [(params["TableName"], dict(params["Key"]))]
        targets = []
        if operation == "BatchWriteItem":
            for table, writes in params.get("RequestItems", {}).items():
                for write in writes:
                    if "PutRequest" in write:
                        targets.append((table, self._schema(table).key_of(write["PutRequest"]["Item"])))
                    else:
                        targets.append((table, dict(write["DeleteRequest"]["Key"])))
            return targets
        for action in params.get("TransactItems", []):
            ((kind, request),) = action.items()
            table = request["TableName"]
            targets.append(
                (
                    table,
                    self._schema(table).key_of(request["Item"]) if kind == "Put" else dict(request["Key"]),
                )
            )
        return targets

    def _snapshot(
        self, operation: str, params: Mapping[str, Any]
    ) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
        return [
            (table, key, self._tables.get(table, key))
            for table, key in self._write_targets(operation, params)
        ]

    def _dynamodb(self, operation: str, call: Mapping[str, Any], parsed: Mapping[str, Any]) -> None:
        error = (parsed.get("Error") or {}).get("Code")
        if operation in _WRITE_OPERATIONS:
            self._writes(operation, call, parsed, error)
        elif operation in _READ_OPERATIONS and not error:
            self._reads(operation, call["params"], parsed)

    def _writes(
        self, operation: str, call: Mapping[str, Any], parsed: Mapping[str, Any], error: str | None
    ) -> None:
        failed = error in ("ConditionalCheckFailedException", "TransactionCanceledException")
        if error and not failed:
            return  # refused before any work (validation, throttling): not billed
        unprocessed = {
            (table, json.dumps(_key_of_write(self._schema(table), write), sort_keys=True, default=str))
            for table, writes in (parsed.get("UnprocessedItems") or {}).items()
            for write in writes
        }
        factor = 2 if operation == "TransactWriteItems" else 1
        for table, key, before in call["before"]:
            if (table, json.dumps(key, sort_keys=True, default=str)) in unprocessed:
                continue
            after = before if failed else self._tables.get(table, key)
            units = item_write_units(self._schema(table), before, after, failed=failed)
            with self._lock:
                for target, spent in units.items():
                    self.usage.dynamodb_write_units += spent * factor
                    self.usage.write_units_by_target[table if target == "table" else f"{table}/{target}"] += (
                        spent * factor
                    )

    def _reads(self, operation: str, params: Mapping[str, Any], parsed: Mapping[str, Any]) -> None:
        charges: list[tuple[str, float]] = []
        if operation == "GetItem":
            item = self._tables.get(params["TableName"], params["Key"])
            charges.append(
                (params["TableName"], read_units(item_size(item), bool(params.get("ConsistentRead"))))
            )
        elif operation == "BatchGetItem":
            for table, request in params.get("RequestItems", {}).items():
                left = {
                    json.dumps(key, sort_keys=True, default=str)
                    for key in (parsed.get("UnprocessedKeys") or {}).get(table, {}).get("Keys", [])
                }
                for key in request["Keys"]:
                    if json.dumps(key, sort_keys=True, default=str) not in left:
                        item = self._tables.get(table, key)
                        charges.append(
                            (table, read_units(item_size(item), bool(request.get("ConsistentRead"))))
                        )
        elif operation == "TransactGetItems":
            for action in params.get("TransactItems", []):
                get = action["Get"]
                charges.append(
                    (
                        get["TableName"],
                        2 * read_units(item_size(self._tables.get(get["TableName"], get["Key"])), True),
                    )
                )
        else:
            charges.append(self._query_charge(params, parsed))
        with self._lock:
            for target, units in charges:
                self.usage.dynamodb_read_units += units
                self.usage.read_units_by_target[target] += units

    def _query_charge(self, params: Mapping[str, Any], parsed: Mapping[str, Any]) -> tuple[str, float]:
        """Query and Scan: the returned items' full sizes (index entries for an index), summed."""
        table = params["TableName"]
        schema = self._schema(table)
        index = schema.index(params["IndexName"]) if params.get("IndexName") else None
        size = 0
        for returned in parsed.get("Items") or []:
            if any(key not in returned for key in schema.keys):
                size += item_size(returned)  # a projection without the keys: what came back
                continue
            item = self._tables.get(table, schema.key_of(returned))
            size += item_size(schema.entry(index, item) if index else item)
        consistent = bool(params.get("ConsistentRead")) and index is None
        return (f"{table}/{index.name}" if index else table), read_units(size, consistent)

    # Reporting ---------------------------------------------------------------------------------------

    def lines(self) -> list[Line]:
        """Every line of :data:`LINES`, in its order."""
        usage = self.usage
        sqs_usd = (
            usage.sqs_fifo_requests * PRICES["sqs_fifo_request"]
            + usage.sqs_standard_requests * PRICES["sqs_standard_request"]
        )
        local, modeled = usage.lambda_gb_seconds, usage.lambda_aws_latency_gb_seconds
        return [
            Line(
                LINES[0],
                usage.api_gateway_requests,
                usage.api_gateway_requests * PRICES["api_gateway_request"],
            ),
            Line(LINES[1], usage.lambda_requests, usage.lambda_requests * PRICES["lambda_request"]),
            Line(GB_SECONDS_LOCAL, local, local * PRICES["lambda_gb_second"]),
            Line(GB_SECONDS_AWS, modeled, modeled * PRICES["lambda_gb_second"]),
            Line(LINES[4], usage.sqs_fifo_requests + usage.sqs_standard_requests, sqs_usd),
            Line(
                LINES[5], usage.dynamodb_read_units, usage.dynamodb_read_units * PRICES["dynamodb_read_unit"]
            ),
            Line(
                LINES[6],
                usage.dynamodb_write_units,
                usage.dynamodb_write_units * PRICES["dynamodb_write_unit"],
            ),
            Line(
                LINES[7],
                usage.secrets_manager_calls,
                usage.secrets_manager_calls * PRICES["secrets_manager_call"],
            ),
        ]

    def report(self, updates: int) -> dict[str, Any]:
        """Units counted, and dollars per million updates, line by line and in total: the total
        with the GB-seconds at AWS's latency, and the one with this machine's wall time."""
        scale = 1e6 / updates
        lines = self.lines()
        usage = self.usage
        total = {
            name: sum(line.usd for line in lines if line.name != left_out) * scale
            for name, left_out in (("aws", GB_SECONDS_LOCAL), ("local", GB_SECONDS_AWS))
        }
        return {
            "updates": updates,
            "prices": {"date": PRICES_DATE, "region": "us-east-1", **PRICES},
            "aws_latency_ms": {**AWS_LATENCY_MS, "other": DEFAULT_AWS_LATENCY_MS},
            "lines": {
                line.name: {
                    "units": round(line.units, 3),
                    "units_per_million_updates": round(line.units * scale, 1),
                    "usd_per_million_updates": round(line.usd * scale, 4),
                }
                for line in lines
            },
            "usd_per_million_updates": round(total["aws"], 4),
            "usd_per_million_updates_local_wall_time": round(total["local"], 4),
            "details": {
                "functions": {
                    name: {
                        "invocations": function.invocations,
                        "memory_mb": function.memory_mb,
                        "billed_seconds": round(function.billed_ms / 1000, 3),
                        "aws_latency_billed_seconds": round(function.aws_latency_billed_ms / 1000, 3),
                        "cpu_seconds": round(function.cpu_seconds, 3),
                        "gb_seconds": round(function.gb_seconds, 3),
                        "aws_latency_gb_seconds": round(function.aws_latency_gb_seconds, 3),
                        "aws_calls": function.aws_calls,
                        "aws_call_seconds": round(function.aws_call_seconds, 3),
                        "aws_call_modeled_seconds": round(function.aws_call_modeled_seconds, 3),
                    }
                    for name, function in sorted(usage.functions.items())
                },
                "sqs_fifo_requests": usage.sqs_fifo_requests,
                "sqs_standard_requests": usage.sqs_standard_requests,
                "idle_receives_not_priced": usage.idle_receives,
                "dynamodb_write_units": dict(sorted(usage.write_units_by_target.items())),
                "dynamodb_read_units": dict(sorted(usage.read_units_by_target.items())),
                "calls": dict(sorted(usage.calls.items())),
            },
        }


def _key_of_write(schema: TableSchema, write: Mapping[str, Any]) -> dict[str, Any]:
    if "PutRequest" in write:
        return schema.key_of(write["PutRequest"]["Item"])
    return dict(write["DeleteRequest"]["Key"])


def function_memory(cfn: Mapping[str, Any]) -> dict[str, int]:
    """Each function's MemorySize (Globals applied) from a translated template."""
    return {
        logical_id: int(resource["Properties"].get("MemorySize", DEFAULT_MEMORY_MB))
        for logical_id, resource in cfn["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }


TOTAL_AWS = "total (AWS latency)"
TOTAL_LOCAL = "total (local wall time)"
_LABEL = 32


def table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """Reports side by side: one column per row name, dollars per million updates per line, and
    both totals (:data:`TOTAL_AWS`, the one a goal is read on)."""
    names = list(rows)
    width = max(14, *(len(name) for name in names))
    lines = [f"{'$ per million updates':<{_LABEL}}" + "".join(f"{name:>{width + 2}}" for name in names)]
    totals = {TOTAL_AWS: "usd_per_million_updates", TOTAL_LOCAL: "usd_per_million_updates_local_wall_time"}
    for line in (*LINES, *totals):
        cells = []
        for name in names:
            report = rows[name]
            usd = report[totals[line]] if line in totals else report["lines"][line]["usd_per_million_updates"]
            cells.append(f"{usd:>{width + 2}.4f}")
        lines.append(f"{line:<{_LABEL}}" + "".join(cells))
    return "\n".join(lines)


def units_table(rows: Mapping[str, Mapping[str, Any]], lines: Sequence[str] = LINES) -> str:
    """The units behind the dollars, per million updates."""
    names = list(rows)
    width = max(14, *(len(name) for name in names))
    out = [f"{'units per million updates':<{_LABEL}}" + "".join(f"{name:>{width + 2}}" for name in names)]
    for line in lines:
        out.append(
            f"{line:<{_LABEL}}"
            + "".join(
                f"{rows[name]['lines'][line]['units_per_million_updates']:>{width + 2},.0f}" for name in names
            )
        )
    return "\n".join(out)
