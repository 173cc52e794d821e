"""Composition of the journal poller: HubSpot's webhooks journal through the connector's HubSpot
client (its credentials and transport) under a governor of its own, and the ledger's ports."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..hubspot.client import HubSpotClient, new_session
from ..hubspot.journal import WebhooksJournal, journal_client
from ..ledger.journal_store import DynamoDbContactIdIndex, DynamoDbJournalOffsets
from .journal import JournalPoller
from .ports import ContactReconciler

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def journal_poller(
    hubspot_client: HubSpotClient,
    dynamodb_client: DynamoDBClient,
    table: str,
    reconciler: ContactReconciler,
    managed_properties: Callable[[], Sequence[str]],
    clock: Callable[[], float] = time.monotonic,
) -> JournalPoller:
    """The poller of the reconcile function's every-minute journal event. The journal's calls
    (exempt from HubSpot's limits) go through ``journal_client``: never held by, nor charged to,
    ``hubspot_client``'s governor and daily budget, and counted in the poller's report; the
    entries' pre-signed file links are fetched on a session without the bearer token. Check
    ``hubspot.journal.journal_enabled(hubspot_client.credentials)`` before polling. ``clock``: the
    reconciler's monotonic clock, which ``poll``'s deadline is on."""
    return JournalPoller(
        WebhooksJournal(journal_client(hubspot_client), files=new_session()),
        DynamoDbJournalOffsets(dynamodb_client, table),
        DynamoDbContactIdIndex(dynamodb_client, table),
        reconciler,
        managed_properties,
        clock=clock,
    )
