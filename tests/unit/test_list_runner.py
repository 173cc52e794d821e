"""A run of the lists function (``lists.runner.ListRunner``) against fakes of its ports: a list's
lease held elsewhere, a list made on first need (its name taken: suffixed; that taken too:
adopted when it is a MANUAL contact list), a list gone (restored or made again, the generation
bumped, the list refilled from the ledger), a deleted audience's changes kept, a chunk refused for
its size halved and remembered, failures backed off, and a run stopped by HubSpot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from hubspot_activation.lists.model import (
    Appended,
    ChunkTooLarge,
    ListAudience,
    ListGone,
    ListNameTaken,
    ListsStopped,
    MembershipResult,
    MembershipUnavailable,
    Rank,
    RemoteList,
    Toggle,
)
from hubspot_activation.lists.runner import ListRunner, RunnerSettings

AUDIENCE = "aud-1"
NOW_S = 1_796_000_000.0


class FakeBuffer:
    """Buffer, due lists and appender in memory: one entry per record, the newest kept."""

    def __init__(self) -> None:
        self.changes: dict[str, dict[str, Toggle]] = {}
        self.due_at: dict[str, int] = {}
        #: when each list last went from nothing waiting to a change waiting
        self.first_at: dict[str, int] = {}
        #: appended during a drain's call (what the flusher does meanwhile)
        self.during_drain: list[tuple[str, list[Toggle]]] = []

    def append(self, audience_id: str, toggles: Sequence[Toggle], now_ms: int) -> bool:
        return self.append_changes(audience_id, toggles, now_ms).started

    def append_changes(self, audience_id: str, toggles: Sequence[Toggle], now_ms: int) -> Appended:
        held = self.changes.setdefault(audience_id, {})
        started = not held
        if started:
            self.first_at[audience_id] = now_ms
        for toggle in toggles:
            known = held.get(toggle.record_id)
            if known is None or toggle.precedence > known.precedence:
                held[toggle.record_id] = toggle
        self.due_at.setdefault(audience_id, now_ms)
        return Appended(started, False)

    def read(self, audience_id: str) -> list[Toggle]:
        return sorted(self.changes.get(audience_id, {}).values(), key=lambda t: (t.precedence, t.record_id))

    def oldest(self, audience_id: str) -> int | None:
        return self.first_at.get(audience_id) if self.changes.get(audience_id) else None

    def settle(self, audience_id: str, sent: Sequence[Toggle], now_ms: int) -> None:
        held = self.changes.get(audience_id, {})
        for toggle in sent:
            if held.get(toggle.record_id) == toggle:
                del held[toggle.record_id]
        if not held:
            self.first_at.pop(audience_id, None)
        for other, toggles in self.during_drain:
            self.append_changes(other, toggles, now_ms)
        self.during_drain = []

    def due(self, now_ms: int, limit: int = 100) -> list[str]:
        return sorted(
            (a for a, at in self.due_at.items() if at <= now_ms and self.changes.get(a)),
            key=lambda a: self.due_at[a],
        )

    def postpone(self, audience_id: str, due_ms: int) -> None:
        if self.changes.get(audience_id):
            self.due_at[audience_id] = due_ms


@dataclass
class FakeList:
    name: str
    manual: bool = True
    members: set[str] = field(default_factory=set)
    deleted: bool = False


@dataclass
class FakeHubSpot:
    """HubSpot's lists: names unique without regard to case among live lists, a cap on ids a
    membership call, scripted failures, restorable deleted lists."""

    lists: dict[str, FakeList] = field(default_factory=dict)
    cap: int | None = None
    failures: list[Exception] = field(default_factory=list)
    restorable: bool = True
    calls: list[tuple[str, str, int]] = field(default_factory=list)

    def add_and_remove(self, list_id: str, add: list[str], remove: list[str]) -> MembershipResult:
        self.calls.append(("add-and-remove", list_id, len(add) + len(remove)))
        if self.failures:
            raise self.failures.pop(0)
        found = self.lists.get(list_id)
        if found is None or found.deleted:
            raise ListGone(list_id)
        if self.cap is not None and len(add) + len(remove) > self.cap:
            raise ChunkTooLarge("too many ids")
        found.members |= set(add)
        found.members -= set(remove)
        return MembershipResult()

    def create(self, name: str) -> RemoteList:
        self.calls.append(("create", name, 0))
        if self.failures:
            raise self.failures.pop(0)
        if self._live(name) is not None:
            raise ListNameTaken(name)
        list_id = str(100 + len(self.lists))
        self.lists[list_id] = FakeList(name)
        return RemoteList(list_id, name, True)

    def find_by_name(self, name: str) -> RemoteList | None:
        self.calls.append(("find", name, 0))
        list_id = self._live(name)
        if list_id is None:
            return None
        return RemoteList(list_id, self.lists[list_id].name, self.lists[list_id].manual)

    def restore(self, list_id: str) -> bool:
        self.calls.append(("restore", list_id, 0))
        found = self.lists.get(list_id)
        if found is None or not self.restorable:
            return False
        found.deleted = False
        return True

    def _live(self, name: str) -> str | None:
        return next(
            (i for i, x in self.lists.items() if not x.deleted and x.name.casefold() == name.casefold()), None
        )

    def members(self, list_id: str) -> set[str]:
        return self.lists[list_id].members


@dataclass
class FakeAudiences:
    audiences: dict[str, ListAudience] = field(default_factory=dict)
    records: list[tuple[str, int, str | None]] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)

    def get(self, audience_id: str) -> ListAudience | None:
        return self.audiences.get(audience_id)

    def store_list(
        self, audience_id: str, list_id: str, list_name: str, replacing: str | None
    ) -> ListAudience:
        # DynamoDB's update makes the audience item when there is none (an audience never PUT).
        current = self.audiences.get(audience_id, ListAudience(audience_id, None, False))
        if current.list_id == replacing:
            self.audiences[audience_id] = replace(current, list_id=list_id, list_name=list_name)
        return self.audiences[audience_id]

    def next_generation(self, audience_id: str, generation: int) -> int:
        current = self.audiences[audience_id]
        if current.list_generation == generation:
            self.audiences[audience_id] = replace(current, list_generation=generation + 1)
        return self.audiences[audience_id].list_generation

    def start_refill(self, audience_id: str, generation: int, now_ms: int) -> None:
        current = self.audiences[audience_id]
        self.audiences[audience_id] = replace(current, refilling=True, refill_cursor=None)

    def refill_from(self, audience_id: str, cursor: str | None, generation: int, now_ms: int) -> None:
        current = self.audiences[audience_id]
        self.audiences[audience_id] = replace(current, refilling=cursor is not None, refill_cursor=cursor)

    def record_flush(self, audience_id: str, now_ms: int, calls: int, error: str | None) -> int:
        self.records.append((audience_id, calls, error))
        self.failures[audience_id] = 0 if error is None else self.failures.get(audience_id, 0) + 1
        return self.failures[audience_id]


@dataclass
class FakeLease:
    held_by_other: set[str] = field(default_factory=set)
    taken: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)

    def acquire(self, audience_id: str, owner: str, until_ms: int, now_ms: int) -> bool:
        if audience_id in self.held_by_other:
            return False
        self.taken.append(audience_id)
        return True

    def release(self, audience_id: str, owner: str) -> None:
        self.released.append(audience_id)


@dataclass
class FakeMembers:
    """The ledger's contacts realized in an audience's list: record id -> listed rank."""

    realized: dict[str, dict[str, Rank]] = field(default_factory=dict)
    pages: list[str | None] = field(default_factory=list)

    def page(
        self, audience_id: str, cursor: str | None, limit: int
    ) -> tuple[list[tuple[str, Rank]], str | None]:
        self.pages.append(cursor)
        members = sorted(self.realized.get(audience_id, {}).items())
        start = int(cursor or 0)
        following = start + limit
        return members[start:following], str(following) if following < len(members) else None


@dataclass
class FakeTimer:
    started: list[tuple[str, int]] = field(default_factory=list)

    def start(self, audience_id: str, delay_seconds: int) -> None:
        self.started.append((audience_id, delay_seconds))


@dataclass
class World:
    buffer: FakeBuffer = field(default_factory=FakeBuffer)
    hubspot: FakeHubSpot = field(default_factory=FakeHubSpot)
    audiences: FakeAudiences = field(default_factory=FakeAudiences)
    lease: FakeLease = field(default_factory=FakeLease)
    members: FakeMembers = field(default_factory=FakeMembers)
    timer: FakeTimer = field(default_factory=FakeTimer)
    chunk_size: int = 500
    refill_page: int = 500
    seconds_left: float = 300.0
    now_s: float = NOW_S

    def runner(self) -> ListRunner:
        return ListRunner(
            buffer=self.buffer,
            due=self.buffer,
            appender=self.buffer,
            memberships=self.hubspot,
            remote=self.hubspot,
            audiences=self.audiences,
            lease=self.lease,
            members=self.members,
            timer=self.timer,
            settings=RunnerSettings(
                flush_seconds=30,
                chunk_size=self.chunk_size,
                margin_seconds=60.0,
                refill_page=self.refill_page,
            ),
            clock=lambda: self.now_s,
            monotonic=lambda: 1_000.0,
            sleep=lambda _seconds: None,
        )

    def audience(
        self,
        audience_id: str = AUDIENCE,
        name: str | None = "Gold buyers",
        list_id: str | None = None,
        list_name: str | None = None,
        list_generation: int = 0,
    ) -> None:
        self.audiences.audiences[audience_id] = ListAudience(
            audience_id, name, False, list_id, list_name, list_generation
        )

    def toggle(self, audience_id: str, *toggles: Toggle) -> None:
        self.buffer.append_changes(audience_id, toggles, int(NOW_S * 1000) - 60_000)

    def sweep(self) -> object:
        return self.runner().sweep(lambda: self.seconds_left, "run-1")


def add(record_id: str, *rank: int) -> Toggle:
    return Toggle(record_id, True, rank or (1,))


def remove(record_id: str, *rank: int) -> Toggle:
    return Toggle(record_id, False, rank or (1,))


def test_a_list_another_run_holds_is_skipped_and_its_changes_stay() -> None:
    world = World()
    world.audience(list_id="100")
    world.hubspot.lists["100"] = FakeList("Gold buyers")
    world.toggle(AUDIENCE, add("1"))
    world.lease.held_by_other.add(AUDIENCE)

    run = world.runner().sweep(lambda: 300.0)

    assert [o.skipped for o in run.lists] == ["another run holds the list"]
    assert world.hubspot.calls == [] and len(world.buffer.read(AUDIENCE)) == 1
    assert world.lease.released == []


def test_the_first_drain_makes_the_list_with_the_audience_name_and_stores_it() -> None:
    world = World()
    world.audience()
    world.toggle(AUDIENCE, add("1"), add("2"), remove("3"))

    world.sweep()

    stored = world.audiences.audiences[AUDIENCE]
    assert (stored.list_id, stored.list_name) == ("100", "Gold buyers")
    assert world.hubspot.members("100") == {"1", "2"} and world.buffer.read(AUDIENCE) == []
    assert world.audiences.records == [(AUDIENCE, 2, None)]  # create + add-and-remove
    assert world.lease.taken == world.lease.released == [AUDIENCE]


def test_an_audience_never_put_gets_a_list_named_by_its_id_and_its_changes_are_sent() -> None:
    world = World()
    world.toggle(AUDIENCE, add("1"), add("2"))

    world.sweep()

    stored = world.audiences.audiences[AUDIENCE]
    assert stored.list_id is not None and stored.list_name == AUDIENCE
    assert world.hubspot.members(stored.list_id) == {"1", "2"} and world.buffer.read(AUDIENCE) == []


def test_an_audience_without_a_name_gets_a_list_named_by_its_id() -> None:
    world = World()
    world.audience(name=None)
    world.toggle(AUDIENCE, add("1"))
    world.sweep()
    assert world.audiences.audiences[AUDIENCE].list_name == AUDIENCE


def test_a_name_another_list_holds_is_suffixed_with_the_audience_id() -> None:
    world = World()
    world.hubspot.lists["9"] = FakeList("GOLD BUYERS")  # a person's list: names ignore case
    world.audience()
    world.toggle(AUDIENCE, add("1"))

    world.sweep()

    stored = world.audiences.audiences[AUDIENCE]
    assert stored.list_name == f"Gold buyers ({AUDIENCE})" and stored.list_id != "9"
    assert world.hubspot.members("9") == set()  # the person's list is never touched
    assert world.hubspot.members(str(stored.list_id)) == {"1"}


def test_a_suffixed_name_taken_too_adopts_that_manual_contact_list() -> None:
    world = World()
    world.hubspot.lists["9"] = FakeList("Gold buyers")
    world.hubspot.lists["10"] = FakeList(f"Gold buyers ({AUDIENCE})", members={"7"})
    world.audience()
    world.toggle(AUDIENCE, add("1"), remove("7"))

    world.sweep()

    assert world.audiences.audiences[AUDIENCE].list_id == "10"
    assert world.hubspot.members("10") == {"1"}


def test_a_suffixed_name_held_by_a_list_that_is_not_manual_is_an_error_and_nothing_is_sent() -> None:
    world = World()
    world.hubspot.lists["9"] = FakeList("Gold buyers")
    world.hubspot.lists["10"] = FakeList(f"Gold buyers ({AUDIENCE})", manual=False)
    world.audience()
    world.toggle(AUDIENCE, add("1"))

    world.sweep()

    assert world.audiences.audiences[AUDIENCE].list_id is None
    ((_, calls, error),) = world.audiences.records
    assert calls == 3 and error is not None and "cannot use" in error
    assert len(world.buffer.read(AUDIENCE)) == 1
    assert world.timer.started == [(AUDIENCE, 30)]  # the first failure's backoff


def test_a_list_gone_is_restored_its_generation_bumped_and_refilled_from_the_ledger() -> None:
    world = World(refill_page=2)
    world.hubspot.lists["100"] = FakeList("Gold buyers", members={"1", "2"}, deleted=True)
    world.audience(list_id="100", list_generation=3)
    world.members.realized[AUDIENCE] = {"1": (10, 0, 0), "2": (10, 0, 1), "5": (11, 0, 0)}
    world.toggle(AUDIENCE, add("6"))

    run = world.runner().sweep(lambda: 300.0)

    stored = world.audiences.audiences[AUDIENCE]
    assert stored.list_id == "100" and stored.list_generation == 4 and not stored.refilling
    assert world.hubspot.members("100") == {"1", "2", "5", "6"}
    assert world.members.pages == [None, "2"]
    assert run.lists[0].restored and run.lists[0].refilled == 3
    assert world.buffer.read(AUDIENCE) == []


def test_a_refilled_member_carries_the_new_generation_and_a_newer_removal_still_wins() -> None:
    world = World()
    world.hubspot.lists["100"] = FakeList("Gold buyers", deleted=True)
    world.audience(list_id="100", list_generation=0)
    world.members.realized[AUDIENCE] = {"1": (10, 0, 0), "2": (10, 0, 0)}
    # Contact 2 exited after its realize was listed: its removal is newer than the refill's add.
    world.toggle(AUDIENCE, remove("2", 20, 0, 0, 0))
    sent: list[Toggle] = []
    settle = world.buffer.settle

    def observe(audience_id: str, toggles: Sequence[Toggle], now_ms: int) -> None:
        sent.extend(toggles)
        settle(audience_id, toggles, now_ms)

    world.buffer.settle = observe  # type: ignore[method-assign,assignment]
    world.sweep()

    assert world.hubspot.members("100") == {"1"}
    assert Toggle("1", True, (10, 0, 0, 1)) in sent


def test_a_list_gone_that_cannot_be_restored_is_made_again_and_its_new_id_stored() -> None:
    world = World()
    world.hubspot.restorable = False
    world.hubspot.lists["100"] = FakeList("Gold buyers", deleted=True)
    world.audience(list_id="100", list_name="Gold buyers")
    world.members.realized[AUDIENCE] = {"1": (10, 0, 0)}
    world.toggle(AUDIENCE, add("2"))

    world.sweep()

    stored = world.audiences.audiences[AUDIENCE]
    assert stored.list_id not in (None, "100") and stored.list_generation == 1
    assert world.hubspot.members(str(stored.list_id)) == {"1", "2"}


def test_a_refill_cut_short_by_time_keeps_its_place_and_the_next_run_goes_on() -> None:
    world = World(refill_page=1, chunk_size=1)
    world.hubspot.lists["100"] = FakeList("Gold buyers", deleted=True)
    world.audience(list_id="100")
    world.members.realized[AUDIENCE] = {str(n): (10, 0, n) for n in range(6)}
    world.toggle(AUDIENCE, add("9"))

    # The time runs out once the refill read three pages.
    world.runner().sweep(lambda: 300.0 if len(world.members.pages) < 3 else 10.0)

    midway = world.audiences.audiences[AUDIENCE]
    assert midway.refilling and midway.refill_cursor is not None
    assert world.hubspot.members("100") < {str(n) for n in range(6)} | {"9"}

    world.runner().wake([AUDIENCE], lambda: 300.0)

    assert not world.audiences.audiences[AUDIENCE].refilling
    assert world.hubspot.members("100") == {str(n) for n in range(6)} | {"9"}
    assert world.audiences.audiences[AUDIENCE].list_generation == 1  # one bump, not one a run


def test_an_audience_deleted_sends_nothing_and_its_changes_are_parked() -> None:
    world = World()
    world.audiences.audiences[AUDIENCE] = ListAudience(AUDIENCE, "Gold buyers", True, list_id="100")
    world.hubspot.lists["100"] = FakeList("Gold buyers")
    world.toggle(AUDIENCE, add("1"))

    run = world.runner().sweep(lambda: 300.0)

    assert run.lists[0].skipped == "audience deleted"
    assert world.hubspot.calls == [] and len(world.buffer.read(AUDIENCE)) == 1
    assert world.buffer.due_at[AUDIENCE] == int(NOW_S * 1000) + 600_000
    assert world.buffer.due(int(NOW_S * 1000)) == []


def test_a_chunk_refused_for_its_size_is_halved_and_the_next_run_starts_from_the_smaller_size() -> None:
    world = World(chunk_size=8)
    world.hubspot.cap = 3
    world.hubspot.lists["100"] = FakeList("Gold buyers")
    world.audience(list_id="100")
    world.toggle(AUDIENCE, *(add(str(n)) for n in range(5)))
    runner = world.runner()

    runner.sweep(lambda: 300.0)

    assert [size for kind, _, size in world.hubspot.calls] == [5, 4, 2, 2, 1]
    assert world.hubspot.members("100") == {str(n) for n in range(5)}
    world.hubspot.calls.clear()
    world.toggle(AUDIENCE, *(add(str(n)) for n in range(10, 15)))
    runner.wake([AUDIENCE], lambda: 300.0)
    assert [size for _, _, size in world.hubspot.calls] == [2, 2, 1]


def test_a_failed_drain_records_its_error_and_backs_off_longer_each_time() -> None:
    world = World()
    world.hubspot.lists["100"] = FakeList("Gold buyers")
    world.audience(list_id="100")
    world.toggle(AUDIENCE, add("1"))
    world.hubspot.failures = [MembershipUnavailable("HubSpot 502")] * 6

    world.sweep()
    world.runner().wake([AUDIENCE], lambda: 300.0)

    assert [error is not None for _, _, error in world.audiences.records] == [True, True]
    assert world.timer.started == [(AUDIENCE, 30), (AUDIENCE, 60)]
    assert world.buffer.due_at[AUDIENCE] == int(NOW_S * 1000) + 60_000
    world.runner().wake([AUDIENCE], lambda: 300.0)
    assert world.hubspot.members("100") == {"1"} and world.audiences.records[-1][2] is None


def test_changes_appended_during_the_drain_get_a_timer_for_when_they_are_due() -> None:
    world = World()
    world.hubspot.lists["100"] = FakeList("Gold buyers")
    world.audience(list_id="100")
    world.toggle(AUDIENCE, add("1"))
    world.buffer.during_drain = [(AUDIENCE, [add("2")])]

    run = world.sweep()

    assert world.hubspot.members("100") == {"1"}
    assert world.timer.started == [(AUDIENCE, 30)]
    assert run.lists[0].remaining == 1  # type: ignore[attr-defined]


def test_a_list_due_because_a_chunk_filled_sends_full_chunks_and_its_remainder_waits_for_its_age() -> None:
    world = World(chunk_size=2)
    world.hubspot.lists["100"] = FakeList("Gold buyers")
    world.audience(list_id="100")
    # The list's first change arrived 10 s ago: not due by age (ListFlushSeconds is 30).
    world.buffer.append_changes(AUDIENCE, [add(str(n)) for n in range(5)], int(NOW_S * 1000) - 10_000)

    world.runner().wake([AUDIENCE], lambda: 300.0)

    assert [size for _call, _list, size in world.hubspot.calls] == [2, 2]
    assert [t.record_id for t in world.buffer.read(AUDIENCE)] == ["4"]
    # The remainder is due when its oldest change has waited ListFlushSeconds, not later.
    assert world.timer.started == [(AUDIENCE, 20)]
    assert world.buffer.due_at[AUDIENCE] == int(NOW_S * 1000) + 20_000

    world.now_s = NOW_S + 20
    world.runner().wake([AUDIENCE], lambda: 300.0)

    assert [size for _call, _list, size in world.hubspot.calls] == [2, 2, 1]
    assert world.hubspot.members("100") == {"0", "1", "2", "3", "4"} and world.buffer.read(AUDIENCE) == []


def test_a_list_due_by_age_sends_its_partial_chunk_too() -> None:
    world = World(chunk_size=2)
    world.hubspot.lists["100"] = FakeList("Gold buyers")
    world.audience(list_id="100")
    world.buffer.append_changes(AUDIENCE, [add(str(n)) for n in range(5)], int(NOW_S * 1000) - 30_000)

    world.sweep()

    assert [size for _call, _list, size in world.hubspot.calls] == [2, 2, 1]
    assert world.buffer.read(AUDIENCE) == [] and world.timer.started == []


def test_hubspot_stopping_the_run_leaves_the_other_lists_for_later() -> None:
    world = World()
    for audience_id, list_id in (("a", "100"), ("b", "101")):
        world.hubspot.lists[list_id] = FakeList(audience_id)
        world.audience(audience_id, list_id=list_id)
        world.toggle(audience_id, add("1"))
    world.hubspot.failures = [ListsStopped("HubSpot's daily limit is used up")]

    run = world.runner().sweep(lambda: 300.0)

    assert run.stopped_by is not None and run.left == ["a", "b"]
    assert [(a, error is not None) for a, _, error in world.audiences.records] == [("a", True)]
    assert world.hubspot.members("100") == world.hubspot.members("101") == set()


def test_no_list_is_started_without_the_time_for_one_call() -> None:
    world = World()
    world.hubspot.lists["100"] = FakeList("Gold buyers")
    world.audience(list_id="100")
    world.toggle(AUDIENCE, add("1"))

    run = world.runner().wake([AUDIENCE], lambda: 30.0)

    assert run.left == [AUDIENCE] and world.hubspot.calls == [] and world.lease.taken == []
