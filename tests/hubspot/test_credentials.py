"""OAuth and static credentials: caching, expiry, refresh on 401, clear errors, no secret leaks."""

from __future__ import annotations

import logging

import pytest
from hubspot_activation.hubspot.client import HubSpotClient, UpsertInput, new_session
from hubspot_activation.hubspot.credentials import (
    CredentialError,
    OAuthCredentials,
    RotatingCredentials,
    StaticTokenCredentials,
    credentials_from_secret,
)
from hubspot_activation.hubspot.versions import ApiVersion, Paths

from local.hubspot_sandbox import SandboxServer
from tests.hubspot.conftest import FAST_RETRY, TokenSecret, governor_for


def oauth_client(
    sandbox: SandboxServer, secret: TokenSecret, version: ApiVersion = ApiVersion.V2026_09
) -> HubSpotClient:
    session = new_session()
    credentials = OAuthCredentials(secret, sandbox.url + Paths(version).oauth_token, session)
    return HubSpotClient(
        credentials, governor_for(sandbox), version, base_url=sandbox.url, session=session, retry=FAST_RETRY
    )


def oauth_secret(sandbox: SandboxServer) -> TokenSecret:
    client_id, client_secret, refresh = sandbox.state.add_oauth_app()
    return TokenSecret({"clientId": client_id, "clientSecret": client_secret, "refreshToken": refresh})


@pytest.mark.parametrize("version", list(ApiVersion))
def test_oauth_token_is_fetched_once_and_reused(sandbox: SandboxServer, version: ApiVersion) -> None:
    client = oauth_client(sandbox, oauth_secret(sandbox), version)
    for i in range(5):
        assert client.batch_upsert([UpsertInput(f"o{i}@example.com", {"city": "x"})])[0].ok
    assert sandbox.state.requests["POST oauth_token"] == 1


def test_expired_oauth_token_is_refreshed_once_on_401(sandbox: SandboxServer) -> None:
    client = oauth_client(sandbox, oauth_secret(sandbox))
    client.batch_upsert([UpsertInput("a@example.com", {"city": "x"})])
    for token in sandbox.state.tokens.values():
        token.expires_at = 0  # HubSpot answers EXPIRED_AUTHENTICATION
    assert client.batch_upsert([UpsertInput("b@example.com", {"city": "x"})])[0].ok
    assert sandbox.state.requests["POST oauth_token"] == 2


def test_token_is_refreshed_before_it_expires(sandbox: SandboxServer) -> None:
    now = [1_000_000.0]
    secret = oauth_secret(sandbox)
    credentials = OAuthCredentials(
        secret, sandbox.url + "/oauth/2026-03/token", new_session(), clock=lambda: now[0]
    )
    first = credentials.access_token()
    now[0] += 1_800 - 300
    assert credentials.access_token() == first
    now[0] += 200  # within the margin before expires_in
    assert credentials.access_token() != first


def test_bad_refresh_token_is_a_clear_configuration_error(sandbox: SandboxServer) -> None:
    secret = oauth_secret(sandbox)
    secret.value["refreshToken"] = "na1-revoked"
    with pytest.raises(CredentialError, match="BAD_REFRESH_TOKEN") as raised:
        oauth_client(sandbox, secret).batch_upsert([UpsertInput("a@example.com", {})])
    assert "na1-revoked" not in str(raised.value) and secret.value["clientSecret"] not in str(raised.value)


def test_bad_client_secret_is_a_configuration_error(sandbox: SandboxServer) -> None:
    secret = oauth_secret(sandbox)
    secret.value["clientSecret"] = "wrong"
    with pytest.raises(CredentialError, match="client id or secret"):
        oauth_client(sandbox, secret).batch_upsert([UpsertInput("a@example.com", {})])


def test_secret_shape_selects_the_credential_kind() -> None:
    session = new_session()
    assert isinstance(
        credentials_from_secret(TokenSecret({"accessToken": "pat"}), "u", session), StaticTokenCredentials
    )
    oauth = credentials_from_secret(
        TokenSecret({"clientId": "i", "clientSecret": "s", "refreshToken": "r"}), "u", session
    )
    assert isinstance(oauth, OAuthCredentials)
    with pytest.raises(CredentialError, match="accessToken"):
        credentials_from_secret(TokenSecret({"token": "x"}), "u", session)
    with pytest.raises(CredentialError, match="not JSON"):
        credentials_from_secret(lambda force: "not json", "u", session)


def test_no_secret_in_reprs_or_logs(sandbox: SandboxServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = oauth_secret(sandbox)
    client = oauth_client(sandbox, secret)
    client.batch_upsert([UpsertInput("a@example.com", {"city": "x"})])
    sandbox.state.config.force_429 = 1
    client.batch_upsert([UpsertInput("b@example.com", {"city": "x"})])
    access_tokens = [t.value for t in sandbox.state.tokens.values()]
    texts = [repr(client.credentials), caplog.text]
    for value in [secret.value["clientSecret"], secret.value["refreshToken"], *access_tokens]:
        assert all(value not in text for text in texts)


def test_moving_the_secret_from_a_token_to_oauth_takes_effect_on_the_next_401(
    sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    token = sandbox.state.add_private_app_token()
    secret = TokenSecret({"accessToken": token})
    session = new_session()
    credentials = RotatingCredentials(secret, sandbox.url + Paths(ApiVersion.V2026_09).oauth_token, session)
    client = HubSpotClient(
        credentials,
        governor_for(sandbox),
        ApiVersion.V2026_09,
        base_url=sandbox.url,
        session=session,
        retry=FAST_RETRY,
    )
    assert client.batch_upsert([UpsertInput("a@example.com", {"city": "x"})])[0].ok
    # The operator installs the OAuth app and replaces the secret; the old token is revoked.
    secret.value = dict(oauth_secret(sandbox).value)
    sandbox.state.tokens.pop(token)
    assert client.batch_upsert([UpsertInput("b@example.com", {"city": "y"})])[0].ok
    assert (
        sandbox.state.requests["POST oauth_token"] == 1
        and repr(credentials) == "RotatingCredentials(<hidden>)"
    )
