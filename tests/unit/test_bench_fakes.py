"""The benches' in-memory table answers index queries as DynamoDB would for the template's
indexes: the keys, and the attributes the index projects, nothing else."""

from __future__ import annotations

from bench.fakes import MemoryDynamoDb

MARKER = {
    "email": {"S": "#pending#p00#abc"},
    "pendingPartition": {"S": "p00"},
    "dueAt": {"N": "5"},
    "emails": {"SS": ["ada@example.com"]},
    "expiresAt": {"N": "9"},
}


def query(table: MemoryDynamoDb, index: str, key: str, value: str) -> list[dict[str, object]]:
    answer = table.query(
        TableName="ledger",
        IndexName=index,
        KeyConditionExpression="#p = :p",
        ExpressionAttributeNames={"#p": key},
        ExpressionAttributeValues={":p": {"S": value}},
    )
    items: list[dict[str, object]] = answer["Items"]
    return items


def test_an_index_returns_the_keys_and_what_it_projects() -> None:
    table = MemoryDynamoDb()
    table.put_item(TableName="ledger", Item=dict(MARKER))
    # The pending index includes the marker's contacts, not its expiry.
    assert query(table, "pending", "pendingPartition", "p00") == [
        {key: MARKER[key] for key in ("email", "pendingPartition", "dueAt", "emails")}
    ]


def test_a_keys_only_index_returns_the_keys() -> None:
    table = MemoryDynamoDb(indexes={"pending": ("pendingPartition", "dueAt")}, projections={"pending": ()})
    table.put_item(TableName="ledger", Item=dict(MARKER))
    assert query(table, "pending", "pendingPartition", "p00") == [
        {key: MARKER[key] for key in ("email", "pendingPartition", "dueAt")}
    ]
