"""`make serve`: the local stack keeps consuming what is posted after it started, until stopped."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

import pytest
import requests

from local import stack as local_stack
from local.template import ROOT

WAIT_SECONDS = 30


def banner_value(banner: str, label: str) -> str:
    match = re.search(rf"^{re.escape(label)}\s*: (\S+)", banner, re.MULTILINE)
    assert match, f"{label!r} is not in the banner:\n{banner}"
    return match.group(1)


def post_profile(activations_url: str, token: str, email: str) -> None:
    response = requests.post(
        activations_url,
        json={"email": email, "attributes": {"firstname": "Served"}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1


def wait_for_contact(state_url: str, email: str) -> dict[str, Any]:
    """The contact as the sandbox reports it, once the flush has written it."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        contacts = requests.get(state_url, timeout=5).json()["contacts"]
        found = [c for c in contacts if c["properties"].get("email") == email]
        if found:
            return dict(found[0]["properties"])
        time.sleep(0.2)
    raise AssertionError(f"{email} did not reach HubSpot within {WAIT_SECONDS} s")


def test_serve_syncs_profiles_posted_after_start_up(capsys: pytest.CaptureFixture[str]) -> None:
    serving = local_stack.start_serving(port=0, quiet=True)
    try:
        print(serving.banner())
        banner = capsys.readouterr().out
        url = banner_value(banner, "activations endpoint")
        token = banner_value(banner, "ingest token")
        state_url = banner_value(banner, "sandbox state")
        assert "Create a developer test account" in banner and "HUBSPOT_CREDENTIAL=" in banner
        # Once the queue is empty a drain would have returned; the merge must still be polling.
        time.sleep(1)
        post_profile(url, token, "first@example.com")
        assert wait_for_contact(state_url, "first@example.com")["firstname"] == "Served"
        post_profile(url, token, "second@example.com")
        wait_for_contact(state_url, "second@example.com")
        assert serving.stack.sandbox is not None
        assert len(serving.stack.sandbox.state.contacts) == 2
    finally:
        serving.stop()
    assert not serving.consumer.is_alive()


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


@contextlib.contextmanager
def serve_command() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`python -m local.stack serve --port 0` and its banner, once printed; killed if still running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "local.stack", "serve", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        banner = ""
        deadline = time.monotonic() + WAIT_SECONDS
        while "Ctrl-C to stop" not in banner:
            banner += lines.get(timeout=max(0.1, deadline - time.monotonic()))
        yield process, banner
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_serve_command_prints_a_working_banner_and_stops_on_sigterm() -> None:
    with serve_command() as (process, banner):
        post_profile(
            banner_value(banner, "activations endpoint"),
            banner_value(banner, "ingest token"),
            "cli@example.com",
        )
        wait_for_contact(banner_value(banner, "sandbox state"), "cli@example.com")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=WAIT_SECONDS) == 0


@pytest.mark.parametrize("attempt", range(10))
def test_sigterm_right_after_the_banner_stops_the_serve_command(attempt: int) -> None:
    """As `make serve` stopped by a supervisor (or a script that read the banner): every time."""
    with serve_command() as (process, _):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=WAIT_SECONDS) == 0
