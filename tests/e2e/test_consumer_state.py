"""What the merge and flush functions record and write when an operator's action (a property
created, an audience deleted and re-activated) meets queued changes, on the local stack: asserted
on HubSpot's contacts and the operator routes' answers, whatever order the messages are merged in."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
import requests
from botocore.client import BaseClient
from hubspot_activation.ingest.publisher import EnqueueError, SqsFifoPublisher
from hubspot_activation.ledger.contact_state import DynamoDbContactStates
from hubspot_activation.messages import QueueMessage
from hubspot_activation.upsert import resume as resume_module
from hubspot_activation.upsert.state import Recording

from local import stack as local_stack
from tests.e2e.test_operations import answer, drain, member, post, sandbox_contact

LOYALTY = {"name": "loyalty_tier", "label": "Loyalty tier", "type": "string", "fieldType": "text"}


@pytest.fixture
def stack() -> Iterator[local_stack.LocalStack]:
    started = local_stack.start()
    yield started
    started.stop()


def create_property(stack: local_stack.LocalStack, definition: Mapping[str, Any]) -> None:
    """As the operator would in HubSpot: through its API, not the sandbox's state."""
    assert stack.sandbox is not None
    token = stack.sandbox.state.add_private_app_token()
    response = requests.post(
        f"{stack.sandbox.url}/crm/v3/properties/contacts",
        json={**definition, "groupName": "contactinformation"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text


def in_hubspot(stack: local_stack.LocalStack, email: str) -> bool:
    assert stack.sandbox is not None
    return email in stack.sandbox.state.email_index


def test_a_value_for_a_missing_property_fails_the_contact_until_a_replay_writes_it(
    stack: local_stack.LocalStack,
) -> None:
    emails = [f"member{i}@example.com" for i in range(40)]
    post(stack, *({"email": e, "attributes": {"firstname": "M", "loyalty_tier": "gold"}} for e in emails))
    drain(stack)
    # Written without the value HubSpot has no property for, and listed as failed with the reason.
    assert all(sandbox_contact(stack, e)["firstname"] == "M" for e in emails)
    assert all("loyalty_tier" not in sandbox_contact(stack, e) for e in emails)
    failed = answer(stack, "GET", "/sync/issues?status=failed&limit=100")["items"]
    assert sorted(item["email"] for item in failed) == sorted(emails)
    assert all("loyalty_tier" in item["reason"] for item in failed)
    view = answer(stack, "GET", "/contacts/member0@example.com")
    assert view["status"] == "failed" and "loyalty_tier" in view["lastError"]
    assert view["pending"]["attributes"] == {"loyalty_tier": "gold"}
    assert answer(stack, "GET", "/sync/status")["lastErrorByKind"]["missing_property"]["email"] in emails

    create_property(stack, LOYALTY)  # the operator's fix
    replayed = answer(stack, "POST", "/replay", {})
    assert replayed["failedContacts"]["count"] == 40 and replayed["more"] is False
    drain(stack)
    assert [sandbox_contact(stack, e).get("loyalty_tier") for e in emails] == ["gold"] * 40
    assert answer(stack, "GET", "/sync/issues?status=failed")["items"] == []
    view = answer(stack, "GET", "/contacts/member0@example.com")
    assert view["status"] == "synced" and view["pending"]["attributes"] == {}


def test_a_deleted_audience_is_recorded_not_written_and_a_put_resumes_from_its_newest_state(
    stack: local_stack.LocalStack,
) -> None:
    post(stack, member("ada@example.com", "gold", name="Gold"), member("bob@example.com", "gold"))
    drain(stack)
    answer(stack, "PUT", "/audiences/gold", {"name": "Gold"}, status=201)
    # Sent before the DELETE, consumed after it.
    post(stack, member("ada@example.com", "gold", "exited", "2026-11-21T10:00:00Z"))
    deleted = answer(stack, "DELETE", "/audiences/gold")
    drain(stack)
    assert sandbox_contact(stack, "ada@example.com")["aud_gold"] == "realized"  # not written
    # Sent while deleted: Bob's newest change wins though it is consumed first.
    post(stack, member("bob@example.com", "gold", "exited", "2026-11-23T10:00:00Z"))
    post(stack, member("bob@example.com", "gold", "realized", "2026-11-22T10:00:00Z"))
    drain(stack)
    assert sandbox_contact(stack, "bob@example.com")["aud_gold"] == "realized"  # not written
    # Sent while deleted, consumed after the re-PUT.
    post(stack, member("dee@example.com", "gold", "realized", "2026-11-24T10:00:00Z"))

    resumed = answer(stack, "PUT", "/audiences/gold", {"name": "Gold again"})
    assert resumed["status"] == "active"
    drain(stack)
    assert sandbox_contact(stack, "ada@example.com")["aud_gold"] == "exited"
    assert sandbox_contact(stack, "bob@example.com")["aud_gold"] == "exited"
    assert sandbox_contact(stack, "dee@example.com")["aud_gold"] == "realized"
    for email in ("ada@example.com", "bob@example.com", "dee@example.com"):
        view = answer(stack, "GET", f"/contacts/{email}")
        assert view["status"] == "synced" and view["pending"]["audiences"] == {}, json.dumps(view)
    assert answer(stack, "GET", "/sync/issues?status=held")["items"] == []
    # What the routes said on the way: nothing for the operator to re-send.
    assert "re-send" not in deleted["note"] and resumed["resumed"] == {"queued": True}


def test_a_contact_whose_only_change_is_for_a_deleted_audience_is_not_written(
    stack: local_stack.LocalStack,
) -> None:
    answer(stack, "PUT", "/audiences/gold", {"name": "Gold"}, status=201)
    answer(stack, "DELETE", "/audiences/gold")
    post(stack, member("cy@example.com", "gold", "realized", "2026-11-22T10:00:00Z"))
    drain(stack)
    assert not in_hubspot(stack, "cy@example.com")
    view = answer(stack, "GET", "/contacts/cy@example.com")
    assert view["hubspotId"] is None and view["pending"]["audiences"]["gold"]["status"] == "realized"
    assert "deleted" in view["warnings"]["audience gold"]
    held = answer(stack, "GET", "/sync/issues?status=held")["items"]
    assert [item["email"] for item in held] == ["cy@example.com"]
    # Written, with his membership, once the audience is active again.
    assert answer(stack, "PUT", "/audiences/gold", {"name": "Gold"})["resumed"] == {"queued": True}
    drain(stack)
    assert sandbox_contact(stack, "cy@example.com")["aud_gold"] == "realized"


def test_a_put_landing_while_a_batch_holds_changes_of_its_audience_still_resumes_them(
    stack: local_stack.LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer(stack, "PUT", "/audiences/gold", {"name": "Gold"}, status=201)
    answer(stack, "DELETE", "/audiences/gold")
    post(stack, member("ada@example.com", "gold", "realized", "2026-11-22T10:00:00Z"))
    puts: list[Any] = []
    record = DynamoDbContactStates.record

    def put_before_recording(
        self: DynamoDbContactStates, recordings: Sequence[Recording], now_ms: int
    ) -> dict[str, str]:
        # The PUT lands after the flush read the audience as deleted, before it records the change.
        if not puts:
            puts.append(answer(stack, "PUT", "/audiences/gold", {"name": "Gold"}))
        return record(self, recordings, now_ms)

    monkeypatch.setattr(DynamoDbContactStates, "record", put_before_recording)
    drain(stack)
    assert puts[0]["resumed"] == {"queued": True}
    assert sandbox_contact(stack, "ada@example.com")["aud_gold"] == "realized"
    assert answer(stack, "GET", "/sync/issues?status=held")["items"] == []


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> Iterator[local_stack.LocalStack]:
    """A stack whose resume jobs read 2 held contacts a page (500 deployed): the same paging with
    fewer contacts."""
    monkeypatch.setattr(resume_module, "RESUME_PAGE_SIZE", 2)
    started = local_stack.start()
    yield started
    started.stop()


def test_a_re_activated_audience_resumes_all_its_held_contacts_whatever_else_is_held(
    small_pages: local_stack.LocalStack,
) -> None:
    stack = small_pages
    for audience in ("gold", "silver"):
        answer(stack, "PUT", f"/audiences/{audience}", {"name": audience}, status=201)
        answer(stack, "DELETE", f"/audiences/{audience}")
    gold = [f"g{i}@example.com" for i in range(5)]
    post(stack, *(member(e, "gold") for e in gold))
    drain(stack)
    # Held after gold's (newer): silver stays deleted.
    silver = [f"s{i}@example.com" for i in range(3)]
    post(stack, *(member(e, "silver") for e in silver))
    drain(stack)
    assert answer(stack, "PUT", "/audiences/gold", {"name": "gold"})["resumed"] == {"queued": True}
    drain(stack)
    assert [sandbox_contact(stack, e).get("aud_gold") for e in gold] == ["realized"] * 5
    assert not any(in_hubspot(stack, e) for e in silver)
    held = answer(stack, "GET", "/sync/issues?status=held")["items"]
    assert sorted(item["email"] for item in held) == silver


def test_puts_sent_again_while_the_resume_runs_lose_no_held_contact(
    small_pages: local_stack.LocalStack,
) -> None:
    stack = small_pages
    answer(stack, "PUT", "/audiences/gold", {"name": "gold"}, status=201)
    answer(stack, "DELETE", "/audiences/gold")
    gold = [f"g{i}@example.com" for i in range(5)]
    post(stack, *(member(e, "gold") for e in gold))
    drain(stack)
    # AEP (or the operator) sends the PUT again before the sync caught up.
    first = answer(stack, "PUT", "/audiences/gold", {"name": "gold"})["resumed"]
    second = answer(stack, "PUT", "/audiences/gold", {"name": "Gold"})["resumed"]
    drain(stack)
    assert (first, second) == ({"queued": True}, {"queued": False})
    assert [sandbox_contact(stack, e).get("aud_gold") for e in gold] == ["realized"] * 5
    assert answer(stack, "GET", "/sync/issues?status=held")["items"] == []


def test_a_put_resumes_a_held_change_of_a_contact_that_is_also_failed(stack: local_stack.LocalStack) -> None:
    answer(stack, "PUT", "/audiences/gold", {"name": "Gold"}, status=201)
    post(stack, {"email": "ann@example.com", "attributes": {"firstname": "A"}})
    drain(stack)
    answer(stack, "DELETE", "/audiences/gold")
    # One update: a value HubSpot has no property for (fails the contact) and a held change.
    post(
        stack,
        {
            "email": "ann@example.com",
            "attributes": {"loyalty_tier": "gold"},
            "audiences": {"gold": {"status": "realized", "timestamp": "2026-11-20T10:00:00Z"}},
        },
    )
    drain(stack)
    view = answer(stack, "GET", "/contacts/ann@example.com")
    assert view["status"] == "failed" and "gold" in view["pending"]["audiences"]
    answer(stack, "PUT", "/audiences/gold", {"name": "Gold"})
    drain(stack)
    assert sandbox_contact(stack, "ann@example.com").get("aud_gold") == "realized"
    view = answer(stack, "GET", "/contacts/ann@example.com")
    assert view["pending"]["audiences"] == {} and view["pending"]["attributes"] == {"loyalty_tier": "gold"}


def test_a_change_held_while_the_index_lags_behind_a_put_is_still_resumed(
    stack: local_stack.LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer(stack, "PUT", "/audiences/gold", {"name": "Gold"}, status=201)
    answer(stack, "DELETE", "/audiences/gold")
    post(stack, member("ada@example.com", "gold", "realized", "2026-11-22T10:00:00Z"))
    drain(stack)
    # DynamoDB's secondary indexes are eventually consistent: the first read of one after the PUT
    # does not list the change just held yet.
    lagging: list[str] = []
    make_call = vars(BaseClient)["_make_api_call"]

    def lagging_index(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        response = make_call(self, operation, params)
        if operation == "Query" and params.get("IndexName") and not lagging:
            lagging.append(str(params["IndexName"]))
            return {**response, "Items": [], "Count": 0, "LastEvaluatedKey": None}
        return response

    monkeypatch.setattr(BaseClient, "_make_api_call", lagging_index)
    answer(stack, "PUT", "/audiences/gold", {"name": "Gold"})
    drain(stack)
    assert lagging, "the index was never read"
    assert sandbox_contact(stack, "ada@example.com").get("aud_gold") == "realized"
    assert answer(stack, "GET", "/sync/issues?status=held")["items"] == []


def test_a_rename_while_another_audience_holds_changes_costs_no_hubspot_call_but_its_own(
    stack: local_stack.LocalStack,
) -> None:
    for audience in ("gold", "silver"):
        answer(stack, "PUT", f"/audiences/{audience}", {"name": audience}, status=201)
    answer(stack, "DELETE", "/audiences/silver")
    post(stack, *(member(f"s{i}@example.com", "silver") for i in range(300)))
    drain(stack)
    assert stack.sandbox is not None
    before = dict(stack.sandbox.state.requests)
    # A rename (as AEP's audience-metadata call sends): only the label changes.
    renamed = answer(stack, "PUT", "/audiences/gold", {"name": "Gold renamed"})
    drain(stack)
    after = dict(stack.sandbox.state.requests)
    spent = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert renamed["resumed"] == {"queued": False}
    assert {k: v for k, v in spent.items() if "PATCH" not in k} == {}, spent


def test_a_put_retried_after_its_resume_could_not_be_queued_still_resumes(
    stack: local_stack.LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer(stack, "PUT", "/audiences/gold", {"name": "Gold"}, status=201)
    answer(stack, "DELETE", "/audiences/gold")
    post(stack, member("ada@example.com", "gold", "realized", "2026-11-22T10:00:00Z"))
    drain(stack)
    publish = SqsFifoPublisher.publish
    failures: list[int] = []

    def refused_once(self: SqsFifoPublisher, messages: Sequence[QueueMessage], request_id: str) -> int:
        if not failures:
            failures.append(len(messages))
            raise EnqueueError("SQS is throttling", 0, len(messages))
        return publish(self, messages, request_id)

    monkeypatch.setattr(SqsFifoPublisher, "publish", refused_once)
    # The audience is active once the first PUT answers 503; the caller's retry queues the job.
    answer(stack, "PUT", "/audiences/gold", {"name": "Gold"}, status=503)
    assert answer(stack, "PUT", "/audiences/gold", {"name": "Gold"})["resumed"] == {"queued": True}
    drain(stack)
    assert sandbox_contact(stack, "ada@example.com").get("aud_gold") == "realized"
    # Once queued, a PUT is a rename again.
    assert answer(stack, "PUT", "/audiences/gold", {"name": "Gold"})["resumed"] == {"queued": False}


def upserts(stack: local_stack.LocalStack) -> int:
    assert stack.sandbox is not None
    return stack.sandbox.state.requests["POST batch_upsert"]


def test_a_contact_whose_every_value_hubspot_refuses_is_neither_created_nor_sent_again(
    stack: local_stack.LocalStack,
) -> None:
    create_property(stack, LOYALTY)
    post(stack, {"email": "known@example.com", "attributes": {"loyalty_tier": "gold"}})
    drain(stack)  # the flush has cached the property's definition
    assert stack.sandbox is not None
    with stack.sandbox.state.lock:  # the operator archives the property in HubSpot
        stack.sandbox.state.properties["loyalty_tier"]["archived"] = True
    before = upserts(stack)
    post(
        stack,
        {"email": "known@example.com", "attributes": {"loyalty_tier": "silver"}},
        {"email": "new@example.com", "attributes": {"loyalty_tier": "gold"}},
    )
    drain(stack)
    assert not in_hubspot(stack, "new@example.com")
    # The refused call alone: no contact is left with anything to write.
    assert upserts(stack) == before + 1
    assert sandbox_contact(stack, "known@example.com")["loyalty_tier"] == "gold"
    for email, value in (("known@example.com", "silver"), ("new@example.com", "gold")):
        view = answer(stack, "GET", f"/contacts/{email}")
        assert view["status"] == "failed" and "loyalty_tier" in view["lastError"], view
        assert view["pending"]["attributes"] == {"loyalty_tier": value}, view
    failed = answer(stack, "GET", "/sync/issues?status=failed")["items"]
    assert sorted(item["email"] for item in failed) == ["known@example.com", "new@example.com"]

    with stack.sandbox.state.lock:  # the operator restores it, then replays
        stack.sandbox.state.properties["loyalty_tier"]["archived"] = False
    answer(stack, "POST", "/replay", {})
    drain(stack)
    assert sandbox_contact(stack, "known@example.com")["loyalty_tier"] == "silver"
    assert sandbox_contact(stack, "new@example.com")["loyalty_tier"] == "gold"
    assert answer(stack, "GET", "/sync/issues?status=failed")["items"] == []


def test_a_new_contact_whose_only_value_is_an_option_hubspot_refuses_is_not_created(
    stack: local_stack.LocalStack,
) -> None:
    options = [{"label": tier.title(), "value": tier} for tier in ("gold", "silver")]
    create_property(stack, {**LOYALTY, "type": "enumeration", "fieldType": "select", "options": options})
    post(stack, {"email": "ann@example.com", "attributes": {"loyalty_tier": "silver"}})
    drain(stack)  # the flush has cached the property's options
    assert stack.sandbox is not None
    with stack.sandbox.state.lock:  # the operator removes an option in HubSpot
        stack.sandbox.state.properties["loyalty_tier"]["options"] = options[:1]
    before = upserts(stack)
    post(stack, {"email": "bo@example.com", "attributes": {"loyalty_tier": "silver"}})
    drain(stack)
    assert not in_hubspot(stack, "bo@example.com")
    assert upserts(stack) == before + 1
    view = answer(stack, "GET", "/contacts/bo@example.com")
    assert view["hubspotId"] is None and "refused" in view["warnings"]["loyalty_tier"], view


def test_a_value_kept_for_a_missing_property_counts_as_failed_with_each_update_until_it_is_written(
    stack: local_stack.LocalStack,
) -> None:
    def failed_by(*profiles: dict[str, Any]) -> int:
        """What the ContactsFailed metric counts for these updates."""
        before = stack.reports.totals["failed"]
        post(stack, *profiles)
        drain(stack)
        return stack.reports.totals["failed"] - before

    assert (
        failed_by({"email": "ann@example.com", "attributes": {"firstname": "A", "loyalty_tier": "gold"}}) == 1
    )
    assert failed_by({"email": "ann@example.com", "attributes": {"firstname": "B"}}) == 1
    assert answer(stack, "GET", "/contacts/ann@example.com")["status"] == "failed"
    create_property(stack, LOYALTY)  # the fix, then the replay that writes the kept value
    answer(stack, "POST", "/replay", {})
    drain(stack)
    assert sandbox_contact(stack, "ann@example.com")["loyalty_tier"] == "gold"
    assert answer(stack, "GET", "/contacts/ann@example.com")["status"] == "synced"
    assert failed_by({"email": "ann@example.com", "attributes": {"firstname": "C"}}) == 0
