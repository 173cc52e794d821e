"""The flusher's port to the lists, built from clients it is given: ``list_changes`` for the
flush function's composition root (``upsert.wiring``), which it imports without importing the
lists function's own root (that one imports ``upsert.wiring``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..ledger.list_buffer import DynamoDbListBuffer
from ..lists.changes import BufferedListChanges
from ..settings import UpsertSettings
from .adapter import SqsListTimer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient


def list_buffer(settings: UpsertSettings, dynamodb: DynamoDBClient) -> DynamoDbListBuffer:
    return DynamoDbListBuffer(
        dynamodb,
        settings.ledger_table,
        flush_ms=settings.list_flush_seconds * 1000,
        chunk_size=settings.list_chunk_size,
    )


def list_timer(settings: UpsertSettings, sqs: SQSClient | None) -> SqsListTimer | None:
    """The timer queue's adapter (None: no queue configured; the lists function's sweep drains)."""
    if sqs is None or not settings.list_timer_queue_url:
        return None
    return SqsListTimer(sqs, settings.list_timer_queue_url)


def list_changes(
    settings: UpsertSettings, dynamodb: DynamoDBClient, sqs: SQSClient | None
) -> BufferedListChanges:
    """The flusher's ``ListChanges``: the ledger's list buffers, and the timer queue's messages."""
    return BufferedListChanges(
        list_buffer(settings, dynamodb), list_timer(settings, sqs), flush_seconds=settings.list_flush_seconds
    )
