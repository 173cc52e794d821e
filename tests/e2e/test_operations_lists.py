"""The operator's routes with the audiences' HubSpot lists kept (``AudienceTarget=both``), on the
local stack over real HTTP: a contact's memberships, the lists' waiting changes, a rename that
renames the list (a clash takes the suffixed name), a delete that keeps it; and with ``property``
the same routes answer and call HubSpot as without lists.

The memberships view, the waiting changes and reconcile's membership check run the real pipeline
(the flusher's hand-over, the lists function, a crashing one to keep changes waiting). The other
cases play the lists function (which makes a list and stores its id, and its bookkeeping, on the
audience's item) and the flusher's hand-over (a contact's ``listed`` and the list buffer) through
their agreed layouts: the ledger's codecs and the real buffer in moto, the list in the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hubspot_activation.ledger.audience_item import (
    LIST_CALLS,
    LIST_GENERATION,
    LIST_ID,
    LIST_LAST_ERROR,
    LIST_LAST_FLUSH_AT,
    LIST_NAME,
    audience_key_item,
)
from hubspot_activation.ledger.contact_item import LISTED, contact_key, entry_from_item, listed_value
from hubspot_activation.ledger.list_buffer import DynamoDbListBuffer
from hubspot_activation.lists.model import Toggle
from hubspot_activation.upsert.ledger import ListedAudience

from local import stack as local_stack
from local.hubspot_sandbox.state import ContactList, now_iso
from tests.e2e.test_lists_e2e import Crashing, lists_by_name, record_id
from tests.e2e.test_operations import answer, drain, member, post

FLUSHED_AT_MS = 1_796_000_000_000
LATER = "2026-11-20T11:00:00Z"


@pytest.fixture
def both() -> Iterator[local_stack.LocalStack]:
    started = local_stack.start(parameters={"AudienceTarget": "both"})
    yield started
    started.stop()


def _ledger(stack: local_stack.LocalStack) -> tuple[Any, str]:
    return stack.aws.client("dynamodb"), stack.aws.physical_id("LedgerTable")


def make_list(stack: local_stack.LocalStack, audience_id: str, name: str, members: list[str]) -> str:
    """What the lists function does on a list's first drain: the list in HubSpot, its id and name
    on the audience's item, and its bookkeeping after a drain."""
    assert stack.sandbox is not None
    state = stack.sandbox.state
    list_id = hubspot_list(stack, name)
    now = now_iso(state.clock())
    state.lists[list_id].members.update({state.email_index[email]: now for email in members})
    dynamodb, table = _ledger(stack)
    dynamodb.update_item(
        TableName=table,
        Key=audience_key_item(audience_id),
        UpdateExpression="SET audienceId = :a, #l = :l, #n = :n, #g = :g, #f = :f, #c = :c",
        ExpressionAttributeNames={
            "#l": LIST_ID,
            "#n": LIST_NAME,
            "#g": LIST_GENERATION,
            "#f": LIST_LAST_FLUSH_AT,
            "#c": LIST_CALLS,
        },
        ExpressionAttributeValues={
            ":a": {"S": audience_id},
            ":l": {"S": list_id},
            ":n": {"S": name},
            ":g": {"N": "0"},
            ":f": {"N": str(FLUSHED_AT_MS)},
            ":c": {"N": "3"},
        },
    )
    return list_id


def hubspot_list(stack: local_stack.LocalStack, name: str) -> str:
    """A MANUAL contact list made in HubSpot (by the connector, or by a person)."""
    assert stack.sandbox is not None
    state = stack.sandbox.state
    with state.lock:
        now = now_iso(state.clock())
        made = ContactList(state.next_list_id(), name, now, now)
        state.lists[made.list_id] = made
    return made.list_id


def hand_to_list(stack: local_stack.LocalStack, email: str, audience_id: str) -> Toggle:
    """What the flusher does: the contact's newest status of the audience recorded as handed to
    its list; the toggle it appended."""
    dynamodb, table = _ledger(stack)
    item = dynamodb.get_item(TableName=table, Key=contact_key(email), ConsistentRead=True)["Item"]
    entry = entry_from_item(item)
    applied = entry.audiences[audience_id]
    handed = ListedAudience(applied.status, applied.timestamp_ms, applied.order, 0)
    dynamodb.update_item(
        TableName=table,
        Key=contact_key(email),
        UpdateExpression="SET #l = :l",
        ExpressionAttributeNames={"#l": LISTED},
        ExpressionAttributeValues={":l": listed_value({**entry.listed, audience_id: handed})},
    )
    assert entry.hubspot_id is not None
    rank = (applied.timestamp_ms, *applied.order, 0)
    return Toggle(entry.hubspot_id, applied.status == "realized", rank)


def buffer(stack: local_stack.LocalStack) -> DynamoDbListBuffer:
    dynamodb, table = _ledger(stack)
    return DynamoDbListBuffer(dynamodb, table)


def test_contacts_show_their_memberships_and_status_the_changes_waiting() -> None:
    crashing = Crashing()
    stack = local_stack.start(
        parameters={"AudienceTarget": "both", "ListFlushSeconds": 1}, instrument=crashing
    )
    try:
        answer(stack, "PUT", "/audiences/gold", {"name": "Gold"}, status=201)
        post(stack, member("ada@example.com", "gold"), member("cy@example.com", "gold"))
        assert local_stack.drain(stack, show=False, timeout=120)
        assert local_stack.settle_lists(stack, timeout=120)  # ada and cy sent: members in HubSpot
        list_id = lists_by_name(stack)["Gold"]["listId"]

        # The lists function down: bob's add and cy's removal are handed to the list and wait.
        crashing.broken.set()
        post(stack, member("bob@example.com", "gold"), member("cy@example.com", "gold", "exited", LATER))
        assert local_stack.drain(stack, show=False, timeout=120)
        views = {
            name: answer(stack, "GET", f"/contacts/{name}@example.com")["lists"]
            for name in ("ada", "bob", "cy")
        }
        assert views["ada"] == {"gold": {"listId": list_id, "member": True, "pending": False}}
        assert views["bob"] == {"gold": {"listId": list_id, "member": True, "pending": True}}
        assert views["cy"] == {"gold": {"listId": list_id, "member": False, "pending": True}}

        status = answer(stack, "GET", "/sync/status")
        (waiting,) = status["lists"]["waiting"]
        assert waiting["lastFlushAt"] is not None and waiting["flushCalls"] >= 2  # the create, the adds
        assert {key: value for key, value in waiting.items() if key not in ("lastFlushAt", "flushCalls")} == {
            "audienceId": "gold",
            "listId": list_id,
            "listName": "Gold",
            "audienceStatus": "active",
            "pendingAdds": 1,
            "pendingRemoves": 1,
            "lastError": None,
        }
        assert status["lists"]["pendingAdds"] == 1 and status["lists"]["pendingRemoves"] == 1
        assert status["lists"]["more"] is False
        assert status["state"] == "in_progress"  # membership changes wait to be sent

        # Sent once the lists function is back: nothing waits, the contacts are as their lists show.
        crashing.broken.clear()
        stack.sweep_lists()
        assert local_stack.settle_lists(stack, timeout=120)
        assert answer(stack, "GET", "/contacts/bob@example.com")["lists"]["gold"]["pending"] is False
        assert answer(stack, "GET", "/contacts/cy@example.com")["lists"]["gold"] == {
            "listId": list_id,
            "member": False,
            "pending": False,
        }
        status = answer(stack, "GET", "/sync/status")
        assert status["lists"]["waiting"] == [] and status["state"] == "active_and_listening"
        assert set(lists_by_name(stack)["Gold"]["members"]) == {
            record_id(stack, "ada@example.com"),
            record_id(stack, "bob@example.com"),
        }
    finally:
        stack.stop()


def test_status_shows_a_failing_list_and_changes_waiting_for_a_list_not_made_yet(
    both: local_stack.LocalStack,
) -> None:
    both.stop_lists()  # the changes stay waiting however long this takes (ListFlushSeconds is 30)
    post(both, member("ada@example.com", "gold"), member("bob@example.com", "silver"))
    drain(both)
    make_list(both, "gold", "Gold", [])
    dynamodb, table = _ledger(both)
    dynamodb.update_item(
        TableName=table,
        Key=audience_key_item("gold"),
        UpdateExpression="SET #e = :e",
        ExpressionAttributeNames={"#e": LIST_LAST_ERROR},
        ExpressionAttributeValues={":e": {"S": "HubSpot list memberships unavailable: 502"}},
    )
    buffer(both).append("gold", [hand_to_list(both, "ada@example.com", "gold")], FLUSHED_AT_MS)
    buffer(both).append("silver", [hand_to_list(both, "bob@example.com", "silver")], FLUSHED_AT_MS + 1)
    waiting = {item["audienceId"]: item for item in answer(both, "GET", "/sync/status")["lists"]["waiting"]}
    assert waiting["gold"]["lastError"] == "HubSpot list memberships unavailable: 502"
    assert waiting["gold"]["pendingAdds"] == 1
    assert waiting["silver"] == {
        "audienceId": "silver",
        "listId": None,
        "listName": None,
        "audienceStatus": None,
        "pendingAdds": 1,
        "pendingRemoves": 0,
        "lastFlushAt": None,
        "lastError": None,
        "flushCalls": None,
    }
    assert answer(both, "GET", "/contacts/bob@example.com")["lists"] == {
        "silver": {"listId": None, "member": True, "pending": True}
    }


def test_a_rename_renames_the_list_a_clash_takes_the_suffixed_name_and_a_delete_keeps_it(
    both: local_stack.LocalStack,
) -> None:
    assert both.sandbox is not None
    state = both.sandbox.state
    post(both, member("ada@example.com", "gold", name="Gold"))
    drain(both)
    list_id = make_list(both, "gold", "Gold", ["ada@example.com"])
    hubspot_list(both, "Gold members")  # a person's list holds the name

    renamed = answer(both, "PUT", "/audiences/gold", {"name": "Gold members"}, status=201)  # its first PUT
    assert renamed["labelUpdated"] is True and state.properties["aud_gold"]["label"] == "Gold members"
    assert renamed["listRenamed"] is True and "listNote" not in renamed
    assert renamed["listId"] == list_id and renamed["listName"] == "Gold members (gold)"
    assert state.lists[list_id].name == "Gold members (gold)"
    dynamodb, table = _ledger(both)
    item = dynamodb.get_item(TableName=table, Key=audience_key_item("gold"))["Item"]
    assert item[LIST_NAME] == {"S": "Gold members (gold)"}

    # The same name again: the list has it already, no call.
    calls = state.requests["PUT rename_list"]
    again = answer(both, "PUT", "/audiences/gold", {"name": "Gold members"})
    assert again["listRenamed"] is True and state.requests["PUT rename_list"] == calls

    # HubSpot failing: the PUT succeeds, the name is stored, the list keeps its name until the
    # next PUT renames it.
    state.config.update({"error_rate": 1.0})
    failed = answer(both, "PUT", "/audiences/gold", {"name": "Platinum"})
    assert failed["name"] == "Platinum" and failed["listRenamed"] is False
    assert "the next PUT of the audience renames it" in failed["listNote"]
    assert failed["listName"] == "Gold members (gold)" == state.lists[list_id].name
    state.config.update({"error_rate": 0.0})
    retried = answer(both, "PUT", "/audiences/gold", {"name": "Platinum"})
    assert retried["listRenamed"] is True and state.lists[list_id].name == "Platinum"

    members = dict(state.lists[list_id].members)
    deleted = answer(both, "DELETE", "/audiences/gold")
    assert deleted["status"] == "deleted" and deleted["listId"] == list_id
    assert "its HubSpot list is kept" in deleted["note"] and "property" in deleted["note"]
    assert state.lists[list_id].deleted_at is None and state.lists[list_id].members == members


def test_a_rename_of_an_audience_without_a_list_says_when_it_gets_one(both: local_stack.LocalStack) -> None:
    created = answer(both, "PUT", "/audiences/gold", {"name": "Gold"}, status=201)
    assert created["listRenamed"] is False and created["listId"] is None
    assert "made with this name" in created["listNote"]


def test_with_property_the_routes_answer_and_call_hubspot_as_without_lists(
    running: local_stack.LocalStack,
) -> None:
    assert running.sandbox is not None
    state = running.sandbox.state
    post(running, member("ada@example.com", "gold", name="Gold"))
    drain(running)
    # Even an audience item with a list (lists kept before, then turned off) changes nothing.
    list_id = make_list(running, "gold", "Gold", ["ada@example.com"])
    toggle = hand_to_list(running, "ada@example.com", "gold")
    buffer(running).append("gold", [toggle], FLUSHED_AT_MS)

    contact = answer(running, "GET", "/contacts/ada@example.com")
    assert "lists" not in contact
    status = answer(running, "GET", "/sync/status")
    assert "lists" not in status
    renamed = answer(running, "PUT", "/audiences/gold", {"name": "Gold members"}, status=201)  # its first PUT
    assert set(renamed) == {
        "externalAudienceId",
        "audienceId",
        "name",
        "description",
        "status",
        "property",
        "labelUpdated",
        "resumed",
    }
    deleted = answer(running, "DELETE", "/audiences/gold")
    assert set(deleted) == {
        "externalAudienceId",
        "audienceId",
        "name",
        "description",
        "status",
        "property",
        "note",
    }
    assert "HubSpot list" not in deleted["note"]
    assert state.lists[list_id].name == "Gold"
    lists_calls = ("create_list", "get_list", "get_by_name", "rename_list", "restore_list", "add_and_remove")
    assert not [key for key in state.requests if key.endswith(lists_calls)]


def test_post_reconcile_finds_a_membership_a_person_changed_and_hands_it_to_the_list_again() -> None:
    stack = local_stack.start(parameters={"AudienceTarget": "both", "ListFlushSeconds": 1})
    try:
        assert stack.sandbox is not None
        state = stack.sandbox.state
        post(stack, member("ada@example.com", "gold"), member("bob@example.com", "gold", "exited"))
        assert local_stack.drain(stack, show=False, timeout=120)
        assert local_stack.settle_lists(stack, timeout=120)
        list_id = lists_by_name(stack)["gold"]["listId"]
        ada = record_id(stack, "ada@example.com")
        assert lists_by_name(stack)["gold"]["members"] == [ada]
        with state.lock:
            del state.lists[list_id].members[ada]  # a person removes Ada in HubSpot

        emails = {"emails": ["ada@example.com", "bob@example.com"]}
        dry = answer(stack, "POST", "/reconcile", {**emails, "dryRun": True})
        assert dry["membershipDrift"]["found"] == 1 and dry["membershipDrift"]["repaired"] == 0
        done = answer(stack, "POST", "/reconcile", emails)
        assert done["membershipDrift"] == {
            "checked": 2,
            "found": 1,
            "repaired": 1,
            "skipped": 0,
            "examples": [
                {
                    "email": "ada@example.com",
                    "audienceId": "gold",
                    "listId": list_id,
                    "expected": "member",
                    "repaired": True,
                }
            ],
        }
        assert done["calls"] == 2  # the contacts' read and the memberships' read
        last = answer(stack, "GET", "/sync/status")["lastReconcile"]
        assert last["membershipDrift"]["found"] == 1

        # The repair goes through the list's buffer: the lists function adds Ada again.
        assert local_stack.settle_lists(stack, timeout=120)
        assert lists_by_name(stack)["gold"]["members"] == [ada]
        again = answer(stack, "POST", "/reconcile", emails)
        assert again["membershipDrift"]["found"] == 0
    finally:
        stack.stop()


def test_with_property_post_reconcile_reads_no_membership(running: local_stack.LocalStack) -> None:
    assert running.sandbox is not None
    post(running, member("ada@example.com", "gold"))
    drain(running)
    list_id = make_list(running, "gold", "Gold", [])
    hand_to_list(running, "ada@example.com", "gold")
    done = answer(running, "POST", "/reconcile", {"emails": ["ada@example.com"]})
    assert "membershipDrift" not in done and done["calls"] == 1
    assert "membershipDrift" not in answer(running, "GET", "/sync/status")["lastReconcile"]
    assert running.sandbox.state.requests["POST memberships_batch_read"] == 0
    assert buffer(running).read("gold") == [] and running.sandbox.state.lists[list_id].members == {}
