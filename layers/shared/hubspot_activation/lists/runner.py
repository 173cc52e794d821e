"""One run of the lists function: the audience lists due (the schedule's sweep) or named (timers)
drained, each under its own lease, within the invocation's time.

For each audience:

- the list's lease (``ports.ListLease``): another run holding it drains the list, this one skips it;
- the audience's metadata: an audience deleted (its membership updates stopped, its list kept) or
  unknown sends nothing; its buffered changes stay, parked for ``parked_seconds``, and are sent
  once the audience is active again;
- the list made on first need: the audience's stored name (its id when it has none); another
  list holding it, ``"<name> (<audience id>)"``; that one taken too, it is adopted when it is a
  MANUAL contact list (a name carrying the audience id is the connector's). The id is stored
  conditionally: the first writer wins;
- the drain (``service.ListDrain``): a list due by age (its oldest waiting change arrived
  ListFlushSeconds ago) sends everything; a list due only because a chunk filled sends full
  chunks alone, the rest waiting for more or for its age;
- the list gone in HubSpot: restored with its id when HubSpot can, else made again; either way
  the list's generation is bumped and the list refilled from the ledger (every contact whose
  newest status handed to the list is realized goes into the buffer again at the new generation),
  page by page within the time left, the refill's place kept on the audience (which then waits in
  the due index, so the sweep continues it);
- afterwards, changes still waiting get a timer for when they are due: a failure's backoff, at
  once for a full chunk, their age for a remainder held back, ListFlushSeconds for changes
  appended during a drain that sent everything it read;
- per-list bookkeeping on the audience: the last drain's time, its error, its calls.

HubSpot's daily limit or a credential without the lists scopes (``ListsStopped``) stops the run.
Nothing here knows Lambda or DynamoDB: everything goes through ``ports``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from ..observability import logger
from ..upsert.ledger import LedgerUnavailable
from .model import (
    BufferFull,
    ListAudience,
    ListNameTaken,
    ListRefused,
    ListsStopped,
    MembershipUnavailable,
    RemoteList,
    Toggle,
)
from .ports import (
    DueLists,
    ListAppender,
    ListAudiences,
    ListBuffer,
    ListLease,
    ListMemberships,
    ListTimer,
    RealizedMembers,
    RemoteLists,
)
from .service import ATTEMPTS, BACKOFF_SECONDS, DrainReport, ListDrain

#: SQS's longest message delay: a timer cannot be set further out.
MAX_TIMER_SECONDS = 900
#: First backoff after a failed drain (seconds), doubled by each failure in a row.
RETRY_BASE_SECONDS = 30
#: How long the changes of a deleted or unknown audience wait before they are looked at again.
PARKED_SECONDS = 600
#: Contacts read per page of a refill.
REFILL_PAGE = 500
#: Refill-and-drain passes of one list in a run at most (each a few chunks of members).
MAX_PASSES = 50
#: Chunks' worth of members a refill buffers before the drain sends them (a shard item holds
#: about 8 chunks of 500 at most).
REFILL_CHUNKS = 4


@dataclass(frozen=True)
class RunnerSettings:
    flush_seconds: int
    chunk_size: int
    #: time kept back at the end of the invocation for one list's calls and records (seconds)
    margin_seconds: float
    #: time kept back after the last HubSpot call for the ledger's records (seconds)
    record_seconds: float = 10.0
    retry_base_seconds: int = RETRY_BASE_SECONDS
    parked_seconds: int = PARKED_SECONDS
    refill_page: int = REFILL_PAGE
    attempts: int = ATTEMPTS
    backoff_seconds: float = BACKOFF_SECONDS


@dataclass
class CallBudget:
    """The deadline (monotonic seconds) every HubSpot call of the current run must end by: the
    HubSpot adapter reads it, the runner sets it at the start of each run."""

    deadline: float | None = None


@dataclass
class ListOutcome:
    audience_id: str
    calls: int = 0
    added: int = 0
    removed: int = 0
    missing: int = 0
    #: changes left in the buffer after the run
    remaining: int = 0
    created: str | None = None
    restored: bool = False
    refilled: int = 0
    #: why nothing was sent (another run holds the list, the audience is deleted or unknown)
    skipped: str | None = None
    error: str | None = None
    #: a drain held back a partial chunk (the list was due because a chunk filled, not by age)
    held_back: bool = False


@dataclass
class ListRun:
    lists: list[ListOutcome] = field(default_factory=list)
    #: audiences not reached (no time left, or the run stopped): a sweep or a timer comes back
    left: list[str] = field(default_factory=list)
    #: audiences whose ledger could not be read or written: their timer is tried again
    failed: list[str] = field(default_factory=list)
    #: why the run stopped early (the daily limit, a credential without the lists scopes)
    stopped_by: str | None = None

    def summary(self) -> dict[str, object]:
        return {
            "lists": len(self.lists),
            "calls": sum(o.calls for o in self.lists),
            "added": sum(o.added for o in self.lists),
            "removed": sum(o.removed for o in self.lists),
            "missing": sum(o.missing for o in self.lists),
            "skipped": sum(1 for o in self.lists if o.skipped),
            "errors": sum(1 for o in self.lists if o.error),
            "left": len(self.left),
            "failed": len(self.failed),
            "stoppedBy": self.stopped_by,
        }


class ListRunner:
    def __init__(
        self,
        *,
        buffer: ListBuffer,
        due: DueLists,
        appender: ListAppender,
        memberships: ListMemberships,
        remote: RemoteLists,
        audiences: ListAudiences,
        lease: ListLease,
        members: RealizedMembers,
        timer: ListTimer | None,
        settings: RunnerSettings,
        budget: CallBudget | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._buffer = buffer
        self._due = due
        self._appender = appender
        self._memberships = memberships
        self._remote = remote
        self._audiences = audiences
        self._lease = lease
        self._members = members
        self._timer = timer
        self._settings = settings
        self._budget = budget or CallBudget()
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        #: per list, the chunk size HubSpot last took (smaller than the setting after a refusal)
        self._chunk_sizes: dict[str, int] = {}

    # --- entry points -------------------------------------------------------------------------

    def sweep(self, remaining: Callable[[], float], owner: str | None = None) -> ListRun:
        """The schedule's run: every audience whose list changes are due."""
        return self._run(self._due.due(self._now_ms()), remaining, owner)

    def wake(
        self, audience_ids: Iterable[str], remaining: Callable[[], float], owner: str | None = None
    ) -> ListRun:
        """The timers' run: the named audiences (a drain finds nothing to send when the sweep was
        first)."""
        return self._run(list(dict.fromkeys(audience_ids)), remaining, owner)

    # --- one run ------------------------------------------------------------------------------

    def _run(self, audience_ids: list[str], remaining: Callable[[], float], owner: str | None) -> ListRun:
        owner = owner or uuid.uuid4().hex
        run = ListRun()
        self._budget.deadline = self._monotonic() + max(0.0, remaining() - self._settings.record_seconds)
        for position, audience_id in enumerate(audience_ids):
            if remaining() < self._settings.margin_seconds:
                run.left.extend(audience_ids[position:])
                break
            try:
                run.lists.append(self._serve(audience_id, owner, remaining))
            except ListsStopped as stopped:
                run.stopped_by = str(stopped)
                logger.error("lists run stopped", extra={"audienceId": audience_id, "reason": str(stopped)})
                run.left.extend(audience_ids[position:])
                break
            except LedgerUnavailable as exc:
                logger.warning(
                    "list not drained: the ledger failed",
                    extra={"audienceId": audience_id, "error": str(exc)},
                )
                run.failed.append(audience_id)
        return run

    def _serve(self, audience_id: str, owner: str, remaining: Callable[[], float]) -> ListOutcome:
        now_ms = self._now_ms()
        until_ms = now_ms + int((remaining() + 60) * 1000)
        if not self._lease.acquire(audience_id, owner, until_ms, now_ms):
            return ListOutcome(audience_id, skipped="another run holds the list")
        try:
            return self._serve_held(audience_id, remaining)
        finally:
            self._lease.release(audience_id, owner)

    def _serve_held(self, audience_id: str, remaining: Callable[[], float]) -> ListOutcome:
        outcome = ListOutcome(audience_id)
        # An audience never PUT is synced all the same (its property is made with the
        # activation's name or its id): its list is made with its id, a later PUT renames it.
        audience = self._audiences.get(audience_id) or ListAudience(audience_id, None, False)
        if audience.deleted:
            outcome.skipped = "audience deleted"
            logger.info(
                "list changes kept, not sent", extra={"audienceId": audience_id, "reason": outcome.skipped}
            )
            self._due.postpone(audience_id, self._now_ms() + self._settings.parked_seconds * 1000)
            return outcome
        try:
            self._keep(audience, outcome, remaining)
        except ListsStopped as stopped:
            outcome.error = str(stopped)
            self._record(outcome)
            raise
        except (ListRefused, MembershipUnavailable) as refused:
            outcome.error = str(refused)
        failures = self._record(outcome)
        self._follow_up(outcome, failures)
        return outcome

    def _keep(self, audience: ListAudience, outcome: ListOutcome, remaining: Callable[[], float]) -> None:
        """Make sure the list exists and drain it; while a refill is under way, refill a few chunks
        and drain them, again, until it is done or the time is up (changes appended during a
        drain get a timer afterwards: ``_follow_up``)."""
        if audience.list_id is None:
            audience = self._create(audience, outcome)
        passes = 0
        recovered = False
        while True:
            passes += 1
            if audience.refilling:
                audience = self._refill(audience, outcome, remaining)
            assert audience.list_id is not None
            report = self._drain(audience.audience_id, audience.list_id)
            outcome.held_back = outcome.held_back or report.held_back
            self._count(audience.audience_id, report, outcome)
            if report.gone:
                if recovered:
                    outcome.error = f"HubSpot list {audience.list_id} is gone again just after it was made"
                    return
                audience = self._recover(audience, outcome)
                recovered = True
                continue
            if report.failure is not None:
                outcome.error = report.failure
                return
            if not audience.refilling or passes >= MAX_PASSES or remaining() < self._settings.margin_seconds:
                return

    def _count(self, audience_id: str, report: DrainReport, outcome: ListOutcome) -> None:
        outcome.calls += report.calls
        outcome.added += report.added
        outcome.removed += report.removed
        outcome.missing += len(report.missing)
        outcome.remaining = report.remaining
        if report.missing:
            # Records HubSpot does not hold (deleted, merged away): reconcile finds them.
            logger.warning(
                "list members HubSpot does not hold",
                extra={"audienceId": audience_id, "recordIds": sorted(report.missing)[:20]},
            )

    def _drain(self, audience_id: str, list_id: str) -> DrainReport:
        drain = ListDrain(
            self._buffer,
            self._memberships,
            chunk_size=self._chunk_size(audience_id),
            attempts=self._settings.attempts,
            backoff_seconds=self._settings.backoff_seconds,
            sleep=self._sleep,
            clock_ms=self._now_ms,
        )
        oldest = self._due.oldest(audience_id)
        aged = oldest is None or oldest + self._settings.flush_seconds * 1000 <= self._now_ms()
        report = drain.drain(audience_id, list_id, full_chunks_only=not aged)
        self._chunk_sizes[audience_id] = report.chunk_size
        return report

    def _chunk_size(self, audience_id: str) -> int:
        return self._chunk_sizes.get(audience_id, self._settings.chunk_size)

    # --- the list's life ----------------------------------------------------------------------

    def _create(
        self, audience: ListAudience, outcome: ListOutcome, replacing: str | None = None
    ) -> ListAudience:
        """Make the audience's list (or adopt the one carrying its id) and store it; the audience
        as stored after (another run's list when it stored one first)."""
        made = self._make(audience, outcome)
        stored = self._audiences.store_list(audience.audience_id, made.list_id, made.name, replacing)
        if stored.list_id != made.list_id:
            logger.warning(
                "another run stored the audience's list first; this one is left unused",
                extra={"audienceId": audience.audience_id, "listId": made.list_id, "kept": stored.list_id},
            )
        else:
            outcome.created = made.list_id
            logger.info(
                "audience list made",
                extra={"audienceId": audience.audience_id, "listId": made.list_id, "listName": made.name},
            )
        return stored

    def _make(self, audience: ListAudience, outcome: ListOutcome) -> RemoteList:
        name = audience.name or audience.audience_id
        suffixed = f"{name} ({audience.audience_id})"
        for candidate in (name, suffixed) if suffixed != name else (suffixed,):
            outcome.calls += 1
            try:
                return self._remote.create(candidate)
            except ListNameTaken:
                continue
        outcome.calls += 1
        found = self._remote.find_by_name(suffixed)
        if found is None or not found.manual_contacts:
            # HubSpot said the name is taken, then found no list holding it (deleted meanwhile:
            # the next run creates it), or the one holding it is not a MANUAL contact list.
            raise ListRefused(f"the list name {suffixed!r} is held by a list the connector cannot use")
        return found

    def _recover(self, audience: ListAudience, outcome: ListOutcome) -> ListAudience:
        """The list is gone: restore it (same id) or make it again; bump the generation and start
        the refill."""
        gone = audience.list_id
        assert gone is not None
        logger.warning(
            "audience list gone in HubSpot", extra={"audienceId": audience.audience_id, "listId": gone}
        )
        outcome.calls += 1
        try:
            restored = self._remote.restore(gone)
        except ListNameTaken:
            restored = False
        if restored:
            outcome.restored = True
            current = audience
        else:
            current = self._create(audience, outcome, replacing=gone)
        generation = self._audiences.next_generation(audience.audience_id, audience.list_generation)
        self._audiences.start_refill(audience.audience_id, generation, self._now_ms())
        return ListAudience(
            audience.audience_id,
            audience.name,
            audience.deleted,
            current.list_id,
            current.list_name,
            generation,
            refilling=True,
        )

    def _refill(
        self, audience: ListAudience, outcome: ListOutcome, remaining: Callable[[], float]
    ) -> ListAudience:
        """Append the realized members at the list's generation, page after page until a few
        chunks' worth are buffered (the drain then makes room) or the time is up; the place
        reached is kept on the audience for the next pass or run. The audience after."""
        cursor = audience.refill_cursor
        generation = audience.list_generation
        appended = 0
        while appended < REFILL_CHUNKS * self._settings.chunk_size:
            if remaining() < self._settings.margin_seconds:
                break
            members, following = self._members.page(audience.audience_id, cursor, self._settings.refill_page)
            toggles = [Toggle(record_id, True, (*rank, generation)) for record_id, rank in members]
            if toggles:
                try:
                    self._appender.append_changes(audience.audience_id, toggles, self._now_ms())
                except BufferFull:
                    # The page is read again from the same place once the drain made room (what
                    # it did append is not appended twice: an equal change changes nothing).
                    break
                appended += len(toggles)
                outcome.refilled += len(toggles)
            cursor = following
            self._audiences.refill_from(audience.audience_id, cursor, generation, self._now_ms())
            if cursor is None:
                logger.info(
                    "audience list refilled",
                    extra={"audienceId": audience.audience_id, "generation": generation},
                )
                return replace(audience, refilling=False, refill_cursor=None)
        return replace(audience, refill_cursor=cursor)

    # --- after the drain ----------------------------------------------------------------------

    def _record(self, outcome: ListOutcome) -> int:
        """Bookkeeping; the failures in a row (0 after a drain that went through)."""
        if not outcome.calls and outcome.error is None:
            return 0
        return self._audiences.record_flush(outcome.audience_id, self._now_ms(), outcome.calls, outcome.error)

    def _follow_up(self, outcome: ListOutcome, failures: int) -> None:
        """Changes still waiting get a timer for when they are due."""
        if outcome.error is not None:
            delay = min(MAX_TIMER_SECONDS, self._settings.retry_base_seconds * 2 ** max(0, failures - 1))
        else:
            left = self._buffer.read(outcome.audience_id)
            outcome.remaining = len(left)
            if not left:
                return
            delay = self._delay(outcome, len(left))
        self._due.postpone(outcome.audience_id, self._now_ms() + delay * 1000)
        if self._timer is not None:
            try:
                self._timer.start(outcome.audience_id, delay)
            except Exception as exc:  # the schedule's sweep drains what a lost timer leaves
                logger.warning("list timer not started", extra={"error": str(exc)[:300]})

    def _delay(self, outcome: ListOutcome, waiting: int) -> int:
        """Seconds until the changes left after a drain that went through are due: a full chunk
        at once; a remainder held back when its oldest change has waited ListFlushSeconds; what
        was appended during a drain that sent everything it read, ListFlushSeconds from now
        (it arrived after the drain's read, so it never waits longer than that past its arrival)."""
        if waiting >= self._chunk_size(outcome.audience_id):
            return 0
        if not outcome.held_back:
            return self._settings.flush_seconds
        oldest = self._due.oldest(outcome.audience_id)
        if oldest is None:
            return 0
        due_ms = oldest + self._settings.flush_seconds * 1000
        return max(0, -(-(due_ms - self._now_ms()) // 1000))

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)
