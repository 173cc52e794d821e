"""Lambda's asynchronous invocations and EventBridge's schedule, for the functions of the local stack.

The merge function wakes the flush function with ``lambda:Invoke`` (``InvocationType=Event``), and
the flush function starts its own next run the same way; a schedule runs it every minute. moto
cannot run a function, so this takes those calls from every boto3 client of the process (the
functions make theirs from the default session) before they leave, answers 202 as Lambda does,
and runs the function's handler in a worker thread with the event, as Lambda's internal queue
would: invocations beyond ``concurrency`` wait for a free worker (Lambda would throttle and retry
them), and an invocation that raises is logged (Lambda would retry it twice).

Each invocation runs in an execution environment (a container) of its own, as in Lambda: a
handler from ``new_container`` (a fresh module, so its own clients, caches and rate governor).
As Lambda does, an invocation reuses an idle container (the one used last: the warmest) and a new
one is made only when every container is busy, so sequential invocations share one container's
caches and only concurrent ones meet a cold one.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders

from .api_server import LocalContext

logger = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class AsyncStats:
    invocations: int = 0
    errors: int = 0


@dataclass
class LocalAsyncFunction:
    """One function's asynchronous invocations: by name, from ``lambda:Invoke`` calls."""

    name: str
    #: A new execution environment's handler
    new_container: Callable[[], Handler]
    timeout_seconds: float
    concurrency: int = 2
    stats: AsyncStats = field(default_factory=AsyncStats)
    _events: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)
    _busy: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)
    #: idle containers with the generation they were made in, the one used last at the end
    _idle: list[tuple[int, Handler]] = field(default_factory=list)
    #: bumped by ``cold_start``: a container of an older generation is not used again
    _generation: int = 0

    def start(self) -> LocalAsyncFunction:
        _route_invocations(self)
        self._idle.append((self._generation, self._container()))
        for index in range(self.concurrency):
            worker = threading.Thread(target=self._work, name=f"{self.name}-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def cold_start(self) -> None:
        """Every invocation from now on runs in a new container, as after a change of the
        function's code or configuration (a new secret is read, every cache starts empty)."""
        with self._lock:
            self._generation += 1
            self._idle.clear()

    def invoke(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._busy += 1
        self._events.put(event)

    def idle(self) -> bool:
        with self._lock:
            return self._busy == 0

    def stop(self) -> None:
        _ROUTES.pop(self.name, None)
        for _worker in self._workers:
            self._events.put(None)
        for worker in self._workers:
            worker.join(timeout=self.timeout_seconds)

    def _container(self) -> Handler:
        # One load at a time: a container's module is executed like an import.
        with _LOADING:
            return self.new_container()

    def _take(self) -> tuple[int, Handler]:
        with self._lock:
            self.stats.invocations += 1
            if self._idle:
                return self._idle.pop()
            generation = self._generation
        return generation, self._container()

    def _work(self) -> None:
        while True:
            event = self._events.get()
            if event is None:
                return
            generation, handler = self._take()
            try:
                handler(
                    event,
                    LocalContext(
                        function_name=self.name,
                        aws_request_id=str(uuid.uuid4()),
                        timeout_seconds=self.timeout_seconds,
                    ),
                )
            except Exception:
                with self._lock:
                    self.stats.errors += 1
                logger.exception("the %s function failed", self.name)
            finally:
                with self._lock:
                    if generation == self._generation:
                        self._idle.append((generation, handler))
                    self._busy -= 1


@dataclass
class LocalSchedule:
    """EventBridge Scheduler's ``rate(...)`` target: ``event`` (the target's input) every ``seconds``."""

    function: LocalAsyncFunction
    seconds: float
    event: dict[str, Any] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> LocalSchedule:
        threading.Thread(target=self._run, name=f"{self.function.name}-schedule", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            self.function.invoke(dict(self.event))


_ROUTES: dict[str, LocalAsyncFunction] = {}
#: The default sessions the interception is on: moto's ``mock_aws`` gives each of its contexts a
#: default session of its own, and the functions' clients come from whichever is current.
_SESSIONS: weakref.WeakSet[boto3.Session] = weakref.WeakSet()
_LOADING = threading.Lock()


def _route_invocations(function: LocalAsyncFunction) -> None:
    _ROUTES[function.name] = function
    session = boto3._get_default_session()
    if session in _SESSIONS:
        return
    _SESSIONS.add(session)
    session.events.register("before-call.lambda.Invoke", _answer)  # type: ignore[arg-type]


def _answer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
    body = params.get("body") or {}
    name = str(params.get("url_path", "")).split("/functions/")[-1].split("/")[0]
    function = _ROUTES.get(name) or next(
        (f for key, f in _ROUTES.items() if name.endswith(key) or key.endswith(name)), None
    )
    if function is None:
        return None  # not a local function: moto answers
    payload = body if isinstance(body, bytes | bytearray) else str(body).encode("utf-8")
    function.invoke(json.loads(payload or b"{}"))
    parsed = {"StatusCode": 202, "ResponseMetadata": {"HTTPStatusCode": 202}}
    return AWSResponse("", 202, HTTPHeaders(), None), parsed
