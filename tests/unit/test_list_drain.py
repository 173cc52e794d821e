"""The drain of one list (``lists.service.ListDrain``) against fakes of its ports: chunks of at
most the chunk size, halved when HubSpot refuses one for its size, retried on a failure that may
pass, stopped on a list gone, and nothing taken out of the buffer that HubSpot did not apply."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from hubspot_activation.lists.model import (
    ChunkTooLarge,
    ListGone,
    MembershipResult,
    MembershipUnavailable,
    Toggle,
)
from hubspot_activation.lists.service import ListDrain

AUDIENCE = "aud-1"
LIST = "123"


class FakeBuffer:
    """The buffer's contract in memory: one entry per record, the newest kept, settle takes out an
    entry only if it is still the one sent."""

    def __init__(self, toggles: Sequence[Toggle] = ()) -> None:
        self.changes: dict[str, Toggle] = {}
        self.settles: list[list[Toggle]] = []
        self.append(AUDIENCE, toggles, 0)

    def append(self, audience_id: str, toggles: Sequence[Toggle], now_ms: int) -> bool:
        started = not self.changes
        for toggle in toggles:
            known = self.changes.get(toggle.record_id)
            if known is None or toggle.precedence > known.precedence:
                self.changes[toggle.record_id] = toggle
        return started

    def read(self, audience_id: str) -> list[Toggle]:
        return sorted(self.changes.values(), key=lambda t: (t.precedence, t.record_id))

    def settle(self, audience_id: str, sent: Sequence[Toggle], now_ms: int) -> None:
        self.settles.append(list(sent))
        for toggle in sent:
            if self.changes.get(toggle.record_id) == toggle:
                del self.changes[toggle.record_id]


@dataclass
class FakeList:
    """HubSpot's add-and-remove on one list: a cap on ids a call (refused past it), scripted
    failures, records it does not hold."""

    cap: int | None = None
    failures: list[Exception] = field(default_factory=list)
    unknown: set[str] = field(default_factory=set)
    members: set[str] = field(default_factory=set)
    calls: list[tuple[list[str], list[str]]] = field(default_factory=list)
    on_call: list[object] = field(default_factory=list)

    def add_and_remove(self, list_id: str, add: list[str], remove: list[str]) -> MembershipResult:
        assert list_id == LIST
        assert not set(add) & set(remove)
        self.calls.append((add, remove))
        if self.on_call:
            hook = self.on_call.pop(0)
            assert callable(hook)
            hook()
        if self.failures:
            raise self.failures.pop(0)
        if self.cap is not None and len(add) + len(remove) > self.cap:
            raise ChunkTooLarge
        self.members |= set(add) - self.unknown
        self.members -= set(remove)
        return MembershipResult(frozenset((set(add) | set(remove)) & self.unknown))


def adds(count: int, start: int = 0) -> list[Toggle]:
    return [Toggle(str(n), True, (n,)) for n in range(start, start + count)]


def drain_of(buffer: FakeBuffer, hubspot: FakeList, **options: object) -> tuple[ListDrain, list[float]]:
    pauses: list[float] = []
    drain = ListDrain(buffer, hubspot, sleep=pauses.append, clock_ms=lambda: 1_000, **options)  # type: ignore[arg-type]
    return drain, pauses


def test_changes_go_in_chunks_of_the_chunk_size_adds_and_removes_together() -> None:
    toggles = [*adds(7), Toggle("x", False, (2, 5)), Toggle("y", False, (9,))]
    buffer, hubspot = FakeBuffer(toggles), FakeList(members={"x", "y"})
    report = ListDrain(buffer, hubspot, chunk_size=4).drain(AUDIENCE, LIST)
    assert [len(add) + len(remove) for add, remove in hubspot.calls] == [4, 4, 1]
    assert hubspot.calls[0] == (["0", "1", "2"], ["x"])  # oldest change first
    assert hubspot.members == {str(n) for n in range(7)}
    assert (report.calls, report.added, report.removed, report.remaining) == (3, 7, 2, 0)
    assert buffer.changes == {}


def test_the_default_chunk_is_500() -> None:
    buffer, hubspot = FakeBuffer(adds(1_200)), FakeList()
    ListDrain(buffer, hubspot).drain(AUDIENCE, LIST)
    assert [len(add) for add, _ in hubspot.calls] == [500, 500, 200]


def test_a_chunk_refused_for_its_size_goes_again_in_halves_and_the_size_is_reported() -> None:
    buffer, hubspot = FakeBuffer(adds(300)), FakeList(cap=130)
    report = ListDrain(buffer, hubspot, chunk_size=500).drain(AUDIENCE, LIST)
    sizes = [len(add) for add, _ in hubspot.calls]
    assert sizes == [300, 250, 125, 125, 50]  # 500 -> 250 -> 125 went through
    assert report.chunk_size == 125
    assert hubspot.members == {str(n) for n in range(300)} and buffer.changes == {}
    # Refused calls took nothing out of the buffer.
    assert [len(sent) for sent in buffer.settles] == [125, 125, 50]


def test_a_single_id_refused_for_its_size_stops_the_drain_and_keeps_everything() -> None:
    buffer, hubspot = FakeBuffer(adds(3)), FakeList(cap=0)
    report = ListDrain(buffer, hubspot, chunk_size=4).drain(AUDIENCE, LIST)
    assert report.failure is not None and report.remaining == 3
    assert [len(add) for add, _ in hubspot.calls] == [3, 2, 1]
    assert len(buffer.changes) == 3 and buffer.settles == []


def test_a_failure_that_may_pass_is_retried_with_growing_pauses_and_nothing_is_lost() -> None:
    buffer = FakeBuffer(adds(6))
    hubspot = FakeList(failures=[MembershipUnavailable("429"), MembershipUnavailable("502")])
    drain, pauses = drain_of(buffer, hubspot, chunk_size=4, backoff_seconds=1.0)
    report = drain.drain(AUDIENCE, LIST)
    assert pauses == [1.0, 2.0]
    assert hubspot.calls[0] == hubspot.calls[1] == hubspot.calls[2]  # the same ids again
    assert (report.calls, report.failure, report.remaining) == (4, None, 0)
    assert hubspot.members == {str(n) for n in range(6)} and buffer.changes == {}


def test_a_failure_past_the_attempts_stops_the_drain_with_the_chunk_still_buffered() -> None:
    buffer = FakeBuffer(adds(6))
    hubspot = FakeList(failures=[MembershipUnavailable("503")] * 5)
    drain, pauses = drain_of(buffer, hubspot, chunk_size=4, attempts=3)
    report = drain.drain(AUDIENCE, LIST)
    assert report.calls == 3 and len(pauses) == 2
    assert report.failure is not None and "503" in report.failure
    assert report.remaining == 6 and len(buffer.changes) == 6
    # The next drain sends them all.
    assert ListDrain(buffer, hubspot, chunk_size=4).drain(AUDIENCE, LIST).remaining == 0
    assert hubspot.members == {str(n) for n in range(6)}


def test_a_list_gone_is_reported_and_its_changes_stay_for_the_new_list() -> None:
    buffer = FakeBuffer(adds(6))
    hubspot = FakeList(failures=[ListGone(LIST)])
    report = ListDrain(buffer, hubspot, chunk_size=4).drain(AUDIENCE, LIST)
    assert report.gone and report.calls == 1 and report.remaining == 6
    assert len(buffer.changes) == 6 and buffer.settles == []


def test_a_list_gone_after_some_chunks_keeps_only_the_changes_not_applied() -> None:
    buffer = FakeBuffer(adds(10))
    hubspot = FakeList(failures=[])
    hubspot.on_call = [lambda: None, lambda: hubspot.failures.append(ListGone(LIST))]
    report = ListDrain(buffer, hubspot, chunk_size=4).drain(AUDIENCE, LIST)
    assert report.gone and report.added == 4 and report.remaining == 6
    assert sorted(buffer.changes, key=int) == [str(n) for n in range(4, 10)]


def test_records_hubspot_does_not_hold_are_reported_and_taken_out() -> None:
    buffer, hubspot = FakeBuffer(adds(5)), FakeList(unknown={"1", "3"})
    report = ListDrain(buffer, hubspot).drain(AUDIENCE, LIST)
    assert report.missing == {"1", "3"}
    assert buffer.changes == {} and hubspot.members == {"0", "2", "4"}


def test_only_full_chunks_go_while_updates_still_arrive() -> None:
    buffer, hubspot = FakeBuffer(adds(9)), FakeList()
    report = ListDrain(buffer, hubspot, chunk_size=4).drain(AUDIENCE, LIST, full_chunks_only=True)
    assert [len(add) for add, _ in hubspot.calls] == [4, 4]
    assert report.remaining == 1 and report.failure is None and len(buffer.changes) == 1


def test_a_change_appended_during_a_call_is_kept_for_the_next_drain() -> None:
    buffer = FakeBuffer(adds(3))
    hubspot = FakeList()
    # While HubSpot applies the add of record 1, record 1 exits.
    hubspot.on_call = [lambda: buffer.append(AUDIENCE, [Toggle("1", False, (50,))], 0)]
    ListDrain(buffer, hubspot).drain(AUDIENCE, LIST)
    assert buffer.read(AUDIENCE) == [Toggle("1", False, (50,))]
    ListDrain(buffer, hubspot).drain(AUDIENCE, LIST)
    assert hubspot.members == {"0", "2"}


def test_an_error_that_cannot_pass_is_not_retried_and_loses_nothing() -> None:
    buffer = FakeBuffer(adds(2))
    hubspot = FakeList(failures=[PermissionError("403")])
    with pytest.raises(PermissionError):
        ListDrain(buffer, hubspot).drain(AUDIENCE, LIST)
    assert len(hubspot.calls) == 1 and len(buffer.changes) == 2


@pytest.mark.parametrize(("chunk_size", "attempts"), [(0, 3), (10, 0)])
def test_a_drain_needs_a_chunk_and_an_attempt(chunk_size: int, attempts: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ListDrain(FakeBuffer(), FakeList(), chunk_size=chunk_size, attempts=attempts)
