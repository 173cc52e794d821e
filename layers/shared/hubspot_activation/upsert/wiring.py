"""Builds the merge and flush functions. ``build_merge`` and ``build_flush`` are their composition
roots: the only places their boto3 clients are created, once each, with their Config. The builders
below take clients and ports as parameters and create none, so a test or a benchmark builds the
same functions with its own (an in-memory queue or ledger, a HubSpot stand-in, a local waker)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from ..hubspot.client import DEFAULT_TIMEOUT, HubSpotClient, RetryPolicy, new_session
from ..hubspot.credentials import RotatingCredentials
from ..hubspot.governor import GovernorSettings, RateGovernor
from ..hubspot.reader import HubSpotContactReader
from ..hubspot.versions import Paths
from ..ledger.audience_directory import DynamoDbAudienceDirectory
from ..ledger.contact_state import DynamoDbContactStates, DynamoDbFlushLease
from ..ledger.daily_counter import DynamoDbDailyCounter
from ..ledger.keys import PENDING_PARTITIONS, pending_partition
from ..ledger.rate_limit_holds import DynamoDbHeldRecorder
from ..list_function.changes import list_changes
from ..secret_store import SecretFetcher, secrets_manager_fetcher
from ..settings import UpsertSettings
from .adapter import (
    FlushRunner,
    LambdaFlushWaker,
    MergeConsumer,
    SqsDeadLetters,
    SqsQueueLoad,
    SqsQueueSender,
    SqsVisibilityChanger,
)
from .audiences import AudienceDirectory
from .flush import Flusher, FlushSettings
from .merge import MergeService
from .ports import ContactWriter, FlushWaker
from .resume import ResumeJobs
from .schema import PropertySchema

if TYPE_CHECKING:
    import requests
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

#: The functions' AWS calls: retried a few times (the batch goes back to the queue if they fail).
AWS_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"})


def build_merge(settings: UpsertSettings) -> MergeConsumer:
    """The merge function as deployed: DynamoDB, SQS and Lambda (to wake the flusher)."""
    dynamodb = boto3.client("dynamodb", config=AWS_CONFIG)
    sqs = boto3.client("sqs", config=AWS_CONFIG)
    waker = (
        LambdaFlushWaker(boto3.client("lambda", config=AWS_CONFIG), settings.flush_function_name)
        if settings.flush_function_name
        else None
    )
    return merge_consumer(settings, dynamodb, sqs, waker)


def build_flush(settings: UpsertSettings) -> FlushRunner:
    """The flush function as deployed: DynamoDB, SQS (the queue's depth), Secrets Manager and
    Lambda (to start its next run)."""
    dynamodb = boto3.client("dynamodb", config=AWS_CONFIG)
    sqs = boto3.client("sqs", config=AWS_CONFIG)
    secrets = boto3.client("secretsmanager")
    lambda_client = boto3.client("lambda", config=AWS_CONFIG)
    fetch_secret = secrets_manager_fetcher(
        settings.hubspot_secret_id, settings.secret_max_age_seconds, secrets
    )
    governor = RateGovernor(
        governor_settings(settings),
        daily_counter=DynamoDbDailyCounter(dynamodb, settings.ledger_table),
        on_held=DynamoDbHeldRecorder(dynamodb, settings.ledger_table, settings.account_timezone),
    )
    return flush_runner(
        settings,
        hubspot_client(settings, fetch_secret, governor),
        dynamodb,
        sqs,
        LambdaFlushWaker(lambda_client, settings.flush_function_name),
    )


def governor_settings(settings: UpsertSettings) -> GovernorSettings:
    """Each lane's governor sends at most its lane's part of the share in any window: the other
    lanes' calls in flight are not in HubSpot's Remaining figure until answered, so no headroom
    read from it keeps several lanes within the share."""
    return GovernorSettings(
        limit_per_window=settings.tier_limit,
        share=settings.share,
        lanes=settings.flush_lanes,
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


def lane_partitions(lane: int, lanes: int, sweep: bool = False) -> list[int]:
    """The pending index's partitions a lane reads: its own (a lane's markers go to the partition
    of its number). ``sweep`` (the schedule's run of lane 0) adds the partitions of lanes that no
    longer exist, whose markers a deployment with fewer lanes left behind."""
    return [lane, *range(lanes, PENDING_PARTITIONS)] if sweep and lane == 0 else [lane]


def lane_of(email: str, lanes: int) -> int:
    return pending_partition(email) % lanes


def merge_consumer(
    settings: UpsertSettings,
    dynamodb: DynamoDBClient,
    sqs: SQSClient,
    waker: FlushWaker | None,
) -> MergeConsumer:
    """One container's merge: the contacts' states in the ledger, the queue's visibility and
    dead-letter queue on ``sqs``, the resume jobs, and ``waker`` to start flushes."""
    states = DynamoDbContactStates(
        dynamodb, settings.ledger_table, settings.ledger_retention_days, lanes=settings.flush_lanes
    )
    directory = DynamoDbAudienceDirectory(
        dynamodb, settings.ledger_table, max_age_seconds=settings.audience_cache_seconds
    )
    resume = (
        ResumeJobs(
            states,
            directory,
            SqsQueueSender(sqs, settings.queue_url),
            settings.shard_count,
            settings.resume_sweep_seconds,
        )
        if settings.queue_url
        else None
    )
    service = MergeService(
        states,
        lambda email: lane_of(email, settings.flush_lanes),
        waker,
        SqsVisibilityChanger(sqs, settings.queue_url) if settings.queue_url else None,
        SqsDeadLetters(sqs, settings.dead_letter_queue_url) if settings.dead_letter_queue_url else None,
        resume,
        retry_base_seconds=settings.retry_base_seconds,
    )
    return MergeConsumer(service)


def flush_runner(
    settings: UpsertSettings,
    client: HubSpotClient,
    dynamodb: DynamoDBClient,
    sqs: SQSClient | None,
    waker: FlushWaker,
    writer: ContactWriter | None = None,
    directory: AudienceDirectory | None = None,
) -> FlushRunner:
    """One container's flusher: its schema cache, the contacts' states and leases in the ledger,
    the queue's depth on ``sqs``, the field rules and the reads of HubSpot they need. ``writer``
    sends the batch upserts (the client itself unless a caller observes them)."""
    states = DynamoDbContactStates(
        dynamodb, settings.ledger_table, settings.ledger_retention_days, lanes=settings.flush_lanes
    )
    schema = PropertySchema(
        client,
        settings.property_group,
        settings.property_group_label,
        settings.property_prefix,
        max_age_seconds=settings.schema_cache_seconds,
        unavailable_retry_seconds=settings.audience_property_retry_seconds,
    )
    flusher = Flusher(
        states,
        writer or client,
        schema,
        directory
        or DynamoDbAudienceDirectory(
            dynamodb, settings.ledger_table, max_age_seconds=settings.audience_cache_seconds
        ),
        markers=states,
        settings=FlushSettings(
            parallel_calls=settings.flush_parallel_calls,
            max_delay_seconds=settings.flush_max_delay_seconds,
            retry_base_seconds=settings.retry_base_seconds,
            max_attempts=settings.max_write_attempts,
            list_retry_seconds=settings.list_flush_seconds,
        ),
        queue_load=SqsQueueLoad(sqs, settings.queue_url) if sqs is not None and settings.queue_url else None,
        rules=settings.field_rules,
        # Through the same governed client as the writes: the reads share the lane's budget.
        reader=HubSpotContactReader(client),
        audience_target=settings.audience_target,
        list_changes=list_changes(settings, dynamodb, sqs) if settings.audience_target.keeps_lists else None,
    )

    def partitions(lane: int, sweep: bool) -> list[int]:
        return lane_partitions(lane, settings.flush_lanes, sweep)

    return FlushRunner(
        flusher,
        DynamoDbFlushLease(dynamodb, settings.ledger_table),
        waker,
        settings.flush_lanes,
        partitions,
        states.next_due,
    )
