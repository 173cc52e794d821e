"""`reconcile`: call POST /reconcile with its cursor until the walk is done, and add up the answers."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from .api import ApiClient, ApiError
from .send import Progress

#: Examples kept for the report (each answer brings up to ten).
MAX_EXAMPLES = 10
#: Why a call checked nothing that passes: live syncs are using HubSpot's budget.
BACKLOG = "backlog"
#: The first pause before calling again after such a call (doubling, up to 8 times this).
WAIT_STEP_SECONDS = 2.0
#: How long in a row the walk waits for live syncs before it gives up (with a cursor to resume).
MAX_WAIT_SECONDS = 300.0


@dataclass
class ReconcileTotals:
    dry_run: bool
    requests: int = 0
    checked: int = 0
    drift: Counter[str] = field(default_factory=Counter)
    repaired: int = 0
    skipped: int = 0
    calls: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    #: where to resume (``--cursor``) when the walk stopped before its end
    cursor: str | None = None
    #: why it stopped before the end, if it did
    failure: str | None = None
    #: calls that checked nothing because live syncs came first
    stalls: int = 0
    #: with lists kept: memberships checked, found otherwise in HubSpot, handed to the list again
    memberships: Counter[str] = field(default_factory=Counter)

    def add(self, answer: Any) -> None:
        if not isinstance(answer, dict):
            raise ApiError("POST /reconcile answered something that is not a JSON object")
        self.requests += 1
        self.checked += int(answer.get("checked") or 0)
        self.drift.update({str(kind): int(n) for kind, n in (answer.get("drift") or {}).items()})
        self.repaired += int(answer.get("repaired") or 0)
        self.skipped += int(answer.get("skipped") or 0)
        self.calls += int(answer.get("calls") or 0)
        membership = answer.get("membershipDrift")
        if isinstance(membership, dict):
            self.memberships.update(
                {key: int(membership.get(key) or 0) for key in ("checked", "found", "repaired")}
            )
        room = MAX_EXAMPLES - len(self.examples)
        self.examples.extend((answer.get("examples") or [])[: max(0, room)])
        cursor = answer.get("cursor")
        self.cursor = cursor if answer.get("more") and isinstance(cursor, str) else None

    def render(self) -> str:
        mode = " (dry run: nothing repaired)" if self.dry_run else ""
        lines = [
            f"checked   {self.checked} contacts in {self.requests} requests{mode}",
            f"drift     {sum(self.drift.values())}",
            *(f"  {count:>8}  {kind}" for kind, count in sorted(self.drift.items()) if count),
            f"repaired  {self.repaired}",
            f"skipped   {self.skipped}  (a flush was about to write them)",
            f"HubSpot calls  {self.calls}",
        ]
        if self.memberships:
            lines.insert(
                4,
                f"list memberships  {self.memberships['checked']} checked, {self.memberships['found']} "
                f"found otherwise in HubSpot, {self.memberships['repaired']} handed to the list again",
            )
        for example in self.examples:
            properties = ", ".join(example.get("properties") or [])
            # fill_empty properties: HubSpot's value is the one kept, so they are not repaired.
            kept = ", ".join(example.get("kept") or [])
            lines.append(
                f"  e.g. {example.get('email')}: {example.get('kind')}"
                + (f" ({properties})" if properties else "")
                + (" - repaired" if example.get("repaired") else "")
                + (f" - HubSpot's value kept ({kept})" if kept else "")
            )
        if self.stalls:
            lines.append(f"waited for live syncs {self.stalls} times")
        if self.failure:
            lines.append(f"stopped: {self.failure}")
            if self.cursor:
                lines.append(f"resume with: --cursor={self.cursor}")
        return "\n".join(lines)


def _total(client: ApiClient, emails: list[str] | None) -> int:
    """The bar's total: the contacts named, or the ledger's estimate of the contacts it tracks."""
    if emails:
        return len(emails)
    try:
        status = client.get("/sync/status")
    except ApiError:
        return 0
    tracked = (status.get("contacts") or {}).get("tracked") if isinstance(status, dict) else None
    return tracked if isinstance(tracked, int) else 0


def reconcile(
    client: ApiClient,
    dry_run: bool,
    emails: list[str] | None = None,
    cursor: str | None = None,
    progress_stream: TextIO | None = None,
    max_wait_seconds: float = MAX_WAIT_SECONDS,
) -> ReconcileTotals:
    """Call POST /reconcile until ``more`` is false. A call that checked nothing because live
    syncs use HubSpot's budget now (``stoppedBy: backlog``) is made again after a pause, for up to
    ``max_wait_seconds`` in a row; an error, or any other stop, ends the walk with ``failure``
    set and the cursor to resume from."""
    totals = ReconcileTotals(dry_run=dry_run, cursor=cursor)
    progress = Progress(_total(client, emails) if progress_stream else 0, progress_stream, "contacts")
    waited = 0.0
    try:
        while True:
            position = totals.cursor
            body: dict[str, Any] = {"dryRun": dry_run}
            if emails:
                body["emails"] = emails
            elif position:
                body["cursor"] = position
            try:
                # A repeat is harmless: a contact repaired once shows no drift the second time.
                answer = client.post("/reconcile", body)
            except ApiError as exc:
                totals.failure = f"request {totals.requests + 1} failed: {exc.message}"
                break
            checked_before = totals.checked
            totals.add(answer)
            progress.update(totals.checked, totals.requests)
            stopped = answer.get("stoppedBy")
            if stopped and totals.checked == checked_before:
                totals.cursor = position  # nothing read: go on from where this call started
                pause = min(WAIT_STEP_SECONDS * 2 ** min(totals.stalls, 3), max_wait_seconds - waited)
                if stopped != BACKLOG or pause <= 0:
                    totals.failure = (
                        f"the API stopped without checking a contact ({stopped}); try again later"
                    )
                    break
                totals.stalls += 1
                waited += pause
                client.sleep(pause)
                continue
            waited = 0.0
            if totals.cursor is None:
                if stopped:
                    totals.failure = f"the walk stopped before its end ({stopped}); run it again later"
                break
    finally:
        progress.close()
    return totals
