"""The README's `make run` path: moto server + local API over real HTTP on loopback."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import requests

from local import stack as local_stack
from local.functions import load_function


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """The local stack points this process's boto3 at moto, as `make run` does: undo it afterwards."""
    saved = dict(os.environ)
    load_function("ingest")._api.cache_clear()
    yield
    load_function("ingest")._api.cache_clear()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def running() -> Iterator[local_stack.LocalStack]:
    started = local_stack.start()
    yield started
    started.stop()


def test_every_sample_event_is_accepted_over_http(running: local_stack.LocalStack) -> None:
    accepted = 0
    for name, event in local_stack.sample_requests():
        response = local_stack.post_event(running, event)
        assert response.status_code == 202, (name, response.text)
        accepted += response.json()["accepted"]
    messages, per_group = local_stack.queued_updates_per_group(running)
    assert accepted == sum(per_group.values()) > 0
    assert messages >= len(per_group)


def test_the_local_queue_is_created_from_the_template(running: local_stack.LocalStack) -> None:
    sqs = running.aws.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=running.queue_url(), AttributeNames=["All"])["Attributes"]
    assert attributes["FifoQueue"] == "true"
    assert attributes["VisibilityTimeout"] == "900"
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 20


def test_curl_without_a_token_is_refused(running: local_stack.LocalStack) -> None:
    response = requests.post(running.activations_url, json={"email": "a@example.com"}, timeout=5)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_demo_exits_zero() -> None:
    assert local_stack.demo() == 0
