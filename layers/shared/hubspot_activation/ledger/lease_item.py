"""Lease items (a flush lane's, a list's drain): who holds the lease and until when, one item per
thing leased. A holder that crashed lets it expire (``until``); DynamoDB's TTL removes the item a
day later (``expiresAt``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from .conditional import conditionally
from .keys import KEY
from .values import Item, number, string

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

OWNER = "owner"
UNTIL = "until"


def acquire_lease(
    client: DynamoDBClient, table: str, key: str, owner: str, until_ms: int, now_ms: int
) -> bool:
    """Take the lease (free, expired, or already ``owner``'s) until ``until_ms``; False when another
    holder has it."""
    return conditionally(
        lambda: client.put_item(
            TableName=table,
            Item={
                KEY: string(key),
                OWNER: string(owner),
                UNTIL: number(until_ms),
                "expiresAt": number(until_ms // 1000 + 86_400),
            },
            ConditionExpression="attribute_not_exists(#k) OR #u < :now OR #o = :me",
            ExpressionAttributeNames={"#k": KEY, "#u": UNTIL, "#o": OWNER},
            ExpressionAttributeValues={":now": number(now_ms), ":me": string(owner)},
        )
    )


def release_lease(client: DynamoDBClient, table: str, key: str, owner: str) -> Item | None:
    """Give the lease up if ``owner`` still holds it: the item as it was, or None when it was not
    ours any more or DynamoDB failed (it expires on its own)."""
    try:
        response = client.delete_item(
            TableName=table,
            Key={KEY: string(key)},
            ConditionExpression="#o = :me",
            ExpressionAttributeNames={"#o": OWNER},
            ExpressionAttributeValues={":me": string(owner)},
            ReturnValues="ALL_OLD",
        )
    except (ClientError, BotoCoreError):
        return None
    return dict(response.get("Attributes") or {})
