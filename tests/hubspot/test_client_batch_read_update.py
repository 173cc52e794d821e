"""Batch read and batch update against the sandbox over real HTTP, for every API version: missing
keys, archived reads, merged-away ids, records HubSpot no longer has, the whole-batch-400 split,
the deadline, and the governor seeing every attempt."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hubspot_activation.hubspot.batch import UpdateInput, UpsertInput
from hubspot_activation.hubspot.client import HubSpotClient, new_session
from hubspot_activation.hubspot.credentials import StaticTokenCredentials
from hubspot_activation.hubspot.errors import DeadlineReached, ErrorKind, HubSpotError
from hubspot_activation.hubspot.governor import RateGovernor
from hubspot_activation.hubspot.versions import ApiVersion

from local.hubspot_sandbox import SandboxServer
from tests.hubspot.conftest import FAST_RETRY, TokenSecret, governor_for


def seed(client: HubSpotClient, *emails: str) -> dict[str, str]:
    """Contacts created through the client; their record ids by email."""
    results = client.batch_upsert([UpsertInput(email, {"firstname": email[:3]}) for email in emails])
    assert all(r.ok and r.contact_id for r in results)
    return {r.email: str(r.contact_id) for r in results}


def sandbox_calls(sandbox: SandboxServer, handler: str) -> int:
    """The calls the sandbox answered (throttled ones aside) with this handler."""
    return sandbox.state.requests[f"POST {handler}"]


# --- batch read ----------------------------------------------------------------------------------


def test_read_by_email_returns_the_found_and_lists_the_missing_as_asked(
    client: HubSpotClient, sandbox: SandboxServer
) -> None:
    ids = seed(client, "ada@example.com", "bob@example.com")
    outcome = client.batch_read(
        ["Ada@Example.com", "nobody@example.com", "bob@example.com", "Ghost@Example.com"],
        ["firstname"],
        id_property="email",
    )
    assert client.requests_sent == 2  # the seed, and one read
    assert sorted(r.id for r in outcome.records) == sorted(ids.values())
    by_id = {r.id: r for r in outcome.records}
    assert by_id[ids["ada@example.com"]].properties["firstname"] == "ada"
    assert by_id[ids["ada@example.com"]].archived is False
    assert outcome.missing == ["nobody@example.com", "Ghost@Example.com"]
    assert outcome.failed == {}


def test_missing_keys_reported_one_error_each_are_all_listed(
    client: HubSpotClient, sandbox: SandboxServer
) -> None:
    sandbox.state.config.group_missing_reads = False
    ids = seed(client, "ada@example.com")
    outcome = client.batch_read([ids["ada@example.com"], "999001", "999002"], ["email"])
    assert [r.id for r in outcome.records] == [ids["ada@example.com"]]
    assert outcome.missing == ["999001", "999002"]


def test_archived_reads_only_archived_contacts_and_plain_reads_only_live_ones(
    client: HubSpotClient, sandbox: SandboxServer
) -> None:
    ids = seed(client, "live@example.com", "gone@example.com")
    live, gone = ids["live@example.com"], ids["gone@example.com"]
    assert sandbox.state.archive(gone)

    archived = client.batch_read([live, gone], ["email"], archived=True)
    assert [(r.id, r.archived) for r in archived.records] == [(gone, True)]
    assert archived.missing == [live]

    current = client.batch_read([live, gone], ["email"])
    assert [(r.id, r.archived) for r in current.records] == [(live, False)]
    assert current.missing == [gone]

    by_email = client.batch_read(["gone@example.com"], ["email"], id_property="email", archived=True)
    assert [r.id for r in by_email.records] == [gone]


def test_a_merged_away_id_answers_with_the_record_it_became(
    client: HubSpotClient, sandbox: SandboxServer
) -> None:
    ids = seed(client, "one@example.com", "two@example.com")
    one, two = ids["one@example.com"], ids["two@example.com"]
    survivor = sandbox.state.merge(one, two)
    outcome = client.batch_read([one, two], ["email", "hs_merged_object_ids"])
    assert outcome.missing == []
    # One record per key asked, each the survivor: its id is neither asked id.
    assert [r.id for r in outcome.records] == [survivor, survivor]
    merged = outcome.records[0].properties["hs_merged_object_ids"]
    assert merged is not None and set(merged.split(";")) == {one, two}


def test_read_rules_are_checked_before_sending(client: HubSpotClient) -> None:
    with pytest.raises(ValueError, match="at most 100"):
        client.batch_read([str(i) for i in range(101)], ["email"])
    with pytest.raises(ValueError, match="distinct"):
        client.batch_read(["A@example.com", "a@example.com"], ["email"], id_property="email")
    with pytest.raises(ValueError, match="distinct"):
        client.batch_read(["7", "7"], ["email"])
    assert client.batch_read([], ["email"]).records == []
    assert client.requests_sent == 0


def test_one_hundred_keys_are_one_call(client: HubSpotClient) -> None:
    outcome = client.batch_read([f"u{i}@example.com" for i in range(100)], ["email"], id_property="email")
    assert client.requests_sent == 1 and len(outcome.missing) == 100


# --- batch update --------------------------------------------------------------------------------


def test_update_writes_by_record_id_and_reports_under_the_inputs_emails(
    client: HubSpotClient, sandbox: SandboxServer
) -> None:
    ids = seed(client, "ada@example.com", "bob@example.com")
    results = client.batch_update(
        [
            UpdateInput(ids["bob@example.com"], "bob@example.com", {"city": "Oslo"}),
            UpdateInput(ids["ada@example.com"], "ada@example.com", {"city": "Lima"}),
        ]
    )
    assert [(r.email, r.contact_id, r.ok, r.created) for r in results] == [
        ("bob@example.com", ids["bob@example.com"], True, False),
        ("ada@example.com", ids["ada@example.com"], True, False),
    ]
    assert sandbox.state.contacts[ids["ada@example.com"]]["properties"]["city"] == "Lima"
    assert sandbox.state.contacts[ids["bob@example.com"]]["properties"]["city"] == "Oslo"
    assert len(sandbox.state.contacts) == 2  # an update never creates


def test_a_record_hubspot_no_longer_has_is_a_permanent_not_found_error_of_its_input(
    client: HubSpotClient, sandbox: SandboxServer
) -> None:
    ids = seed(client, "kept@example.com", "deleted@example.com", "erased@example.com")
    sandbox.state.archive(ids["deleted@example.com"])
    sandbox.state.erase(ids["erased@example.com"])
    results = client.batch_update(
        [
            UpdateInput(ids["deleted@example.com"], "deleted@example.com", {"city": "x"}),
            UpdateInput(ids["kept@example.com"], "kept@example.com", {"city": "x"}),
            UpdateInput(ids["erased@example.com"], "erased@example.com", {"city": "x"}),
            UpdateInput("987654321", "never@example.com", {"city": "x"}),
        ]
    )
    assert client.requests_sent == 2
    assert [r.email for r in results] == [
        "deleted@example.com",
        "kept@example.com",
        "erased@example.com",
        "never@example.com",
    ]
    assert results[1].ok
    for result in (results[0], results[2], results[3]):
        assert result.error is not None and result.error.not_found
        assert result.error.kind is ErrorKind.PERMANENT and result.error.category == "OBJECT_NOT_FOUND"
    assert "city" not in sandbox.state.archived[ids["deleted@example.com"]]["properties"]


def test_an_update_of_a_merged_away_id_writes_the_record_it_became(
    client: HubSpotClient, sandbox: SandboxServer
) -> None:
    ids = seed(client, "one@example.com", "two@example.com")
    survivor = sandbox.state.merge(ids["one@example.com"], ids["two@example.com"])
    (result,) = client.batch_update(
        [UpdateInput(ids["two@example.com"], "two@example.com", {"city": "Rome"})]
    )
    assert result.ok and result.contact_id == survivor and result.email == "two@example.com"
    assert sandbox.state.contacts[survivor]["properties"]["city"] == "Rome"
    assert len(sandbox.state.contacts) == 1


def test_a_whole_batch_400_on_update_is_bisected_to_isolate_the_bad_inputs(
    client: HubSpotClient, sandbox: SandboxServer
) -> None:
    ids = seed(client, *[f"u{i}@example.com" for i in range(8)])
    sandbox.state.config.per_input_errors = False
    inputs = [UpdateInput(ids[f"u{i}@example.com"], f"u{i}@example.com", {"city": "ok"}) for i in range(8)]
    inputs[5] = UpdateInput(ids["u5@example.com"], "u5@example.com", {"lifecyclestage": "astronaut"})
    results = client.batch_update(inputs)
    assert [r.email for r in results] == [item.email for item in inputs]
    failed = [r for r in results if not r.ok]
    assert [r.email for r in failed] == ["u5@example.com"]
    assert failed[0].error is not None and failed[0].error.kind is ErrorKind.PERMANENT
    assert [d["error"] for d in failed[0].property_errors] == ["INVALID_OPTION"]
    written = [
        i for i in range(8) if sandbox.state.contacts[ids[f"u{i}@example.com"]]["properties"].get("city")
    ]
    assert written == [0, 1, 2, 3, 4, 6, 7]
    # whole, two halves, two quarters of the bad half, two singles: 7 after the seed
    assert sandbox_calls(sandbox, "batch_update") == 7


def test_update_rules_are_checked_before_sending(client: HubSpotClient) -> None:
    with pytest.raises(ValueError, match="at most 100"):
        client.batch_update([UpdateInput(str(i), f"u{i}@example.com", {}) for i in range(101)])
    with pytest.raises(ValueError, match="distinct record ids"):
        client.batch_update([UpdateInput("7", "a@example.com", {}), UpdateInput("7", "b@example.com", {})])
    assert client.batch_update([]) == []
    assert client.requests_sent == 0


class RequestClock:
    """A clock that moves 10 s with every request the sandbox answers: no test time passes."""

    def __init__(self, sandbox: SandboxServer) -> None:
        self.sandbox = sandbox

    def __call__(self) -> float:
        return 10.0 * sum(self.sandbox.state.requests.values())


def test_a_split_update_that_reaches_its_deadline_reports_it_on_the_inputs_not_sent(
    sandbox: SandboxServer, make_client: Callable[..., HubSpotClient]
) -> None:
    ids = seed(make_client(), *[f"d{i}@example.com" for i in range(4)])
    client = make_client(clock=RequestClock(sandbox))
    sandbox.state.config.per_input_errors = False
    inputs = [UpdateInput(ids[f"d{i}@example.com"], f"d{i}@example.com", {"city": "x"}) for i in range(4)]
    inputs[3] = UpdateInput(ids["d3@example.com"], "d3@example.com", {"nope": "x"})
    start = RequestClock(sandbox)()
    # Attempts take up to 3 s (the fixture's timeouts): the whole batch goes at +0, its first half
    # at +10; the second half would start at +20 and end after the deadline, so it is not sent.
    results = client.batch_update(inputs, deadline=start + 15)
    assert client.requests_sent == 2
    assert [r.ok for r in results] == [True, True, False, False]
    assert all(isinstance(r.error, DeadlineReached) for r in results[2:])
    assert all(r.error is not None and r.error.kind is ErrorKind.RETRYABLE for r in results[2:])


def test_an_update_that_cannot_start_before_its_deadline_is_not_sent(
    make_client: Callable[..., HubSpotClient], sandbox: SandboxServer
) -> None:
    client = make_client(clock=lambda: 100.0)
    with pytest.raises(DeadlineReached):
        client.batch_update([UpdateInput("1", "a@example.com", {"city": "x"})], deadline=101.0)
    assert client.requests_sent == 0 and sandbox_calls(sandbox, "batch_update") == 0


# --- the governor sees every call ------------------------------------------------------------------


class CountingGovernor(RateGovernor):
    def __init__(self, inner: RateGovernor) -> None:
        super().__init__(inner.settings)
        self.acquired = 0

    def acquire(self) -> None:
        self.acquired += 1
        super().acquire()


def test_the_governor_holds_every_attempt_of_reads_and_updates(
    sandbox: SandboxServer, api_version: ApiVersion
) -> None:
    governor = CountingGovernor(governor_for(sandbox))
    client = HubSpotClient(
        StaticTokenCredentials(TokenSecret({"accessToken": sandbox.state.add_private_app_token()})),
        governor,
        api_version,
        base_url=sandbox.url,
        session=new_session(),
        timeout=(1, 2),
        retry=FAST_RETRY,
    )
    ids = seed(client, "ada@example.com")
    sandbox.state.config.force_429 = 1  # the read's first attempt is throttled and retried
    client.batch_read(["ada@example.com"], ["email"], id_property="email")
    sandbox.state.config.error_rate = 1.0  # every update attempt fails until the retries run out
    with pytest.raises(HubSpotError):
        client.batch_update([UpdateInput(ids["ada@example.com"], "ada@example.com", {"city": "x"})])
    sandbox.state.config.error_rate = 0.0
    attempts = 1 + 2 + FAST_RETRY.max_attempts
    assert governor.throttled == 1
    assert governor.acquired == client.requests_sent == attempts
    assert sum(sandbox.state.requests.values()) + sum(sandbox.state.throttled.values()) == attempts
