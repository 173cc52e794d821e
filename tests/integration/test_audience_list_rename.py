"""A PUT's list rename in moto: the name HubSpot's list got is stored with the list it was given,
and a ledger failure storing it never costs the PUT its answer."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from hubspot_activation.ledger.audience_item import LIST_ID, LIST_NAME, audience_key_item
from hubspot_activation.ledger.operations_store import OperationsStore, StoreUnavailable
from hubspot_activation.lists.target import AudienceTarget
from hubspot_activation.operations.audiences import AudienceService, BudgetedLabels
from moto import mock_aws

from tests.conftest import create_ledger_table


class Renamed:
    def __init__(self) -> None:
        self.names: list[str] = []

    def relabel(self, property_name: str, label: str) -> str | None:
        return None

    def rename_list(self, list_id: str, name: str) -> str | None:
        self.names.append(name)
        return None


class UnstorableNames(OperationsStore):
    """DynamoDB failing on the write of the list's name alone."""

    def list_renamed(self, audience_id: str, list_id: str, name: str) -> bool:
        raise StoreUnavailable("DynamoDB call failed: ProvisionedThroughputExceededException")


@pytest.fixture
def table() -> Iterator[str]:
    with mock_aws():
        name = create_ledger_table()
        boto3.client("dynamodb").put_item(
            TableName=name,
            Item={
                **audience_key_item("gold"),
                "audienceId": {"S": "gold"},
                "name": {"S": "Gold"},
                "createdAt": {"N": "1796000000000"},  # PUT before
                LIST_ID: {"S": "70001"},
                LIST_NAME: {"S": "Gold"},
            },
        )
        yield name


def service(store: OperationsStore, renamed: Renamed) -> AudienceService:
    return AudienceService(store, BudgetedLabels(renamed, lists=renamed), "aud_", target=AudienceTarget.BOTH)


def test_the_list_name_is_stored_with_its_list(table: str) -> None:
    dynamodb, renamed = boto3.client("dynamodb"), Renamed()
    answer, created = service(OperationsStore(dynamodb, table), renamed).put("gold", {"name": "Platinum"})
    assert not created and answer["listRenamed"] is True and answer["listName"] == "Platinum"
    item = dynamodb.get_item(TableName=table, Key=audience_key_item("gold"))["Item"]
    assert item[LIST_NAME] == {"S": "Platinum"} and renamed.names == ["Platinum"]
    # The lists function made the list again meanwhile: the name is not written onto the new one.
    dynamodb.update_item(
        TableName=table,
        Key=audience_key_item("gold"),
        UpdateExpression="SET #l = :l",
        ExpressionAttributeNames={"#l": LIST_ID},
        ExpressionAttributeValues={":l": {"S": "70002"}},
    )
    store = OperationsStore(dynamodb, table)
    assert store.list_renamed("gold", "70001", "Silver") is False
    assert store.audience_lists(["gold"])["gold"].list_name == "Platinum"


def test_a_ledger_failure_storing_the_list_name_still_answers_the_put(table: str) -> None:
    renamed = Renamed()
    answer, _created = service(UnstorableNames(boto3.client("dynamodb"), table), renamed).put(
        "gold", {"name": "Platinum"}
    )
    assert answer["name"] == "Platinum" and answer["listRenamed"] is True and renamed.names == ["Platinum"]
