"""Auth, scopes, throttling, faults and timeouts: what the client does with each HubSpot outcome."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from hubspot_activation.hubspot.client import HubSpotClient, RetryPolicy, UpsertInput, new_session
from hubspot_activation.hubspot.credentials import StaticTokenCredentials
from hubspot_activation.hubspot.errors import DailyLimitReached, ErrorKind, HubSpotError
from hubspot_activation.hubspot.versions import ApiVersion

from local.hubspot_sandbox import SandboxServer
from tests.hubspot.conftest import FAST_RETRY, TokenSecret, governor_for

ONE = [UpsertInput("ada@example.com", {"firstname": "Ada"})]


def test_unknown_token_is_a_configuration_error_after_one_fresh_secret_read(
    sandbox: SandboxServer, api_version: ApiVersion
) -> None:
    secret = TokenSecret({"accessToken": "pat-na1-00000000-0000-0000-0000-000000000000"})
    client = HubSpotClient(
        StaticTokenCredentials(secret),
        governor_for(sandbox),
        api_version,
        base_url=sandbox.url,
        retry=FAST_RETRY,
    )
    with pytest.raises(HubSpotError) as raised:
        client.batch_upsert(ONE)
    assert raised.value.status == 401 and raised.value.category == "INVALID_AUTHENTICATION"
    assert raised.value.kind is ErrorKind.CONFIGURATION
    assert secret.forced_reads == 1 and client.requests_sent == 2
    assert "pat-na1" not in str(raised.value)


def test_a_rotated_token_is_picked_up_on_401(sandbox: SandboxServer, api_version: ApiVersion) -> None:
    old = sandbox.state.add_private_app_token()
    secret = TokenSecret({"accessToken": old})
    client = HubSpotClient(
        StaticTokenCredentials(secret),
        governor_for(sandbox),
        api_version,
        base_url=sandbox.url,
        retry=FAST_RETRY,
    )
    client.batch_upsert(ONE)
    del sandbox.state.tokens[old]
    secret.value = {"accessToken": sandbox.state.add_private_app_token()}
    assert client.batch_upsert(ONE)[0].ok


def test_missing_scope_is_a_configuration_error(
    make_client: Callable[..., HubSpotClient], sandbox: SandboxServer
) -> None:
    token = sandbox.state.add_private_app_token(
        frozenset({"crm.objects.contacts.write", "crm.objects.contacts.read"})
    )
    client = make_client(token=token)
    with pytest.raises(HubSpotError) as raised:
        client.create_properties(
            [
                {
                    "name": "aud_x",
                    "label": "X",
                    "type": "string",
                    "fieldType": "text",
                    "groupName": "contactinformation",
                }
            ]
        )
    assert raised.value.status == 403 and raised.value.category == "MISSING_SCOPES"
    assert raised.value.kind is ErrorKind.CONFIGURATION
    assert client.requests_sent == 1  # retrying cannot help


def test_ten_secondly_429_waits_for_the_window_and_retries(
    make_client: Callable[..., HubSpotClient], sandbox: SandboxServer
) -> None:
    client = make_client()
    sandbox.state.config.force_429 = 2
    assert client.batch_upsert(ONE)[0].ok
    assert client.governor.throttled == 2 and sandbox.state.throttled["TEN_SECONDLY_ROLLING"] == 2
    assert client.governor.waited_seconds >= 1.0  # one window (the sandbox's is 1 s)


def test_daily_429_stops_at_once_and_keeps_stopping(
    make_client: Callable[..., HubSpotClient], sandbox: SandboxServer
) -> None:
    client = make_client()
    sandbox.state.config.daily_limit = sandbox.state.daily_used
    with pytest.raises(DailyLimitReached) as raised:
        client.batch_upsert(ONE)
    assert raised.value.resets_at > time.time()
    sent = client.requests_sent
    with pytest.raises(DailyLimitReached):
        client.batch_upsert(ONE)
    assert client.requests_sent == sent  # no request is wasted until the reset


def test_daily_reserve_is_kept_for_other_integrations(
    make_client: Callable[..., HubSpotClient], sandbox: SandboxServer
) -> None:
    sandbox.state.config.daily_limit = 50
    client = make_client(daily_reserve=45)
    for _ in range(5):  # the fifth answer says 45 left: the reserve is reached
        client.batch_upsert(ONE)
    with pytest.raises(DailyLimitReached):
        client.batch_upsert(ONE)
    assert sandbox.state.daily_used == 5
    assert sandbox.state.throttled["DAILY"] == 0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried(
    make_client: Callable[..., HubSpotClient], sandbox: SandboxServer, status: int
) -> None:
    client = make_client()
    sandbox.state.config.error_status = status
    sandbox.state.config.error_rate = 1.0
    with pytest.raises(HubSpotError) as raised:
        client.batch_upsert(ONE)
    assert raised.value.kind is ErrorKind.RETRYABLE and raised.value.status == status
    assert client.requests_sent == 4
    sandbox.state.config.error_rate = 0.5
    assert client.batch_upsert(ONE)[0].ok


def test_locked_423_is_retried(make_client: Callable[..., HubSpotClient], sandbox: SandboxServer) -> None:
    client = make_client()
    sandbox.state.config.locked_rate = 0.3
    for i in range(5):
        assert client.batch_upsert([UpsertInput(f"l{i}@example.com", {"city": "x"})])[0].ok


def test_dropped_connections_are_retried(
    make_client: Callable[..., HubSpotClient], sandbox: SandboxServer
) -> None:
    client = make_client()
    sandbox.state.config.drop_rate = 1.0
    with pytest.raises(HubSpotError) as raised:
        client.batch_upsert(ONE)
    assert raised.value.kind is ErrorKind.RETRYABLE
    sandbox.state.config.drop_rate = 0.4
    for i in range(5):
        assert client.batch_upsert([UpsertInput(f"d{i}@example.com", {"city": "x"})])[0].ok


def test_timeouts_are_retryable(sandbox: SandboxServer, api_version: ApiVersion) -> None:
    client = HubSpotClient(
        StaticTokenCredentials(TokenSecret({"accessToken": sandbox.state.add_private_app_token()})),
        governor_for(sandbox),
        api_version,
        base_url=sandbox.url,
        session=new_session(),
        timeout=(1, 0.1),
        retry=FAST_RETRY,
    )
    sandbox.state.config.latency_ms = 300
    with pytest.raises(HubSpotError) as raised:
        client.batch_upsert(ONE)
    assert raised.value.kind is ErrorKind.RETRYABLE and "Timeout" in raised.value.message


class FakeClock:
    """The client's clock, moved only by its own backoff sleeps: no test time passes."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_deadline_ends_the_retries_before_it(sandbox: SandboxServer, api_version: ApiVersion) -> None:
    clock = FakeClock()
    client = HubSpotClient(
        StaticTokenCredentials(TokenSecret({"accessToken": sandbox.state.add_private_app_token()})),
        governor_for(sandbox),
        api_version,
        base_url=sandbox.url,
        session=new_session(),
        timeout=(1, 2.5),
        retry=RetryPolicy(max_attempts=5, max_wait_seconds=30, base_backoff_seconds=1.0),
        sleep=clock.sleep,
        clock=clock,
    )
    sandbox.state.config.error_rate = 1.0
    # Attempts take up to 3.5 s (their timeouts); backoffs are 0.5-1.5 s, then 1-3 s. The second
    # attempt still ends by 5 s; a third, whatever the jitter, would not, so the call gives up
    # without waiting for it.
    with pytest.raises(HubSpotError) as raised:
        client.batch_upsert(ONE, deadline=5.0)
    assert raised.value.kind is ErrorKind.RETRYABLE and raised.value.status == 502
    assert client.requests_sent == 2
    assert clock.now + client.attempt_seconds <= 5.0


def test_no_attempt_starts_when_the_governor_holds_it_past_the_deadline(
    make_client: Callable[..., HubSpotClient],
) -> None:
    client = make_client()
    client.governor.on_throttled("TEN_SECONDLY_ROLLING", {"Retry-After": "60"})
    with pytest.raises(HubSpotError) as raised:
        client.batch_upsert(ONE, deadline=time.monotonic() + 30)
    assert raised.value.kind is ErrorKind.RETRYABLE and not raised.value.ambiguous
    assert client.requests_sent == 0
