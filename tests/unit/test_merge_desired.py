"""``plan.merge_desired``: a contact's desired state is the merge of every update it was sent, so
the merge function may see them in any order, any number of times, alone or coalesced in a
batch, and end with the same state (what the ledger's conditional writes rely on)."""

from __future__ import annotations

from typing import Any

from hubspot_activation.messages import REPLAY_SOURCE
from hubspot_activation.model import AudienceChange, AudienceStatus, ContactUpdate
from hubspot_activation.upsert.plan import PendingContact, merge_desired
from hypothesis import given, settings
from hypothesis import strategies as st

EMAIL = "ada@example.com"
AUDIENCES = ("gold", "silver", "vip")
ATTRIBUTES = ("city", "firstname")


@st.composite
def updates(draw: st.DrawFn, names: st.SearchStrategy[str | None] | None = None) -> list[ContactUpdate]:
    """Updates of one contact, each received at its own moment (ingest gives every update a
    distinct receive order), with few audiences, timestamps and values so that they collide.
    ``names`` draws an audience change's name (default: the audience's one name, or none)."""
    count = draw(st.integers(1, 6))
    orders = draw(st.lists(st.integers(0, 1_000), min_size=count, max_size=count, unique=True))
    drawn = []
    for received in orders:
        changes = []
        for audience_id in draw(st.lists(st.sampled_from(AUDIENCES), unique=True, max_size=3)):
            name = draw(names) if names is not None else draw(st.sampled_from([None, audience_id.title()]))
            changes.append(
                AudienceChange(
                    audience_id,
                    draw(st.sampled_from([AudienceStatus.REALIZED, AudienceStatus.EXITED])),
                    draw(st.integers(1, 4)),
                    name,
                )
            )
        attributes: dict[str, Any] = draw(
            st.dictionaries(
                st.sampled_from(ATTRIBUTES), st.sampled_from(["a", "b", "c", 1, None]), max_size=2
            )
        )
        drawn.append(ContactUpdate(EMAIL, tuple(changes), attributes, received_ms=received))
    return drawn


def batch(*contents: ContactUpdate, source_ids: str = "m") -> PendingContact:
    """What the merge function hands the ledger for one batch: the batch's updates coalesced."""
    contact = PendingContact(EMAIL, "g0")
    for index, update in enumerate(contents):
        contact.merge(update, f"{source_ids}{index}")
    return contact


def fold(contents: list[ContactUpdate]) -> PendingContact | None:
    """Each update merged into the desired state in turn, each its own batch."""
    state: PendingContact | None = None
    for update in contents:
        merged = merge_desired(state, batch(update))
        state = merged if merged is not None else state
    return state


def content(state: PendingContact | None, names: bool = True) -> Any:
    if state is None:
        return None
    audiences = {
        audience_id: (o.change.status, o.change.timestamp_ms, o.order) + ((o.change.name,) if names else ())
        for audience_id, o in state.audiences.items()
    }
    return audiences, dict(state.attributes)


@given(data=st.data(), contents=updates())
def test_any_order_of_the_same_updates_merges_to_the_same_state(
    data: st.DataObject, contents: list[ContactUpdate]
) -> None:
    shuffled = data.draw(st.permutations(contents))
    assert content(fold(shuffled)) == content(fold(contents))


@given(data=st.data(), contents=updates())
def test_merging_an_update_again_changes_nothing(data: st.DataObject, contents: list[ContactUpdate]) -> None:
    """A duplicate, a redelivery, a redrive or an older message: None, and the state is kept."""
    state = fold(contents)
    again = data.draw(st.sampled_from(contents))
    assert merge_desired(state, batch(again)) is None
    assert merge_desired(state, batch(*contents)) is None


@given(data=st.data(), contents=updates())
def test_a_batch_merges_to_what_its_updates_merge_to_one_by_one(
    data: st.DataObject, contents: list[ContactUpdate]
) -> None:
    """The merge function coalesces a batch's updates before it merges them: any split of the
    updates into batches ends with the same state."""
    cut = data.draw(st.integers(0, len(contents)))
    first, second = contents[:cut], contents[cut:]
    state = merge_desired(None, batch(*first)) if first else None
    if second:
        state = merge_desired(state, batch(*second)) or state
    assert content(state) == content(fold(contents))


RENAMES = st.sampled_from([None, "Gold", "VIP", "Renamed"])


@settings(max_examples=300)
@given(data=st.data(), contents=updates(names=RENAMES))
def test_a_renamed_audience_merges_to_the_same_name_in_any_order(
    data: st.DataObject, contents: list[ContactUpdate]
) -> None:
    """Names given by different changes (a rename, a change sent without its name): the merged
    change carries the name of the newest change that had one, whatever the order."""
    shuffled = data.draw(st.permutations(contents))
    assert content(fold(shuffled)) == content(fold(contents))


@given(contents=updates(names=RENAMES))
def test_a_name_once_given_is_never_forgotten(contents: list[ContactUpdate]) -> None:
    state = fold(contents)
    for audience_id, ordered in (state.audiences if state is not None else {}).items():
        changes = [c for u in contents for c in u.audiences if c.audience_id == audience_id]
        named = [
            (c.timestamp_ms, u.order, c.name)
            for u in contents
            for c in u.audiences
            if c in changes and c.name
        ]
        assert ordered.change.name == (max(named)[2] if named else None)


def test_a_change_without_a_name_takes_the_newest_name_whatever_came_first() -> None:
    def gold(timestamp_ms: int, name: str | None, received_ms: int) -> ContactUpdate:
        change = AudienceChange("gold", AudienceStatus.REALIZED, timestamp_ms, name)
        return ContactUpdate(EMAIL, (change,), received_ms=received_ms)

    first, renamed, unnamed = gold(1, "Gold", 1), gold(2, "Gold VIP", 2), gold(3, None, 3)
    for contents in ([first, renamed, unnamed], [unnamed, first, renamed], [unnamed, renamed, first]):
        state = fold(contents)
        assert state is not None
        assert (state.audiences["gold"].change.timestamp_ms, state.audiences["gold"].change.name) == (
            3,
            "Gold VIP",
        )


def test_the_newest_change_wins_by_timestamp_and_the_newest_value_by_receive_order() -> None:
    older_value = ContactUpdate(
        EMAIL, (AudienceChange("gold", AudienceStatus.EXITED, 300),), {"city": "Paris"}, received_ms=2
    )
    newer_value = ContactUpdate(
        EMAIL, (AudienceChange("gold", AudienceStatus.REALIZED, 200),), {"city": "Rome"}, received_ms=1
    )
    # The exit happened later (300) though it was received first; Paris was received last.
    for contents in ([older_value, newer_value], [newer_value, older_value]):
        state = fold(contents)
        assert state is not None
        assert state.audiences["gold"].change.status is AudienceStatus.EXITED
        assert state.attributes["city"][0] == "Paris"


def test_nothing_to_merge_is_no_change() -> None:
    assert merge_desired(None, batch()) is None
    assert merge_desired(None, batch(ContactUpdate(EMAIL, received_ms=1))) is None
    state = merge_desired(None, batch(ContactUpdate(EMAIL, (), {"city": "Paris"}, received_ms=1)))
    assert state is not None and merge_desired(state, batch()) is None


def test_a_replay_asks_for_a_write_without_changing_the_state() -> None:
    """A replay carries no change: the state is unchanged (None), and the batch is marked so the
    ledger makes the contact pending again (``touched``) and resends a refused write (``replay``)."""
    state = fold([ContactUpdate(EMAIL, (), {"city": "Paris"}, received_ms=1)])
    replayed = batch(ContactUpdate(EMAIL, source=REPLAY_SOURCE, received_ms=2))
    assert merge_desired(state, replayed) is None
    assert replayed.touched and replayed.replay
