"""Configuration from the environment, parsed and validated once per container."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from .hubspot.versions import ApiVersion
from .ingest.mapping import AttributeMapping, MappingError
from .ledger.keys import PENDING_PARTITIONS
from .messages import DEFAULT_MAX_MESSAGE_BYTES

Number = TypeVar("Number", int, float)
PROPERTY_PREFIX = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
#: How long an audience whose HubSpot property could not be created (the custom property limit, a
#: refusal) is refused before the next update asking for it tries again.
AUDIENCE_PROPERTY_RETRY_SECONDS = 30
#: FIFO message groups a contact's email hashes into; ingest, replay and resume jobs must agree.
SHARD_COUNT = 48


class SettingsError(ValueError):
    """A deployment mistake: fail at cold start with the variable's name, not on the first request."""


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is required")
    return value


def _number(env: Mapping[str, str], name: str, default: Number, low: Number, high: Number) -> Number:
    """An int or float setting (the type of ``default``) within [low, high]."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    kind = type(default)
    try:
        value = kind(raw)
    except ValueError as exc:
        raise SettingsError(
            f"{name} must be {'an integer' if kind is int else 'a number'}, got {raw!r}"
        ) from exc
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _integer(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    return _number(env, name, default, low, high)


def _shard_count(env: Mapping[str, str]) -> int:
    return _integer(env, "SHARD_COUNT", SHARD_COUNT, 1, 10_000)


def _id_list(env: Mapping[str, str], name: str) -> frozenset[str]:
    return frozenset(item.strip() for item in env.get(name, "").split(",") if item.strip())


@dataclass(frozen=True)
class IngestSettings:
    queue_url: str
    ingest_secret_id: str
    shard_count: int = SHARD_COUNT
    audience_allowlist: frozenset[str] = frozenset()
    mapping: AttributeMapping = field(default_factory=AttributeMapping.from_overrides)
    max_body_bytes: int = 5 * 1024 * 1024
    max_profiles: int = 10_000
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    #: How long the ingest token is cached: a token removed from the secret stops working within it.
    secret_max_age_seconds: int = 60
    #: Where exclusions are kept for the operator (empty: not kept), and for how long.
    ledger_table: str = ""
    exclusion_retention_days: int = 30
    #: Time the exclusion list may cost an answer (no write starts later; also each call's read
    #: timeout). Short in AWS, where a write takes milliseconds; the local stack's moto is slower.
    exclusion_store_seconds: float = 0.3

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestSettings:
        env = os.environ if env is None else env
        try:
            mapping = AttributeMapping.from_json(env.get("ATTRIBUTE_MAPPING"))
        except MappingError as exc:
            raise SettingsError(f"ATTRIBUTE_MAPPING: {exc}") from exc
        return cls(
            queue_url=_required(env, "QUEUE_URL"),
            ingest_secret_id=_required(env, "INGEST_SECRET_ID"),
            shard_count=_shard_count(env),
            audience_allowlist=_id_list(env, "AUDIENCE_ALLOWLIST"),
            mapping=mapping,
            max_body_bytes=_integer(env, "MAX_BODY_BYTES", 5 * 1024 * 1024, 1024, 6 * 1024 * 1024),
            max_profiles=_integer(env, "MAX_PROFILES_PER_REQUEST", 10_000, 1, 100_000),
            max_message_bytes=_integer(env, "MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES, 4096, 1_048_576),
            secret_max_age_seconds=_integer(env, "SECRET_MAX_AGE_SECONDS", 60, 0, 86_400),
            ledger_table=env.get("LEDGER_TABLE", "").strip(),
            exclusion_retention_days=_integer(env, "EXCLUSION_RETENTION_DAYS", 30, 1, 3650),
            exclusion_store_seconds=float(_number(env, "EXCLUSION_STORE_SECONDS", 0.3, 0.05, 1.5)),
        )


@dataclass(frozen=True)
class UpsertSettings:
    ledger_table: str
    hubspot_secret_id: str
    queue_url: str = ""
    dead_letter_queue_url: str = ""
    hubspot_base_url: str = "https://api.hubapi.com"
    #: The newest generally available version; v3 goes unsupported in September 2027.
    api_version: ApiVersion = ApiVersion.V2026_09
    tier_limit: int = 100
    share: float = 0.8
    #: Flusher lanes: each owns a part of the pending index and a part of the HubSpot budget.
    flush_lanes: int = 1
    #: HubSpot calls one lane has in flight at once.
    flush_parallel_calls: int = 8
    #: How long a pending contact waits for the queue's backlog to be merged before it is written.
    flush_max_delay_seconds: int = 10
    #: The flush function, woken by the merge and by itself (empty: never woken, the schedule runs it).
    flush_function_name: str = ""
    daily_reserve: int = 10_000
    daily_limit: int = 250_000
    account_timezone: str = "UTC"
    property_prefix: str = "aud_"
    property_group: str = "audience_activations"
    property_group_label: str = "Audience activations"
    schema_cache_seconds: int = 600
    audience_property_retry_seconds: int = AUDIENCE_PROPERTY_RETRY_SECONDS
    ledger_retention_days: int = 400
    secret_max_age_seconds: int = 300
    #: First retry delay of a transiently failed message; it doubles with each receive.
    retry_base_seconds: int = 10
    #: Transient failures of a contact's write before it is recorded as failed (replayable).
    max_write_attempts: int = 20
    #: How long audience metadata (names, deletions) is cached per container.
    audience_cache_seconds: int = 30
    #: FIFO message groups contacts are spread over (a resume job queues contacts in their groups).
    shard_count: int = SHARD_COUNT
    #: How long after its last page a resume job reads the held index once more.
    resume_sweep_seconds: int = 60

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> UpsertSettings:
        env = os.environ if env is None else env
        try:
            version = ApiVersion.parse(env.get("HUBSPOT_API_VERSION", "").strip() or ApiVersion.V2026_09)
        except ValueError as exc:
            raise SettingsError(f"HUBSPOT_API_VERSION: {exc}") from exc
        prefix = env.get("AUDIENCE_PROPERTY_PREFIX", "").strip() or "aud_"
        if not PROPERTY_PREFIX.match(prefix) or prefix.startswith("hs_"):
            raise SettingsError(
                "AUDIENCE_PROPERTY_PREFIX must be lower-case letters, digits or _, start with a "
                "letter, be at most 40 characters and not start with hs_"
            )
        group = env.get("AUDIENCE_PROPERTY_GROUP", "").strip() or "audience_activations"
        if not PROPERTY_PREFIX.match(group):
            raise SettingsError("AUDIENCE_PROPERTY_GROUP must be lower-case letters, digits or _")
        return cls(
            ledger_table=_required(env, "LEDGER_TABLE"),
            hubspot_secret_id=_required(env, "HUBSPOT_SECRET_ID"),
            queue_url=env.get("QUEUE_URL", "").strip(),
            dead_letter_queue_url=env.get("DEAD_LETTER_QUEUE_URL", "").strip(),
            hubspot_base_url=env.get("HUBSPOT_BASE_URL", "").strip() or "https://api.hubapi.com",
            api_version=version,
            tier_limit=_integer(env, "HUBSPOT_TEN_SECOND_LIMIT", 100, 1, 10_000),
            share=_number(env, "HUBSPOT_LIMIT_SHARE", 0.8, 0.01, 1.0),
            flush_lanes=_integer(env, "FLUSH_LANES", 1, 1, PENDING_PARTITIONS),
            flush_parallel_calls=_integer(env, "FLUSH_PARALLEL_CALLS", 8, 1, 32),
            flush_max_delay_seconds=_integer(env, "FLUSH_MAX_DELAY_SECONDS", 10, 0, 600),
            flush_function_name=env.get("FLUSH_FUNCTION_NAME", "").strip(),
            daily_reserve=_integer(env, "HUBSPOT_DAILY_RESERVE", 10_000, 0, 100_000_000),
            daily_limit=_integer(env, "HUBSPOT_DAILY_LIMIT", 250_000, 1, 100_000_000),
            account_timezone=env.get("HUBSPOT_ACCOUNT_TIMEZONE", "").strip() or "UTC",
            property_prefix=prefix,
            property_group=group,
            property_group_label=env.get("AUDIENCE_PROPERTY_GROUP_LABEL", "").strip()
            or "Audience activations",
            schema_cache_seconds=_integer(env, "SCHEMA_CACHE_SECONDS", 600, 0, 86_400),
            audience_property_retry_seconds=_integer(
                env, "AUDIENCE_PROPERTY_RETRY_SECONDS", AUDIENCE_PROPERTY_RETRY_SECONDS, 0, 3600
            ),
            ledger_retention_days=_integer(env, "LEDGER_RETENTION_DAYS", 400, 1, 3650),
            secret_max_age_seconds=_integer(env, "SECRET_MAX_AGE_SECONDS", 300, 0, 86_400),
            retry_base_seconds=_integer(env, "RETRY_BASE_SECONDS", 10, 0, 600),
            max_write_attempts=_integer(env, "MAX_WRITE_ATTEMPTS", 20, 1, 100),
            audience_cache_seconds=_integer(env, "AUDIENCE_CACHE_SECONDS", 30, 0, 3600),
            shard_count=_shard_count(env),
            resume_sweep_seconds=_integer(env, "RESUME_SWEEP_SECONDS", 60, 0, 43_200),
        )


@dataclass(frozen=True)
class OperationsSettings:
    ledger_table: str
    ingest_secret_id: str
    queue_url: str
    dead_letter_queue_url: str = ""
    shard_count: int = SHARD_COUNT
    secret_max_age_seconds: int = 60
    #: the HubSpot side (budget figures, relabelling audience properties), read like the consumer's
    upsert: UpsertSettings | None = None

    @property
    def queue_name(self) -> str:
        return self.queue_url.rstrip("/").rsplit("/", 1)[-1]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperationsSettings:
        env = os.environ if env is None else env
        return cls(
            ledger_table=_required(env, "LEDGER_TABLE"),
            ingest_secret_id=_required(env, "INGEST_SECRET_ID"),
            queue_url=_required(env, "QUEUE_URL"),
            dead_letter_queue_url=env.get("DEAD_LETTER_QUEUE_URL", "").strip(),
            shard_count=_shard_count(env),
            secret_max_age_seconds=_integer(env, "SECRET_MAX_AGE_SECONDS", 60, 0, 86_400),
            upsert=UpsertSettings.from_env(env),
        )
