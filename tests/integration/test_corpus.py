"""The hostile corpus (tests/corpus/cases.jsonl) through the real ingest handler: every case gets
exactly its recorded status and JSON answer, and no case ever gets a 5xx or raises."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.corpus.harness import Handler, event_of, isolated_ingest_handler, load_cases

CASES = load_cases()


handler = pytest.fixture(scope="module")(isolated_ingest_handler)


def test_the_corpus_is_large_and_covers_every_answer() -> None:
    assert len(CASES) >= 300
    assert {case["status"] for case in CASES} >= {202, 400, 401, 404, 405, 413, 415}
    assert all(case["status"] < 500 for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_case(handler: Handler, case: dict[str, Any]) -> None:
    response = handler(event_of(case))
    answer = json.loads(response["body"]) if response.get("body") else None
    assert (response["statusCode"], answer) == (case["status"], case["response"])
