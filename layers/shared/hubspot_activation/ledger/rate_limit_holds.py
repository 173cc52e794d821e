"""When HubSpot's 10-second window held the flush: recorded on the day's item of the shared count
of calls (``daily_calls_item.HELD_AT``), which ``GET /sync/status`` reads already."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from botocore.exceptions import BotoCoreError, ClientError

from ..hubspot.governor import account_day
from ..observability import logger
from .daily_calls_item import held_update

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: A governor held again within this many seconds is not recorded again: the status reads the hold
#: as recent for longer than that.
HELD_RECORD_SECONDS = 10.0


class DynamoDbHeldRecorder:
    """The governor's ``on_held``: records on the day's item (``heldAt``) that HubSpot's 10-second
    window holds the flush, at most once every ``every_seconds``. A failed record is logged, never
    raised: it is an indicator, and the write it came from must go on."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        timezone: str = "UTC",
        every_seconds: float = HELD_RECORD_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table
        self._timezone = ZoneInfo(timezone).key  # an unknown zone fails here, at start
        self._every = every_seconds
        self._clock = clock
        self._last: float | None = None
        self._lock = threading.Lock()

    def __call__(self) -> None:
        now = self._clock()
        with self._lock:
            if self._last is not None and now - self._last < self._every:
                return
            self._last = now
        day = account_day(now, self._timezone)
        try:
            self._client.update_item(TableName=self._table, **held_update(day, int(now * 1000), int(now)))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                logger.warning("rate-limit hold not recorded", extra={"error": type(exc).__name__})
        except BotoCoreError as exc:
            logger.warning("rate-limit hold not recorded", extra={"error": type(exc).__name__})
