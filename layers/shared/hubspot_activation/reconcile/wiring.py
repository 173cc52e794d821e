"""Builds the reconcile function. ``build_reconcile`` is its composition root (the only place its
boto3 clients are created, once each); ``reconciler`` builds the reconciler from clients it is
given, for the reconcile function and for the operations function's ``POST /reconcile`` alike.

Reconcile's HubSpot client is governed like the flush's (``upsert.wiring.hubspot_client``): its
calls count in the account-wide daily total, and a 10-second governor of its own paces them, with
``RECONCILE_BURST_SHARE`` of the app's window. That governor keeps the rest of the window free as
its headroom (it waits whenever HubSpot's Remaining figure shows others using more than that
part), so reconcile reads only while the flush lanes leave the window nearly unused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import boto3

from ..field_rules import FieldRule
from ..hubspot.client import HubSpotClient
from ..hubspot.governor import GovernorSettings, RateGovernor
from ..hubspot.journal import journal_enabled
from ..hubspot.lists import HubSpotLists
from ..hubspot.reader import HubSpotContactReader
from ..ledger.audience_directory import DynamoDbAudienceDirectory
from ..ledger.daily_counter import DynamoDbDailyCounter
from ..ledger.keys import reconcile_calls_key
from ..ledger.reconcile_progress import DynamoDbReconcileProgress
from ..ledger.reconcile_store import DynamoDbTrackedContacts
from ..list_function.changes import list_buffer
from ..lists.changes import BufferedListChanges
from ..secret_store import SecretFetcher, secrets_manager_fetcher
from ..settings import UpsertSettings
from ..upsert.adapter import LambdaFlushWaker, SqsQueueLoad
from ..upsert.ports import FlushWaker
from ..upsert.schema import PropertySchema
from ..upsert.wiring import AWS_CONFIG, governor_settings, hubspot_client, lane_of
from .adapter import JournalPoll, LambdaSelfInvoker, ReconcileRunner
from .budget import DailyShare, LiveTrafficBudget
from .journal_wiring import journal_poller as build_journal_poller
from .memberships import ListsCheck
from .ports import TrackedContacts
from .service import Reconciler, ReconcileSettings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

#: Reconcile's part of the app's 10-second window (at most the connector's own share): 10 reads
#: of 100 contacts per 10 s at the default 100-request window, 360,000 contacts an hour.
RECONCILE_BURST_SHARE = 0.1
#: What a walk's continuation sends the function.
CONTINUE_EVENT = {"walk": "continue"}
#: Time kept back from an invocation's end besides one page's HubSpot calls: the page's ledger
#: writes and the records after it.
RECORD_SECONDS = 15.0
#: HubSpot calls one page may make (by email, the ids not found, the archived ones).
PAGE_CALLS = 3


def build_reconcile(settings: UpsertSettings) -> ReconcileRunner:
    """The reconcile function as deployed: DynamoDB, SQS (the queue's depth), Secrets Manager and
    Lambda (to wake the flusher and to continue a walk)."""
    dynamodb = boto3.client("dynamodb", config=AWS_CONFIG)
    sqs = boto3.client("sqs", config=AWS_CONFIG)
    secrets = boto3.client("secretsmanager")
    lambda_client = boto3.client("lambda", config=AWS_CONFIG)
    fetch_secret = secrets_manager_fetcher(
        settings.hubspot_secret_id, settings.secret_max_age_seconds, secrets
    )
    client = reconcile_hubspot_client(settings, fetch_secret, dynamodb)
    flush = settings.flush_function_name
    waker = LambdaFlushWaker(lambda_client, flush) if flush else None
    continuation = (
        LambdaSelfInvoker(lambda_client, settings.reconcile_function_name, CONTINUE_EVENT)
        if settings.reconcile_function_name
        else None
    )
    return reconcile_runner(settings, dynamodb, sqs, client, waker, continuation)


def reconcile_runner(
    settings: UpsertSettings,
    dynamodb: DynamoDBClient,
    sqs: SQSClient | None,
    client: HubSpotClient,
    waker: FlushWaker | None,
    continuation: Callable[[], None] | None,
) -> ReconcileRunner:
    """The walk's and the journal's reconciler share one property schema (one cache per container)."""
    schema = property_schema(settings, client)
    service = reconciler(settings, dynamodb, sqs, client, waker, schema)
    built: list[JournalPoll] = []

    def journal() -> JournalPoll:
        if not built:
            built.append(journal_poller(settings, client, dynamodb, service, schema))
        return built[0]

    return ReconcileRunner(
        service,
        DynamoDbReconcileProgress(dynamodb, settings.ledger_table),
        continuation,
        journal,
        lambda: journal_off(client),
        margin_seconds=PAGE_CALLS * client.max_call_seconds + RECORD_SECONDS,
    )


def property_schema(settings: UpsertSettings, client: HubSpotClient) -> PropertySchema:
    return PropertySchema(
        client,
        settings.property_group,
        settings.property_group_label,
        settings.property_prefix,
        max_age_seconds=settings.schema_cache_seconds,
        unavailable_retry_seconds=settings.audience_property_retry_seconds,
    )


def reconcile_governor_settings(settings: UpsertSettings) -> GovernorSettings:
    """The flush's governor settings (the daily limit, reserve and time zone), with reconcile's
    part of the window and no lanes to divide it by."""
    return replace(governor_settings(settings), share=min(settings.share, RECONCILE_BURST_SHARE), lanes=1)


def reconcile_hubspot_client(
    settings: UpsertSettings, fetch_secret: SecretFetcher, dynamodb: DynamoDBClient
) -> HubSpotClient:
    """Reconcile's HubSpot client: counted in the account-wide daily total, paced by its own part
    of the 10-second window."""
    governor = RateGovernor(
        reconcile_governor_settings(settings),
        daily_counter=DynamoDbDailyCounter(dynamodb, settings.ledger_table),
    )
    return hubspot_client(settings, fetch_secret, governor)


def reconciler(
    settings: UpsertSettings,
    dynamodb: DynamoDBClient,
    sqs: SQSClient | None,
    hubspot_client: HubSpotClient,
    waker: FlushWaker | None,
    schema: PropertySchema | None = None,
) -> Reconciler:
    """The reconciler on these clients: the tracked contacts in the ledger, HubSpot's batch reads
    through ``hubspot_client``, the budget live traffic leaves, and ``waker`` for the repairs;
    ``schema``: the property definitions' cache to share (None: its own)."""
    contacts: TrackedContacts = DynamoDbTrackedContacts(
        dynamodb, settings.ledger_table, settings.ledger_retention_days, lanes=settings.flush_lanes
    )
    return Reconciler(
        contacts,
        HubSpotContactReader(hubspot_client),
        schema or property_schema(settings, hubspot_client),
        reconcile_budget(settings, dynamodb, sqs),
        ReconcileSettings(
            deletions=settings.deletions, lanes=settings.flush_lanes, rules=settings.field_rules
        ),
        waker,
        lambda email: lane_of(email, settings.flush_lanes),
        lists=lists_check(settings, dynamodb, hubspot_client)
        if settings.audience_target.keeps_lists
        else None,
    )


class HubSpotMemberships:
    """``ports.MembershipReader`` over the Lists API client."""

    def __init__(self, client: HubSpotClient) -> None:
        self._lists = HubSpotLists(client)

    def memberships(self, record_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        outcome = self._lists.memberships(list(record_ids))
        return {record_id: outcome.list_ids(record_id) for record_id in outcome.memberships}


def lists_check(
    settings: UpsertSettings, dynamodb: DynamoDBClient, hubspot_client: HubSpotClient
) -> ListsCheck:
    """The lists' check on the flusher's buffer: a repair waits there like any membership change
    (ListFlushSeconds, or a full chunk) for the lists function, woken by its schedule."""
    buffer = list_buffer(settings, dynamodb)
    return ListsCheck(
        HubSpotMemberships(hubspot_client),
        DynamoDbAudienceDirectory(dynamodb, settings.ledger_table, settings.audience_cache_seconds),
        buffer,
        BufferedListChanges(buffer, None, flush_seconds=settings.list_flush_seconds),
    )


def reconcile_budget(
    settings: UpsertSettings, dynamodb: DynamoDBClient, sqs: SQSClient | None
) -> LiveTrafficBudget:
    return LiveTrafficBudget(
        DynamoDbDailyCounter(dynamodb, settings.ledger_table, key=reconcile_calls_key),
        DailyShare(
            settings.reconcile_daily_share,
            settings.daily_limit,
            settings.daily_reserve,
            settings.account_timezone,
        ),
        SqsQueueLoad(sqs, settings.queue_url) if sqs is not None and settings.queue_url else None,
    )


def managed_properties(schema: PropertySchema, settings: UpsertSettings) -> Callable[[], Sequence[str]]:
    """The properties the connector writes, as HubSpot defines them now: its property group's (the
    audience properties) and the attribute mapping's targets, less those whose rule is ``never``
    (a change to one is nothing reconcile acts on)."""
    mapped = set(settings.mapping.paths.values()) - settings.field_rules.with_rule(FieldRule.NEVER)

    def names() -> Sequence[str]:
        definitions = schema.definitions()
        return sorted(
            name
            for name, spec in definitions.items()
            if name in mapped or spec.get("groupName") == settings.property_group
        )

    return names


def journal_poller(
    settings: UpsertSettings,
    client: HubSpotClient,
    dynamodb: DynamoDBClient,
    service: Reconciler,
    schema: PropertySchema,
) -> JournalPoll:
    """The journal poller on the reconcile function's clients."""
    return build_journal_poller(
        client, dynamodb, settings.ledger_table, service, managed_properties(schema, settings)
    )


def journal_off(client: HubSpotClient) -> str | None:
    """Why the journal cannot be read with ``client``'s credential now (None: it can)."""
    access = journal_enabled(client.credentials)
    return None if access else str(access.reason or "the journal cannot be read")
