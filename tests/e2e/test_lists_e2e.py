"""The audiences' HubSpot lists end to end on the local stack, through the real functions: ingest
over the API, the merge, the flusher's hand-over to the list buffers, the lists function woken by
its timers (ListFlushSeconds 1) and its sweep, the sandbox as HubSpot. Each list holds exactly the
contacts whose newest status for its audience is realized, whatever order updates, replays and
dead letters come in, through a crashing lists function, a rename and a list deleted in HubSpot;
with ``both`` the audience property agrees, with ``list`` there is none."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from hubspot_activation.ledger.audience_item import LIST_GENERATION, LIST_ID, audience_key_item
from hubspot_activation.model import AudienceChange, AudienceStatus, ContactUpdate

from local import stack as local_stack
from local.event_source import Handler
from tests.e2e.test_operations import answer, dead_letter, member, post

Statuses = dict[tuple[str, str], str]
"""The newest status of each (email, audience) the test sent."""


def at(second: int) -> str:
    return f"2026-11-20T10:00:{second:02d}Z"


def at_ms(second: int) -> int:
    return 1_795_168_800_000 + second * 1000


@pytest.fixture
def both() -> Iterator[local_stack.LocalStack]:
    started = local_stack.start(parameters={"AudienceTarget": "both", "ListFlushSeconds": 1})
    yield started
    started.stop()


def settled(stack: local_stack.LocalStack) -> None:
    assert local_stack.drain(stack, show=False, timeout=120)
    assert local_stack.settle_lists(stack, timeout=120)


def send(stack: local_stack.LocalStack, newest: Statuses, *updates: tuple[str, str, str, int]) -> None:
    """POST (email, audience, status, second) updates, one profile each, and keep the newest status
    of each (email, audience) the way the contract orders them: by timestamp."""
    post(stack, *(member(e, a, s, at(t)) for e, a, s, t in updates))
    for email, audience_id, status, second in updates:
        known = newest.get((email, audience_id))
        if known is None or second > int(known.split("@")[1]):
            newest[(email, audience_id)] = f"{status}@{second}"


def lists_by_name(stack: local_stack.LocalStack) -> dict[str, dict[str, Any]]:
    """The sandbox's live lists, read as a person would (``GET /__sandbox/lists``)."""
    answered = requests.get(f"{stack.hubspot_url}/__sandbox/lists", timeout=10)
    assert answered.status_code == 200, answered.text
    return {found["name"]: found for found in answered.json()["lists"] if "deletedAt" not in found}


def record_id(stack: local_stack.LocalStack, email: str) -> str:
    assert stack.sandbox is not None
    return str(stack.sandbox.state.email_index[email])


def expected_members(stack: local_stack.LocalStack, newest: Statuses, audience_id: str) -> set[str]:
    return {
        record_id(stack, email)
        for (email, aid), status in newest.items()
        if aid == audience_id and status.startswith("realized@")
    }


def assert_lists_follow(stack: local_stack.LocalStack, newest: Statuses, prop: bool = True) -> None:
    """Every audience's list holds exactly its realized contacts; with ``prop`` each contact's
    audience property holds its newest status too."""
    assert stack.sandbox is not None
    live = lists_by_name(stack)
    for audience_id in {aid for _, aid in newest}:
        found = live[audience_id]  # never PUT: the list is named by the id
        assert set(found["members"]) == expected_members(stack, newest, audience_id), audience_id
    for (email, audience_id), status in newest.items():
        properties = stack.sandbox.state.contacts[record_id(stack, email)]["properties"]
        if prop:
            assert properties[f"aud_{audience_id}"] == status.split("@")[0], (email, audience_id)
        else:
            assert f"aud_{audience_id}" not in properties


def audience_item(stack: local_stack.LocalStack, audience_id: str) -> dict[str, Any]:
    item: dict[str, Any] = stack.aws.client("dynamodb").get_item(
        TableName=stack.aws.physical_id("LedgerTable"),
        Key=audience_key_item(audience_id),
        ConsistentRead=True,
    )["Item"]
    return item


def until(condition: Callable[[], bool], timeout: float = 60) -> bool:
    """Bounded polling: True as soon as ``condition`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_lists_hold_the_newest_status_through_interleaved_updates_replays_and_dead_letters(
    both: local_stack.LocalStack,
) -> None:
    newest: Statuses = {}
    send(
        both,
        newest,
        ("ada@example.com", "gold", "realized", 10),
        ("bob@example.com", "gold", "realized", 10),
        ("cy@example.com", "silver", "realized", 10),
        ("dan@example.com", "silver", "realized", 10),
        ("eve@example.com", "gold", "exited", 10),
    )
    # Interleaved without waiting: newer changes, and older ones that must not roll anything back.
    send(
        both,
        newest,
        ("bob@example.com", "gold", "exited", 20),
        ("ada@example.com", "silver", "realized", 20),
        ("eve@example.com", "gold", "realized", 5),  # older than eve's exit
        ("cy@example.com", "silver", "exited", 5),  # older than cy's realize
    )
    send(
        both,
        newest,
        ("dan@example.com", "silver", "exited", 30),
        ("eve@example.com", "silver", "realized", 30),
    )
    settled(both)
    assert_lists_follow(both, newest)

    # A replay of the first payload (older than what followed) and newer flips of the same contacts.
    send(
        both,
        newest,
        ("ada@example.com", "gold", "realized", 10),
        ("bob@example.com", "gold", "realized", 10),
        ("cy@example.com", "silver", "realized", 10),
        ("dan@example.com", "silver", "realized", 10),
        ("eve@example.com", "gold", "exited", 10),
    )
    send(both, newest, ("ada@example.com", "gold", "exited", 40), ("cy@example.com", "gold", "realized", 40))
    settled(both)
    assert_lists_follow(both, newest)

    # Dead letters replayed by the operator: one older than the contact's newest (no roll-back),
    # one newer (it lands).
    stale = ContactUpdate(
        "cy@example.com", (AudienceChange("gold", AudienceStatus.EXITED, at_ms(35)),), received_ms=at_ms(36)
    )
    fresh = ContactUpdate(
        "bob@example.com",
        (AudienceChange("gold", AudienceStatus.REALIZED, at_ms(50)),),
        received_ms=at_ms(51),
    )
    dead_letter(both, stale, at_ms(36))
    dead_letter(both, fresh, at_ms(51))
    newest[("bob@example.com", "gold")] = "realized@50"
    moved = answer(both, "POST", "/replay", {"dryRun": False})
    assert moved["deadLetters"]["moved"] == 2, moved
    settled(both)
    assert_lists_follow(both, newest)
    assert expected_members(both, newest, "gold") == {
        record_id(both, "bob@example.com"),
        record_id(both, "cy@example.com"),
    }
    assert expected_members(both, newest, "silver") == {
        record_id(both, "ada@example.com"),
        record_id(both, "cy@example.com"),
        record_id(both, "eve@example.com"),
    }


class Crashing:
    """An instrument making the lists function crash (raise before it does anything) while set."""

    def __init__(self) -> None:
        self.broken = threading.Event()
        self.crashes = 0
        self._lock = threading.Lock()

    def __call__(self, logical_id: str, function: Handler) -> Handler:
        if logical_id != "ListsFunction":
            return function

        def call(event: dict[str, Any], context: Any) -> dict[str, Any]:
            if self.broken.is_set():
                with self._lock:
                    self.crashes += 1
                raise RuntimeError("the lists function crashed")
            return function(event, context)

        return call


def test_a_crash_of_the_lists_function_after_the_upserts_loses_no_membership_change() -> None:
    crashing = Crashing()
    stack = local_stack.start(
        parameters={"AudienceTarget": "both", "ListFlushSeconds": 1}, instrument=crashing
    )
    try:
        newest: Statuses = {}
        send(
            stack,
            newest,
            ("ada@example.com", "gold", "realized", 10),
            ("bob@example.com", "gold", "realized", 10),
        )
        settled(stack)
        assert_lists_follow(stack, newest)

        crashing.broken.set()
        send(
            stack,
            newest,
            ("ada@example.com", "gold", "exited", 20),
            ("cy@example.com", "gold", "realized", 20),
        )
        assert local_stack.drain(stack, show=False, timeout=120)  # upserted and handed to the buffer
        assert until(lambda: crashing.crashes >= 1)  # the timer woke the lists function: it crashed
        stack.sweep_lists()
        assert until(lambda: crashing.crashes >= 2)
        # HubSpot holds the new statuses; the list still holds the old members; the changes wait.
        assert stack.sandbox is not None
        assert (
            stack.sandbox.state.contacts[record_id(stack, "ada@example.com")]["properties"]["aud_gold"]
            == "exited"
        )
        assert set(lists_by_name(stack)["gold"]["members"]) == {
            record_id(stack, "ada@example.com"),
            record_id(stack, "bob@example.com"),
        }
        assert local_stack.lists_pending(stack)

        crashing.broken.clear()  # recovered: the next sweep (or a timer's retry) drains them
        stack.sweep_lists()
        assert local_stack.settle_lists(stack, timeout=120)
        assert_lists_follow(stack, newest)
    finally:
        stack.stop()


def test_a_rename_relabels_the_list_and_its_changes_still_go_to_it(both: local_stack.LocalStack) -> None:
    newest: Statuses = {}
    send(both, newest, ("ada@example.com", "gold", "realized", 10))
    settled(both)
    list_id = lists_by_name(both)["gold"]["listId"]

    renamed = answer(both, "PUT", "/audiences/gold", {"name": "Gold members"}, status=201)  # its first PUT
    assert renamed["listRenamed"] is True and renamed["listId"] == list_id
    live = lists_by_name(both)
    assert "gold" not in live and live["Gold members"]["listId"] == list_id

    post(both, member("bob@example.com", "gold", "realized", at(20)))
    settled(both)
    found = lists_by_name(both)["Gold members"]
    assert found["listId"] == list_id
    assert set(found["members"]) == {record_id(both, "ada@example.com"), record_id(both, "bob@example.com")}


@pytest.mark.parametrize("purged", [False, True], ids=["restored", "made-again"])
def test_a_list_deleted_in_hubspot_comes_back_refilled_and_takes_new_changes(
    both: local_stack.LocalStack, purged: bool
) -> None:
    assert both.sandbox is not None
    newest: Statuses = {}
    send(
        both,
        newest,
        ("ada@example.com", "gold", "realized", 10),
        ("bob@example.com", "gold", "realized", 10),
        ("cy@example.com", "gold", "exited", 10),
    )
    settled(both)
    list_id = lists_by_name(both)["gold"]["listId"]
    generation = int(audience_item(both, "gold").get(LIST_GENERATION, {"N": "0"})["N"])

    deleted = requests.delete(f"{both.hubspot_url}/__sandbox/lists/{list_id}", timeout=10)
    assert deleted.status_code == 200, deleted.text
    if purged:  # past HubSpot's restore window: the list cannot come back, a new one is made
        both.sandbox.state.config.update({"list_restore_seconds": 0})
    assert "gold" not in lists_by_name(both)

    # The next change to the list finds it gone: restored (or made again) and refilled.
    send(both, newest, ("dan@example.com", "gold", "realized", 20), ("ada@example.com", "gold", "exited", 20))
    settled(both)
    if purged:
        both.sandbox.state.config.update({"list_restore_seconds": 90 * 86_400})
    found = lists_by_name(both)["gold"]
    assert (found["listId"] == list_id) is not purged
    assert audience_item(both, "gold")[LIST_ID] == {"S": found["listId"]}
    assert int(audience_item(both, "gold")[LIST_GENERATION]["N"]) > generation
    assert_lists_follow(both, newest)

    send(both, newest, ("bob@example.com", "gold", "exited", 30), ("eve@example.com", "gold", "realized", 30))
    settled(both)
    assert lists_by_name(both)["gold"]["listId"] == found["listId"]
    assert_lists_follow(both, newest)


def test_with_lists_alone_no_audience_property_is_made_and_the_lists_follow() -> None:
    stack = local_stack.start(parameters={"AudienceTarget": "list", "ListFlushSeconds": 1})
    try:
        assert stack.sandbox is not None
        newest: Statuses = {}
        send(
            stack,
            newest,
            ("ada@example.com", "gold", "realized", 10),
            ("bob@example.com", "gold", "realized", 10),
            ("ada@example.com", "silver", "realized", 10),
        )
        send(
            stack,
            newest,
            ("bob@example.com", "gold", "exited", 20),
            ("bob@example.com", "gold", "realized", 5),
        )
        settled(stack)
        assert not [name for name in stack.sandbox.state.properties if name.startswith("aud_")]
        assert_lists_follow(stack, newest, prop=False)
    finally:
        stack.stop()
