"""Builds the upsert function. ``build_consumer`` is its composition root: the only place its
boto3 clients are created, once each, with their Config. The builders below take clients and ports
as parameters and create none, so a test or a benchmark builds the same consumer with its own
(an in-memory queue, ledger or daily counter, a HubSpot stand-in)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from ..hubspot.client import DEFAULT_TIMEOUT, HubSpotClient, RetryPolicy, new_session
from ..hubspot.credentials import RotatingCredentials
from ..hubspot.governor import GovernorSettings, RateGovernor
from ..hubspot.versions import Paths
from ..ledger.audience_directory import DynamoDbAudienceDirectory
from ..ledger.contact_ledger import DynamoDbLedger
from ..ledger.daily_counter import DynamoDbDailyCounter
from ..secret_store import SecretFetcher, secrets_manager_fetcher
from ..settings import UpsertSettings
from .adapter import SqsDeadLetters, SqsQueueSender, SqsVisibilityChanger, UpsertConsumer
from .audiences import AudienceDirectory
from .ledger import Ledger
from .resume import ResumeJobs
from .schema import PropertySchema
from .service import ContactWriter, SyncService
from .topup import QueueTopUp

if TYPE_CHECKING:
    import requests
    from mypy_boto3_sqs import SQSClient

#: The consumer's AWS calls: retried a few times (the batch goes back to the queue if they fail).
AWS_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"})


def build_consumer(settings: UpsertSettings) -> UpsertConsumer:
    """The upsert function as deployed: DynamoDB, SQS and Secrets Manager from the environment."""
    dynamodb = boto3.client("dynamodb", config=AWS_CONFIG)
    sqs = boto3.client("sqs", config=AWS_CONFIG)
    secrets = boto3.client("secretsmanager")
    governor = RateGovernor(
        governor_settings(settings), daily_counter=DynamoDbDailyCounter(dynamodb, settings.ledger_table)
    )
    fetch_secret = secrets_manager_fetcher(
        settings.hubspot_secret_id, settings.secret_max_age_seconds, secrets
    )
    ledger = DynamoDbLedger(dynamodb, settings.ledger_table, settings.ledger_retention_days)
    return consumer(
        settings,
        hubspot_client(settings, fetch_secret, governor),
        sqs,
        ledger,
        DynamoDbAudienceDirectory(
            dynamodb, settings.ledger_table, max_age_seconds=settings.audience_cache_seconds
        ),
        held=ledger,
    )


def governor_settings(settings: UpsertSettings) -> GovernorSettings:
    return GovernorSettings(
        limit_per_window=settings.tier_limit,
        share=settings.share,
        concurrency=settings.max_concurrency,
        daily_reserve=settings.daily_reserve,
        daily_limit=settings.daily_limit,
        account_timezone=settings.account_timezone,
    )


def hubspot_client(
    settings: UpsertSettings,
    fetch_secret: SecretFetcher,
    governor: RateGovernor,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    retry: RetryPolicy | None = None,
    session: requests.Session | None = None,
) -> HubSpotClient:
    """The connector's governed HubSpot client, its credential read through ``fetch_secret``;
    ``timeout``/``retry`` let a caller with a tighter time budget (the operations function's
    relabel) shorten every call it makes."""
    session = session or new_session()
    credentials = RotatingCredentials(
        fetch_secret, settings.hubspot_base_url + Paths(settings.api_version).oauth_token, session
    )
    return HubSpotClient(
        credentials,
        governor,
        settings.api_version,
        base_url=settings.hubspot_base_url,
        session=session,
        timeout=timeout,
        retry=retry,
    )


def consumer(
    settings: UpsertSettings,
    client: HubSpotClient,
    sqs: SQSClient,
    ledger: Ledger,
    directory: AudienceDirectory | None,
    writer: ContactWriter | None = None,
    held: DynamoDbLedger | None = None,
) -> UpsertConsumer:
    """One container's consumer: the sync service (its schema cache, visibility extender and
    dead-letter queue on ``sqs``), and the top-up that fills its batches from the queue. ``writer``
    sends the batch upserts (the client itself unless a caller observes them). ``held`` keeps the
    held markers and runs resume jobs from their index (without it, none are kept or run)."""
    topup = (
        QueueTopUp(sqs, settings.queue_url, max_messages=settings.top_up_max_messages)
        if settings.queue_url and settings.top_up_max_messages
        else None
    )
    schema = PropertySchema(
        client,
        settings.property_group,
        settings.property_group_label,
        settings.property_prefix,
        max_age_seconds=settings.schema_cache_seconds,
        unavailable_retry_seconds=settings.audience_property_retry_seconds,
    )
    extender = SqsVisibilityChanger(sqs, settings.queue_url) if settings.queue_url else None
    dead_letters = (
        SqsDeadLetters(sqs, settings.dead_letter_queue_url) if settings.dead_letter_queue_url else None
    )
    resume = (
        ResumeJobs(
            held,
            directory,
            SqsQueueSender(sqs, settings.queue_url),
            settings.shard_count,
            settings.resume_sweep_seconds,
        )
        if held is not None and directory is not None and settings.queue_url
        else None
    )
    service = SyncService(
        writer or client,
        schema,
        ledger,
        extender,
        retry_base_seconds=settings.retry_base_seconds,
        dead_letters=dead_letters,
        directory=directory,
        markers=held,
        resume=resume,
    )
    return UpsertConsumer(service, topup, client.ready_in, settings.batch_fill_seconds)
