"""Field rules on the local stack, deployed as ``FieldRules`` like any template parameter: what
the operator sees (`send`'s report, `status`) and what reaches the HubSpot sandbox from what the
source sends."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import requests

from hubspot_activation_cli.main import main
from local import stack as local_stack

GOLD = "a1b2c3d4-0000-4000-8000-000000000001"
RULES = {"firstname": "always", "lastname": "unless_blank", "lifecyclestage": "never"}


def contact(stack: local_stack.LocalStack, email: str) -> dict[str, str]:
    assert stack.sandbox is not None
    state = stack.sandbox.state
    return dict(state.contacts[state.email_index[email]]["properties"])


def cli(stack: local_stack.LocalStack, *args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    code = main([*args, "--url", stack.api.url, f"--token={stack.ingest_token}"], out=out, err=err)
    assert code == 0, out.getvalue() + err.getvalue()
    return out.getvalue()


def test_rules_from_the_parameter_reach_the_report_the_status_and_hubspot(tmp_path: Path) -> None:
    stack = local_stack.start(parameters={"FieldRules": json.dumps(RULES)})
    try:
        members = tmp_path / "members.jsonl"
        rows: list[dict[str, Any]] = [
            {
                "email": f"user{i}@example.com",
                "audience_id": GOLD,
                "status": "realized",
                "firstname": "Ada",
                "lastname": "Lovelace",
                "lifecyclestage": "customer",
            }
            for i in range(3)
        ]
        members.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        report = cli(stack, "send", str(members), "--no-progress").splitlines()
        at = report.index("fields skipped by rule  3")
        assert report[at + 1] == "         3  never", report
        assert local_stack.drain(stack, show=False)
        first = contact(stack, "user0@example.com")
        assert (first["firstname"], first["lastname"]) == ("Ada", "Lovelace")
        assert first.get("lifecyclestage") != "customer"

        # AEP's SDK renders a profile's missing freeform value as {}: an `always` field clears, an
        # `unless_blank` field's blank changes nothing.
        sdk = {
            "identities": [{"type": "email", "id": "user0@example.com"}],
            "attributes": {"firstname": {}, "lastname": ""},
            "AdobeExperiencePlatformSegments": {"add": [GOLD]},
        }
        answer = requests.post(
            stack.activations_url,
            json={"profiles": [sdk]},
            headers={"Authorization": f"Bearer {stack.ingest_token}"},
            timeout=10,
        )
        assert answer.status_code == 202 and answer.json()["skippedByRule"] == {"unless_blank": 1}
        assert local_stack.drain(stack, show=False)
        after = contact(stack, "user0@example.com")
        assert (after["firstname"], after["lastname"]) == ("", "Lovelace")

        status = json.loads(cli(stack, "status"))
        assert status["fieldRules"]["rules"] == RULES
    finally:
        stack.stop()
