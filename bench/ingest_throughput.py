"""Ingest benchmark: SQS requests per 1,000 profiles and in-process latency per request size.

Runs the real IngestService against moto's SQS (in-process), so the figures count real
SendMessageBatch calls; latency excludes network time to SQS. Prints a table and writes
bench/results/ingest_throughput.json.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import boto3
from hubspot_activation.ingest.publisher import SqsFifoPublisher
from hubspot_activation.ingest.service import IngestService
from hubspot_activation.settings import IngestSettings
from moto import mock_aws

RESULTS = Path(__file__).resolve().parent / "results" / "ingest_throughput.json"
AUDIENCE = "a1b2c3d4-0000-4000-8000-000000000001"


def aep_profiles(count: int, offset: int) -> list[dict[str, Any]]:
    return [
        {
            "identityMap": {
                "Email": [{"id": f"User{offset + i}@Example.com"}],
                "ECID": [{"id": str(offset + i)}],
            },
            "segmentMembership": {
                "ups": {
                    AUDIENCE: {
                        "status": "realized",
                        "lastQualificationTime": "2026-11-20T09:15:00Z",
                        "name": "Gold loyalty members",
                    }
                }
            },
            "person": {"name": {"firstName": f"First{i}", "lastName": f"Last{i}"}},
            "workAddress": {"city": "London", "country": "United Kingdom"},
        }
        for i in range(count)
    ]


def main() -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ[name] = value
    rows = []
    with mock_aws():
        sqs = boto3.client("sqs")
        queue = sqs.create_queue(QueueName="bench.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        calls: list[str] = []
        sqs.meta.events.register("before-call.sqs.SendMessageBatch", lambda **_: calls.append("x"))
        service = IngestService(
            IngestSettings(queue_url=queue, ingest_secret_id="not-read-by-the-service"),  # noqa: S106
            SqsFifoPublisher(sqs, queue),
        )
        offset = 0
        for size in (1, 10, 100, 1000):
            timings, requests = [], []
            for _ in range(5):
                document = {"profiles": aep_profiles(size, offset)}
                offset += size
                calls.clear()
                started = time.perf_counter()
                result = service.ingest(document, f"bench-{offset}")
                timings.append((time.perf_counter() - started) * 1000)
                requests.append(len(calls))
                assert result.accepted == size
            rows.append(
                {
                    "profiles_per_request": size,
                    "sqs_requests_per_request": statistics.median(requests),
                    "sqs_requests_per_1000_profiles": round(statistics.median(requests) * 1000 / size, 1),
                    "median_ms": round(statistics.median(timings), 2),
                    "ms_per_profile": round(statistics.median(timings) / size, 4),
                }
            )
    header = ("profiles/request", "SQS req/request", "SQS req/1000 profiles", "median ms", "ms/profile")
    print(f"{header[0]:>16} {header[1]:>16} {header[2]:>22} {header[3]:>10} {header[4]:>11}")
    for row in rows:
        print(
            f"{row['profiles_per_request']:>16} {row['sqs_requests_per_request']:>16} "
            f"{row['sqs_requests_per_1000_profiles']:>22} {row['median_ms']:>10} {row['ms_per_profile']:>11}"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"benchmark": "ingest_throughput", "rows": rows}, indent=2) + "\n")
    print(f"\nwritten {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")


if __name__ == "__main__":
    main()
