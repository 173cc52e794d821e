"""`hubspot-activation send` against a mocked API: batching, retries, the report, failures."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from hubspot_activation_cli.api import ApiClient, retry_after_seconds
from hubspot_activation_cli.main import main
from hubspot_activation_cli.members import Batch
from hubspot_activation_cli.send import Progress, SendReport, send_file

BASE = "https://api.example.test"
ACTIVATIONS = f"{BASE}/activations"


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mock:
        yield mock


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(sleeps: Sleeps | None = None, **kwargs: Any) -> ApiClient:
    return ApiClient(BASE, "secret-token", sleep=sleeps if sleeps is not None else Sleeps(), **kwargs)


def csv_file(tmp_path: Path, emails: list[str]) -> Path:
    path = tmp_path / "members.csv"
    path.write_text(
        "email,audience_id,status\n" + "".join(f"{email},gold,realized\n" for email in emails),
        encoding="utf-8",
    )
    return path


def accept_valid(request: Any) -> tuple[int, dict[str, str], str]:
    """Like the ingest API: a profile whose email has no @ is excluded, the others accepted."""
    profiles = json.loads(request.body)["profiles"]
    excluded = [
        {"index": i, "reason": "no usable email"} for i, p in enumerate(profiles) if "@" not in p["email"]
    ]
    body = {"accepted": len(profiles) - len(excluded), "excluded": excluded, "requestId": "r"}
    return 202, {}, json.dumps(body)


def test_send_posts_batches_with_the_token_and_reports_counts(
    mocked: responses.RequestsMock, tmp_path: Path
) -> None:
    mocked.add_callback(responses.POST, ACTIVATIONS, callback=accept_valid)
    emails = [f"user{i}@example.com" for i in range(2500)] + ["broken", "also-broken"]
    report = send_file(client(), csv_file(tmp_path, emails), "csv", batch_size=1000)
    assert [len(json.loads(call.request.body or "")["profiles"]) for call in mocked.calls] == [
        1000,
        1000,
        502,
    ]
    assert all(call.request.headers["Authorization"] == "Bearer secret-token" for call in mocked.calls)
    assert (report.rows, report.profiles, report.requests, report.retries) == (2502, 2502, 3, 0)
    assert report.accepted == 2500 and report.excluded == {"no usable email": 2}
    assert report.accepted + report.excluded_total == 2502
    rendered = report.render()
    assert "accepted  2500" in rendered and "excluded  2" in rendered
    assert "2  no usable email  (e.g. 'broken', 'also-broken')" in rendered


def test_warnings_are_aggregated_by_reason(mocked: responses.RequestsMock, tmp_path: Path) -> None:
    answer = {
        "accepted": 2,
        "excluded": [],
        "warnings": [
            {"index": 0, "field": "audiences.gold", "reason": "unknown audience status"},
            {"index": 1, "field": "audiences.gold", "reason": "unknown audience status"},
        ],
    }
    mocked.add(responses.POST, ACTIVATIONS, json=answer, status=202)
    report = send_file(client(), csv_file(tmp_path, ["a@x.com", "b@x.com"]), "csv")
    assert report.warnings == {"unknown audience status": 2}
    assert "warnings  2" in report.render()


def test_fields_skipped_by_rule_are_added_up_over_requests_a_line_per_rule(
    mocked: responses.RequestsMock, tmp_path: Path
) -> None:
    answers = iter(
        [
            {"accepted": 2, "excluded": [], "skippedByRule": {"never": 2, "unless_blank": 1}},
            {"accepted": 1, "excluded": [], "skippedByRule": {"never": 1}},
        ]
    )
    mocked.add_callback(responses.POST, ACTIVATIONS, callback=lambda _r: (202, {}, json.dumps(next(answers))))
    report = send_file(client(), csv_file(tmp_path, ["a@x.com", "b@x.com", "c@x.com"]), "csv", batch_size=2)
    assert report.skipped_by_rule == {"never": 3, "unless_blank": 1}
    lines = report.render().splitlines()
    at = lines.index("fields skipped by rule  4")
    assert lines[at + 1 : at + 3] == ["         3  never", "         1  unless_blank"]
    quiet = SendReport(url=ACTIVATIONS)
    quiet.record(Batch(), {"accepted": 1, "excluded": [], "skippedByRule": {}})
    assert quiet.skipped_by_rule == {} and "skipped" not in quiet.render()


def test_429_is_retried_after_the_retry_after_header(mocked: responses.RequestsMock, tmp_path: Path) -> None:
    mocked.add(
        responses.POST, ACTIVATIONS, status=429, headers={"Retry-After": "7"}, json={"message": "Too Many"}
    )
    mocked.add(responses.POST, ACTIVATIONS, status=503, json={"error": "queue_unavailable"})
    mocked.add(responses.POST, ACTIVATIONS, status=202, json={"accepted": 1, "excluded": []})
    sleeps = Sleeps()
    report = send_file(client(sleeps), csv_file(tmp_path, ["a@example.com"]), "csv")
    assert sleeps[0] == 7.0  # as the API asked
    assert len(sleeps) == 2 and sleeps[1] > 0  # no Retry-After: the client's own backoff
    assert (report.requests, report.retries, report.accepted, report.failure) == (1, 2, 1, None)
    assert "sent 1 row as 1 profile in 1 request (2 retries)" in report.render()


def test_connection_errors_are_retried_too(mocked: responses.RequestsMock, tmp_path: Path) -> None:
    mocked.add(responses.POST, ACTIVATIONS, body=requests.ConnectionError("reset"))
    mocked.add(responses.POST, ACTIVATIONS, status=202, json={"accepted": 1, "excluded": []})
    report = send_file(client(), csv_file(tmp_path, ["a@example.com"]), "csv")
    assert report.retries == 1 and report.accepted == 1


def test_retries_give_up_and_stop_the_run_with_a_reason(
    mocked: responses.RequestsMock, tmp_path: Path
) -> None:
    mocked.add(responses.POST, ACTIVATIONS, status=502, json={"message": "Internal Server Error"})
    sleeps = Sleeps()
    report = send_file(client(sleeps, max_retries=2), csv_file(tmp_path, ["a@example.com"]), "csv")
    assert len(mocked.calls) == 3 and sleeps == [0.5, 1.0]
    assert report.failure is not None and "HTTP 502" in report.failure
    assert report.accepted == 0


def test_an_unauthorized_answer_stops_at_once_with_a_hint(
    mocked: responses.RequestsMock, tmp_path: Path
) -> None:
    mocked.add(
        responses.POST,
        ACTIVATIONS,
        status=401,
        json={"error": "unauthorized", "message": "token does not match"},
    )
    out = io.StringIO()
    code = main(
        ["send", str(csv_file(tmp_path, ["a@example.com", "b@example.com"])), "--url", BASE, "--token", "t"],
        out=out,
        err=io.StringIO(),
        client_factory=partial(ApiClient, sleep=Sleeps()),
    )
    assert code == 1 and len(mocked.calls) == 1
    assert "HTTP 401 unauthorized: token does not match - check the token" in out.getvalue()


def test_the_activations_url_is_accepted_as_the_base(mocked: responses.RequestsMock, tmp_path: Path) -> None:
    mocked.add(responses.POST, ACTIVATIONS, status=202, json={"accepted": 1, "excluded": []})
    api = ApiClient(f"{ACTIVATIONS}/", "t")
    assert api.base_url == BASE
    assert send_file(api, csv_file(tmp_path, ["a@example.com"]), "csv").accepted == 1


def test_a_malformed_file_sends_nothing(mocked: responses.RequestsMock, tmp_path: Path) -> None:
    path = tmp_path / "members.jsonl"
    path.write_text('{"email": "a@example.com"}\nnot json\n', encoding="utf-8")
    err = io.StringIO()
    assert main(["send", str(path), "--url", BASE, "--token", "t"], out=io.StringIO(), err=err) == 2
    assert "members.jsonl:2: not JSON" in err.getvalue()
    assert len(mocked.calls) == 0


def test_progress_bar_reaches_the_total() -> None:
    stream = io.StringIO()
    progress = Progress(total=4, stream=stream)
    progress.update(2, 1)
    progress.update(4, 2)
    progress.close()
    frames = stream.getvalue().split("\r")
    assert "50%" in frames[1] and "2/4 rows" in frames[1]
    assert frames[2].startswith("[" + "#" * Progress.WIDTH + "]") and "100%" in frames[2]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("12") == 12.0
    assert retry_after_seconds("Mon, 23 Nov 2026 12:00:30 GMT", now=lambda: now) == 30.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
