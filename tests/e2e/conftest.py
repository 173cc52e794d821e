"""Fixtures for tests that start the whole local stack in this process."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from local import stack as local_stack


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """The local stack points this process's boto3 at moto, as `make run` does: undo it afterwards."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def running() -> Iterator[local_stack.LocalStack]:
    started = local_stack.start()
    yield started
    started.stop()
