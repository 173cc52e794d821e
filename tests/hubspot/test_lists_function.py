"""The lists Lambda handler in-process, loaded from functions/lists/app.py as Lambda loads it, on
moto (the ledger, the timer queue, the credential) and the HubSpot sandbox over real HTTP:
membership changes appended through the flusher's port (``BufferedListChanges``) start a timer,
the timer's SQS event drains them, and the sandbox's list then holds exactly the members; a list
deleted in HubSpot is restored (or made again) and refilled from the ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests
from hubspot_activation.hubspot.versions import ApiVersion, Paths
from hubspot_activation.ledger.audience_item import ListFlushRecord
from hubspot_activation.ledger.contact_item import listed_value
from hubspot_activation.ledger.list_audiences import list_flush_records
from hubspot_activation.ledger.operations_store import OperationsStore
from hubspot_activation.list_function.changes import list_changes
from hubspot_activation.lists.model import Toggle
from hubspot_activation.settings import UpsertSettings
from hubspot_activation.upsert.ledger import ListedAudience
from moto import mock_aws

from local.functions import handler
from local.hubspot_sandbox import SandboxServer
from tests.conftest import FakeContext, create_ledger_table
from tests.hubspot.conftest import VERSIONS

AUDIENCE = "gold-buyers"
TABLE = "ledger"
SCHEDULED = {"sweep": True}
#: What these tests prove beyond the lists' paths does not depend on the API version.
ONE_VERSION = pytest.mark.parametrize("lists", VERSIONS[-1:], indirect=True)


class Context(FakeContext):
    function_name = "lists"

    def __init__(self, remaining_ms: int = 300_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Lists:
    sandbox: SandboxServer
    timer_queue: str
    version: ApiVersion
    monkeypatch: pytest.MonkeyPatch

    def settings(self) -> UpsertSettings:
        return UpsertSettings.from_env()

    def contacts(self, *emails: str) -> list[str]:
        """The record ids of these contacts, created in HubSpot."""
        body = {"inputs": [{"idProperty": "email", "id": email, "properties": {}} for email in emails]}
        response = requests.post(
            self.sandbox.url + Paths(self.version).batch_upsert,
            json=body,
            headers={"Authorization": f"Bearer {self.sandbox.state.add_private_app_token()}"},
            timeout=5,
        )
        assert response.status_code == 200, response.text
        by_email = {r["properties"]["email"]: str(r["id"]) for r in response.json()["results"]}
        return [by_email[email] for email in emails]

    def append(self, *toggles: Toggle, now_ms: int | None = None) -> None:
        """What the flusher does after a write: the contacts' membership changes to the buffer."""
        changes = list_changes(self.settings(), boto3.client("dynamodb"), boto3.client("sqs"))
        changes.append(AUDIENCE, toggles, now_ms if now_ms is not None else _now_ms())

    def timers(self) -> list[Any]:
        """The timer queue's messages (received and deleted), waiting out their delay."""
        sqs = boto3.client("sqs")
        received: list[Any] = []
        for _attempt in range(3):
            batch = sqs.receive_message(
                QueueUrl=self.timer_queue, MaxNumberOfMessages=10, WaitTimeSeconds=2, AttributeNames=["All"]
            ).get("Messages", [])
            for message in batch:
                sqs.delete_message(QueueUrl=self.timer_queue, ReceiptHandle=message["ReceiptHandle"])
            received.extend(batch)
            if received:
                return received
        return received

    def list_id(self) -> str:
        found = OperationsStore(boto3.client("dynamodb"), TABLE).audience(AUDIENCE)
        assert found is not None and found.list_id is not None
        return found.list_id

    def members(self, list_id: str) -> set[str]:
        members = self.sandbox.state.lists[list_id].members
        return set(members)

    def bookkeeping(self) -> ListFlushRecord:
        return list_flush_records(boto3.client("dynamodb"), TABLE, [AUDIENCE])[AUDIENCE]


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The timer queue's messages in the shape of Lambda's SQS event (a standard queue)."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1796000000000"},
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:list-timers",
                "awsRegion": "us-east-1",
            }
            for message in messages
        ]
    }


@pytest.fixture(params=VERSIONS, ids=[v.value for v in VERSIONS])
def lists(
    request: pytest.FixtureRequest, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Lists]:
    version: ApiVersion = request.param
    with mock_aws():
        create_ledger_table(TABLE)
        secret = boto3.client("secretsmanager").create_secret(
            Name="hubspot", SecretString=json.dumps({"accessToken": sandbox.state.add_private_app_token()})
        )["ARN"]
        queue = boto3.client("sqs").create_queue(QueueName="list-timers")["QueueUrl"]
        for name, value in {
            "LEDGER_TABLE": TABLE,
            "HUBSPOT_SECRET_ID": secret,
            "HUBSPOT_BASE_URL": sandbox.url,
            "HUBSPOT_API_VERSION": version.value,
            "AUDIENCE_TARGET": "both",
            "LIST_FLUSH_SECONDS": "1",
            "LIST_CHUNK_SIZE": "500",
            "LIST_TIMER_QUEUE_URL": queue,
            "POWERTOOLS_SERVICE_NAME": "hubspot-activation",
        }.items():
            monkeypatch.setenv(name, value)
        OperationsStore(boto3.client("dynamodb"), TABLE).save_audience(AUDIENCE, "Gold buyers", None)
        yield Lists(sandbox, queue, version, monkeypatch)


def realized(record_id: str, rank: int = 1) -> Toggle:
    return Toggle(record_id, True, (1_796_000_000_000 + rank, 0, 0, 0))


def exited(record_id: str, rank: int = 2) -> Toggle:
    return Toggle(record_id, False, (1_796_000_000_000 + rank, 0, 0, 0))


def test_a_timer_drains_the_buffered_changes_into_a_new_list_holding_exactly_the_members(
    lists: Lists,
) -> None:
    ada, bob, cy = lists.contacts("ada@example.com", "bob@example.com", "cy@example.com")
    # Bob realized then exited (the exit arrives first), Cy only exited: neither is a member.
    lists.append(realized(ada), exited(bob, 5), exited(cy))
    lists.append(realized(bob, 3))
    (timer,) = lists.timers()
    assert json.loads(timer["Body"]) == {"audienceId": AUDIENCE}

    answer = handler("lists", cold_start=True)(sqs_event([timer]), Context())

    assert answer["batchItemFailures"] == [] and answer["calls"] == 2  # the create, one add-and-remove
    list_id = lists.list_id()
    assert lists.sandbox.state.lists[list_id].name == "Gold buyers"
    assert lists.members(list_id) == {ada}
    record = lists.bookkeeping()
    assert (record.calls, record.last_error) == (2, None)

    lists.append(exited(ada, 9), realized(cy, 9))
    (timer,) = lists.timers()
    handler("lists")(sqs_event([timer]), Context())
    assert lists.members(list_id) == {cy}
    assert lists.bookkeeping().calls == 3


def ledger_contact(email: str, record_id: str, status: str, rank: int = 1) -> None:
    """A contact item as the flusher records it once its status (of ``realized``'s or ``exited``'s
    rank) was handed to the list."""
    listed = {AUDIENCE: ListedAudience(status, 1_796_000_000_000 + rank, (0, 0), 0)}
    boto3.client("dynamodb").put_item(
        TableName=TABLE,
        Item={"email": {"S": email}, "hubspotId": {"S": record_id}, "listed": listed_value(listed)},
    )


@pytest.mark.parametrize("restorable", [True, False], ids=["restored", "made-again"])
def test_a_list_deleted_in_hubspot_is_brought_back_and_refilled_from_the_ledger(
    lists: Lists, restorable: bool
) -> None:
    ada, bob, cy, dee = lists.contacts(
        "ada@example.com", "bob@example.com", "cy@example.com", "dee@example.com"
    )
    lists.append(realized(ada), realized(bob), realized(cy))
    handler("lists", cold_start=True)(sqs_event(lists.timers()), Context())
    list_id = lists.list_id()
    for email, record_id, status in (
        ("ada@example.com", ada, "realized"),
        ("bob@example.com", bob, "realized"),
    ):
        ledger_contact(email, record_id, status)
    ledger_contact("cy@example.com", cy, "exited", 2)
    # A person deletes the list in HubSpot; purged at once when it cannot be restored.
    lists.sandbox.state.config.list_restore_seconds = 90 * 86_400 if restorable else 0
    assert requests.delete(f"{lists.sandbox.url}/__sandbox/lists/{list_id}", timeout=5).status_code == 200
    lists.append(exited(cy, 9), realized(dee, 9))

    answer = handler("lists")(sqs_event(lists.timers()), Context())

    assert answer["errors"] == 0
    now = OperationsStore(boto3.client("dynamodb"), TABLE).audience(AUDIENCE)
    assert now is not None and now.list_generation == 1
    assert (now.list_id == list_id) is restorable
    assert lists.members(str(now.list_id)) == {ada, bob, dee}
    assert lists.sandbox.state.lists[str(now.list_id)].deleted_at is None


@ONE_VERSION
def test_the_schedule_sweeps_a_due_list_and_a_chunk_refused_for_its_size_is_halved(lists: Lists) -> None:
    lists.monkeypatch.setenv("LIST_CHUNK_SIZE", "8")
    lists.sandbox.state.config.list_ids_per_call = 3
    ids = lists.contacts(*(f"c{n}@example.com" for n in range(8)))
    # A shard holding its share of a chunk (8 / 4 shards) is due at once, and a full chunk waits.
    lists.append(*(realized(record_id) for record_id in ids))

    answer = handler("lists", cold_start=True)(SCHEDULED, Context())

    assert answer["trigger"] == "schedule" and answer["errors"] == 0
    assert lists.members(lists.list_id()) == set(ids)


@ONE_VERSION
def test_a_timer_the_run_has_no_time_for_comes_back(lists: Lists) -> None:
    (ada,) = lists.contacts("ada@example.com")
    lists.append(realized(ada))
    timers = lists.timers()

    answer = handler("lists", cold_start=True)(sqs_event(timers), Context(remaining_ms=20_000))

    assert answer["batchItemFailures"] == [{"itemIdentifier": timers[0]["MessageId"]}]
    assert lists.sandbox.state.lists == {}


@ONE_VERSION
def test_with_the_property_target_the_function_keeps_no_list(lists: Lists) -> None:
    lists.monkeypatch.setenv("AUDIENCE_TARGET", "property")
    (ada,) = lists.contacts("ada@example.com")
    lists.append(realized(ada))

    answer = handler("lists", cold_start=True)(sqs_event(lists.timers()), Context())

    assert answer == {"batchItemFailures": []} and lists.sandbox.state.lists == {}


@ONE_VERSION
def test_a_credential_without_the_lists_scopes_stops_the_run_and_says_why(lists: Lists) -> None:
    token = lists.sandbox.state.add_private_app_token(scopes=frozenset({"crm.objects.contacts.write"}))
    boto3.client("secretsmanager").put_secret_value(
        SecretId="hubspot", SecretString=json.dumps({"accessToken": token})
    )
    (ada,) = lists.contacts("ada@example.com")
    lists.append(realized(ada))

    answer = handler("lists", cold_start=True)(sqs_event(lists.timers()), Context())

    assert answer["stoppedBy"] is not None and "crm.lists" in answer["stoppedBy"]
    assert answer["batchItemFailures"] == []  # the list stays due: the sweep comes back
    record = lists.bookkeeping()
    assert record.last_error is not None and "crm.lists" in record.last_error
