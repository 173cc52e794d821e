"""`send`: post a file of audience members to POST /activations in batches and report the outcome."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .api import ApiClient, ApiError
from .members import Batch, Format, batches, read_members

DEFAULT_BATCH_SIZE = 1000
#: Emails quoted per exclusion reason: enough to find the rows, not a second copy of the file.
EXAMPLES_PER_REASON = 3


class Progress:
    """A one-line bar on a terminal; nothing when the stream is None (a pipe or a log file)."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO | None, unit: str = "rows") -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.unit = unit

    def update(self, rows: int, requests: int) -> None:
        if self.stream is None:
            return
        share = min(rows / self.total, 1.0)
        filled = int(share * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {share:4.0%} {rows}/{self.total} {self.unit}, {requests} requests")
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class SendReport:
    url: str
    rows: int = 0
    profiles: int = 0
    requests: int = 0
    retries: int = 0
    accepted: int = 0
    excluded: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    #: field rule -> fields it dropped (a rule at work, not a problem of the rows)
    skipped_by_rule: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    #: Why sending stopped before the end of the file, if it did.
    failure: str | None = None

    @property
    def excluded_total(self) -> int:
        return sum(self.excluded.values())

    def record(self, batch: Batch, answer: Any) -> None:
        self.rows += batch.rows
        self.profiles += len(batch.profiles)
        answer = answer if isinstance(answer, dict) else {}
        self.accepted += int(answer.get("accepted", 0))
        listed = answer.get("excluded") or []
        by_reason = answer.get("excludedByReason")
        if isinstance(by_reason, dict):
            # The API lists only the first exclusions of a request; the counts cover all of them.
            self.excluded.update({str(reason): int(count) for reason, count in by_reason.items()})
        else:
            self.excluded.update(str(item.get("reason", "unknown")) for item in listed)
        for item in listed:
            reason = str(item.get("reason", "unknown"))
            examples = self.examples.setdefault(reason, [])
            index = item.get("index")
            if (
                len(examples) < EXAMPLES_PER_REASON
                and isinstance(index, int)
                and 0 <= index < len(batch.profiles)
            ):
                examples.append(repr(batch.profiles[index]["email"]))
        for item in answer.get("warnings") or []:
            self.warnings[str(item.get("reason", "unknown"))] += 1
        by_rule = answer.get("skippedByRule")
        if isinstance(by_rule, dict):
            self.skipped_by_rule.update({str(rule): int(count) for rule, count in by_rule.items()})

    def render(self) -> str:
        lines = [
            f"sent {_count(self.rows, 'row')} as {_count(self.profiles, 'profile')} in "
            f"{_count(self.requests, 'request')} ({_count(self.retries, 'retry', 'retries')}) to {self.url}",
            f"accepted  {self.accepted}",
            f"excluded  {self.excluded_total}",
        ]
        for reason, count in self.excluded.most_common():
            examples = ", ".join(self.examples.get(reason, []))
            lines.append(f"  {count:>8}  {reason}" + (f"  (e.g. {examples})" if examples else ""))
        if self.warnings:
            lines.append(f"warnings  {sum(self.warnings.values())}")
            lines.extend(f"  {count:>8}  {reason}" for reason, count in self.warnings.most_common())
        if self.skipped_by_rule:
            lines.append(f"fields skipped by rule  {sum(self.skipped_by_rule.values())}")
            lines.extend(f"  {count:>8}  {rule}" for rule, count in sorted(self.skipped_by_rule.items()))
        if self.failure:
            lines.append(f"stopped: {self.failure}")
        return "\n".join(lines)


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def count_rows(path: Path, fmt: Format) -> int:
    """Reads the whole file once before anything is sent: a malformed line stops the run up front
    instead of after half of the file was posted, and the progress bar gets its total."""
    return sum(1 for _ in read_members(path, fmt))


def send_file(
    client: ApiClient,
    path: Path,
    fmt: Format,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress_stream: TextIO | None = None,
) -> SendReport:
    report = SendReport(url=f"{client.base_url}/activations")
    progress = Progress(count_rows(path, fmt), progress_stream)
    try:
        for batch in batches(read_members(path, fmt), batch_size):
            report.requests += 1
            try:
                # Idempotent: the API deduplicates an identical body, so a retry is not queued twice.
                answer = client.post("/activations", {"profiles": batch.profiles})
            except ApiError as exc:
                report.failure = (
                    f"request {report.requests} ({len(batch.profiles)} profiles of rows "
                    f"{report.rows + 1}-{report.rows + batch.rows}) failed: {exc.message}"
                )
                break
            report.record(batch, answer)
            progress.update(report.rows, report.requests)
    finally:
        progress.close()
        report.retries = client.retries
    return report
