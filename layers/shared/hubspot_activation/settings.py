"""Configuration from the environment, parsed and validated once per container."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .mapping import AttributeMapping, MappingError
from .queue import DEFAULT_MAX_MESSAGE_BYTES


class SettingsError(ValueError):
    """A deployment mistake: fail at cold start with the variable's name, not on the first request."""


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is required")
    return value


def _integer(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _id_list(env: Mapping[str, str], name: str) -> frozenset[str]:
    return frozenset(item.strip() for item in env.get(name, "").split(",") if item.strip())


@dataclass(frozen=True)
class IngestSettings:
    queue_url: str
    ingest_secret_id: str
    shard_count: int = 16
    audience_allowlist: frozenset[str] = frozenset()
    mapping: AttributeMapping = field(default_factory=AttributeMapping.from_overrides)
    max_body_bytes: int = 5 * 1024 * 1024
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    secret_max_age_seconds: int = 300

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
            shard_count=_integer(env, "SHARD_COUNT", 16, 1, 10_000),
            audience_allowlist=_id_list(env, "AUDIENCE_ALLOWLIST"),
            mapping=mapping,
            max_body_bytes=_integer(env, "MAX_BODY_BYTES", 5 * 1024 * 1024, 1024, 6 * 1024 * 1024),
            max_message_bytes=_integer(env, "MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES, 4096, 1_048_576),
            secret_max_age_seconds=_integer(env, "SECRET_MAX_AGE_SECONDS", 300, 0, 86_400),
        )
