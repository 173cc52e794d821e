"""Fault injection end to end: 1,200 interleaved updates of 300 contacts through the FIFO queue
(moto, receiving like SQS FIFO), merged by two merge containers into the ledger (moto), and
written to the HubSpot sandbox by three flush containers running the two flush lanes under their
leases, while HubSpot fails in every way the connector claims to survive.

The invariant: every accepted contact ends in HubSpot with its newest state (the ordering rules,
computed by ``workload.expected_state``) and the ledger agrees with it, or the contact is recorded
as failed with a reason; no attribute ever goes back to an older value; nothing is left pending.

Faults: 5xx answers, dropped connections, writes applied but answered 5xx, TEN_SECONDLY 429 bursts,
one DAILY exhaustion and reset, latency beyond the client's timeout (HubSpot applies the write
after the client gave up), a private-app token rotation and an OAuth token expiry.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import requests
from hubspot_activation.hubspot.client import RetryPolicy
from hubspot_activation.hubspot.versions import ApiVersion
from hubspot_activation.upsert.state import FlushLease

from local.event_source import EventSourcePoller
from local.hubspot_sandbox import SandboxServer
from tests.faults.conftest import LANES, Aws, FlushContainer, LaneWaker, flush_container, merge_consumer
from tests.faults.workload import (
    Workload,
    build_workload,
    expected_state,
    hubspot_by_email,
    hubspot_mismatches,
    ledger_mismatches,
    rollbacks,
    unsettled,
)

pytestmark = pytest.mark.faults

#: Calls per app per (1 s) window: low enough that the governors must pace.
LIMIT = 10
#: moto's DynamoDB takes tens of milliseconds per conditional write: the workload is sized so that
#: merging and recording it stays within a minute or two of CPU, with every fault still hit.
CONTACTS = 300
DEADLINE_SECONDS = 420.0
#: The client's first backoff (1 s) outlasts a late apply (700 ms latency less the 0.5 s timeout),
#: and so does a contact's backoff after an unconfirmed write (retry_base_seconds = 1): a timed-out
#: attempt lands before the contact is written again.
PATIENT_RETRY = RetryPolicy(
    max_attempts=4, max_wait_seconds=5, base_backoff_seconds=1.0, locked_wait_seconds=0.05
)


class WatchedLease:
    """The lane lease as the flush runners use it, watched: a lane taken while another run holds it
    would be two runs writing the same contacts."""

    def __init__(self, lease: FlushLease, holders: dict[int, str], overlaps: list[str]) -> None:
        self._lease = lease
        self._holders = holders
        self._overlaps = overlaps
        self._lock = threading.Lock()
        self.refused = 0

    def acquire(self, lane: int, owner: str, until_ms: int, now_ms: int) -> bool:
        taken = self._lease.acquire(lane, owner, until_ms, now_ms)
        with self._lock:
            if not taken:
                self.refused += 1
            elif self._holders.get(lane) not in (None, owner):
                self._overlaps.append(f"lane {lane}: {owner} while {self._holders[lane]} runs")
            if taken:
                self._holders[lane] = owner
        return taken

    def ask_again(self, lane: int, now_ms: int) -> bool:
        return self._lease.ask_again(lane, now_ms)

    def release(self, lane: int, owner: str) -> bool:
        with self._lock:
            if self._holders.get(lane) == owner:
                del self._holders[lane]
        return self._lease.release(lane, owner)


@dataclass
class Flushers:
    """The flush function: containers taking the waker's invocations, one at a time each, and the
    schedule waking every lane each second (every minute deployed)."""

    containers: list[FlushContainer]
    waker: LaneWaker
    stop: threading.Event
    leases: list[WatchedLease] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    running: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def work(self, container: FlushContainer) -> None:
        while not self.stop.is_set():
            lane = self.waker.take(timeout=0.1)
            if lane is None:
                continue
            with self.lock:
                self.running += 1
            try:
                container.invoke({"lane": lane})
            except Exception:  # Lambda logs it; the lease expires, the schedule runs the lane
                self.crashes.append(f"{container.name}: {traceback.format_exc()[-2_000:]}")
            finally:
                with self.lock:
                    self.running -= 1

    def schedule(self) -> None:
        while not self.stop.wait(1.0):
            self.containers[0].runner.handle({"source": "aws.scheduler"})

    def summaries(self) -> list[dict[str, Any]]:
        return [summary for container in self.containers for summary in container.summaries]


class Chaos:
    """Switches the sandbox's faults on as the queue is merged, and records what it did."""

    def __init__(self, sandbox: SandboxServer, progress: Callable[[], int], flushers: Flushers) -> None:
        self.sandbox = sandbox
        self.progress = progress
        self.flushers = flushers
        self.deadline = time.monotonic() + DEADLINE_SECONDS
        self.events: Counter[str] = Counter()
        self.offset = 0.0
        #: what the test waits for, told when it gives up
        self.status: Callable[[], str] = lambda: ""

    def wall_clock(self) -> float:
        return time.time() + self.offset

    def wait_for(self, merged: int) -> None:
        while self.progress() < merged:
            self.tick()

    def tick(self, seconds: float = 0.05) -> None:
        if time.monotonic() > self.deadline:
            raise AssertionError(f"no convergence within {DEADLINE_SECONDS} s: {self.status()}")
        time.sleep(seconds)

    def fail_until_hit(self, rate: str, fault: str) -> None:
        """Every call fails this way (``rate`` at 1) until one did: the fault happens whatever the
        random rates drew."""
        config, faults = self.sandbox.state.config, self.sandbox.state.faults
        before, usual = faults[fault], getattr(config, rate)
        config.update({rate: 1.0})
        try:
            while faults[fault] == before:
                self.tick()
        finally:
            config.update({rate: usual})
        self.events[f"forced {fault}"] += 1

    def burst_429(self, calls: int) -> None:
        self.sandbox.state.config.force_429 += calls
        self.events["429 bursts"] += 1

    def rotate_token(self, container: FlushContainer) -> None:
        state, secret = self.sandbox.state, container.secret
        old = secret(False)["accessToken"]
        secret.publish({"accessToken": state.add_private_app_token()})
        assert state.revoke_token(old)
        self.events["token rotations"] += 1

    def exhaust_daily(self) -> None:
        state = self.sandbox.state
        with state.lock:
            state.config.daily_limit = state.daily_used
        stopped_at = time.monotonic()
        stopped: set[int] = set()
        while len(stopped) < LANES and time.monotonic() - stopped_at < 10:
            stopped = {s["lane"] for s in self.flushers.summaries() if s["dailyLimitResetsAt"] is not None}
            self.tick()
        with state.lock:
            state.config.daily_limit = 250_000
        time.sleep(0.5)  # answers decided before the raise land before the day turns
        self.offset += 86_400  # the governors' wall clock passes the account's midnight
        self.events["daily exhaustions"] += 1

    def slow_down(self, latency_ms: int, seconds: float) -> None:
        self.sandbox.state.config.latency_ms = latency_ms
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.tick()
        self.sandbox.state.config.latency_ms = 0
        self.events["latency periods"] += 1

    def expire_oauth(self) -> None:
        answer = requests.post(self.sandbox.url + "/__sandbox/expire-tokens", timeout=5)
        assert answer.status_code == 200
        self.events["oauth expiries"] += 1


def produce(aws: Aws, workload: Workload, merged: Callable[[], int], finished: threading.Event) -> None:
    sequence = 0

    def send(delivery: Any) -> None:
        nonlocal sequence
        sequence += 1
        aws.sqs.send_message(
            QueueUrl=aws.settings.queue_url,
            MessageBody=delivery.message.body,
            MessageGroupId=delivery.message.group_id,
            MessageDeduplicationId=delivery.deduplication_id(sequence),
        )

    for previous, delivery in zip([None, *workload.deliveries], workload.deliveries, strict=False):
        if previous is not None and previous.request != delivery.request:
            time.sleep(0.02)  # requests arrive over time, so batches mix old and new
        send(delivery)
    # Older messages again once their newer successors are (mostly) merged: a replay, a redrive.
    while merged() < 0.8 * len(workload.deliveries):
        time.sleep(0.05)
    for delivery in workload.late:
        send(delivery)
    finished.set()


def explain(mismatches: list[str], state: Any, aws: Aws, workload: Workload) -> str:
    """The mismatches with what is needed to read them: HubSpot's history of the property, the
    contact's state in the ledger, and every update of the contact with its stamp."""
    lines = list(mismatches[:10])
    for email in sorted({line.split()[0] for line in mismatches})[:3]:
        contact = state.contacts.get(state.email_index.get(email), {})
        history = {
            name: [(v["value"], v["timestamp"]) for v in versions][:6]
            for name, versions in contact.get("history", {}).items()
            if name not in ("email", "hs_object_id", "createdate", "lastmodifieddate")
        }
        updates = [
            (
                u.received_ms % 1_000_000,
                u.position,
                [(a.audience_id, a.status.value, a.timestamp_ms) for a in u.audiences],
                u.attributes,
            )
            for u in workload.updates
            if u.email == email
        ]
        lines += [f"-- {email}", f"history {history}", f"ledger {aws.state(email)}", f"updates {updates}"]
    return "\n".join(lines)


def test_faults_converge_to_the_ordering_rules(
    sandbox: SandboxServer, aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    workload = build_workload(contacts=CONTACTS, requests=30, per_request=40)
    expected = expected_state(workload.updates)
    state = sandbox.state
    state.config.ten_second_limit = LIMIT
    waker = LaneWaker()
    stop, finished = threading.Event(), threading.Event()
    queue_arn = aws.sqs.get_queue_attributes(QueueUrl=aws.settings.queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    merge_errors: list[str] = []

    def merge_function() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        handle = merge_consumer(aws, waker).handle

        def invoke(event: dict[str, Any], context: Any) -> dict[str, Any]:
            try:
                return handle(event, context)
            except Exception:
                merge_errors.append(traceback.format_exc()[-2_000:])
                raise

        return invoke

    # Two merge containers (the event source's concurrency), failed records back in 1 s.
    pollers = [
        EventSourcePoller(aws.sqs, aws.settings.queue_url, queue_arn, merge_function(), visibility_timeout=1)
        for _ in range(2)
    ]

    def merged() -> int:
        return sum(poller.stats.deleted for poller in pollers)

    flushers = Flushers([], waker, stop)
    chaos = Chaos(sandbox, merged, flushers)
    holders: dict[int, str] = {}
    overlaps: list[str] = []

    def container(name: str, oauth: bool, version: ApiVersion) -> FlushContainer:
        # Each container is one flush function instance: its own client, governor, credentials
        # and schema cache. A 700 ms answer comes after its client gave up.
        built = flush_container(
            sandbox,
            aws,
            waker,
            name=name,
            oauth=oauth,
            version=version,
            timeout=(1.0, 0.5),
            retry=PATIENT_RETRY,
            wall_clock=chaos.wall_clock,
        )
        lease = WatchedLease(built.runner.lease, holders, overlaps)
        flushers.leases.append(lease)
        built.runner = replace(built.runner, lease=lease)
        return built

    static = container("static", False, ApiVersion.V3)
    oauth = container("oauth", True, ApiVersion.V2026_09)
    spare = container("spare", False, ApiVersion.V2026_09)
    flushers.containers.extend([static, oauth, spare])
    threads = [
        threading.Thread(target=produce, args=(aws, workload, merged, finished), name="producer"),
        *(threading.Thread(target=p.run, args=(stop,), name=f"merge-{i}") for i, p in enumerate(pollers)),
        *(threading.Thread(target=flushers.work, args=(c,), name=c.name) for c in flushers.containers),
        threading.Thread(target=flushers.schedule, name="schedule"),
    ]
    state.config.update({"error_rate": 0.05, "drop_rate": 0.02, "applied_error_rate": 0.02})
    total = len(workload.deliveries)

    def status() -> str:
        pending = sorted(aws.pending_emails())
        return (
            f"producer done {finished.is_set()}, queue {pollers[0].pending()}, flush runs "
            f"{flushers.running}, pending {len(pending)}: "
            f"{[aws.state(email) for email in pending[:2]]}, last runs {flushers.summaries()[-4:]}"
        )

    chaos.status = status
    for thread in threads:
        thread.start()
    try:
        schedule: list[tuple[float, Callable[[], None]]] = [
            (0.10, lambda: chaos.burst_429(6)),
            (0.15, lambda: chaos.fail_until_hit("drop_rate", "drop")),
            (0.20, lambda: chaos.rotate_token(static)),
            (0.30, chaos.exhaust_daily),
            (0.40, lambda: chaos.fail_until_hit("applied_error_rate", "applied_error")),
            (0.45, lambda: chaos.slow_down(700, 3.0)),
            (0.55, lambda: chaos.fail_until_hit("error_rate", "error")),
            (0.60, chaos.expire_oauth),
            (0.70, lambda: chaos.burst_429(6)),
        ]
        for fraction, action in schedule:
            chaos.wait_for(int(fraction * total))
            action()
        # Done when every message is merged and no contact is pending: a contact stays pending
        # while a run writes it, so runs still going (the schedule's) have nothing left to write.
        while not (finished.is_set() and pollers[0].pending() == 0 and not aws.pending_emails()):
            chaos.tick(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    state.config.update({"error_rate": 0, "drop_rate": 0, "applied_error_rate": 0})
    time.sleep(0.3)  # requests the clients gave up on finish in the sandbox

    contacts, ids, duplicates = hubspot_by_email(state)
    mismatches = hubspot_mismatches(contacts, expected)
    states = aws.states.read(sorted(expected))
    summaries = flushers.summaries()
    client_calls = sum(c.client.requests_sent for c in flushers.containers)
    sandbox_calls = (
        sum(count for route, count in state.requests.items() if route != "POST oauth_token")
        + sum(state.throttled.values())
        + state.faults["drop"]
        + state.faults["auth"]
    )
    faults = {
        "5xx": state.faults["error"],
        "applied+5xx": state.faults["applied_error"],
        "dropped": state.faults["drop"],
        "429": state.throttled["TEN_SECONDLY_ROLLING"],
        # The governors see the daily limit coming in HubSpot's headers and pause before a 429
        # (OAuth apps get no such header: their pause follows HubSpot's DAILY 429).
        "DAILY": sum(s["dailyLimitResetsAt"] is not None for s in summaries),
        "late": state.faults["latency"],
        "401": state.faults["auth"],
    }
    totals: Counter[str] = Counter()
    for summary in summaries:
        totals.update({key: summary[key] for key in ("synced", "failed", "retriedLater", "calls")})
    refused = sum(lease.refused for lease in flushers.leases)
    with capsys.disabled():
        print(
            f"\nfault suite: {len(workload.updates)} updates, {len(workload.requests)} requests, "
            f"{sum(p.stats.records for p in pollers)} records merged; faults {faults}; "
            f"{len(summaries)} flush runs ({refused} found their lane taken), {dict(totals)}; "
            f"{client_calls} HubSpot calls; mismatches {len(mismatches)}; "
            f"{time.monotonic() - started:.0f} s"
        )

    assert flushers.crashes == [] and merge_errors == []
    assert sum(p.stats.errors for p in pollers) == 0
    # Runs met on a lane (the merge's wake-ups, the schedule's) and never ran it together.
    assert overlaps == [] and refused > 0
    assert duplicates == [] and len(contacts) == len(expected) == CONTACTS
    assert unsettled(states, expected) == []
    assert mismatches == [], explain(mismatches, state, aws, workload)
    assert ledger_mismatches(states, contacts, ids, expected)[:20] == []
    assert rollbacks(state, workload.updates) == []
    # The queue: every message merged and deleted once, none dead-lettered.
    dlq = aws.sqs.get_queue_attributes(
        QueueUrl=aws.settings.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert dlq == "0" and pollers[0].pending() == 0
    assert merged() == total + len(workload.late)
    # Every call the clients made reached the sandbox, and the runs' summaries account for all.
    assert client_calls == sandbox_calls == sum(summary["hubspotRequests"] for summary in summaries)
    assert totals["failed"] == 0 and totals["synced"] >= len(expected)
    # Every kind of fault happened.
    assert all(count > 0 for count in faults.values()), faults
    assert chaos.events == {
        "forced drop": 1,
        "forced applied_error": 1,
        "forced error": 1,
        "429 bursts": 2,
        "token rotations": 1,
        "daily exhaustions": 1,
        "latency periods": 1,
        "oauth expiries": 1,
    }
    assert static.secret.forced_reads >= 1
