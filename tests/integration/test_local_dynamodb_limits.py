"""The local DynamoDB (moto, patched by ``local.dynamodb_limits``) refuses over-long keys on reads
and deletes as DynamoDB does, not only on the writes moto checks by itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from local import dynamodb_limits

TABLE = "ledger"
SORTED = "sorted"
#: 2,049 bytes in UTF-8 (683 three-byte characters): one over the partition key's limit.
LONG_HASH = "会" * 683
#: 1,025 bytes: one over the sort key's limit.
LONG_RANGE = "x" * 1025


def create_tables(client: Any) -> None:
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "email", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "email", "AttributeType": "S"},
            {"AttributeName": "issueStatus", "AttributeType": "S"},
            {"AttributeName": "issueAt", "AttributeType": "N"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "issues",
                "KeySchema": [
                    {"AttributeName": "issueStatus", "KeyType": "HASH"},
                    {"AttributeName": "issueAt", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.create_table(
        TableName=SORTED,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb")
        create_tables(client)
        yield client


def key(value: str) -> dict[str, Any]:
    return {"email": {"S": value}}


def reads(client: Any, value: str) -> dict[str, Callable[[], Any]]:
    """Every call that names a key without storing an item."""
    return {
        "GetItem": lambda: client.get_item(TableName=TABLE, Key=key(value)),
        "BatchGetItem": lambda: client.batch_get_item(
            RequestItems={TABLE: {"Keys": [key("ada@example.com"), key(value)]}}
        ),
        "DeleteItem": lambda: client.delete_item(TableName=TABLE, Key=key(value)),
        "BatchWriteItem delete": lambda: client.batch_write_item(
            RequestItems={TABLE: [{"DeleteRequest": {"Key": key(value)}}]}
        ),
        "TransactGetItems": lambda: client.transact_get_items(
            TransactItems=[{"Get": {"TableName": TABLE, "Key": key(value)}}]
        ),
        "Query": lambda: client.query(
            TableName=TABLE,
            KeyConditionExpression="email = :e",
            ExpressionAttributeValues={":e": {"S": value}},
        ),
        "Query on an index": lambda: client.query(
            TableName=TABLE,
            IndexName="issues",
            KeyConditionExpression="issueStatus = :s",
            ExpressionAttributeValues={":s": {"S": value}},
        ),
    }


@pytest.mark.parametrize("operation", list(reads(None, "")))
def test_a_read_with_an_over_long_partition_key_is_refused(dynamodb: Any, operation: str) -> None:
    with pytest.raises(ClientError) as refused:
        reads(dynamodb, LONG_HASH)[operation]()
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert "Size of hashkey has exceeded the maximum size limit of2048 bytes" in error["Message"]


@pytest.mark.parametrize("operation", list(reads(None, "")))
def test_a_key_of_exactly_the_limit_is_read(dynamodb: Any, operation: str) -> None:
    at_limit = "会" * 682 + "xx"  # 2,048 bytes
    dynamodb.put_item(TableName=TABLE, Item=key(at_limit))
    reads(dynamodb, at_limit)[operation]()


def test_writes_stay_refused_as_moto_already_refuses_them(dynamodb: Any) -> None:
    writes: list[Callable[[], Any]] = [
        lambda: dynamodb.put_item(TableName=TABLE, Item=key(LONG_HASH)),
        lambda: dynamodb.update_item(
            TableName=TABLE,
            Key=key(LONG_HASH),
            UpdateExpression="SET #n = :n",
            ExpressionAttributeNames={"#n": "name"},
            ExpressionAttributeValues={":n": {"S": "x"}},
        ),
        lambda: dynamodb.batch_write_item(RequestItems={TABLE: [{"PutRequest": {"Item": key(LONG_HASH)}}]}),
    ]
    for write in writes:
        with pytest.raises(ClientError, match="ValidationException"):
            write()


def test_an_over_long_sort_key_is_refused_on_reads(dynamodb: Any) -> None:
    sorted_key = {"pk": {"S": "p"}, "sk": {"S": LONG_RANGE}}
    refused_reads: list[Callable[[], Any]] = [
        lambda: dynamodb.get_item(TableName=SORTED, Key=sorted_key),
        lambda: dynamodb.batch_get_item(RequestItems={SORTED: {"Keys": [sorted_key]}}),
        lambda: dynamodb.delete_item(TableName=SORTED, Key=sorted_key),
    ]
    for read in refused_reads:
        with pytest.raises(ClientError) as refused:
            read()
        assert (
            "range keys has exceeded the size limit of 1024 bytes"
            in refused.value.response["Error"]["Message"]
        )
    dynamodb.get_item(TableName=SORTED, Key={"pk": {"S": "p"}, "sk": {"S": "x" * 1024}})


def test_install_is_idempotent_and_applies_to_the_local_server() -> None:
    dynamodb_limits.install()
    dynamodb_limits.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        # moto keeps its state per process, not per server: start from a clean account.
        requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
        client = boto3.client("dynamodb", endpoint_url=endpoint)
        create_tables(client)
        with pytest.raises(ClientError, match="maximum size limit of2048 bytes"):
            client.get_item(TableName=TABLE, Key=key(LONG_HASH))
        assert "Item" not in client.get_item(TableName=TABLE, Key=key("ada@example.com"))
    finally:
        requests.post(f"{endpoint}/moto-api/reset", timeout=10)
        server.stop()
