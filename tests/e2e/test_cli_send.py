"""`hubspot-activation send` of a 10,000-row CSV to the local stack's real ingest API."""

from __future__ import annotations

import io
import re
from pathlib import Path

from hubspot_activation_cli.main import main
from local import stack as local_stack

VALID = 7_500
TWO_AUDIENCES = 2_000  # of the valid emails, these have a second row (another audience)
NO_AT, NO_DOMAIN = 250, 250


def members_csv(path: Path) -> int:
    lines = ["email,audience_id,audience_name,status,firstname,city"]
    for i in range(VALID):
        lines.append(f"user{i}@example.com,gold,Gold,realized,User{i},Paris")
        if i < TWO_AUDIENCES:
            lines.append(f"USER{i}@example.com,silver,Silver,exited,,")  # same contact, other case
        if i < NO_AT:
            lines.append(f"broken{i}.example.com,gold,Gold,realized,Broken,")
        if i < NO_DOMAIN:
            lines.append(f"broken{i}@,gold,Gold,realized,Broken,")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines) - 1


def report_count(report: str, label: str) -> int:
    match = re.search(rf"^{label}\s+(\d+)$", report, re.MULTILINE)
    assert match, report
    return int(match.group(1))


def test_send_10000_rows_reports_every_unique_email(running: local_stack.LocalStack, tmp_path: Path) -> None:
    path = tmp_path / "audience.csv"
    assert members_csv(path) == 10_000
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["send", str(path), "--url", running.api.url, f"--token={running.ingest_token}"], out=out, err=err
    )
    report = out.getvalue()
    assert code == 0, report + err.getvalue()
    unique_emails = VALID + NO_AT + NO_DOMAIN
    accepted, excluded = report_count(report, "accepted"), report_count(report, "excluded")
    assert (accepted, excluded) == (VALID, NO_AT + NO_DOMAIN)
    assert accepted + excluded == unique_emails
    assert f"sent 10000 rows as {unique_emails} profiles in 8 requests (0 retries)" in report
    assert "(e.g. 'broken0.example.com'" in report
    # What was accepted is on the queue for the merge function.
    assert running.poller.pending() > 0
