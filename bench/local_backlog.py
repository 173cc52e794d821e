"""The local stack holding a backlog: ingest over HTTP while nothing consumes, then receives.

Posts ``BENCH_UPDATES`` updates (20,000 by default) to the local API in requests of 10 profiles
(AEP's HTTP API destination sends at most 10), each profile a different contact, with the merge
function's event source stopped (the flush function's schedule runs, finding nothing pending), so
the local queue grows by about one message per update. Reports the time per request as
the queue grows (median of each slice of ``BENCH_SLICE`` requests, with the queue length at its
start), any answer other than 202, and the total time; then the time of one ReceiveMessage
(the event source's batch of 10) and of a long poll that finds nothing (every group locked) with the
backlog queued. The local queue must not slow down with its length: SQS does not, and a local stack
that answers 503 past a few thousand updates cannot rehearse a backlog.

Prints a table and writes bench/results/local_backlog.json.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import requests

from local import stack as local_stack

RESULTS = Path(__file__).resolve().parent / "results" / "local_backlog.json"
UPDATES = int(os.environ.get("BENCH_UPDATES", "20000"))
PER_REQUEST = 10
SLICE = int(os.environ.get("BENCH_SLICE", "20"))


def queued(stack: local_stack.LocalStack) -> int:
    return stack.poller.pending()


def ingest(stack: local_stack.LocalStack) -> dict[str, Any]:
    session = requests.Session()
    headers = {"Authorization": f"Bearer {stack.ingest_token}"}
    statuses: dict[str, int] = {}
    slices: list[dict[str, Any]] = []
    durations: list[float] = []
    started = time.perf_counter()
    for request in range(UPDATES // PER_REQUEST):
        if request % SLICE == 0:
            if durations:
                slices[-1]["median_seconds"] = round(statistics.median(durations), 4)
            durations = []
            slices.append({"queued_at_start": queued(stack)})
        profiles = [
            {"email": f"backlog{request * PER_REQUEST + i}@example.com", "attributes": {"firstname": "B"}}
            for i in range(PER_REQUEST)
        ]
        sent = time.perf_counter()
        response = session.post(
            stack.activations_url, json={"profiles": profiles}, headers=headers, timeout=60
        )
        durations.append(time.perf_counter() - sent)
        statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
    slices[-1]["median_seconds"] = round(statistics.median(durations), 4)
    return {
        "requests": UPDATES // PER_REQUEST,
        "statuses": statuses,
        "total_seconds": round(time.perf_counter() - started, 1),
        "queued": queued(stack),
        "slices": slices,
    }


def receives(stack: local_stack.LocalStack) -> dict[str, float]:
    sqs = stack.aws.client("sqs")
    url = stack.queue_url()
    timings: dict[str, float] = {}
    sent = time.perf_counter()
    batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600)["Messages"]
    timings["receive_10_seconds"] = round(time.perf_counter() - sent, 4)
    handles = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
    # Every group locked: a long poll of 1 s that finds nothing looks again all along.
    everything: list[dict[str, Any]] = []
    while True:
        more = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600).get(
            "Messages", []
        )
        if not more:
            break
        everything += more
    sent = time.perf_counter()
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    timings["empty_long_poll_1s_seconds"] = round(time.perf_counter() - sent, 4)
    sent = time.perf_counter()
    sqs.delete_message_batch(QueueUrl=url, Entries=handles)
    timings["delete_10_seconds"] = round(time.perf_counter() - sent, 4)
    timings["received_in_flight"] = len(everything) + len(batch)
    return timings


def main() -> None:
    stack = local_stack.start(quiet=True)
    try:
        result = {"updates": UPDATES, "per_request": PER_REQUEST, **ingest(stack)}
        result["receive"] = receives(stack)
    finally:
        stack.stop()
    print(f"{'queued at slice start':>22} {'median s/request':>17}")
    for piece in result["slices"]:
        print(f"{piece['queued_at_start']:>22} {piece['median_seconds']:>17}")
    print(
        f"{result['requests']} requests in {result['total_seconds']} s, answers {result['statuses']}, "
        f"{result['queued']} messages queued; receive {result['receive']}"
    )
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
