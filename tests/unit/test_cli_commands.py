"""status / issues / replay / contact against the documented routes (mocked), and their errors."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import responses
from responses import matchers

from hubspot_activation_cli.api import ApiClient
from hubspot_activation_cli.main import main

BASE = "https://api.example.test"


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mock:
        yield mock


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([*argv, "--url", BASE, "--token", "tok", "--max-retries", "0"], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_status_prints_the_answer_as_indented_json(mocked: responses.RequestsMock) -> None:
    answer = {"contacts": {"synced": 10, "failed": 1}, "queue": {"visible": 0}}
    mocked.add(
        responses.GET,
        f"{BASE}/sync/status",
        json=answer,
        match=[matchers.header_matcher({"Authorization": "Bearer tok"})],
    )
    code, out, _ = run("status")
    assert code == 0
    assert json.loads(out) == answer and out.startswith('{\n  "contacts"')


def test_issues_passes_status_limit_and_cursor(mocked: responses.RequestsMock) -> None:
    mocked.add(
        responses.GET,
        f"{BASE}/sync/issues",
        json={"items": [{"email": "a@example.com", "status": "failed"}], "nextCursor": "c2"},
        match=[matchers.query_param_matcher({"status": "failed", "limit": "5", "cursor": "c1"})],
    )
    code, out, _ = run("issues", "--status", "failed", "--limit", "5", "--cursor", "c1")
    assert code == 0 and json.loads(out)["nextCursor"] == "c2"


def test_issues_without_filters_sends_no_query(mocked: responses.RequestsMock) -> None:
    mocked.add(
        responses.GET, f"{BASE}/sync/issues", json={"items": []}, match=[matchers.query_param_matcher({})]
    )
    assert run("issues")[0] == 0


@pytest.mark.parametrize(("flags", "dry_run"), [(["--dry-run"], True), ([], False)])
def test_replay_posts_dry_run(mocked: responses.RequestsMock, flags: list[str], dry_run: bool) -> None:
    mocked.add(
        responses.POST,
        f"{BASE}/replay",
        json={"dryRun": dry_run, "contacts": 3},
        match=[matchers.json_params_matcher({"dryRun": dry_run})],
    )
    code, out, _ = run("replay", *flags)
    assert code == 0 and json.loads(out)["contacts"] == 3


def test_replay_continues_from_a_cursor(mocked: responses.RequestsMock) -> None:
    mocked.add(
        responses.POST,
        f"{BASE}/replay",
        json={"more": False},
        match=[matchers.json_params_matcher({"dryRun": False, "cursor": "abc"})],
    )
    assert run("replay", "--cursor", "abc")[0] == 0


def test_replay_is_not_retried_after_an_error_that_may_have_replayed(mocked: responses.RequestsMock) -> None:
    mocked.add(responses.POST, f"{BASE}/replay", status=500, json={"message": "Internal Server Error"})
    out, err = io.StringIO(), io.StringIO()
    assert main(["replay", "--url", BASE, "--token", "tok"], out=out, err=err) == 1
    assert len(mocked.calls) == 1  # --max-retries defaults to 5; a 500 may hide a started replay
    assert "replay failed: HTTP 500" in err.getvalue()


def test_contact_email_is_escaped_in_the_path(mocked: responses.RequestsMock) -> None:
    mocked.add(responses.GET, f"{BASE}/contacts/ada%2Btest@example.com", json={"status": "synced"})
    code, out, _ = run("contact", "ada+test@example.com")
    assert code == 0 and json.loads(out) == {"status": "synced"}


def test_an_unknown_contact_reports_the_apis_message_without_a_url_hint(
    mocked: responses.RequestsMock,
) -> None:
    mocked.add(
        responses.GET,
        f"{BASE}/contacts/nobody@example.com",
        status=404,
        json={"error": "not_found", "message": "no sync state for this contact", "requestId": "r1"},
    )
    code, out, err = run("contact", "nobody@example.com")
    assert (code, out) == (1, "")
    assert err == (
        "hubspot-activation: contact failed: "
        "HTTP 404 not_found: no sync state for this contact (requestId r1)\n"
    )


def test_a_missing_route_hints_at_the_base_url(mocked: responses.RequestsMock) -> None:
    mocked.add(responses.GET, f"{BASE}/sync/status", status=404, json={"message": "Not Found"})
    code, _, err = run("status")
    assert code == 1 and "is --url the API base" in err


def test_an_unreachable_api_is_a_clear_error() -> None:
    with responses.RequestsMock():  # no route registered: the request fails like a refused connection
        code, _, err = run("status")
    assert code == 1 and f"cannot reach {BASE}/sync/status" in err


def test_url_and_token_come_from_the_environment(
    mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBSPOT_ACTIVATION_URL", BASE)
    monkeypatch.setenv("HUBSPOT_ACTIVATION_TOKEN", "from-env")
    mocked.add(
        responses.GET,
        f"{BASE}/sync/status",
        json={},
        match=[matchers.header_matcher({"Authorization": "Bearer from-env"})],
    )
    assert main(["status"], out=io.StringIO(), err=io.StringIO()) == 0


def test_without_a_url_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUBSPOT_ACTIVATION_URL", raising=False)
    err = io.StringIO()
    assert main(["status", "--token", "t"], out=io.StringIO(), err=err) == 2
    assert "--url (or $HUBSPOT_ACTIVATION_URL) is required" in err.getvalue()


def test_a_token_that_starts_with_a_dash_is_taken_in_the_equals_form(mocked: responses.RequestsMock) -> None:
    mocked.add(
        responses.GET,
        f"{BASE}/sync/status",
        json={},
        match=[matchers.header_matcher({"Authorization": "Bearer -abc"})],
    )
    out, err = io.StringIO(), io.StringIO()
    assert main(["status", "--url", BASE, "--token=-abc", "--max-retries", "0"], out=out, err=err) == 0


def _reconcile_answer(checked: int, cursor: str | None = None, stopped: str | None = None) -> dict[str, Any]:
    return {
        "checked": checked,
        "drift": {"edited": checked // 2, "deleted": 0, "erased": 0, "merged": 0, "restored": 0},
        "repaired": checked // 2,
        "examples": [],
        "more": cursor is not None,
        "cursor": cursor,
        "calls": 1 if checked else 0,
        "stoppedBy": stopped,
    }


def run_reconcile(*argv: str) -> tuple[int, str, list[float]]:
    slept: list[float] = []

    def factory(url: str, token: str, **kwargs: Any) -> ApiClient:
        return ApiClient(url, token, kwargs["max_retries"], kwargs["timeout"], slept.append)

    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["reconcile", *argv, "--url", BASE, "--token", "tok", "--max-retries", "0"],
        out=out,
        err=err,
        client_factory=factory,
    )
    return code, out.getvalue() + err.getvalue(), slept


def test_reconcile_waits_for_live_syncs_and_goes_on_from_the_same_cursor(
    mocked: responses.RequestsMock,
) -> None:
    for body, reply in (
        ({"dryRun": False}, _reconcile_answer(4, "c1")),
        ({"dryRun": False, "cursor": "c1"}, _reconcile_answer(0, None, "backlog")),
        ({"dryRun": False, "cursor": "c1"}, _reconcile_answer(2)),
    ):
        mocked.add(
            responses.POST, f"{BASE}/reconcile", json=reply, match=[matchers.json_params_matcher(body)]
        )
    code, out, slept = run_reconcile()
    assert code == 0, out
    assert slept == [2.0]
    assert "checked   6 contacts in 3 requests" in out and "drift     3" in out and "repaired  3" in out
    assert "waited for live syncs 1 times" in out


def test_reconcile_names_the_properties_whose_hubspot_value_is_kept(mocked: responses.RequestsMock) -> None:
    answer = _reconcile_answer(2)
    answer["repaired"] = 0
    answer["examples"] = [
        {
            "email": "ada@example.com",
            "kind": "edited",
            "repaired": False,
            "properties": ["city"],
            "kept": ["city"],
        }
    ]
    mocked.add(responses.POST, f"{BASE}/reconcile", json=answer)
    code, out, _slept = run_reconcile()
    assert code == 0, out
    assert "  e.g. ada@example.com: edited (city) - HubSpot's value kept (city)" in out


def test_reconcile_adds_up_the_list_memberships_it_found_otherwise_in_hubspot(
    mocked: responses.RequestsMock,
) -> None:
    first, last = _reconcile_answer(4, "c1"), _reconcile_answer(2)
    first["membershipDrift"] = {"checked": 6, "found": 2, "repaired": 2, "skipped": 0, "examples": []}
    last["membershipDrift"] = {"checked": 3, "found": 1, "repaired": 0, "skipped": 1, "examples": []}
    mocked.add(responses.POST, f"{BASE}/reconcile", json=first)
    mocked.add(responses.POST, f"{BASE}/reconcile", json=last)
    code, out, _slept = run_reconcile()
    assert code == 0, out
    assert "list memberships  9 checked, 3 found otherwise in HubSpot, 2 handed to the list again" in out


def test_reconcile_without_lists_says_nothing_of_memberships(mocked: responses.RequestsMock) -> None:
    mocked.add(responses.POST, f"{BASE}/reconcile", json=_reconcile_answer(2))
    code, out, _slept = run_reconcile()
    assert code == 0 and "list memberships" not in out


def test_reconcile_stops_with_the_cursor_when_its_daily_share_is_spent(
    mocked: responses.RequestsMock,
) -> None:
    mocked.add(responses.POST, f"{BASE}/reconcile", json=_reconcile_answer(3, "c1"))
    mocked.add(responses.POST, f"{BASE}/reconcile", json=_reconcile_answer(0, "c1", "daily_share"))
    code, out, slept = run_reconcile("--dry-run")
    assert code == 1 and slept == []
    assert "stopped: the API stopped without checking a contact (daily_share)" in out
    assert "resume with: --cursor=c1" in out


def test_reconcile_refuses_a_cursor_with_emails() -> None:
    code, out, _ = run_reconcile("--email", "ada@example.com", "--cursor", "c1")
    assert code == 2 and "not with --email" in out
