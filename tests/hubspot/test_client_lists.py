"""The Lists API client against the sandbox over real HTTP, for every API version: each call, its
typed refusals (a taken name, a list gone), and the client machinery (governor, retries, scopes)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hubspot_activation.hubspot.client import HubSpotClient, UpsertInput
from hubspot_activation.hubspot.errors import ErrorKind, HubSpotError
from hubspot_activation.hubspot.lists import (
    DUPLICATE_LIST_NAMES,
    MAX_MEMBERSHIP_READS,
    DuplicateListName,
    HubSpotLists,
    ListGone,
)

from local.hubspot_sandbox import SandboxServer


@pytest.fixture
def lists(client: HubSpotClient) -> HubSpotLists:
    return HubSpotLists(client)


def contacts(client: HubSpotClient, *emails: str) -> list[str]:
    """The record ids of new contacts with these emails."""
    results = client.batch_upsert([UpsertInput(email, {"firstname": "X"}) for email in emails])
    return [str(result.contact_id) for result in results]


def members(sandbox: SandboxServer, list_id: str) -> list[str]:
    found = sandbox.app.lists.members(list_id)
    assert found is not None
    return found


def test_create_then_read_by_id_and_by_name_in_any_case(lists: HubSpotLists, sandbox: SandboxServer) -> None:
    created = lists.create("Summer Buyers")
    assert created.manual_contacts and created.name == "Summer Buyers" and created.deleted_at is None
    assert created.list_id in sandbox.state.lists
    assert lists.get(created.list_id) == created
    assert lists.find_by_name("summer BUYERS") == created
    assert lists.find_by_name("Winter Buyers") is None


def test_a_taken_name_in_any_case_is_a_duplicate_list_name(lists: HubSpotLists) -> None:
    lists.create("Summer Buyers")
    with pytest.raises(DuplicateListName) as raised:
        lists.create("SUMMER buyers")
    assert raised.value.status == 400 and raised.value.sub_category == DUPLICATE_LIST_NAMES
    assert raised.value.name == "SUMMER buyers" and raised.value.kind is ErrorKind.PERMANENT


def test_rename_sends_the_name_as_a_query_parameter_and_types_its_refusals(
    lists: HubSpotLists, sandbox: SandboxServer
) -> None:
    first, second = lists.create("Alpha"), lists.create("Beta")
    renamed = lists.rename(first.list_id, "Alpha & Omega / 2026?")
    assert renamed.list_id == first.list_id and renamed.name == "Alpha & Omega / 2026?"
    assert sandbox.state.lists[first.list_id].name == "Alpha & Omega / 2026?"
    assert lists.find_by_name("alpha & omega / 2026?") == renamed  # a "/" in a name stays in it
    assert lists.find_by_name("Alpha") is None
    assert lists.rename(second.list_id, "BETA").name == "BETA"  # its own name in another case
    with pytest.raises(DuplicateListName):
        lists.rename(second.list_id, "alpha & omega / 2026?")
    with pytest.raises(ListGone) as gone:
        lists.rename("99999", "Gamma")
    assert gone.value.list_id == "99999" and gone.value.status == 404


def test_a_deleted_list_is_gone_to_every_call_until_restored_with_its_members(
    client: HubSpotClient, lists: HubSpotLists, sandbox: SandboxServer
) -> None:
    ada, bob = contacts(client, "ada@example.com", "bob@example.com")
    made = lists.create("Buyers")
    lists.add_and_remove(made.list_id, [ada, bob], [])
    lists.delete(made.list_id)
    with pytest.raises(ListGone):
        lists.get(made.list_id)
    with pytest.raises(ListGone):
        lists.add_and_remove(made.list_id, [ada], [])
    with pytest.raises(ListGone):
        lists.delete(made.list_id)
    assert lists.find_by_name("Buyers") is None
    assert lists.memberships([ada]).list_ids(ada) == frozenset()
    lists.restore(made.list_id)
    assert lists.get(made.list_id).list_id == made.list_id
    assert lists.memberships([ada, bob]).list_ids(bob) == {made.list_id}
    assert members(sandbox, made.list_id) == sorted([ada, bob])


def test_a_read_answering_a_deleted_list_with_deleted_at_is_gone_too(
    lists: HubSpotLists, sandbox: SandboxServer
) -> None:
    sandbox.state.config.deleted_list_found = True
    made = lists.create("Buyers")
    lists.delete(made.list_id)
    with pytest.raises(ListGone) as gone:
        lists.get(made.list_id)
    assert gone.value.status == 200  # HubSpot answered with the list, deletedAt set
    assert lists.find_by_name("Buyers") is None


def test_restoring_a_live_list_counts_as_restored(lists: HubSpotLists, sandbox: SandboxServer) -> None:
    made = lists.create("Buyers")
    before = sandbox.state.requests["PUT restore_list"]
    lists.restore(made.list_id)  # HubSpot refuses (400): a retry after an unanswered restore meets this
    assert sandbox.state.requests["PUT restore_list"] == before + 1
    assert lists.get(made.list_id).deleted_at is None


def test_restore_fails_past_the_window_and_when_the_name_was_taken(
    lists: HubSpotLists, sandbox: SandboxServer
) -> None:
    purged, clashing = lists.create("Old"), lists.create("Buyers")
    lists.delete(clashing.list_id)
    lists.create("BUYERS")  # a deleted list frees its name
    with pytest.raises(DuplicateListName) as taken:
        lists.restore(clashing.list_id)
    assert taken.value.name is None
    lists.delete(purged.list_id)
    sandbox.state.config.list_restore_seconds = 0
    with pytest.raises(ListGone):
        lists.restore(purged.list_id)
    with pytest.raises(ListGone):
        lists.restore("99999")


def test_the_list_count_limit_is_a_permanent_refusal_not_a_duplicate(
    lists: HubSpotLists, sandbox: SandboxServer
) -> None:
    sandbox.state.config.list_limit = 1
    kept = lists.create("One")
    with pytest.raises(HubSpotError) as refused:
        lists.create("Two")
    assert type(refused.value) is HubSpotError
    assert refused.value.status == 400 and refused.value.kind is ErrorKind.PERMANENT
    lists.delete(kept.list_id)
    lists.create("Two")  # a deleted list does not count
    with pytest.raises(HubSpotError) as full:
        lists.restore(kept.list_id)  # nor can it come back past the limit
    assert type(full.value) is HubSpotError and full.value.status == 400


@pytest.mark.parametrize("spelling", ["recordsIdsAdded", "recordIdsAdded"])
def test_add_and_remove_reports_what_it_did_in_either_spelling_and_is_idempotent(
    client: HubSpotClient, lists: HubSpotLists, sandbox: SandboxServer, spelling: str
) -> None:
    sandbox.state.config.list_added_field = spelling
    ada, bob, cy = contacts(client, "ada@example.com", "bob@example.com", "cy@example.com")
    made = lists.create("Buyers")
    first = lists.add_and_remove(made.list_id, [ada, bob, "424242"], [])
    assert (first.added, first.removed, first.missing) == ((ada, bob), (), ("424242",))
    again = lists.add_and_remove(made.list_id, [ada, bob], [])
    assert (again.added, again.removed, again.missing) == ((), (), ())
    change = lists.add_and_remove(made.list_id, [cy], [ada, "434343"])
    assert (change.added, change.removed, change.missing) == ((cy,), (ada,), ("434343",))
    assert members(sandbox, made.list_id) == sorted([bob, cy])


def test_deleted_contacts_are_missing_and_nothing_is_sent_for_no_change(
    client: HubSpotClient, lists: HubSpotLists, sandbox: SandboxServer
) -> None:
    (ada,) = contacts(client, "ada@example.com")
    sandbox.state.archive(ada)
    made = lists.create("Buyers")
    assert lists.add_and_remove(made.list_id, [ada], []).missing == (ada,)
    sent = client.requests_sent
    assert lists.add_and_remove(made.list_id, [], []).added == ()
    with pytest.raises(ValueError, match="both added and removed"):
        lists.add_and_remove(made.list_id, ["1"], ["1"])
    assert client.requests_sent == sent


def test_a_membership_change_over_the_per_call_cap_is_refused_whole(
    client: HubSpotClient, lists: HubSpotLists, sandbox: SandboxServer
) -> None:
    ids = contacts(client, "a@example.com", "b@example.com", "c@example.com")
    made = lists.create("Buyers")
    sandbox.state.config.list_ids_per_call = 2
    with pytest.raises(HubSpotError) as refused:
        lists.add_and_remove(made.list_id, ids[:2], ids[2:])
    assert type(refused.value) is HubSpotError and refused.value.status == 400
    assert members(sandbox, made.list_id) == []
    assert lists.add_and_remove(made.list_id, ids[:2], []).added == tuple(ids[:2])


def test_memberships_read_by_record_with_missing_records_apart(
    client: HubSpotClient, lists: HubSpotLists, sandbox: SandboxServer
) -> None:
    ada, bob, gone = contacts(client, "ada@example.com", "bob@example.com", "gone@example.com")
    sandbox.state.archive(gone)
    buyers, fans, dropped = lists.create("Buyers"), lists.create("Fans"), lists.create("Dropped")
    lists.add_and_remove(buyers.list_id, [ada, bob], [])
    lists.add_and_remove(fans.list_id, [ada], [])
    lists.add_and_remove(dropped.list_id, [bob], [])
    lists.delete(dropped.list_id)
    outcome = lists.memberships([ada, bob, "424242", gone])
    assert outcome.list_ids(ada) == {buyers.list_id, fans.list_id}
    assert outcome.list_ids(bob) == {buyers.list_id}
    assert sorted(outcome.missing) == sorted(["424242", gone]) and outcome.failed == {}
    (membership,) = outcome.memberships[bob]
    assert membership.first_added and membership.last_added and membership.list_version == 1
    assert lists.memberships([]).memberships == {}
    with pytest.raises(ValueError, match="at most"):
        lists.memberships([str(i) for i in range(MAX_MEMBERSHIP_READS + 1)])


def test_list_calls_go_through_the_governor_and_retry_a_429(
    client: HubSpotClient, lists: HubSpotLists, sandbox: SandboxServer
) -> None:
    made = lists.create("Buyers")
    (ada,) = contacts(client, "ada@example.com")
    sent, throttled = client.requests_sent, client.governor.throttled
    sandbox.state.config.force_429 = 1
    assert lists.add_and_remove(made.list_id, [ada], []).added == (ada,)
    assert client.requests_sent == sent + 2 and client.governor.throttled == throttled + 1
    assert sandbox.state.throttled["TEN_SECONDLY_ROLLING"] == 1


def test_lists_scopes_are_a_configuration_error(
    make_client: Callable[..., HubSpotClient], sandbox: SandboxServer
) -> None:
    contacts_only = frozenset({"crm.objects.contacts.read", "crm.objects.contacts.write"})
    none = HubSpotLists(make_client(token=sandbox.state.add_private_app_token(contacts_only)))
    with pytest.raises(HubSpotError) as refused:
        none.find_by_name("Buyers")
    assert refused.value.status == 403 and refused.value.kind is ErrorKind.CONFIGURATION
    write_only = HubSpotLists(
        make_client(token=sandbox.state.add_private_app_token(frozenset({"crm.lists.write"})))
    )
    made = write_only.create("Buyers")  # create takes the write scope alone
    with pytest.raises(HubSpotError) as no_read:
        write_only.add_and_remove(made.list_id, ["1"], [])  # every other write takes both
    assert no_read.value.status == 403
    read_only = HubSpotLists(
        make_client(token=sandbox.state.add_private_app_token(frozenset({"crm.lists.read"})))
    )
    assert read_only.get(made.list_id).name == "Buyers"
    with pytest.raises(HubSpotError) as no_write:
        read_only.rename(made.list_id, "Fans")
    assert no_write.value.kind is ErrorKind.CONFIGURATION


def test_ids_a_merge_retired_are_missing_and_the_merged_record_can_be_listed(
    client: HubSpotClient, lists: HubSpotLists, sandbox: SandboxServer
) -> None:
    ada, bob = contacts(client, "ada@example.com", "bob@example.com")
    made = lists.create("Buyers")
    lists.add_and_remove(made.list_id, [ada], [])
    merged = sandbox.state.merge(ada, bob)
    change = lists.add_and_remove(made.list_id, [bob, merged], [])
    assert (change.added, change.missing) == ((merged,), (bob,))
    assert members(sandbox, made.list_id) == [merged]  # the retired id is no longer a member
    assert lists.memberships([ada, merged]).missing == [ada]
