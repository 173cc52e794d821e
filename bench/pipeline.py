"""End-to-end benchmark on the embedded local stack: ingest API -> moto SQS -> upsert handler ->
HubSpot sandbox. Counts HubSpot requests per 1,000 contacts for a fresh load and for a re-send of
the same load, and wall time for each. Prints a table and writes bench/results/pipeline.json.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import requests

from local import stack as local_stack

RESULTS = Path(__file__).resolve().parent / "results" / "pipeline.json"
AUDIENCES = ["a1b2c3d4-0000-4000-8000-000000000001", "a1b2c3d4-0000-4000-8000-000000000002"]
CONTACTS = 1000


def load(prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "identityMap": {"Email": [{"id": f"{prefix}.User{i}@Example.com"}]},
            "segmentMembership": {
                "ups": {
                    audience: {
                        "status": "realized" if (i + n) % 3 else "exited",
                        "lastQualificationTime": "2026-11-20T09:15:00Z",
                        "name": f"Audience {n}",
                    }
                    for n, audience in enumerate(AUDIENCES)
                }
            },
            "person": {"name": {"firstName": f"First{i}", "lastName": f"Last{i}"}},
            "workAddress": {"city": "London", "country": "United Kingdom"},
        }
        for i in range(CONTACTS)
    ]


def run(stack: local_stack.LocalStack, profiles: list[dict[str, Any]], per_request: int) -> dict[str, float]:
    assert stack.sandbox is not None
    before = sum(stack.sandbox.state.requests.values())
    started = time.perf_counter()
    for start in range(0, len(profiles), per_request):
        response = requests.post(
            stack.activations_url,
            json={"profiles": profiles[start : start + per_request]},
            timeout=30,
            headers={"Authorization": f"Bearer {stack.ingest_token}"},
        )
        assert response.status_code == 202 and response.json()["accepted"] == per_request
    assert stack.poller.drain(timeout=600)
    elapsed = time.perf_counter() - started
    requests_made = sum(stack.sandbox.state.requests.values()) - before
    return {
        "hubspot_requests": requests_made,
        "per_1000_contacts": requests_made * 1000 / len(profiles),
        "seconds": round(elapsed, 2),
    }


def main() -> None:
    saved = dict(os.environ)
    rows: dict[str, dict[str, float]] = {}
    throttled = contacts = 0
    shard_counts = [int(value) for value in os.environ.get("BENCH_SHARDS", "8,16").split(",")]
    for shards in shard_counts:
        stack = local_stack.start(parameters={"ShardCount": shards})
        try:
            # AEP's HTTP API destination sends about 10 profiles per call; configurable aggregation, more.
            for per_request in (100, 10):
                profiles = load(f"Batch{per_request}")
                rows[f"{shards} shards, fresh, {per_request}/req"] = run(stack, profiles, per_request)
                rows[f"{shards} shards, re-send, {per_request}/req"] = run(stack, profiles, per_request)
            assert stack.sandbox is not None
            throttled += sum(stack.sandbox.state.throttled.values())
            contacts += len(stack.sandbox.state.contacts)
        finally:
            stack.stop()
            os.environ.clear()
            os.environ.update(saved)
    print(f"{'load':<32} {'HubSpot requests':>17} {'per 1,000 contacts':>19} {'seconds':>8}")
    for name, row in rows.items():
        print(
            f"{name:<32} {row['hubspot_requests']:>17} {row['per_1000_contacts']:>19.1f} {row['seconds']:>8}"
        )
    print(f"contacts in HubSpot: {contacts}; 429s: {throttled}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"benchmark": "pipeline", "contacts_per_load": CONTACTS, "rows": rows, "throttled": throttled},
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
