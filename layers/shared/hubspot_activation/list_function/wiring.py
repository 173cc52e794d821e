"""Builds the lists function. ``build_lists`` is its composition root (the only place its boto3
clients are created, once each); ``lists_function`` builds it from clients it is given. The
flusher's port to the lists is built by ``changes.list_changes``."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import boto3

from ..hubspot.client import HubSpotClient
from ..hubspot.governor import GovernorSettings, RateGovernor
from ..hubspot.list_ports import HubSpotListMemberships, HubSpotRemoteLists
from ..hubspot.lists import HubSpotLists
from ..ledger.daily_counter import DynamoDbDailyCounter
from ..ledger.list_audiences import DynamoDbListAudiences, DynamoDbListLease, DynamoDbRealizedMembers
from ..ledger.rate_limit_holds import DynamoDbHeldRecorder
from ..lists.runner import CallBudget, ListRunner, RunnerSettings
from ..secret_store import secrets_manager_fetcher
from ..settings import UpsertSettings
from ..upsert.wiring import AWS_CONFIG, governor_settings, hubspot_client
from .adapter import ListsFunction
from .changes import list_buffer, list_timer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

#: The lists function's part of the app's 10-second window (at most the connector's own share): 10
#: calls per 10 s at the default 100-request window, 5,000 membership changes a second.
LISTS_BURST_SHARE = 0.1
#: The lists event source's MaximumConcurrency in template.yaml: drains that may each have a call
#: in flight unseen by HubSpot's Remaining figure.
LISTS_MAX_CONCURRENCY = 2
#: Time kept back for the ledger's records after the last HubSpot call of a run (seconds).
RECORD_SECONDS = 10.0


def build_lists(settings: UpsertSettings) -> ListsFunction:
    """The lists function as deployed: DynamoDB, SQS (its timers), Secrets Manager."""
    if not settings.audience_target.keeps_lists:
        return ListsFunction(None)
    dynamodb = boto3.client("dynamodb", config=AWS_CONFIG)
    sqs = boto3.client("sqs", config=AWS_CONFIG)
    fetch_secret = secrets_manager_fetcher(
        settings.hubspot_secret_id, settings.secret_max_age_seconds, boto3.client("secretsmanager")
    )
    governor = RateGovernor(
        lists_governor_settings(settings),
        daily_counter=DynamoDbDailyCounter(dynamodb, settings.ledger_table),
        on_held=DynamoDbHeldRecorder(dynamodb, settings.ledger_table, settings.account_timezone),
    )
    return lists_function(settings, hubspot_client(settings, fetch_secret, governor), dynamodb, sqs)


def lists_governor_settings(settings: UpsertSettings) -> GovernorSettings:
    """The flush's governor settings (the connector's share, the daily limit, reserve and time
    zone), the lists function sending at most its own part of the window (``LISTS_BURST_SHARE``,
    as a lane of the share: a drain sends a few calls of hundreds of ids each). What it leaves
    unused of HubSpot's window is the other integrations' part, as the flush does: a headroom of
    the lists' part alone would hold every drain back while the flush has made a handful of calls
    in the window (up to 10 s of delay at low load)."""
    base = governor_settings(settings)
    return replace(
        base,
        lanes=max(1, math.ceil(settings.share / LISTS_BURST_SHARE)),
        concurrency=LISTS_MAX_CONCURRENCY,
    )


def lists_function(
    settings: UpsertSettings, client: HubSpotClient, dynamodb: DynamoDBClient, sqs: SQSClient | None
) -> ListsFunction:
    """One container's lists function: its HubSpot calls through ``client`` (governed, counted)."""
    budget = CallBudget()
    lists = HubSpotLists(client)
    buffer = list_buffer(settings, dynamodb)
    runner = ListRunner(
        buffer=buffer,
        due=buffer,
        appender=buffer,
        memberships=HubSpotListMemberships(lists, lambda: budget.deadline),
        remote=HubSpotRemoteLists(lists),
        audiences=DynamoDbListAudiences(dynamodb, settings.ledger_table),
        lease=DynamoDbListLease(dynamodb, settings.ledger_table),
        members=DynamoDbRealizedMembers(dynamodb, settings.ledger_table),
        timer=list_timer(settings, sqs),
        settings=RunnerSettings(
            flush_seconds=settings.list_flush_seconds,
            chunk_size=settings.list_chunk_size,
            # A list is started only while one call with its retries and the records fit.
            margin_seconds=client.max_call_seconds + RECORD_SECONDS,
            record_seconds=RECORD_SECONDS,
        ),
        budget=budget,
    )
    return ListsFunction(runner)
