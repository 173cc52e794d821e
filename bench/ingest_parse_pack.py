"""Ingest without SQS: parse + pack time per request size, SQS requests per 1,000 profiles, and the
cold import time of each Lambda handler.

- parse + pack: ``http_body.parse_json`` of the request body (what the API adapter does with the bytes)
  and ``IngestService.ingest`` - payload parsing, validation, normalisation, message encoding and
  packing - with the real ``SqsFifoPublisher`` over a client that only counts its
  ``SendMessageBatch`` calls (SQS itself, moto's or AWS's, is not the product's cost). AEP profile
  exports with two audiences and four attributes; p50 and p95 over many runs.
- SQS requests per 1,000 profiles: the SendMessageBatch calls that publisher makes, per size.
- cold import: ``import app`` of each ``functions/*/app.py`` in a fresh interpreter, median of
  several runs, with nothing written to ``__pycache__`` (Lambda's /opt and /var/task are
  read-only). The layer's package is a fresh copy on the path, as in /opt/python: compiled to
  bytecode the way ``layers/shared/Makefile`` ships it (the reported figure), and from source only
  (what SAM's python builder shipped; there the dependencies were source too, so a real cold start
  cost far more than this row). Dependencies come from the virtualenv, compiled. Lambda's arm64
  cores are slower than most desktops.

Prints a table and writes bench/results/ingest_parse_pack.json.
"""

from __future__ import annotations

import compileall
import json
import os
import py_compile
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hubspot_activation.http_body import parse_json
from hubspot_activation.ingest.publisher import SqsFifoPublisher
from hubspot_activation.ingest.service import IngestService
from hubspot_activation.settings import IngestSettings

from bench.harness import QUEUE_URL, aep_profiles, discard_logs

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "ingest_parse_pack.json"
SIZES = (1, 10, 100, 1000)
IMPORT_RUNS = 7


class CountingSqs:
    """The SQS client surface the publisher calls: accepts everything, counts the requests."""

    def __init__(self) -> None:
        self.send_message_batch_calls = 0

    def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        self.send_message_batch_calls += 1
        return {"Successful": [{"Id": entry["Id"]} for entry in kwargs["Entries"]], "Failed": []}


def runs_for(size: int) -> int:
    return max(30, min(1000, 20_000 // size))


def parse_pack(size: int, shards: int) -> dict[str, Any]:
    sqs = CountingSqs()
    service = IngestService(
        IngestSettings(queue_url=QUEUE_URL, ingest_secret_id="unused", shard_count=shards),  # noqa: S106
        SqsFifoPublisher(sqs, QUEUE_URL),  # type: ignore[arg-type]
    )
    runs = runs_for(size)
    bodies = [
        json.dumps({"profiles": aep_profiles(size, f"r{run}", run * size)}).encode()
        for run in range(runs + 3)
    ]
    timings: list[float] = []
    cpu: list[float] = []
    requests: list[int] = []
    for index, body in enumerate(bodies):
        before = sqs.send_message_batch_calls
        started, cpu_started = time.perf_counter(), time.thread_time()
        result = service.ingest(parse_json(body, "a JSON activation"), f"bench-{index}")
        elapsed, cpu_used = time.perf_counter() - started, time.thread_time() - cpu_started
        assert result.accepted == size
        if index >= 3:  # the first runs warm caches a long-lived container has warm
            timings.append(elapsed * 1000)
            cpu.append(cpu_used * 1000)
            requests.append(sqs.send_message_batch_calls - before)
    return {
        "profiles_per_request": size,
        "shards": shards,
        "runs": runs,
        "p50_ms": round(statistics.median(timings), 3),
        "p95_ms": round(statistics.quantiles(timings, n=20)[18], 3),
        # CPU time of the thread: what the work costs when other processes share the machine
        "cpu_p50_ms": round(statistics.median(cpu), 3),
        "cpu_p95_ms": round(statistics.quantiles(cpu, n=20)[18], 3),
        "sqs_requests_per_request": statistics.median(requests),
        "sqs_requests_per_1000_profiles": round(statistics.mean(requests) * 1000 / size, 1),
    }


#: What every handler imports before any product code runs: the floor of a cold import (the
#: tracer configured as observability.py does it; requests comes on top for HubSpot's callers).
FLOOR = (
    "from aws_lambda_powertools import Logger, Metrics, Tracer; "
    "Logger(service='s'); Metrics(namespace='n', service='s'); "
    "Tracer(service='s', patch_modules=('boto3',)); import boto3"
)


def layer_copy(root: Path, compiled: bool) -> Path:
    """The package as /opt/python holds it: a fresh copy without caches, compiled like
    layers/shared/Makefile compiles it (unchecked-hash bytecode) or left as source."""
    target = root / ("compiled" if compiled else "source")
    shutil.copytree(
        ROOT / "layers" / "shared" / "hubspot_activation",
        target / "hubspot_activation",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    if compiled:
        invalidation = py_compile.PycInvalidationMode.UNCHECKED_HASH
        assert compileall.compile_dir(target, quiet=1, invalidation_mode=invalidation)
    return target


def cold_import(handler: Path, layer: Path, statement: str = "import app") -> dict[str, Any]:
    """Median wall time of ``import app`` in a fresh interpreter, as a Lambda cold start does it."""
    code = (
        "import sys, time; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
        f"t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    )
    # As deployed: in Lambda (so powertools' tracer is on and patches boto3 and requests, as
    # `Tracing: Active` makes it) with the template's powertools settings, and no bytecode written.
    env: dict[str, str] = {
        **{k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")},
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        # X-Ray's SDK detects Lambda by this variable and then skips its sampling client.
        "LAMBDA_TASK_ROOT": str(handler.parent),
        "POWERTOOLS_SERVICE_NAME": "hubspot-activation",
        "POWERTOOLS_METRICS_NAMESPACE": "HubSpotActivation",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    timings = []
    for _ in range(IMPORT_RUNS):
        out = subprocess.run(  # noqa: S603 - our own interpreter and files
            [sys.executable, "-c", code, str(handler.parent), str(layer)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=handler.parent,
        )
        timings.append(float(out.stdout.strip().splitlines()[-1]) * 1000)
    return {
        "handler": str(handler.relative_to(ROOT)) if statement == "import app" else "dependencies only",
        "layer": layer.name,
        "median_ms": round(statistics.median(timings), 1),
        "max_ms": round(max(timings), 1),
    }


def cold_imports() -> list[dict[str, Any]]:
    handlers = sorted((ROOT / "functions").glob("*/app.py"))
    with tempfile.TemporaryDirectory() as scratch:
        compiled, source = layer_copy(Path(scratch), True), layer_copy(Path(scratch), False)
        imports = [cold_import(handler, layer) for layer in (compiled, source) for handler in handlers]
        imports.append(cold_import(handlers[0], compiled, FLOOR))
    return imports


def main() -> None:
    discard_logs()
    rows = [parse_pack(size, shards) for shards in (8, 16) for size in SIZES]
    imports = cold_imports()
    print(
        f"{'profiles/request':>16} {'shards':>6} {'p50 ms':>8} {'p95 ms':>8} {'CPU p50':>8} {'CPU p95':>8} "
        f"{'SQS req/request':>15} {'SQS req/1000 profiles':>21}"
    )
    for row in rows:
        print(
            f"{row['profiles_per_request']:>16} {row['shards']:>6} {row['p50_ms']:>8} {row['p95_ms']:>8} "
            f"{row['cpu_p50_ms']:>8} {row['cpu_p95_ms']:>8} "
            f"{row['sqs_requests_per_request']:>15} {row['sqs_requests_per_1000_profiles']:>21}"
        )
    for item in imports:
        print(
            f"cold import {item['handler']} (layer {item['layer']}): "
            f"{item['median_ms']} ms median ({item['max_ms']} ms max)"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps({"benchmark": "ingest_parse_pack", "rows": rows, "cold_imports": imports}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
