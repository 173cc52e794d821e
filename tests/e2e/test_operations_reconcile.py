"""POST /reconcile on the local stack, driven by the CLI over real HTTP: contacts synced, changed in
the sandbox as a person would, reconciled; HubSpot ends repaired, and the operator's routes show
what reconcile saw and found."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

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


def _writes(state: object) -> int:
    """HubSpot's contact writes so far (upserts by email and updates by id)."""
    requests = state.requests  # type: ignore[attr-defined]
    return sum(count for key, count in requests.items() if key.startswith("POST batch_up"))


def test_reconcile_on_the_local_stack_leaves_hubspot_as_the_rules_say_and_writes_only_the_drift(
    running: local_stack.LocalStack,
) -> None:
    """Edited, archived then restored, erased and merged contacts among others in sync: HubSpot
    ends as the rules say, the ledger agrees, nothing is duplicated and nothing else is written."""
    assert running.sandbox is not None
    state = running.sandbox.state
    emails = [f"{name}@example.com" for name in ("ada", "bob", "cy", "dan", "eve", "fay", "gus")]
    profiles = [
        {**member(email, "vip"), "attributes": {"firstname": email.split("@")[0].title()}} for email in emails
    ]
    post(running, *profiles)
    drain(running)
    ids = {email: state.email_index[email] for email in emails}
    state.contacts[ids["ada@example.com"]]["properties"]["firstname"] = "Edited"
    assert state.archive(ids["bob@example.com"])
    assert state.erase(ids["cy@example.com"])
    survivor = state.merge(ids["eve@example.com"], ids["dan@example.com"])  # Eve's record wins
    before = _writes(state)

    first = answer(running, "POST", "/reconcile", {"dryRun": False})
    assert first["checked"] == 7 and first["more"] is False
    drift = first["drift"]
    assert (drift["edited"], drift["deleted"], drift["erased"], drift["restored"]) == (1, 1, 1, 0)
    assert drift["merged"] == 2  # Dan's record is Eve's now, and Eve's has a new id
    drain(running)
    # One write: Ada's firstname (Dan's and Eve's values on the survivor are the newest of theirs).
    assert _writes(state) == before + 1
    assert sandbox_contact(running, "ada@example.com")["firstname"] == "Ada"
    assert "bob@example.com" not in state.email_index and "cy@example.com" not in state.email_index

    state.restore(ids["bob@example.com"])
    second = answer(running, "POST", "/reconcile", {"dryRun": False})
    assert second["drift"] == {"edited": 0, "deleted": 0, "erased": 0, "merged": 0, "restored": 1}
    drain(running)
    third = answer(running, "POST", "/reconcile", {"dryRun": False})
    assert sum(third["drift"].values()) == 0 and third["calls"] == 1
    assert _writes(state) == before + 1  # the restored contact held its values: nothing to write

    # The ledger agrees, and a changed update of the merged contact reaches the survivor by id.
    dan = answer(running, "GET", "/contacts/dan@example.com")
    assert dan["hubspotId"] == survivor and dan["status"] == "synced"
    cy = answer(running, "GET", "/contacts/cy@example.com")
    assert cy["status"] == "failed" and "erased" in cy["lastError"]
    assert answer(running, "GET", "/contacts/bob@example.com")["status"] == "synced"
    post(running, {**member("dan@example.com", "vip"), "attributes": {"city": "Leeds"}})
    drain(running)
    assert state.contacts[survivor]["properties"]["city"] == "Leeds"
    live_emails = [contact["properties"].get("email") for contact in state.contacts.values()]
    assert sorted(live_emails) == sorted(
        ["ada@example.com", "bob@example.com", "eve@example.com", "fay@example.com", "gus@example.com"]
    )


#: One property under each rule (firstname has none: overwrite).
RULES = {"lastname": "unless_blank", "country": "always", "city": "fill_empty", "company": "never"}


@pytest.fixture
def ruled() -> Iterator[local_stack.LocalStack]:
    started = local_stack.start(parameters={"FieldRules": json.dumps(RULES)})
    yield started
    started.stop()


def _profile(email: str) -> dict[str, Any]:
    name = email.split("@")[0].title()
    attributes = {
        "firstname": name,
        "lastname": f"{name}son",
        "country": "France",
        "city": f"{name}ville",
        "company": f"{name} Ltd",
    }
    return {**member(email, "vip"), "attributes": attributes}


def test_post_reconcile_repairs_or_keeps_each_edit_as_its_field_rule_says(
    ruled: local_stack.LocalStack,
) -> None:
    assert ruled.sandbox is not None
    state = ruled.sandbox.state
    emails = ["ada@example.com", "bob@example.com", "cy@example.com"]
    post(ruled, *[_profile(email) for email in emails])
    drain(ruled)
    ids = {email: state.email_index[email] for email in emails}

    # Cy's only drift is on a fill_empty property: found, kept as HubSpot holds it, nothing written.
    state.contacts[ids["cy@example.com"]]["properties"]["city"] = "Set by sales"
    before = _writes(state)
    kept = answer(ruled, "POST", "/reconcile", {"dryRun": False})
    assert kept["drift"]["edited"] == 1 and kept["repairedByKind"]["edited"] == 0
    (example,) = kept["examples"]
    assert (example["email"], example["repaired"], example["kept"]) == ("cy@example.com", False, ["city"])
    drain(ruled)
    assert _writes(state) == before and sandbox_contact(ruled, "cy@example.com")["city"] == "Set by sales"
    cy = answer(ruled, "GET", "/contacts/cy@example.com")["hubspot"]
    assert cy["drift"] == "edited" and cy["properties"]["city"] == "Set by sales"

    # Ada's edits under overwrite, unless_blank and always are repaired, her never one is left;
    # Bob's fill_empty city emptied in HubSpot is filled again from the source.
    ada = state.contacts[ids["ada@example.com"]]["properties"]
    ada.update(firstname="A.", lastname="Edited", country="Spain", company="Edited Inc")
    state.contacts[ids["bob@example.com"]]["properties"]["city"] = ""
    repaired = answer(ruled, "POST", "/reconcile", {"dryRun": False})
    assert repaired["drift"]["edited"] == 2 and repaired["repairedByKind"]["edited"] == 2
    drain(ruled)
    ada_now = sandbox_contact(ruled, "ada@example.com")
    assert (ada_now["firstname"], ada_now["lastname"], ada_now["country"]) == ("Ada", "Adason", "France")
    assert ada_now["company"] == "Edited Inc"
    assert sandbox_contact(ruled, "bob@example.com")["city"] == "Bobville"
    assert sandbox_contact(ruled, "cy@example.com")["city"] == "Set by sales"
    seen = answer(ruled, "GET", "/contacts/ada@example.com")["hubspot"]["properties"]
    assert "company" not in seen and seen["firstname"] == "A."

    again = answer(ruled, "POST", "/reconcile", {"dryRun": False})
    assert sum(again["drift"].values()) == 0 and again["calls"] == 1
