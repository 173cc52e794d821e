"""The lists function's HubSpot adapters (``hubspot.list_ports``) against the sandbox over real
HTTP: HubSpot's answers become the lists' own errors - a list gone, a chunk refused for its size
(the sandbox's 400 for too many ids; a single id refused is not a size), a failure that may pass,
a stop (the daily budget spent, the lists scopes missing), a taken name - and restore says whether
the list came back."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hubspot_activation.hubspot.client import HubSpotClient, UpsertInput
from hubspot_activation.hubspot.list_ports import HubSpotListMemberships, HubSpotRemoteLists
from hubspot_activation.hubspot.lists import HubSpotLists
from hubspot_activation.lists.model import (
    ChunkTooLarge,
    ListGone,
    ListNameTaken,
    ListRefused,
    ListsStopped,
    MembershipUnavailable,
)

from local.hubspot_sandbox import SandboxServer


def ids(client: HubSpotClient, count: int) -> list[str]:
    results = client.batch_upsert(
        [UpsertInput(f"c{n}@example.com", {"firstname": "X"}) for n in range(count)]
    )
    return [str(result.contact_id) for result in results]


def test_memberships_errors_become_the_lists_own(client: HubSpotClient, sandbox: SandboxServer) -> None:
    lists = HubSpotLists(client)
    remote, memberships = HubSpotRemoteLists(lists), HubSpotListMemberships(lists)
    made = remote.create("Gold")
    assert made.manual_contacts and made.name == "Gold"
    records = ids(client, 4)

    assert memberships.add_and_remove(made.list_id, records[:2], ["999999"]).missing == frozenset({"999999"})
    sandbox.state.config.list_ids_per_call = 2
    with pytest.raises(ChunkTooLarge):
        memberships.add_and_remove(made.list_id, records[2:], ["999999"])
    sandbox.state.config.list_ids_per_call = 0
    sandbox.state.config.error_rate, sandbox.state.config.error_status = 1.0, 400
    with pytest.raises(ListRefused):  # one id: no smaller chunk to try
        memberships.add_and_remove(made.list_id, records[2:3], [])
    sandbox.state.config.error_status = 503
    with pytest.raises(MembershipUnavailable):
        memberships.add_and_remove(made.list_id, records[2:], [])
    sandbox.state.config.error_rate = 0.0
    sandbox.app.lists.delete(made.list_id)
    with pytest.raises(ListGone):
        memberships.add_and_remove(made.list_id, records[2:], [])
    assert sandbox.app.lists.members(made.list_id) == sorted(records[:2], key=lambda r: (len(r), r))


def test_names_and_restores(client: HubSpotClient, sandbox: SandboxServer) -> None:
    remote = HubSpotRemoteLists(HubSpotLists(client))
    made = remote.create("Gold")
    with pytest.raises(ListNameTaken):
        remote.create("GOLD")
    found = remote.find_by_name("gold")
    assert found is not None and found.list_id == made.list_id
    assert remote.find_by_name("Silver") is None
    sandbox.app.lists.delete(made.list_id)
    assert remote.restore(made.list_id) is True
    assert remote.restore(made.list_id) is True  # live already: restored
    assert remote.restore("424242") is False


def test_the_daily_budget_and_missing_scopes_stop_the_run(
    make_client: Callable[..., HubSpotClient], sandbox: SandboxServer
) -> None:
    spent = HubSpotRemoteLists(HubSpotLists(make_client()))
    spent.create("First")
    sandbox.state.config.daily_limit = 1  # HubSpot's DAILY 429
    with pytest.raises(ListsStopped, match="daily"):
        spent.create("Second")
    sandbox.state.config.daily_limit = 250_000
    token = sandbox.state.add_private_app_token(scopes=frozenset({"crm.objects.contacts.write"}))
    with pytest.raises(ListsStopped, match=r"crm\.lists"):
        HubSpotRemoteLists(HubSpotLists(make_client(token=token))).create("Third")
