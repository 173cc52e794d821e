"""The embedded local stack: `python -m local.stack demo|serve`.

moto server (with the template's queues and secrets) + the ingest handler behind a local HTTP
server speaking API Gateway HTTP API events. ``demo`` posts every sample in events/ through real
HTTP and prints what was accepted, excluded and enqueued; ``serve`` keeps it all up for curl.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

import requests

from . import aws
from .api_server import LocalApiServer
from .functions import handler
from .template import ROOT

EVENTS = ROOT / "events"


@dataclass
class LocalStack:
    aws: aws.LocalAws
    api: LocalApiServer
    ingest_token: str

    @property
    def activations_url(self) -> str:
        return f"{self.api.url}/activations"

    def queue_url(self) -> str:
        return self.aws.physical_id("ActivationsQueue")

    def stop(self) -> None:
        self.api.stop()
        self.aws.stop()


def start(quiet: bool = True, port: int = 0) -> LocalStack:
    # The servers' own access logs would drown the summary.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    local_aws = aws.start()
    os.environ.update(local_aws.function_environment("IngestFunction"))
    if quiet:
        # The template asks for INFO logs and EMF metrics on stdout: right in Lambda, noise here.
        os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    token = json.loads(local_aws.secret_values["IngestTokenSecret"])["token"]
    api = LocalApiServer(handler("ingest"), port=port).start()
    return LocalStack(local_aws, api, token)


def sample_requests() -> list[tuple[str, dict[str, Any]]]:
    """The API Gateway v2 sample events (the ones `sam local invoke -e` takes)."""
    samples = []
    for path in sorted(EVENTS.glob("activation-*.json")):
        event = json.loads(path.read_text(encoding="utf-8"))
        samples.append((path.name, event))
    return samples


def post_event(stack: LocalStack, event: dict[str, Any]) -> requests.Response:
    headers = {key: value for key, value in event["headers"].items() if key.lower() != "authorization"}
    headers["Authorization"] = f"Bearer {stack.ingest_token}"
    return requests.post(
        stack.activations_url, data=event["body"].encode("utf-8"), headers=headers, timeout=10
    )


def queued_updates_per_group(stack: LocalStack) -> tuple[int, Counter[str]]:
    """Peek at what ingest enqueued: receive everything, then make it visible again."""
    sqs = stack.aws.client("sqs")
    per_group: Counter[str] = Counter()
    receipts: list[str] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=stack.queue_url(),
            MaxNumberOfMessages=10,
            VisibilityTimeout=60,
            MessageSystemAttributeNames=["MessageGroupId"],
        ).get("Messages", [])
        if not batch:
            break
        for message in batch:
            receipts.append(message["ReceiptHandle"])
            per_group[message["Attributes"]["MessageGroupId"]] += len(json.loads(message["Body"])["updates"])
    for start in range(0, len(receipts), 10):
        sqs.change_message_visibility_batch(
            QueueUrl=stack.queue_url(),
            Entries=[
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(receipts[start : start + 10])
            ],
        )
    return len(receipts), per_group


def demo() -> int:
    stack = start()
    try:
        print(f"local stack: moto at {stack.aws.endpoint}, ingest API at {stack.activations_url}\n")
        print(f"{'sample':<32} {'status':>6} {'accepted':>8} {'excluded':>8}  reasons")
        totals: Counter[str] = Counter()
        for name, event in sample_requests():
            response = post_event(stack, event)
            body = response.json()
            excluded = body.get("excluded", [])
            reasons = "; ".join(f"#{item['index']}: {item['reason']}" for item in excluded)
            accepted = body.get("accepted", 0)
            print(f"{name:<32} {response.status_code:>6} {accepted:>8} {len(excluded):>8}  {reasons}")
            totals["accepted"] += body.get("accepted", 0)
            totals["excluded"] += len(excluded)
            if response.status_code != 202:
                print(f"unexpected answer: {body}", file=sys.stderr)
                return 1
        messages, per_group = queued_updates_per_group(stack)
        print(
            f"\naccepted {totals['accepted']} profiles, excluded {totals['excluded']}; "
            f"enqueued {messages} FIFO messages over {len(per_group)} shards:"
        )
        for group, count in sorted(per_group.items(), key=lambda item: int(item[0][1:])):
            print(f"  shard {group:<5} {count} updates")
        if sum(per_group.values()) != totals["accepted"]:
            print("mismatch: queued updates differ from accepted profiles", file=sys.stderr)
            return 1
        return 0
    finally:
        stack.stop()


def serve(port: int) -> int:
    stack = start(quiet=False, port=port)
    print(f"moto (AWS) endpoint : {stack.aws.endpoint}")
    print(f"activations endpoint: {stack.activations_url}")
    print(f"ingest token        : {stack.ingest_token}")
    sample = '{"email": "you@example.com", "attributes": {"firstname": "You"}}'
    print(
        f"try: curl -X POST {stack.activations_url} -H 'Authorization: Bearer {stack.ingest_token}' "
        f"-H 'Content-Type: application/json' -d '{sample}'"
    )
    print("Ctrl-C to stop")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="post events/ through the local stack and print a summary")
    serve_parser = sub.add_parser("serve", help="keep the local stack running for curl")
    serve_parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args(argv)
    return demo() if args.command == "demo" else serve(args.port)


if __name__ == "__main__":
    sys.exit(main())
