"""Configuration from the environment, parsed and validated once per container.

Each setting is declared once, in the block below: the environment variable it is read from, the
template parameter that sets it (if any), its default, its bounds and its parse. The settings
classes and the components they configure take their defaults from these declarations, and
tests/integration/test_template.py holds the template's parameters to them.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from .attribute_mapping import AttributeMapping
from .field_rules import FIELD_RULES_PATTERN, FieldRules
from .hubspot.versions import ApiVersion
from .ledger.keys import PENDING_PARTITIONS
from .lists.target import AudienceTarget
from .messages import DEFAULT_MAX_MESSAGE_BYTES
from .reconcile.policy import DeletionPolicy

T = TypeVar("T")
Number = TypeVar("Number", int, float)
Choice = TypeVar("Choice", bound=StrEnum)


class SettingsError(ValueError):
    """A deployment mistake: fail at cold start with the variable's name, not on the first request."""


@dataclass(frozen=True, kw_only=True)
class Setting(ABC, Generic[T]):
    """One setting: the environment variable it is read from, the template parameter that sets it
    (empty: none, the default applies), and its default, used when the variable is unset or blank."""

    env: str
    default: T
    parameter: str = ""

    def read(self, env: Mapping[str, str]) -> T:
        raw = env.get(self.env, "").strip()
        return self.parse(raw) if raw else self.default

    def require(self, env: Mapping[str, str]) -> T:
        if not env.get(self.env, "").strip():
            raise SettingsError(f"environment variable {self.env} is required")
        return self.read(env)

    @abstractmethod
    def parse(self, raw: str) -> T:
        """The value of ``raw`` (stripped, not empty), or SettingsError naming the variable."""


@dataclass(frozen=True, kw_only=True)
class NumberSetting(Setting[Number]):
    """An int or float (the type of ``default``) within [low, high]."""

    low: Number
    high: Number

    def parse(self, raw: str) -> Number:
        kind = type(self.default)
        try:
            value = kind(raw)
        except ValueError as exc:
            kind_name = "an integer" if kind is int else "a number"
            raise SettingsError(f"{self.env} must be {kind_name}, got {raw!r}") from exc
        if not self.low <= value <= self.high:
            raise SettingsError(f"{self.env} must be between {self.low} and {self.high}, got {value}")
        return value


@dataclass(frozen=True, kw_only=True)
class TextSetting(Setting[str]):
    """Text, matching ``pattern`` (anchored; empty: any text) described to the operator as ``rule``."""

    pattern: str = ""
    rule: str = ""

    def parse(self, raw: str) -> str:
        if self.pattern and not re.match(self.pattern, raw):
            raise SettingsError(f"{self.env} must be {self.rule}, got {raw!r}")
        return raw


@dataclass(frozen=True, kw_only=True)
class ChoiceSetting(Setting[Choice]):
    """One of an enumeration's values."""

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(choice.value for choice in type(self.default))

    def parse(self, raw: str) -> Choice:
        if raw not in self.choices:
            raise SettingsError(f"{self.env} must be one of {', '.join(self.choices)}, got {raw!r}")
        return type(self.default)(raw)


@dataclass(frozen=True, kw_only=True)
class IdListSetting(Setting[frozenset[str]]):
    """Comma-separated ids; blanks between commas are ignored."""

    def parse(self, raw: str) -> frozenset[str]:
        return frozenset(item.strip() for item in raw.split(",") if item.strip())


@dataclass(frozen=True, kw_only=True)
class MappingSetting(Setting[AttributeMapping]):
    """A JSON object of overrides to the built-in attribute mapping."""

    def parse(self, raw: str) -> AttributeMapping:
        try:
            return AttributeMapping.from_json(raw)
        except ValueError as exc:
            raise SettingsError(f"{self.env}: {exc}") from exc


@dataclass(frozen=True, kw_only=True)
class RulesSetting(Setting[FieldRules]):
    """A JSON object of HubSpot property -> field rule; ``pattern`` is the template's first check."""

    pattern: str = FIELD_RULES_PATTERN

    def parse(self, raw: str) -> FieldRules:
        try:
            return FieldRules.from_json(raw)
        except ValueError as exc:
            raise SettingsError(f"{self.env}: {exc}") from exc


def _text(env: str, default: str = "", parameter: str = "") -> TextSetting:
    return TextSetting(env=env, default=default, parameter=parameter)


def _integer(env: str, default: int, low: int, high: int, parameter: str = "") -> NumberSetting[int]:
    return NumberSetting(env=env, default=default, low=low, high=high, parameter=parameter)


_NAME = r"[a-z][a-z0-9_]{0,39}"
_NAME_RULE = "lower-case letters, digits or _, start with a letter and be at most 40 characters"

# Where the functions' resources are (set by the template from its resources, never defaulted).
QUEUE_URL = _text("QUEUE_URL")
DEAD_LETTER_QUEUE_URL = _text("DEAD_LETTER_QUEUE_URL")
LEDGER_TABLE = _text("LEDGER_TABLE")
INGEST_SECRET_ID = _text("INGEST_SECRET_ID")
HUBSPOT_SECRET_ID = _text("HUBSPOT_SECRET_ID")
#: The flush function, woken by the merge and by itself (empty: never woken, the schedule runs it).
FLUSH_FUNCTION_NAME = _text("FLUSH_FUNCTION_NAME")

#: FIFO message groups a contact's email hashes into; ingest, replay and resume jobs must agree.
SHARD_COUNT = _integer("SHARD_COUNT", 48, 1, 10_000, "ShardCount")

# Ingest.
AUDIENCE_ALLOWLIST = IdListSetting(
    env="AUDIENCE_ALLOWLIST", default=frozenset(), parameter="AudienceAllowList"
)
ATTRIBUTE_MAPPING = MappingSetting(
    env="ATTRIBUTE_MAPPING", default=AttributeMapping.from_overrides(), parameter="AttributeMapping"
)
#: Per HubSpot property, which side wins when the source and HubSpot disagree (field_rules.py).
FIELD_RULES = RulesSetting(env="FIELD_RULES", default=FieldRules(), parameter="FieldRules")
MAX_BODY_BYTES = _integer("MAX_BODY_BYTES", 5 * 1024 * 1024, 1024, 6 * 1024 * 1024, "MaxBodyBytes")
MAX_PROFILES_PER_REQUEST = _integer("MAX_PROFILES_PER_REQUEST", 10_000, 1, 100_000, "MaxProfilesPerRequest")
MAX_MESSAGE_BYTES = _integer("MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES, 4096, 1_048_576)
#: How long the ingest token is cached: a token removed from the secret stops working within it.
SECRET_MAX_AGE_SECONDS = _integer("SECRET_MAX_AGE_SECONDS", 60, 0, 86_400)
#: How long an exclusion stays on the operator's issues list.
EXCLUSION_RETENTION_DAYS = _integer("EXCLUSION_RETENTION_DAYS", 30, 1, 3650, "ExclusionRetentionDays")
#: Time the exclusion list may cost an answer (no write starts later; also each call's read
#: timeout). Short in AWS, where a write takes milliseconds; the local stack's moto is slower.
EXCLUSION_STORE_SECONDS = NumberSetting(env="EXCLUSION_STORE_SECONDS", default=0.3, low=0.05, high=1.5)

# HubSpot.
HUBSPOT_BASE_URL = _text("HUBSPOT_BASE_URL", "https://api.hubapi.com", "HubSpotBaseUrl")
#: The newest generally available version; v3 goes unsupported in September 2027.
HUBSPOT_API_VERSION = ChoiceSetting(
    env="HUBSPOT_API_VERSION", default=ApiVersion.V2026_09, parameter="HubSpotApiVersion"
)
HUBSPOT_TEN_SECOND_LIMIT = _integer("HUBSPOT_TEN_SECOND_LIMIT", 100, 1, 10_000, "HubSpotTenSecondLimit")
#: Share of the burst limit this connector may use (the rest is left to other integrations).
HUBSPOT_LIMIT_SHARE = NumberSetting(
    env="HUBSPOT_LIMIT_SHARE", default=0.8, low=0.01, high=1.0, parameter="HubSpotLimitShare"
)
#: Daily calls left untouched for the account's other integrations.
HUBSPOT_DAILY_RESERVE = _integer("HUBSPOT_DAILY_RESERVE", 10_000, 0, 100_000_000, "HubSpotDailyReserve")
#: The account's daily limit, for when HubSpot does not say it (it tells OAuth apps nothing).
HUBSPOT_DAILY_LIMIT = _integer("HUBSPOT_DAILY_LIMIT", 250_000, 1, 100_000_000, "HubSpotDailyLimit")
#: HubSpot resets the daily limit at midnight in the account's time zone setting.
HUBSPOT_ACCOUNT_TIMEZONE = _text("HUBSPOT_ACCOUNT_TIMEZONE", "UTC", "HubSpotAccountTimezone")
#: How long the HubSpot credential is cached.
HUBSPOT_SECRET_MAX_AGE_SECONDS = _integer("HUBSPOT_SECRET_MAX_AGE_SECONDS", 300, 0, 86_400)
AUDIENCE_PROPERTY_PREFIX = TextSetting(
    env="AUDIENCE_PROPERTY_PREFIX",
    default="aud_",
    parameter="AudiencePropertyPrefix",
    pattern=f"^(?!hs_){_NAME}$",
    rule=f"{_NAME_RULE}, and not start with hs_",
)
AUDIENCE_PROPERTY_GROUP = TextSetting(
    env="AUDIENCE_PROPERTY_GROUP",
    default="audience_activations",
    parameter="AudiencePropertyGroup",
    pattern=f"^{_NAME}$",
    rule=_NAME_RULE,
)
AUDIENCE_PROPERTY_GROUP_LABEL = _text("AUDIENCE_PROPERTY_GROUP_LABEL", "Audience activations")
SCHEMA_CACHE_SECONDS = _integer("SCHEMA_CACHE_SECONDS", 600, 0, 86_400)
#: How long an audience whose HubSpot property could not be created (the custom property limit, a
#: refusal) is refused before the next update asking for it tries again.
AUDIENCE_PROPERTY_RETRY_SECONDS = _integer("AUDIENCE_PROPERTY_RETRY_SECONDS", 30, 0, 3600)
#: How long audience metadata (names, deletions) is cached per container.
AUDIENCE_CACHE_SECONDS = _integer("AUDIENCE_CACHE_SECONDS", 30, 0, 3600)

# Merge and flush.
#: Flusher lanes: each owns a part of the pending index and a part of the HubSpot budget.
FLUSH_LANES = _integer("FLUSH_LANES", 1, 1, PENDING_PARTITIONS, "FlushLanes")
#: HubSpot calls one lane has in flight at once.
FLUSH_PARALLEL_CALLS = _integer("FLUSH_PARALLEL_CALLS", 8, 1, 32, "FlushParallelCalls")
#: How long a pending contact waits for the queue's backlog to be merged before it is written.
FLUSH_MAX_DELAY_SECONDS = _integer("FLUSH_MAX_DELAY_SECONDS", 10, 0, 600, "FlushMaxDelaySeconds")
LEDGER_RETENTION_DAYS = _integer("LEDGER_RETENTION_DAYS", 400, 1, 3650, "LedgerRetentionDays")
#: First retry delay of a transiently failed contact or message; it doubles with each attempt.
RETRY_BASE_SECONDS = _integer("RETRY_BASE_SECONDS", 10, 0, 600)
#: Transient failures of a contact's write before it is recorded as failed (replayable).
MAX_WRITE_ATTEMPTS = _integer("MAX_WRITE_ATTEMPTS", 20, 1, 100)
#: How long after its last page a resume job reads the held index once more.
RESUME_SWEEP_SECONDS = _integer("RESUME_SWEEP_SECONDS", 60, 0, 43_200)

# Reconcile (what HubSpot holds, compared with the ledger and repaired).
#: When the reconcile function starts walking every tracked contact: an EventBridge Scheduler rate
#: or cron expression, or ``none`` (no schedule, and no journal poll: reconcile runs on demand).
RECONCILE_SCHEDULE = TextSetting(
    env="RECONCILE_SCHEDULE",
    default="rate(1 day)",
    parameter="ReconcileSchedule",
    pattern=r"^(none|rate\([1-9][0-9]{0,4} (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\))$",
    rule="none, rate(N minutes|hours|days) or cron(...)",
)
#: Share of the daily budget above the reserve (HubSpotDailyLimit - HubSpotDailyReserve) that
#: reconcile may spend per day; live syncs keep the rest.
RECONCILE_DAILY_SHARE = NumberSetting(
    env="RECONCILE_DAILY_SHARE", default=0.1, low=0.01, high=1.0, parameter="ReconcileDailyShare"
)
#: What reconcile does with a contact deleted in HubSpot: ``respect`` (recorded as deleted, not
#: re-created) or ``recreate`` (written again with its full current state).
HUBSPOT_DELETIONS = ChoiceSetting(
    env="HUBSPOT_DELETIONS", default=DeletionPolicy.RESPECT, parameter="HubSpotDeletions"
)
#: The reconcile function, which continues a walk by invoking itself (empty: the next schedule does).
RECONCILE_FUNCTION_NAME = _text("RECONCILE_FUNCTION_NAME")
#: Where audiences go in HubSpot: ``property`` (one contact property each), ``list`` (one MANUAL
#: contact list each) or ``both``.
AUDIENCE_TARGET = ChoiceSetting(
    env="AUDIENCE_TARGET", default=AudienceTarget.PROPERTY, parameter="AudienceTarget"
)
#: How long a list's first buffered membership change waits for more before it is sent (seconds).
LIST_FLUSH_SECONDS = _integer("LIST_FLUSH_SECONDS", 30, 1, 900, "ListFlushSeconds")
#: Record ids per add-and-remove call (HubSpot documents no cap for it; halved when refused).
LIST_CHUNK_SIZE = _integer("LIST_CHUNK_SIZE", 500, 1, 10_000, "ListChunkSize")
#: The queue of the lists function's timers (empty: only its schedule wakes it).
LIST_TIMER_QUEUE_URL = _text("LIST_TIMER_QUEUE_URL")


@dataclass(frozen=True)
class IngestSettings:
    queue_url: str
    ingest_secret_id: str
    shard_count: int = SHARD_COUNT.default
    audience_allowlist: frozenset[str] = AUDIENCE_ALLOWLIST.default
    mapping: AttributeMapping = ATTRIBUTE_MAPPING.default
    field_rules: FieldRules = FIELD_RULES.default
    max_body_bytes: int = MAX_BODY_BYTES.default
    max_profiles: int = MAX_PROFILES_PER_REQUEST.default
    max_message_bytes: int = MAX_MESSAGE_BYTES.default
    secret_max_age_seconds: int = SECRET_MAX_AGE_SECONDS.default
    #: Where exclusions are kept for the operator (empty: not kept).
    ledger_table: str = LEDGER_TABLE.default
    exclusion_retention_days: int = EXCLUSION_RETENTION_DAYS.default
    exclusion_store_seconds: float = EXCLUSION_STORE_SECONDS.default

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestSettings:
        env = os.environ if env is None else env
        return cls(
            queue_url=QUEUE_URL.require(env),
            ingest_secret_id=INGEST_SECRET_ID.require(env),
            shard_count=SHARD_COUNT.read(env),
            audience_allowlist=AUDIENCE_ALLOWLIST.read(env),
            mapping=ATTRIBUTE_MAPPING.read(env),
            field_rules=FIELD_RULES.read(env),
            max_body_bytes=MAX_BODY_BYTES.read(env),
            max_profiles=MAX_PROFILES_PER_REQUEST.read(env),
            max_message_bytes=MAX_MESSAGE_BYTES.read(env),
            secret_max_age_seconds=SECRET_MAX_AGE_SECONDS.read(env),
            ledger_table=LEDGER_TABLE.read(env),
            exclusion_retention_days=EXCLUSION_RETENTION_DAYS.read(env),
            exclusion_store_seconds=EXCLUSION_STORE_SECONDS.read(env),
        )


@dataclass(frozen=True)
class UpsertSettings:
    ledger_table: str
    hubspot_secret_id: str
    queue_url: str = QUEUE_URL.default
    dead_letter_queue_url: str = DEAD_LETTER_QUEUE_URL.default
    hubspot_base_url: str = HUBSPOT_BASE_URL.default
    api_version: ApiVersion = HUBSPOT_API_VERSION.default
    tier_limit: int = HUBSPOT_TEN_SECOND_LIMIT.default
    share: float = HUBSPOT_LIMIT_SHARE.default
    flush_lanes: int = FLUSH_LANES.default
    flush_parallel_calls: int = FLUSH_PARALLEL_CALLS.default
    flush_max_delay_seconds: int = FLUSH_MAX_DELAY_SECONDS.default
    flush_function_name: str = FLUSH_FUNCTION_NAME.default
    daily_reserve: int = HUBSPOT_DAILY_RESERVE.default
    daily_limit: int = HUBSPOT_DAILY_LIMIT.default
    account_timezone: str = HUBSPOT_ACCOUNT_TIMEZONE.default
    property_prefix: str = AUDIENCE_PROPERTY_PREFIX.default
    property_group: str = AUDIENCE_PROPERTY_GROUP.default
    property_group_label: str = AUDIENCE_PROPERTY_GROUP_LABEL.default
    schema_cache_seconds: int = SCHEMA_CACHE_SECONDS.default
    audience_property_retry_seconds: int = AUDIENCE_PROPERTY_RETRY_SECONDS.default
    ledger_retention_days: int = LEDGER_RETENTION_DAYS.default
    secret_max_age_seconds: int = HUBSPOT_SECRET_MAX_AGE_SECONDS.default
    retry_base_seconds: int = RETRY_BASE_SECONDS.default
    max_write_attempts: int = MAX_WRITE_ATTEMPTS.default
    audience_cache_seconds: int = AUDIENCE_CACHE_SECONDS.default
    shard_count: int = SHARD_COUNT.default
    resume_sweep_seconds: int = RESUME_SWEEP_SECONDS.default
    reconcile_schedule: str = RECONCILE_SCHEDULE.default
    reconcile_daily_share: float = RECONCILE_DAILY_SHARE.default
    deletions: DeletionPolicy = HUBSPOT_DELETIONS.default
    reconcile_function_name: str = RECONCILE_FUNCTION_NAME.default
    #: the attribute mapping ingest applies: its targets are properties the connector manages
    mapping: AttributeMapping = ATTRIBUTE_MAPPING.default
    field_rules: FieldRules = FIELD_RULES.default
    audience_target: AudienceTarget = AUDIENCE_TARGET.default
    list_flush_seconds: int = LIST_FLUSH_SECONDS.default
    list_chunk_size: int = LIST_CHUNK_SIZE.default
    list_timer_queue_url: str = LIST_TIMER_QUEUE_URL.default

    @property
    def reconcile_scheduled(self) -> bool:
        return self.reconcile_schedule != "none"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> UpsertSettings:
        env = os.environ if env is None else env
        return cls(
            ledger_table=LEDGER_TABLE.require(env),
            hubspot_secret_id=HUBSPOT_SECRET_ID.require(env),
            queue_url=QUEUE_URL.read(env),
            dead_letter_queue_url=DEAD_LETTER_QUEUE_URL.read(env),
            hubspot_base_url=HUBSPOT_BASE_URL.read(env),
            api_version=HUBSPOT_API_VERSION.read(env),
            tier_limit=HUBSPOT_TEN_SECOND_LIMIT.read(env),
            share=HUBSPOT_LIMIT_SHARE.read(env),
            flush_lanes=FLUSH_LANES.read(env),
            flush_parallel_calls=FLUSH_PARALLEL_CALLS.read(env),
            flush_max_delay_seconds=FLUSH_MAX_DELAY_SECONDS.read(env),
            flush_function_name=FLUSH_FUNCTION_NAME.read(env),
            daily_reserve=HUBSPOT_DAILY_RESERVE.read(env),
            daily_limit=HUBSPOT_DAILY_LIMIT.read(env),
            account_timezone=HUBSPOT_ACCOUNT_TIMEZONE.read(env),
            property_prefix=AUDIENCE_PROPERTY_PREFIX.read(env),
            property_group=AUDIENCE_PROPERTY_GROUP.read(env),
            property_group_label=AUDIENCE_PROPERTY_GROUP_LABEL.read(env),
            schema_cache_seconds=SCHEMA_CACHE_SECONDS.read(env),
            audience_property_retry_seconds=AUDIENCE_PROPERTY_RETRY_SECONDS.read(env),
            ledger_retention_days=LEDGER_RETENTION_DAYS.read(env),
            secret_max_age_seconds=HUBSPOT_SECRET_MAX_AGE_SECONDS.read(env),
            retry_base_seconds=RETRY_BASE_SECONDS.read(env),
            max_write_attempts=MAX_WRITE_ATTEMPTS.read(env),
            audience_cache_seconds=AUDIENCE_CACHE_SECONDS.read(env),
            shard_count=SHARD_COUNT.read(env),
            resume_sweep_seconds=RESUME_SWEEP_SECONDS.read(env),
            reconcile_schedule=RECONCILE_SCHEDULE.read(env),
            reconcile_daily_share=RECONCILE_DAILY_SHARE.read(env),
            deletions=HUBSPOT_DELETIONS.read(env),
            reconcile_function_name=RECONCILE_FUNCTION_NAME.read(env),
            mapping=ATTRIBUTE_MAPPING.read(env),
            field_rules=_field_rules(env),
            audience_target=AUDIENCE_TARGET.read(env),
            list_flush_seconds=LIST_FLUSH_SECONDS.read(env),
            list_chunk_size=LIST_CHUNK_SIZE.read(env),
            list_timer_queue_url=LIST_TIMER_QUEUE_URL.read(env),
        )


def _field_rules(env: Mapping[str, str]) -> FieldRules:
    rules = FIELD_RULES.read(env)
    try:
        rules.check_audience_prefix(AUDIENCE_PROPERTY_PREFIX.read(env))
    except ValueError as exc:
        raise SettingsError(f"{FIELD_RULES.env}: {exc}") from exc
    return rules


@dataclass(frozen=True)
class OperationsSettings:
    ledger_table: str
    ingest_secret_id: str
    queue_url: str
    dead_letter_queue_url: str = DEAD_LETTER_QUEUE_URL.default
    shard_count: int = SHARD_COUNT.default
    secret_max_age_seconds: int = SECRET_MAX_AGE_SECONDS.default
    #: the HubSpot side (budget figures, relabelling audience properties), read like the consumer's
    upsert: UpsertSettings | None = None

    @property
    def queue_name(self) -> str:
        return self.queue_url.rstrip("/").rsplit("/", 1)[-1]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperationsSettings:
        env = os.environ if env is None else env
        return cls(
            ledger_table=LEDGER_TABLE.require(env),
            ingest_secret_id=INGEST_SECRET_ID.require(env),
            queue_url=QUEUE_URL.require(env),
            dead_letter_queue_url=DEAD_LETTER_QUEUE_URL.read(env),
            shard_count=SHARD_COUNT.read(env),
            secret_max_age_seconds=SECRET_MAX_AGE_SECONDS.read(env),
            upsert=UpsertSettings.from_env(env),
        )
