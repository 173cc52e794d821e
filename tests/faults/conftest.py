"""The sync as deployed, in one process: the ledger table (from template.yaml) and the FIFO queue in
moto, the HubSpot sandbox on loopback with a fast (1 s) rate window, the merge function's consumer
and flush containers built by ``upsert.wiring``, and the flusher's wake-ups caught by a local waker.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import boto3
import pytest
import requests
from hubspot_activation.hubspot.client import HubSpotClient, RetryPolicy
from hubspot_activation.hubspot.governor import RateGovernor
from hubspot_activation.hubspot.versions import ApiVersion
from hubspot_activation.ledger.contact_item import PENDING_SINCE
from hubspot_activation.ledger.contact_state import DynamoDbContactStates
from hubspot_activation.ledger.daily_counter import DynamoDbDailyCounter
from hubspot_activation.ledger.keys import KEY
from hubspot_activation.settings import UpsertSettings
from hubspot_activation.upsert import wiring
from hubspot_activation.upsert.adapter import FlushRunner, MergeConsumer
from hubspot_activation.upsert.ports import ContactWriter, FlushWaker
from hubspot_activation.upsert.state import ContactState
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend

from local.hubspot_sandbox import SandboxConfig, SandboxServer
from local.hubspot_sandbox.state import SandboxState
from tests.builders import is_contact_key
from tests.conftest import create_fifo_queue_with_dlq, create_ledger_table
from tests.faults.workload import PREFIX, CachedSecret

#: Short waits everywhere: a contact's backoff is the long wait, and it is short here too.
FAST_RETRY = RetryPolicy(
    max_attempts=4, max_wait_seconds=5, base_backoff_seconds=0.02, locked_wait_seconds=0.05
)
LANES = 2
_ATOMIC = threading.RLock()
_MARKER = "_atomic_items"


def _install_atomic_items() -> None:
    """DynamoDB applies each request to an item atomically: a conditional write's check and its
    change are one step. moto runs them as Python statements a thread switch can split, so two
    racing writes could both pass their condition; the product's merge/flush protocol relies on
    exactly that never happening. Here every item operation holds one lock."""
    names = (
        "put_item",
        "update_item",
        "delete_item",
        "get_item",
        "batch_get_item",
        "batch_write_item",
        "transact_write_items",
        "query",
        "scan",
    )
    for name in names:
        original = getattr(DynamoDBBackend, name)
        if getattr(original, _MARKER, False):
            continue

        def locked(*args: Any, _original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            with _ATOMIC:
                return _original(*args, **kwargs)

        functools.update_wrapper(locked, original)
        setattr(locked, _MARKER, True)
        setattr(DynamoDBBackend, name, locked)


_install_atomic_items()


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer(SandboxState(config=SandboxConfig(window_ms=1000))).start()
    yield server
    server.stop()


@dataclass
class Aws:
    """The moto resources of one test and the upsert functions' settings pointing at them."""

    settings: UpsertSettings
    dynamodb: Any
    sqs: Any

    @property
    def states(self) -> DynamoDbContactStates:
        return DynamoDbContactStates(self.dynamodb, self.settings.ledger_table)

    def state(self, email: str) -> ContactState:
        return self.states.read([email])[email]

    def pending_emails(self) -> set[str]:
        """Every pending contact, read from the table itself (not the eventually consistent index)."""
        found: set[str] = set()
        for page in self.dynamodb.get_paginator("scan").paginate(TableName=self.settings.ledger_table):
            found.update(
                item[KEY]["S"]
                for item in page["Items"]
                if is_contact_key(item[KEY]["S"]) and PENDING_SINCE in item
            )
        return found


@pytest.fixture
def aws(sandbox: SandboxServer) -> Iterator[Aws]:
    with mock_aws():
        dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
        create_ledger_table("ledger", dynamodb)
        queue, dlq = create_fifo_queue_with_dlq("activations", "activations-dlq", max_receive_count=20)
        settings = UpsertSettings(
            ledger_table="ledger",
            hubspot_secret_id="unused: each container gets its secret from the test",
            queue_url=queue,
            dead_letter_queue_url=dlq,
            hubspot_base_url=sandbox.url,
            api_version=ApiVersion.V3,
            flush_lanes=LANES,
            flush_parallel_calls=4,
            # Pending contacts are written while the queue is still being merged, so HubSpot's
            # faults meet the writes, not only the property calls that come first.
            flush_max_delay_seconds=0,
            retry_base_seconds=1,
            audience_cache_seconds=0,
            property_prefix=PREFIX,
        )
        yield Aws(settings, dynamodb, sqs)


class LaneWaker:
    """The flush function's asynchronous invocations: each ``wake`` is one invocation per lane,
    queued until a container takes it (``take``)."""

    def __init__(self) -> None:
        self._queued: list[int] = []
        self._ready = threading.Condition()
        self.wakes = 0

    def wake(self, lanes: Collection[int], sweep: bool = False) -> None:
        with self._ready:
            self._queued.extend(sorted(lanes))
            self.wakes += len(lanes)
            self._ready.notify_all()

    def take(self, timeout: float) -> int | None:
        with self._ready:
            if not self._queued:
                self._ready.wait(timeout)
            return self._queued.pop(0) if self._queued else None

    def clear(self) -> list[int]:
        with self._ready:
            taken, self._queued = self._queued, []
            return taken


@dataclass
class Context:
    """The part of Lambda's context the flush function reads: its time left, its request id."""

    aws_request_id: str
    remaining_seconds: Callable[[], float] = lambda: 900.0

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining_seconds() * 1000)


@dataclass
class FlushContainer:
    """One flush function instance: its own HubSpot client (governor, credentials, schema cache)
    and runner; it runs one invocation at a time."""

    name: str
    client: HubSpotClient
    runner: FlushRunner
    secret: CachedSecret
    summaries: list[dict[str, Any]] = field(default_factory=list)
    _runs: int = 0

    def invoke(self, event: dict[str, Any], remaining: Callable[[], float] = lambda: 900.0) -> dict[str, Any]:
        self._runs += 1
        request_id = f"{self.name}-{self._runs}-{uuid.uuid4().hex[:8]}"
        summary = self.runner.handle(event, Context(request_id, remaining))
        if "rounds" in summary:
            self.summaries.append(summary)
        return summary


def hubspot_secret(sandbox: SandboxServer, oauth: bool) -> CachedSecret:
    state = sandbox.state
    if oauth:
        client_id, client_secret, refresh = state.add_oauth_app()
        return CachedSecret({"clientId": client_id, "clientSecret": client_secret, "refreshToken": refresh})
    return CachedSecret({"accessToken": state.add_private_app_token()})


def flush_container(
    sandbox: SandboxServer,
    aws: Aws,
    waker: LaneWaker,
    *,
    name: str = "flush",
    oauth: bool = False,
    version: ApiVersion = ApiVersion.V3,
    timeout: tuple[float, float] = (1.0, 2.0),
    retry: RetryPolicy = FAST_RETRY,
    wall_clock: Callable[[], float] = time.time,
    settings: UpsertSettings | None = None,
    writer: Callable[[HubSpotClient], ContactWriter] | None = None,
    clock: Callable[[], float] = time.time,
    dynamodb: Any = None,
    session: requests.Session | None = None,
) -> FlushContainer:
    """A flush container wired by ``wiring.flush_runner``; ``writer`` wraps its client's batch
    upserts (a crash, an observer), ``clock`` is the runner's clock (the lease's expiry);
    ``dynamodb`` and ``session`` are its own AWS client and HTTP session (a test watching them)."""
    dynamodb = dynamodb or aws.dynamodb
    settings = replace(settings or aws.settings, api_version=version)
    secret = hubspot_secret(sandbox, oauth)
    governor = RateGovernor(
        replace(
            wiring.governor_settings(settings),
            limit_per_window=sandbox.state.config.ten_second_limit,
            window_seconds=sandbox.state.config.window_ms / 1000,
            share=0.9,
            daily_reserve=0,
        ),
        wall_clock=wall_clock,
        daily_counter=DynamoDbDailyCounter(dynamodb, settings.ledger_table),
    )
    client = wiring.hubspot_client(settings, secret, governor, timeout=timeout, retry=retry, session=session)
    runner = wiring.flush_runner(
        settings, client, dynamodb, aws.sqs, waker, writer=writer(client) if writer else None
    )
    return FlushContainer(name, client, replace(runner, clock=clock), secret)


def merge_consumer(aws: Aws, waker: FlushWaker, dynamodb: Any = None) -> MergeConsumer:
    return wiring.merge_consumer(aws.settings, dynamodb or aws.dynamodb, aws.sqs, waker)
