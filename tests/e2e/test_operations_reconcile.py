"""POST /reconcile on the local stack, driven by the CLI over real HTTP: contacts synced, changed in
the sandbox as a person would, reconciled; HubSpot ends repaired, and the operator's routes show
what reconcile saw and found."""

from __future__ import annotations

import io

from hubspot_activation_cli.main import main as cli
from local import stack as local_stack
from tests.e2e.test_operations import answer, drain, member, post, sandbox_contact


def test_cli_reconcile_repairs_an_edit_respects_a_deletion_and_the_routes_show_it(
    running: local_stack.LocalStack,
) -> None:
    assert running.sandbox is not None
    state = running.sandbox.state
    post(
        running,
        member("ada@example.com", "vip"),
        member("bob@example.com", "vip"),
        member("cy@example.com", "vip"),
    )
    drain(running)
    assert answer(running, "GET", "/sync/status")["state"] == "active_and_listening"
    ada_id = state.email_index["ada@example.com"]
    state.contacts[ada_id]["properties"]["aud_vip"] = "edited by a person"
    assert state.archive(state.email_index["bob@example.com"])

    out, err = io.StringIO(), io.StringIO()
    code = cli(
        ["reconcile", "--dry-run", "--url", running.api.url, f"--token={running.ingest_token}"],
        out=out,
        err=err,
    )
    assert code == 0, out.getvalue() + err.getvalue()
    assert "checked   3 contacts" in out.getvalue() and "repaired  0" in out.getvalue()
    assert sandbox_contact(running, "ada@example.com")["aud_vip"] == "edited by a person"  # a dry run

    out = io.StringIO()
    code = cli(["reconcile", "--url", running.api.url, f"--token={running.ingest_token}"], out=out, err=err)
    report = out.getvalue()
    assert code == 0, report + err.getvalue()
    assert "checked   3 contacts" in report and "drift     2" in report
    assert "1  edited" in report and "1  deleted" in report
    drain(running)
    assert sandbox_contact(running, "ada@example.com")["aud_vip"] == "realized"
    assert "bob@example.com" not in state.email_index  # respected: not re-created

    ada = answer(running, "GET", "/contacts/ada@example.com")
    assert ada["hubspot"]["id"] == ada_id and ada["hubspot"]["drift"] == "edited"
    assert ada["hubspot"]["properties"]["aud_vip"] == "edited by a person"
    deleted = answer(running, "GET", "/sync/issues?status=deleted")["items"]
    assert [item["email"] for item in deleted] == ["bob@example.com"] and deleted[0]["deletedAt"]
    status = answer(running, "GET", "/sync/status")
    assert status["contacts"]["deleted"] == 1
    last = status["lastReconcile"]
    assert last is not None and last["checked"] == 3
