"""The hostile corpus of the operator's routes (tests/corpus/operations.py) through the real
operations handler: no case ever gets a 5xx or makes the function raise; every refusal is the
error body every route shares, ``{"error", "message", "field"?, "requestId"}``, naming the field
the case expects."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from tests.corpus.operations import REQUEST_ID, Handler, all_cases, event_of, isolated_operations_handler

CASES = all_cases()

handler = pytest.fixture(scope="module")(isolated_operations_handler)


def test_the_corpus_is_large_covers_every_route_and_every_answer() -> None:
    assert len({case["name"] for case in CASES}) == len(CASES)
    assert len(CASES) >= 250
    routes = Counter(f"{case['method']} {case['route']}" for case in CASES)
    for route in (
        "GET /sync/status",
        "GET /sync/issues",
        "GET /contacts/{email}",
        "PUT /audiences/{id}",
        "DELETE /audiences/{id}",
        "POST /replay",
        "POST /reconcile",
    ):
        assert routes[route] >= 3, route
    statuses = {case["status"] for case in CASES if isinstance(case["status"], int)}
    assert statuses >= {200, 400, 401, 404, 413, 415}


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_case(handler: Handler, case: dict[str, Any]) -> None:
    response = handler(event_of(case))
    status = response["statusCode"]
    answer = json.loads(response["body"]) if response.get("body") else None
    assert status < 500, answer
    assert status in (case["status"] if isinstance(case["status"], list) else [case["status"]]), answer
    assert isinstance(answer, dict)
    if status >= 400:
        assert set(answer) == {"error", "message", "requestId"} | ({"field"} if "field" in answer else set())
        assert isinstance(answer["error"], str) and answer["error"]
        assert isinstance(answer["message"], str) and len(answer["message"]) <= 400
        assert answer["requestId"] == REQUEST_ID
        assert answer.get("field") == case["field"], answer
