"""The governor's ``DailyCounter`` in DynamoDB (one ``daily_calls_item`` per day)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from ..observability import tracer
from ..upsert.ledger import LedgerUnavailable
from .daily_calls_item import add_calls_update, total_from_update

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class DynamoDbDailyCounter:
    """The connector's HubSpot calls of the day, counted atomically across every consumer (HubSpot
    tells OAuth apps nothing about the daily limit, so the connector must count for itself)."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    @tracer.capture_method(capture_response=False, capture_error=False)
    def add(self, day: str, calls: int) -> int:
        """Count ``calls`` more for ``day`` (the account's date); returns the day's total."""
        try:
            response = self._client.update_item(
                TableName=self._table, **add_calls_update(day, calls, int(time.time()))
            )
        except (ClientError, BotoCoreError) as exc:
            raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
        return total_from_update(response["Attributes"])
