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


def scan_all(table: MemoryDynamoDb, limit: int) -> list[tuple[list[str], int]]:
    """Each page's keys kept by reconcile's filter (contacts: keys with ``@``) and how many it read."""
    pages, start = [], None
    while True:
        request: dict[str, object] = {
            "TableName": "ledger",
            "Limit": limit,
            "FilterExpression": "contains(#k, :at)",
            "ExpressionAttributeNames": {"#k": "email"},
            "ExpressionAttributeValues": {":at": {"S": "@"}},
        }
        if start is not None:
            request["ExclusiveStartKey"] = start
        answer = table.scan(**request)
        pages.append(([item["email"]["S"] for item in answer["Items"]], answer["ScannedCount"]))
        start = answer.get("LastEvaluatedKey")
        if start is None:
            return pages


def test_a_scan_limit_counts_the_items_read_before_the_filter() -> None:
    table = MemoryDynamoDb()
    contacts = [f"c{i}@example.com" for i in range(30)]
    for key in [*contacts, *(f"#pending#p00#{i}" for i in range(10))]:
        table.put_item(TableName="ledger", Item={"email": {"S": key}})
    pages = scan_all(table, 10)
    # Every item read once, contacts and markers mixed (hash order): 40 read, 4 full pages and the
    # empty one after the last (the table stopped at its limit there, not knowing it was the end).
    assert [read for _keys, read in pages] == [10, 10, 10, 10, 0]
    kept = [key for keys, _read in pages for key in keys]
    assert sorted(kept) == sorted(contacts) and len(kept) == len(set(kept))
    assert any(len(keys) < 10 for keys, _read in pages[:4])


def test_a_scan_goes_on_after_its_start_key_even_when_that_item_is_gone() -> None:
    table = MemoryDynamoDb()
    for i in range(20):
        table.put_item(TableName="ledger", Item={"email": {"S": f"c{i}@example.com"}})
    first = table.scan(TableName="ledger", Limit=5)
    table.delete_item(TableName="ledger", Key=first["LastEvaluatedKey"])
    rest = table.scan(TableName="ledger", ExclusiveStartKey=first["LastEvaluatedKey"])
    seen = [item["email"]["S"] for item in [*first["Items"], *rest["Items"]]]
    assert len(seen) == 20 == len(set(seen)) and "LastEvaluatedKey" not in rest
