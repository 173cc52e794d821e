"""The worst bodies MaxBodyBytes (5 MiB) and MaxProfilesPerRequest (10,000) let through, each run
through the real ingest handler in-process (moto SQS, so the queue calls are real but not their
network time). Reports wall time, peak Python memory (tracemalloc), the process's peak RSS, the
answer's size and the size of the "activation accepted" log line. The function has 512 MB and 10 s.
Writes bench/results/ingest_worst_body.json.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import resource
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hubspot_activation.observability import logger

from tests.corpus.harness import event_of, ingest_handler

RESULTS = Path(__file__).resolve().parent / "results" / "ingest_worst_body.json"
MAX_BODY = 5 * 1024 * 1024
MAX_PROFILES = 10_000


def _fill(make: Callable[[int], Any], budget: int = MAX_BODY - 64) -> str:
    """The largest ``make(n)`` whose JSON fits the body limit: doubling, then a binary search, so no
    candidate built is much larger than the limit."""

    def fits(n: int) -> bool:
        return len(json.dumps(make(n)).encode()) <= budget

    high = 1
    while fits(high):
        high *= 2
    low, high = high // 2, high - 1
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return json.dumps(make(low))


def _padding(n: int) -> dict[str, int]:
    return {f"Key {i}": i for i in range(n)}


BODIES: dict[str, Callable[[], str]] = {
    # Every profile valid and full of audiences: the most parsing, encoding and SQS work.
    "10k-profiles-many-audiences": lambda: _fill(
        lambda n: {
            "profiles": [
                {"email": f"user{p}@example.com", "audiences": {f"aud-{a}": "realized" for a in range(n)}}
                for p in range(MAX_PROFILES)
            ]
        }
    ),
    # Every profile full of unmapped attributes: a warning per key.
    "10k-profiles-all-warnings": lambda: _fill(
        lambda n: {
            "profiles": [
                {"email": f"u{p}@example.com", "attributes": _padding(n)} for p in range(MAX_PROFILES)
            ]
        }
    ),
    # One profile with as many unmapped keys as fit: the most warnings for one request.
    "1-profile-max-warnings": lambda: _fill(lambda n: {"email": "a@example.com", "attributes": _padding(n)}),
    # One profile with as many audiences as fit: a huge update, excluded as too large for a message.
    "1-profile-max-audiences": lambda: _fill(
        lambda n: {
            "email": "a@example.com",
            "audiences": {f"a{a}": {"status": "realized", "timestamp": 1} for a in range(n)},
        }
    ),
    # 10,000 excluded profiles with long invalid emails.
    "10k-excluded-profiles": lambda: _fill(
        lambda n: {"profiles": [{"email": "x" * n + f"{p}"} for p in range(MAX_PROFILES)]}
    ),
    # Nesting at the depth limit in every profile (the longest depth walk); past 10,000 profiles
    # the first profile's city grows, so the body still reaches the limit.
    "max-nesting-everywhere": lambda: _fill(
        lambda n: {
            "profiles": [
                {
                    "email": f"u{p}@example.com",
                    "attributes": {
                        "x": json.loads("[" * 60 + "]" * 60),
                        "city": "c" * (1 + max(0, n - MAX_PROFILES) * (p == 0)),
                    },
                }
                for p in range(min(n, MAX_PROFILES))
            ]
        }
    ),
    # The largest number of tiny JSON values: numbers in a list.
    "max-json-values": lambda: _fill(
        lambda n: {"email": "a@example.com", "attributes": {"city": "c", "x": list(range(n))}}
    ),
}


def measure(handler: Callable[[dict[str, Any]], dict[str, Any]], body: str) -> dict[str, Any]:
    """Timed without tracemalloc (it slows Python down several times), then run again under it for
    the memory peak; the log lines of the timed run are kept."""
    event = event_of({"name": "bench", "body": body})
    logs = io.StringIO()
    stream = logger.registered_handler
    previous = stream.setStream(logs) if isinstance(stream, logging.StreamHandler) else None
    try:
        with contextlib.redirect_stdout(logs):
            started = time.perf_counter()
            response = handler(event)
            elapsed = time.perf_counter() - started
            tracemalloc.start()
            handler(event)
            _current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    finally:
        if previous is not None and isinstance(stream, logging.StreamHandler):
            stream.setStream(previous)
    accepted_line = next((line for line in logs.getvalue().splitlines() if "activation accepted" in line), "")
    return {
        "bodyBytes": len(body.encode()),
        "status": response["statusCode"],
        "seconds": round(elapsed, 3),
        "peakPythonMiB": round(peak / 2**20, 1),
        "responseBytes": len(response["body"]),
        "logLineBytes": len(accepted_line),
        "longestLogLineBytes": max((len(line) for line in logs.getvalue().splitlines()), default=0),
    }


def main() -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    os.environ["POWERTOOLS_TRACE_DISABLED"] = "1"
    results: dict[str, Any] = {}
    with ingest_handler(os.environ.__setitem__) as (handler, _queue):
        for name, build in BODIES.items():
            body = build()
            results[name] = measure(handler, body)
            print(f"{name:32} {json.dumps(results[name])}")
    results["processPeakRssMiB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print("process peak RSS (MiB, includes moto and the bodies built here):", results["processPeakRssMiB"])
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
