"""Builds the operations API. ``build_api`` is its composition root: the only place its boto3
clients are created, once each, with their Config (the relabel's own, on the first rename). The
builders below take clients as parameters and create none."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from ..auth import IngestAuthenticator
from ..ingest.publisher import SqsFifoPublisher
from ..ledger.operations_store import OperationsStore
from ..reconcile.ports import ContactReconciler
from ..secret_store import secrets_manager_fetcher
from ..settings import OperationsSettings, UpsertSettings
from .api import OperationsApi
from .audiences import AudienceService, BudgetedLabels, LabelUpdater, ListRenamer, NameTaken
from .dead_letters import SqsDeadLetterMover
from .lists import AudienceLists
from .queues import SqsQueueReader
from .reconcile import ReconcileHistory, ReconcileService
from .replay import ReplayService
from .status import StatusService, StatusSettings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

    from ..hubspot.client import HubSpotClient
    from ..secret_store import SecretFetcher

#: One attempt, short timeouts: a rename answers within seconds; the next sync sets the label anyway.
RELABEL_HTTP_TIMEOUT = (1.0, 2.0)
_RELABEL_AWS = Config(
    connect_timeout=1, read_timeout=2, retries={"total_max_attempts": 1, "mode": "standard"}
)


def relabel_client(settings: UpsertSettings, secrets: Any, dynamodb: DynamoDBClient) -> HubSpotClient:
    """The connector's HubSpot client (governed, and counted in the shared daily total like the
    consumer's calls), but with one attempt and short timeouts on every call it makes: HubSpot,
    the credential's secret and the daily counter (given ``secrets``/``dynamodb`` clients built
    so)."""
    # Imported here: only a rename needs the HubSpot client (requests, the governor) and the
    # consumer's wiring, so the read routes' cold start does not load them.
    from ..hubspot.client import RetryPolicy
    from ..hubspot.governor import RateGovernor
    from ..ledger.daily_counter import DynamoDbDailyCounter
    from ..upsert.wiring import governor_settings, hubspot_client

    fetch_secret = secrets_manager_fetcher(
        settings.hubspot_secret_id, settings.secret_max_age_seconds, secrets
    )
    governor = RateGovernor(
        governor_settings(settings), daily_counter=DynamoDbDailyCounter(dynamodb, settings.ledger_table)
    )
    return hubspot_client(
        settings,
        fetch_secret,
        governor,
        timeout=RELABEL_HTTP_TIMEOUT,
        retry=RetryPolicy(max_attempts=1, max_wait_seconds=0.0),
    )


class HubSpotLabels:
    """Relabels an audience property and renames an audience's list; the client is built on the
    first rename, so the read-only routes never need the HubSpot credential. Wrapped in
    ``BudgetedLabels``, which bounds its time and turns any failure into a reason."""

    def __init__(self, build_client: Callable[[], HubSpotClient]) -> None:
        self._build_client = build_client
        self._client: HubSpotClient | None = None

    def relabel(self, property_name: str, label: str) -> str | None:
        if self._client is None:
            self._client = self._build_client()
        from ..hubspot.errors import HubSpotError  # loaded with the client above

        try:
            self._client.update_property(property_name, {"label": label})
        except HubSpotError as exc:
            if exc.status == 404:
                return (
                    "the HubSpot property does not exist yet: "
                    "it is created with this name on the audience's first sync"
                )
            return (
                f"HubSpot did not take the new label now ({exc.status or exc.kind.value}); "
                "the next sync of the audience sets it"
            )
        return None

    def rename_list(self, list_id: str, name: str) -> str | None:
        if self._client is None:
            self._client = self._build_client()
        from ..hubspot.errors import HubSpotError
        from ..hubspot.lists import DuplicateListName, HubSpotLists, ListGone

        try:
            HubSpotLists(self._client).rename(list_id, name)
        except DuplicateListName as exc:
            raise NameTaken(name) from exc
        except ListGone:
            return (
                "the list is not in HubSpot (deleted there): the lists function makes it again "
                "with the audience's name"
            )
        except HubSpotError as exc:
            return f"HubSpot did not rename the list now ({exc.status or exc.kind.value})"
        return None


def reconciler_client(settings: UpsertSettings, secrets: Any, dynamodb: DynamoDBClient) -> HubSpotClient:
    """The HubSpot client reconcile reads with, as the reconcile function builds it: counted in the
    shared daily total, paced by reconcile's part of the 10-second window."""
    from ..reconcile.wiring import reconcile_hubspot_client

    fetch_secret = secrets_manager_fetcher(
        settings.hubspot_secret_id, settings.secret_max_age_seconds, secrets
    )
    return reconcile_hubspot_client(settings, fetch_secret, dynamodb)


def build_api(settings: OperationsSettings) -> OperationsApi:
    """The operations function as deployed: DynamoDB, SQS, CloudWatch and Secrets Manager."""
    config = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"})
    dynamodb = boto3.client("dynamodb", config=config)
    sqs = boto3.client("sqs", config=config)
    cloudwatch = boto3.client("cloudwatch", config=config)
    secrets = boto3.client("secretsmanager")
    upsert = settings.upsert or UpsertSettings.from_env()

    def relabel() -> HubSpotClient:
        return relabel_client(
            upsert,
            boto3.client("secretsmanager", config=_RELABEL_AWS),
            boto3.client("dynamodb", config=_RELABEL_AWS),
        )

    def reconciler() -> ContactReconciler:
        # Imported here: only POST /reconcile needs the HubSpot client and the reconciler; the
        # first call builds them, once per container.
        from ..reconcile.wiring import reconciler as build_reconciler
        from ..upsert.adapter import LambdaFlushWaker

        client = reconciler_client(upsert, secrets, dynamodb)
        waker = LambdaFlushWaker(boto3.client("lambda", config=config), upsert.flush_function_name)
        runner: ContactReconciler = build_reconciler(upsert, dynamodb, sqs, client, waker)
        return runner

    from ..ledger.reconcile_progress import DynamoDbReconcileProgress

    fetch_secret = secrets_manager_fetcher(
        settings.ingest_secret_id, settings.secret_max_age_seconds, secrets
    )
    history: ReconcileHistory = DynamoDbReconcileProgress(dynamodb, settings.ledger_table)
    labels = HubSpotLabels(relabel)
    return operations_api(
        settings,
        upsert,
        dynamodb,
        sqs,
        cloudwatch,
        fetch_secret,
        labels,
        reconciler,
        history,
        labels,
    )


def operations_api(
    settings: OperationsSettings,
    upsert: UpsertSettings,
    dynamodb: DynamoDBClient,
    sqs: SQSClient,
    cloudwatch: Any,
    fetch_secret: SecretFetcher,
    labels: LabelUpdater | None,
    reconciler: Callable[[], ContactReconciler],
    history: ReconcileHistory,
    lists: ListRenamer | None = None,
) -> OperationsApi:
    """The API on these clients; ``reconciler`` builds the reconciler on the first ``POST
    /reconcile`` (once), ``history`` records and answers the reconcile runs, ``lists`` renames the
    audiences' HubSpot lists."""
    store = OperationsStore(dynamodb, settings.ledger_table)
    kept = AudienceLists(store) if upsert.audience_target.keeps_lists else None
    queues = SqsQueueReader(sqs, cloudwatch)
    status = StatusService(
        store,
        queues,
        StatusSettings(
            queue_url=settings.queue_url,
            queue_name=settings.queue_name,
            dead_letter_url=settings.dead_letter_queue_url,
            daily_limit=upsert.daily_limit,
            daily_reserve=upsert.daily_reserve,
            account_timezone=upsert.account_timezone,
            field_rules=upsert.field_rules,
        ),
        reconciles=history,
        lists=kept,
    )
    mover = (
        SqsDeadLetterMover(sqs, settings.dead_letter_queue_url, settings.queue_url)
        if settings.dead_letter_queue_url
        else None
    )
    replay = ReplayService(
        store,
        SqsFifoPublisher(sqs, settings.queue_url),
        mover,
        queues,
        settings.dead_letter_queue_url,
        settings.shard_count,
    )
    audiences = AudienceService(
        store,
        BudgetedLabels(labels, lists=lists) if labels else None,
        upsert.property_prefix,
        replay.queue_resume,
        upsert.audience_target,
    )
    return OperationsApi(
        IngestAuthenticator(fetch_secret),
        store,
        status,
        audiences,
        replay,
        ReconcileService(reconciler, history),
        kept,
    )
