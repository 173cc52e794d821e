"""Whether a flush run is under way: a lane's lease (``contact_state.DynamoDbFlushLease``) is held."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..observability import logger
from .keys import KEY, flush_lease_key
from .values import integer, string

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: The lease item's attribute: until when its holder runs (epoch ms).
UNTIL = "until"


class DynamoDbFlushActivity:
    """One BatchGetItem of every lane's lease: True while a run holds one (its contacts are being
    written now)."""

    def __init__(
        self, client: DynamoDBClient, table: str, lanes: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self._table = table
        self._lanes = lanes
        self._clock = clock

    def __call__(self) -> bool:
        request: Any = {
            self._table: {
                "Keys": [{KEY: string(flush_lease_key(lane))} for lane in range(self._lanes)],
                "ProjectionExpression": "#u",
                "ExpressionAttributeNames": {"#u": UNTIL},
            }
        }
        try:
            response = self._client.batch_get_item(RequestItems=request)
        except (ClientError, BotoCoreError) as exc:
            # Unknown is taken as idle: the queue's depth and the governor still hold reconcile back.
            logger.warning("could not read the flush leases", extra={"error": type(exc).__name__})
            return False
        now_ms = int(self._clock() * 1000)
        items = response.get("Responses", {}).get(self._table, [])
        return any((integer(item, UNTIL) or 0) >= now_ms for item in items)
