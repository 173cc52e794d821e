from __future__ import annotations

import pytest
from hubspot_activation import settings as settings_module
from hubspot_activation.attribute_mapping import DEFAULT_MAPPING, AttributeMapping, MappingError
from hubspot_activation.emails import email_problem, normalize_email
from hubspot_activation.settings import (
    IngestSettings,
    OperationsSettings,
    Setting,
    SettingsError,
    UpsertSettings,
)
from hubspot_activation.timestamps import TimestampError, iso_from_ms, to_epoch_ms
from hubspot_activation.upsert.adapter import inbound_messages
from hubspot_activation.upsert.plan import InboundMessage

BASE = {"QUEUE_URL": "https://sqs/q.fifo", "INGEST_SECRET_ID": "arn:secret"}


def test_settings_defaults_and_overrides() -> None:
    settings = IngestSettings.from_env(BASE)
    assert settings.shard_count == 48 and settings.audience_allowlist == frozenset()
    assert settings.mapping.paths == DEFAULT_MAPPING
    custom = IngestSettings.from_env(
        {
            **BASE,
            "SHARD_COUNT": "4",
            "AUDIENCE_ALLOWLIST": " a, b ,,",
            "ATTRIBUTE_MAPPING": '{"loyalty.tier": "loyalty_tier"}',
        }
    )
    assert custom.shard_count == 4 and custom.audience_allowlist == {"a", "b"}
    assert custom.mapping.paths["loyalty.tier"] == "loyalty_tier"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"INGEST_SECRET_ID": "x"}, "QUEUE_URL"),
        ({**BASE, "SHARD_COUNT": "zero"}, "SHARD_COUNT"),
        ({**BASE, "SHARD_COUNT": "0"}, "SHARD_COUNT"),
        ({**BASE, "ATTRIBUTE_MAPPING": "{"}, "ATTRIBUTE_MAPPING"),
        ({**BASE, "ATTRIBUTE_MAPPING": '{"a": "Bad Name"}'}, "ATTRIBUTE_MAPPING"),
        ({**BASE, "ATTRIBUTE_MAPPING": "[1]"}, "ATTRIBUTE_MAPPING"),
    ],
)
def test_settings_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        IngestSettings.from_env(env)


def test_mapping_cannot_target_email() -> None:
    with pytest.raises(MappingError):
        AttributeMapping.from_overrides({"x": "email"})


def test_email_helpers() -> None:
    assert normalize_email("  Ada@Example.COM ") == "ada@example.com"
    assert email_problem("ada@example.com") is None
    assert email_problem("ada.lovelace+tag@mail.example.co.uk") is None
    assert email_problem("ada..x@example.com") is not None
    assert email_problem("") == "email is empty"


def test_timestamps() -> None:
    assert to_epoch_ms("2026-11-22T10:00:00Z") == 1_795_341_600_000
    assert to_epoch_ms("2026-11-22 10:00:00") == 1_795_341_600_000
    assert iso_from_ms(1_795_341_600_000) == "2026-11-22T10:00:00.000Z"
    for bad in ("tomorrow", "", None, True, {"t": 1}):
        with pytest.raises(TimestampError):
            to_epoch_ms(bad)


UPSERT = {"LEDGER_TABLE": "ledger", "HUBSPOT_SECRET_ID": "arn:hubspot"}


def test_upsert_settings_defaults_and_overrides() -> None:
    settings = UpsertSettings.from_env(UPSERT)
    assert (settings.api_version, settings.tier_limit, settings.share) == ("2026-09", 100, 0.8)
    assert settings.property_prefix == "aud_" and settings.property_group == "audience_activations"
    custom = UpsertSettings.from_env(
        {
            **UPSERT,
            "HUBSPOT_API_VERSION": "v3",
            "HUBSPOT_TEN_SECOND_LIMIT": "190",
            "HUBSPOT_LIMIT_SHARE": "0.5",
            "FLUSH_LANES": "4",
            "FLUSH_PARALLEL_CALLS": "2",
            "FLUSH_MAX_DELAY_SECONDS": "0",
            "FLUSH_FUNCTION_NAME": "stack-flush",
            "MAX_WRITE_ATTEMPTS": "3",
        }
    )
    assert (custom.api_version, custom.tier_limit, custom.share) == ("v3", 190, 0.5)
    assert (custom.flush_lanes, custom.flush_parallel_calls, custom.flush_max_delay_seconds) == (4, 2, 0)
    assert (custom.flush_function_name, custom.max_write_attempts) == ("stack-flush", 3)


def test_flush_defaults_one_lane_woken_by_nobody() -> None:
    """Without a function name the merge wakes nothing: the schedule alone starts flushes."""
    settings = UpsertSettings.from_env(UPSERT)
    assert (settings.flush_lanes, settings.flush_parallel_calls, settings.flush_max_delay_seconds) == (
        1,
        8,
        10,
    )
    assert (settings.flush_function_name, settings.max_write_attempts) == ("", 20)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HUBSPOT_SECRET_ID": "x"}, "LEDGER_TABLE"),
        ({**UPSERT, "HUBSPOT_API_VERSION": "v4"}, "HUBSPOT_API_VERSION"),
        ({**UPSERT, "HUBSPOT_LIMIT_SHARE": "1.5"}, "HUBSPOT_LIMIT_SHARE"),
        ({**UPSERT, "AUDIENCE_PROPERTY_PREFIX": "hs_aud_"}, "AUDIENCE_PROPERTY_PREFIX"),
        ({**UPSERT, "AUDIENCE_PROPERTY_PREFIX": "Aud"}, "AUDIENCE_PROPERTY_PREFIX"),
        # More lanes than the pending index has partitions would leave lanes with nothing to read.
        ({**UPSERT, "FLUSH_LANES": "17"}, "FLUSH_LANES"),
        ({**UPSERT, "FLUSH_LANES": "0"}, "FLUSH_LANES"),
        ({**UPSERT, "FLUSH_PARALLEL_CALLS": "0"}, "FLUSH_PARALLEL_CALLS"),
        ({**UPSERT, "FLUSH_MAX_DELAY_SECONDS": "-1"}, "FLUSH_MAX_DELAY_SECONDS"),
        ({**UPSERT, "MAX_WRITE_ATTEMPTS": "0"}, "MAX_WRITE_ATTEMPTS"),
    ],
)
def test_upsert_settings_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        UpsertSettings.from_env(env)


def test_sqs_records_become_inbound_messages() -> None:
    event = {
        "Records": [
            {
                "messageId": "m1",
                "receiptHandle": "rh",
                "body": "{}",
                "attributes": {"MessageGroupId": "c3", "ApproximateReceiveCount": "4"},
            }
        ]
    }
    assert inbound_messages(event) == [InboundMessage("m1", "c3", "{}", "rh", 4)]


@pytest.mark.parametrize(
    "value",
    [
        1_795_166_100,  # seconds
        1_795_166_100_000,  # milliseconds
        1_795_166_100_000_000,  # microseconds
        1_795_166_100_000_000_000,  # nanoseconds
        "1795166100000000",
        1_795_166_100.0,
        "2026-11-20T09:15:00Z",
        "2026-11-20T09:15:00.000+0000",
        "2026-11-20T10:15:00+01:00",
        "2026-11-20t09:15:00z",
        "2026-11-20T09:15:00.000000001Z",
    ],
)
def test_epoch_units_are_told_apart_by_magnitude(value: object) -> None:
    assert to_epoch_ms(value) == 1_795_166_100_000


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        -float("inf"),
        10**400,
        "9" * 400,
        10**20,
        "yesterday",
        [],
        True,
    ],
)
def test_unreadable_timestamps_raise_the_timestamp_error_only(value: object) -> None:
    with pytest.raises(TimestampError):
        to_epoch_ms(value)


def test_audience_timestamps_before_2000_are_unreadable_but_birthdates_are_not() -> None:
    from hubspot_activation.timestamps import audience_epoch_ms

    with pytest.raises(TimestampError, match="before 2000"):
        audience_epoch_ms("1999-12-31T23:59:59Z")
    assert audience_epoch_ms("2000-01-01T00:00:00Z") == 946_684_800_000
    assert to_epoch_ms("1960-05-01") == -305_164_800_000


def test_each_variable_is_declared_once() -> None:
    declared = [value for value in vars(settings_module).values() if isinstance(value, Setting)]
    assert len({setting.env for setting in declared}) == len(declared)


def test_the_ingest_token_and_the_hubspot_credential_are_cached_for_their_own_times() -> None:
    """The operations function holds both secrets: the ingest token's age does not stretch or
    shorten the HubSpot credential's."""
    env = {**BASE, **UPSERT, "SECRET_MAX_AGE_SECONDS": "5"}
    settings = OperationsSettings.from_env(env)
    assert settings.secret_max_age_seconds == 5
    assert settings.upsert is not None and settings.upsert.secret_max_age_seconds == 300
    tuned = OperationsSettings.from_env({**env, "HUBSPOT_SECRET_MAX_AGE_SECONDS": "30"})
    assert (tuned.secret_max_age_seconds, tuned.upsert and tuned.upsert.secret_max_age_seconds) == (5, 30)
