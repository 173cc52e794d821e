"""The embedded local stack: `python -m local.stack demo|serve`.

In one process: a moto server with the queues, secrets and ledger table that template.yaml
declares; the HubSpot sandbox (or a real HubSpot account, see HUBSPOT_CREDENTIAL); the ingest
handler behind a local HTTP server speaking API Gateway HTTP API events; a poller that drives
the merge handler like Lambda's SQS event source; and the flush handler run by Lambda's
asynchronous invocations (the merge's wake-ups) and by its schedule, as deployed; the reconcile
handler likewise, on its schedules (a walk at ReconcileSchedule's rate, the journal's poll every
minute) and its own continuations; with AudienceTarget list or both, the lists handler on its timer
queue (a poller like Lambda's SQS event source; SQS delays each timer) and its sweep schedule.
``demo`` posts
every sample in events/ through real HTTP, drains the queue, prints the HubSpot contacts and a
sync summary, then re-sends everything to show that unchanged contacts cost no HubSpot request.
``serve`` keeps it all up and keeps consuming the queue until stopped.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import requests

from . import aws
from .api_server import LocalApiServer, Route
from .event_source import EventSourcePoller, Handler
from .functions import handler
from .hubspot_sandbox import SandboxServer
from .lambda_async import LocalAsyncFunction, LocalSchedule
from .template import ROOT, condition_holds, function_schedules, http_routes

EVENTS = ROOT / "events"
#: Set to a HubSpot credential secret (JSON) to sync into a real HubSpot account instead of the sandbox.
REAL_HUBSPOT_CREDENTIAL = "HUBSPOT_CREDENTIAL"
#: Wraps a function's handler, given the function's logical id in template.yaml.
Instrument = Callable[[str, Handler], Handler]
SUMMARY_FIELDS = ("synced", "skippedUnchanged", "failed", "retriedLater", "hubspotRequests", "throttled")


class BatchReports(logging.Handler):
    """Collects the flush function's "flush run ended" log records (its CloudWatch logs, locally):
    the totals of ``fields``."""

    def __init__(self, fields: tuple[str, ...] = SUMMARY_FIELDS) -> None:
        super().__init__(logging.INFO)
        self.fields = fields
        self.totals: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "flush run ended":
            for name in self.fields:
                self.totals[name] += int(getattr(record, name, 0) or 0)


#: The threads running a function whose printing is dropped.
_MUTED = threading.local()
_INSTALLING = threading.Lock()


class _MutedThreadsStdout(io.TextIOBase):
    """``sys.stdout`` dropping what muted threads print, passing the rest on to ``stream``."""

    def __init__(self, stream: Any) -> None:
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        if getattr(_MUTED, "on", False):
            return len(text)
        written: int = self.stream.write(text)
        return written

    def flush(self) -> None:
        self.stream.flush()


def without_metrics_output(function: Handler) -> Handler:
    """The functions print EMF metrics to stdout (CloudWatch reads them there); the demo is not
    CloudWatch, so they are swallowed. Their logs go to their own stream and are kept.

    Per thread: the functions run at once (the flush on its workers, ingest and the merge on
    theirs) while the demo prints. Swapping ``sys.stdout`` per call (``redirect_stdout``) would
    let two overlapping calls restore each other's swap and leave every later print swallowed."""

    def call(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with _INSTALLING:
            if not isinstance(sys.stdout, _MutedThreadsStdout):
                sys.stdout = _MutedThreadsStdout(sys.stdout)
        _MUTED.on = True
        try:
            return function(event, context)
        finally:
            _MUTED.on = False

    return call


@dataclass
class LocalStack:
    aws: aws.LocalAws
    api: LocalApiServer
    ingest_token: str
    poller: EventSourcePoller
    flusher: LocalAsyncFunction
    schedule: LocalSchedule
    hubspot_url: str
    sandbox: SandboxServer | None = None
    reports: BatchReports = field(default_factory=BatchReports)
    #: the reconcile function (its schedules' events, its continuations)
    reconciler: LocalAsyncFunction | None = None
    reconcile_schedules: list[LocalSchedule] = field(default_factory=list)
    #: the lists function (its sweep schedule's events) and the poller of its timer queue: both
    #: only with AudienceTarget list or both, as the template's conditions say
    lister: LocalAsyncFunction | None = None
    list_schedules: list[LocalSchedule] = field(default_factory=list)
    list_timers: EventSourcePoller | None = None
    _list_timers_stop: threading.Event = field(default_factory=threading.Event)
    _list_timers_thread: threading.Thread | None = None

    @property
    def activations_url(self) -> str:
        return f"{self.api.url}/activations"

    def queue_url(self) -> str:
        return self.aws.physical_id("ActivationsQueue")

    def reconcile(self, event: dict[str, Any] | None = None) -> None:
        """Invoke the reconcile function asynchronously, as its schedule does (default: the walk
        from its stored cursor; ``{"journal": True}``: the journal's poll)."""
        assert self.reconciler is not None
        self.reconciler.invoke(event if event is not None else {"walk": "schedule"})

    def sweep_lists(self) -> None:
        """Invoke the lists function asynchronously, as its schedule does: every due list drained."""
        assert self.lister is not None, "the stack keeps no lists (AudienceTarget=property)"
        self.lister.invoke({"sweep": True})

    def stop_lists(self) -> None:
        """Stop the lists function's timers and sweep (a test looking at changes left waiting)."""
        self._list_timers_stop.set()
        if self._list_timers_thread is not None:
            self._list_timers_thread.join(timeout=30)
        for schedule in self.list_schedules:
            schedule.stop()
        if self.lister is not None:
            self.lister.stop()

    def stop(self) -> None:
        from hubspot_activation.observability import logger as library_logger

        library_logger._logger.removeHandler(self.reports)
        self.stop_lists()
        self.schedule.stop()
        for schedule in self.reconcile_schedules:
            schedule.stop()
        if self.reconciler is not None:
            self.reconciler.stop()
        self.flusher.stop()
        self.api.stop()
        if self.sandbox is not None:
            self.sandbox.stop()
        self.aws.stop()


def start(
    quiet: bool = True,
    port: int = 0,
    visibility_timeout: int = 2,
    parameters: dict[str, Any] | None = None,
    instrument: Instrument | None = None,
    schedule_seconds: float | None = None,
) -> LocalStack:
    """``parameters`` override template parameters, as `sam deploy --parameter-overrides` would.
    ``instrument`` wraps every function the stack runs, by the function's logical id (a
    benchmark's meter watching each invocation). The flush function's schedule runs every
    ``schedule_seconds`` (default: as often as the shortened retries, a couple of seconds; a
    benchmark of what a deployment costs sets the template's minute)."""
    # The servers' own access logs would drown the summary.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    local_aws = aws.start(parameters)
    real_credential = os.environ.get(REAL_HUBSPOT_CREDENTIAL)
    sandbox = None
    if real_credential:
        hubspot_url = os.environ.get("HUBSPOT_BASE_URL", "https://api.hubapi.com")
        credential = real_credential
    else:
        sandbox = SandboxServer().start()
        hubspot_url = sandbox.url
        credential = json.dumps({"accessToken": sandbox.state.add_private_app_token()})
    local_aws.client("secretsmanager").put_secret_value(
        SecretId=local_aws.physical_id("HubSpotCredentialSecret"), SecretString=credential
    )
    os.environ.update(local_aws.function_environment("IngestFunction"))
    os.environ.update(local_aws.function_environment("MergeFunction"))
    os.environ.update(local_aws.function_environment("FlushFunction"))
    os.environ.update(local_aws.function_environment("OperationsFunction"))
    os.environ.update(local_aws.function_environment("ReconcileFunction"))
    os.environ.update(local_aws.function_environment("ListsFunction"))
    os.environ["HUBSPOT_BASE_URL"] = hubspot_url
    # No X-Ray daemon runs locally: the functions' Tracer would only complain about missing segments.
    os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
    # Retries within seconds, like the shortened visibility timeout below: a demo cannot wait minutes.
    os.environ["RETRY_BASE_SECONDS"] = str(visibility_timeout)
    # An audience renamed or deleted through the operations routes is seen by the next batch
    # (deployed, the consumer caches audience metadata for 30 s).
    os.environ["AUDIENCE_CACHE_SECONDS"] = "0"
    # A resume job's second look at the held index (60 s deployed), like the retries above.
    os.environ["RESUME_SWEEP_SECONDS"] = str(visibility_timeout)
    # moto answers in tens of milliseconds, more on a loaded machine: the exclusion list gets the
    # most time ingest allows it rather than DynamoDB's 0.3 s.
    os.environ["EXCLUSION_STORE_SECONDS"] = "1.5"
    # A new stack is a cold start: fresh function modules, so no client of a previous stack is reused.
    ingest, merge = handler("ingest", cold_start=True), handler("merge", cold_start=True)
    operations = handler("operations", cold_start=True)
    if quiet:
        ingest, merge = without_metrics_output(ingest), without_metrics_output(merge)
        operations = without_metrics_output(operations)
    if instrument is not None:
        ingest, merge = instrument("IngestFunction", ingest), instrument("MergeFunction", merge)
        operations = instrument("OperationsFunction", operations)

    def flush_container() -> Handler:
        # Lambda runs concurrent invocations in separate environments: each lane's run has its own
        # HubSpot client and governor (which paces its lane's part of the budget).
        flush = handler("flush", cold_start=True)
        flush = without_metrics_output(flush) if quiet else flush
        return instrument("FlushFunction", flush) if instrument is not None else flush

    def reconcile_container() -> Handler:
        reconcile = handler("reconcile", cold_start=True)
        reconcile = without_metrics_output(reconcile) if quiet else reconcile
        return instrument("ReconcileFunction", reconcile) if instrument is not None else reconcile

    functions = {"IngestFunction": ingest, "OperationsFunction": operations}
    routes = [Route(method, path, functions[logical_id]) for logical_id, method, path in http_routes()]
    api = LocalApiServer(routes, port=port).start()
    reports = BatchReports()
    from hubspot_activation.observability import logger as library_logger  # loaded with the handlers

    library_logger._logger.addHandler(reports)
    if quiet:
        library_logger.registered_handler.setLevel(logging.WARNING)
    queue_url = local_aws.physical_id("ActivationsQueue")
    poller = EventSourcePoller(
        local_aws.client("sqs"),
        queue_url,
        local_aws.resolver.attributes["ActivationsQueue.Arn"],
        merge,
        visibility_timeout=visibility_timeout,
        function_timeout=float(local_aws.cfn["Resources"]["MergeFunction"]["Properties"]["Timeout"]),
    )
    lanes = int(local_aws.function_environment("FlushFunction")["FLUSH_LANES"])
    flusher = LocalAsyncFunction(
        local_aws.physical_id("FlushFunction"),
        flush_container,
        float(local_aws.cfn["Resources"]["FlushFunction"]["Properties"]["Timeout"]),
        # one worker a lane, and one for the wake-ups that find their lane taken
        concurrency=lanes + 1,
    ).start()
    # The schedule's minute, shortened like the retries: a backoff come due is seen in seconds.
    schedule = LocalSchedule(flusher, seconds=schedule_seconds or max(1.0, float(visibility_timeout))).start()
    reconciler = LocalAsyncFunction(
        local_aws.physical_id("ReconcileFunction"),
        reconcile_container,
        float(local_aws.cfn["Resources"]["ReconcileFunction"]["Properties"]["Timeout"]),
        # a walk and a journal poll at once
        concurrency=2,
    ).start()
    # At the template's rates (a walk a day, the journal every minute): a local walk on demand is
    # LocalStack.reconcile(), or POST /reconcile.
    reconcile_schedules = [
        LocalSchedule(reconciler, seconds=seconds, event=event).start()
        for seconds, event in function_schedules(local_aws.cfn, local_aws.resolver, "ReconcileFunction")
        if seconds is not None
    ]
    token = json.loads(local_aws.secret_values["IngestTokenSecret"])["token"]
    stack = LocalStack(
        local_aws,
        api,
        token,
        poller,
        flusher,
        schedule,
        hubspot_url,
        sandbox,
        reports,
        reconciler,
        reconcile_schedules,
    )
    if condition_holds(local_aws.cfn, "KeepsLists", local_aws.resolver):
        _start_lists(stack, quiet, instrument, schedule_seconds or max(1.0, float(visibility_timeout)))
    return stack


def _start_lists(stack: LocalStack, quiet: bool, instrument: Instrument | None, sweep_seconds: float) -> None:
    """The lists function, as the template wires it when lists are kept: its timer queue's event
    source (a poller running until the stack stops: a timer fires ListFlushSeconds after a list's
    first change) and its sweep schedule (the template's minute, shortened like the flush's)."""
    local_aws = stack.aws
    timeout = float(local_aws.cfn["Resources"]["ListsFunction"]["Properties"]["Timeout"])

    def lists_container() -> Handler:
        lists = handler("lists", cold_start=True)
        lists = without_metrics_output(lists) if quiet else lists
        return instrument("ListsFunction", lists) if instrument is not None else lists

    stack.lister = LocalAsyncFunction(
        local_aws.physical_id("ListsFunction"), lists_container, timeout, concurrency=1
    ).start()
    stack.list_schedules = [
        LocalSchedule(stack.lister, seconds=sweep_seconds, event=event).start()
        for seconds, event in function_schedules(local_aws.cfn, local_aws.resolver, "ListsFunction")
        if seconds is not None
    ]
    stack.list_timers = EventSourcePoller(
        local_aws.client("sqs"),
        local_aws.physical_id("ListTimerQueue"),
        local_aws.resolver.attributes["ListTimerQueue.Arn"],
        lists_container(),
        function_timeout=timeout,
        function_name="lists",
    )
    stack._list_timers_thread = threading.Thread(
        target=stack.list_timers.run, args=(stack._list_timers_stop,), name="list-timers", daemon=True
    )
    stack._list_timers_thread.start()


def lists_pending(stack: LocalStack) -> bool:
    """Whether any list buffer holds membership changes not yet sent (or a refill goes on)."""
    from hubspot_activation.ledger import keys  # the layer is importable once the stack runs

    page = stack.aws.client("dynamodb").query(
        TableName=stack.aws.physical_id("LedgerTable"),
        IndexName=keys.PENDING_INDEX,
        KeyConditionExpression="#p = :p",
        ExpressionAttributeNames={"#p": keys.PENDING_PARTITION},
        ExpressionAttributeValues={":p": {"S": keys.LIST_PENDING_PARTITION}},
        Limit=1,
    )
    return bool(page.get("Items"))


def settle_lists(stack: LocalStack, timeout: float = 120) -> bool:
    """Wait until the contacts are settled and every list's changes are sent (the timers and the
    sweep schedule drain them as deployed): True once no list change waits and the lists
    function is idle."""
    deadline = time.monotonic() + timeout
    if not settle(stack, timeout):
        return False
    while time.monotonic() < deadline:
        if (stack.lister is None or stack.lister.idle()) and not lists_pending(stack):
            return True
        time.sleep(0.2)
    return False


def sample_requests() -> list[tuple[str, dict[str, Any]]]:
    """The API Gateway v2 sample events (the ones `sam local invoke -e` takes)."""
    return [
        (path.name, json.loads(path.read_text(encoding="utf-8")))
        for path in sorted(EVENTS.glob("activation-*.json"))
    ]


def post_event(stack: LocalStack, event: dict[str, Any]) -> requests.Response:
    headers = {key: value for key, value in event["headers"].items() if key.lower() != "authorization"}
    headers["Authorization"] = f"Bearer {stack.ingest_token}"
    return requests.post(
        stack.activations_url, data=event["body"].encode("utf-8"), headers=headers, timeout=10
    )


def post_samples(stack: LocalStack, show: bool = True) -> tuple[int, int]:
    accepted = excluded = 0
    if show:
        print(f"{'sample':<32} {'status':>6} {'accepted':>8} {'excluded':>8}  reasons")
    for name, event in sample_requests():
        response = post_event(stack, event)
        body = response.json()
        if response.status_code != 202:
            raise RuntimeError(f"{name}: unexpected answer {response.status_code} {body}")
        reasons = "; ".join(f"#{item['index']}: {item['reason']}" for item in body["excluded"])
        count = len(body["excluded"])
        if show:
            print(f"{name:<32} {response.status_code:>6} {body['accepted']:>8} {count:>8}  {reasons}")
        accepted += body["accepted"]
        excluded += count
    return accepted, excluded


def drain(stack: LocalStack, show: bool = True, timeout: float = 180) -> bool:
    """Merge the queue, then wait for the flusher: True once the queue is empty, no flush runs and
    no contact is pending."""

    def progress(left: int) -> None:
        if show:
            print(f"  queue: {left} message(s) left", flush=True)

    deadline = time.monotonic() + timeout
    if not stack.poller.drain(timeout=timeout, on_progress=progress):
        return False
    return settle(stack, deadline - time.monotonic())


def pending_contacts(stack: LocalStack) -> int:
    """Pending contacts (read from the table: the index lags)."""
    dynamodb = stack.aws.client("dynamodb")
    kwargs: dict[str, Any] = {
        "TableName": stack.aws.physical_id("LedgerTable"),
        "FilterExpression": "attribute_exists(pendingSince)",
        "Select": "COUNT",
    }
    count = 0
    while True:
        page = dynamodb.scan(**kwargs)
        count += int(page.get("Count", 0))
        if "LastEvaluatedKey" not in page:
            return count
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def pending_markers(stack: LocalStack) -> bool:
    """Whether the pending index lists any contact (every pending contact is listed by a marker)."""
    from hubspot_activation.ledger import keys  # the layer is importable once the stack runs

    dynamodb = stack.aws.client("dynamodb")
    table = stack.aws.physical_id("LedgerTable")
    for partition in range(keys.PENDING_PARTITIONS):
        page = dynamodb.query(
            TableName=table,
            IndexName=keys.PENDING_INDEX,
            KeyConditionExpression="#p = :p",
            ExpressionAttributeNames={"#p": keys.PENDING_PARTITION},
            ExpressionAttributeValues={":p": {"S": keys.pending_partition_value(partition)}},
            Limit=1,
        )
        if page.get("Items"):
            return True
    return False


def settle(stack: LocalStack, timeout: float = 180) -> bool:
    """Wait until no flush runs and no contact is pending (the queue polled meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        handled = stack.poller.poll_once()
        if (
            not handled
            and stack.poller.pending() == 0
            and stack.flusher.idle()
            and not pending_contacts(stack)
        ):
            return True
        if not handled:
            time.sleep(0.2)
    return False


def ledger_entries(stack: LocalStack) -> list[dict[str, Any]]:
    dynamodb = stack.aws.client("dynamodb")
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": stack.aws.physical_id("LedgerTable")}
    while True:
        page = dynamodb.scan(**kwargs)
        # Contacts only: the table also holds the connector's daily call count (a key without "@").
        items.extend(item for item in page.get("Items", []) if "@" in item["email"]["S"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def dead_letters(stack: LocalStack) -> int:
    attributes = stack.aws.client("sqs").get_queue_attributes(
        QueueUrl=stack.aws.physical_id("ActivationsDeadLetterQueue"),
        AttributeNames=["ApproximateNumberOfMessages"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def print_contacts(stack: LocalStack) -> None:
    if stack.sandbox is None:
        return
    state = stack.sandbox.state
    audiences = {
        name: prop["label"]
        for name, prop in state.properties.items()
        if prop.get("groupName") == os.environ.get("AUDIENCE_PROPERTY_GROUP", "audience_activations")
    }
    columns = ["email", "firstname", "lastname", "city", "country", "phone", *audiences]
    headers = ["email", "firstname", "lastname", "city", "country", "phone", *audiences.values()]
    rows = [
        [str(contact["properties"].get(column, "")) for column in columns]
        for contact in state.contacts.values()
    ]
    rows.sort(key=lambda row: row[0])
    widths = [
        min(34, max(len(h), *(len(r[i]) for r in rows))) if rows else len(h) for i, h in enumerate(headers)
    ]
    print("\nHubSpot contacts (sandbox):")
    print("  " + "  ".join(h[:w].ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  " + "  ".join(value[:w].ljust(w) for value, w in zip(row, widths, strict=True)))


def demo() -> int:
    stack = start()
    try:
        print(
            f"local stack: moto at {stack.aws.endpoint}, ingest API at {stack.activations_url}, "
            f"HubSpot at {stack.hubspot_url}\n"
        )
        accepted, excluded = post_samples(stack)
        print("\ndraining the queue through the merge and flush functions:")
        if not drain(stack):
            print("the queue did not drain in time", file=sys.stderr)
            return 1
        print_contacts(stack)
        first = Counter(stack.reports.totals)
        entries = ledger_entries(stack)
        statuses = Counter(item["status"]["S"] for item in entries)
        print("\nsync summary:")
        print(f"  profiles accepted {accepted}, excluded at ingest {excluded}")
        print(
            f"  contacts synced {first['synced']}, skipped unchanged {first['skippedUnchanged']}, "
            f"failed {first['failed']}, retried later {first['retriedLater']}"
        )
        print(f"  HubSpot requests {first['hubspotRequests']}, 429s {first['throttled']}")
        print(f"  ledger: {dict(statuses)}; dead-letter queue: {dead_letters(stack)} message(s)")
        for item in entries:
            if item["status"]["S"] == "failed":
                print(f"  failed {item['email']['S']}: {item.get('reason', {}).get('S', '')}")
        post_samples(stack, show=False)
        queued = stack.poller.pending()
        drain(stack, show=False)
        again = stack.reports.totals - first
        print(
            f"\nre-sent every sample: {queued} message(s) queued (SQS drops the same content sent "
            f"within 5 minutes), {again['skippedUnchanged']} contacts skipped unchanged, "
            f"{again['hubspotRequests']} HubSpot requests"
        )
        return 1 if dead_letters(stack) else 0
    finally:
        stack.stop()


#: Where a real HubSpot account comes from when the sandbox is not enough.
REAL_HUBSPOT_HELP = (
    "to sync into a real HubSpot account instead: in a HubSpot developer account choose "
    '"Create a developer test account" (or use a HubSpot sandbox account), create a private app or a '
    "service key there with the scopes crm.objects.contacts.read/write and "
    "crm.schemas.contacts.read/write, then restart with "
    """HUBSPOT_CREDENTIAL='{"accessToken": "..."}' make serve"""
)


@dataclass
class ServingStack:
    """A local stack whose merge function keeps consuming, as the deployed event source does (the
    flush function runs on its wake-ups and its schedule)."""

    stack: LocalStack
    stopping: threading.Event
    consumer: threading.Thread

    @property
    def api_url(self) -> str:
        return self.stack.api.url

    @property
    def sandbox_state_url(self) -> str | None:
        return f"{self.stack.hubspot_url}/__sandbox/state" if self.stack.sandbox else None

    def banner(self) -> str:
        stack = self.stack
        sample = '{"email": "you@example.com", "attributes": {"firstname": "You"}}'
        lines = [
            f"moto (AWS) endpoint : {stack.aws.endpoint}",
            f"HubSpot             : {stack.hubspot_url}" + ("" if stack.sandbox else " (real account)"),
        ]
        if self.sandbox_state_url:
            lines.append(f"sandbox state       : {self.sandbox_state_url}")
        lines += [
            f"API base URL        : {self.api_url}",
            f"activations endpoint: {stack.activations_url}",
            f"ingest token        : {stack.ingest_token}",
            f"try: curl -X POST {stack.activations_url} -H 'Authorization: Bearer {stack.ingest_token}' "
            f"-H 'Content-Type: application/json' -d '{sample}'",
            f"or:  hubspot-activation send audience.csv --url {self.api_url} --token={stack.ingest_token}",
        ]
        if stack.sandbox:
            lines.append(REAL_HUBSPOT_HELP)
        lines.append("Ctrl-C to stop")
        return "\n".join(lines)

    def stop(self) -> None:
        # The consumer goes first: it must not poll a moto server that is shutting down.
        self.stopping.set()
        self.consumer.join(timeout=30)
        self.stack.stop()


def start_serving(port: int = 0, quiet: bool = False) -> ServingStack:
    """Start the stack and a consumer that polls until stopped; ``stop()`` ends both."""
    stack = start(quiet=quiet, port=port)
    stopping = threading.Event()
    consumer = threading.Thread(target=stack.poller.run, args=(stopping,), name="event-source", daemon=True)
    consumer.start()
    return ServingStack(stack, stopping, consumer)


#: How long Ctrl-C or SIGTERM may wait before `serve` notices it.
_SIGNAL_CHECK_SECONDS = 0.2


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM stops `serve` as Ctrl-C does: by raising in the main thread, touching no lock (a
    handler runs between two steps of the main thread, possibly while it holds one)."""
    raise KeyboardInterrupt


def serve(port: int) -> int:
    # Before the banner: whoever reads it may stop the stack at once.
    signal.signal(signal.SIGTERM, _interrupt)
    serving: ServingStack | None = None
    try:
        serving = start_serving(port)
        print(serving.banner(), flush=True)
        # Python runs a signal's handler in the main thread, but the kernel may deliver the signal
        # to any thread: a main thread blocked for good (an Event's wait, a long sleep) would never
        # run it. Short sleeps run it within a fraction of a second, whichever thread took it.
        while True:
            time.sleep(_SIGNAL_CHECK_SECONDS)
    except KeyboardInterrupt:
        pass
    finally:
        # A second signal while stopping ends the process at once, as the default action does.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if serving is not None:
            serving.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="post events/ through the whole pipeline and print contacts and a summary")
    serve_parser = sub.add_parser("serve", help="keep the local stack running for curl")
    serve_parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args(argv)
    return demo() if args.command == "demo" else serve(args.port)


if __name__ == "__main__":
    sys.exit(main())
