"""DynamoDB's key-size limits on reads as well as writes, patched into moto for the local stack and
tests.

DynamoDB refuses a partition key value over 2,048 bytes and a sort key value over 1,024 bytes
(UTF-8) with a ValidationException wherever a key is given: PutItem, UpdateItem and
BatchWriteItem, but also GetItem, BatchGetItem (the whole request), DeleteItem, TransactGetItems
and a Query's partition key. moto 5 checks only the writes that store an item (PutItem,
BatchWriteItem's puts, UpdateItem, TransactWriteItems), so a read with a key that can never be
stored answers "no such item" locally and fails in AWS: a product that builds keys from what a
caller sends would pass every local test and break in production.

Here every key moto takes apart for a read or a delete is measured the way its writes already are
(the same exceptions, the same messages). ``install()`` is idempotent and touches nothing but two
methods of moto's DynamoDB backend; it applies in-process (``mock_aws``) and to a
ThreadedMotoServer, which runs in this process.
"""

from __future__ import annotations

from typing import Any

from moto.dynamodb.exceptions import HashKeyTooLong, RangeKeyTooLong
from moto.dynamodb.limits import HASH_KEY_MAX_LENGTH, RANGE_KEY_MAX_LENGTH
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

_MARKER = "_key_size_limits"


def install() -> None:
    if getattr(DynamoDBBackend.get_keys_value, _MARKER, False):
        return
    original_keys = DynamoDBBackend.get_keys_value
    original_query = DynamoDBBackend.query

    # Every single-item read or delete (GetItem, BatchGetItem, DeleteItem, BatchWriteItem's
    # deletes, TransactGetItems, the reads inside TransactWriteItems) takes its key apart here.
    def get_keys_value(
        self: DynamoDBBackend, table: Table, keys: dict[str, Any]
    ) -> tuple[DynamoType, DynamoType | None]:
        hash_key, range_key = original_keys(self, table, keys)
        check_key_sizes(hash_key, range_key)
        return hash_key, range_key

    def query(
        self: DynamoDBBackend,
        table_name: str,
        hash_key_dict: dict[str, Any] | None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if hash_key_dict:
            check_key_sizes(DynamoType(hash_key_dict), None)
        return original_query(self, table_name, hash_key_dict, *args, **kwargs)

    setattr(get_keys_value, _MARKER, True)
    DynamoDBBackend.get_keys_value = get_keys_value  # type: ignore[method-assign]
    DynamoDBBackend.query = query  # type: ignore[method-assign]


def check_key_sizes(hash_key: DynamoType, range_key: DynamoType | None) -> None:
    if hash_key.size() > HASH_KEY_MAX_LENGTH:
        raise HashKeyTooLong
    if range_key is not None and range_key.size() > RANGE_KEY_MAX_LENGTH:
        raise RangeKeyTooLong
