from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hubspot_activation.auth import (
    IngestAuthenticator,
    Unauthorized,
    accepted_tokens,
    presented_credentials,
)

TOKEN = "s3cr3t-token"


class SecretStore:
    def __init__(self, value: Any) -> None:
        self.value = value
        self.cached = value
        self.forced = 0

    def __call__(self, force: bool) -> Any:
        if force:
            self.forced += 1
            self.cached = self.value
        return self.cached


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {TOKEN}"},
        {"authorization": f"bearer {TOKEN}"},
        {"Authorization": basic("aep", TOKEN)},
        {"x-api-key": TOKEN},
        {"X-Api-Key": TOKEN},
    ],
)
def test_every_scheme_is_accepted(headers: dict[str, str]) -> None:
    IngestAuthenticator(SecretStore({"token": TOKEN})).authenticate(headers)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong"},
        {"Authorization": basic("aep", "wrong")},
        {"x-api-key": "wrong"},
        {"Authorization": basic(TOKEN, "")},
        {"Authorization": "Basic !!notbase64"},
        {"Authorization": f"Token {TOKEN}"},
    ],
)
def test_wrong_credentials_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(Unauthorized, match=r"invalid credentials|missing credentials"):
        IngestAuthenticator(SecretStore({"token": TOKEN})).authenticate(headers)


def test_missing_credentials_say_how_to_authenticate() -> None:
    with pytest.raises(Unauthorized, match="missing credentials"):
        IngestAuthenticator(SecretStore({"token": TOKEN})).authenticate({"content-type": "application/json"})


def test_rotated_token_is_picked_up_by_one_forced_read() -> None:
    store = SecretStore({"token": "old"})
    authenticator = IngestAuthenticator(store)
    authenticator.authenticate({"x-api-key": "old"})
    store.value = {"token": "new", "previousToken": "old"}
    authenticator.authenticate({"x-api-key": "new"})
    authenticator.authenticate({"x-api-key": "old"})
    assert store.forced == 1


def test_a_repeated_wrong_token_costs_one_read_a_minute() -> None:
    now = [0.0]
    store = SecretStore({"token": TOKEN})
    authenticator = IngestAuthenticator(store, clock=lambda: now[0])
    for second in range(60):
        now[0] = float(second)
        with pytest.raises(Unauthorized):
            authenticator.authenticate({"x-api-key": "guess"})
    assert store.forced == 1
    now[0] = 60.0
    with pytest.raises(Unauthorized):
        authenticator.authenticate({"x-api-key": "guess"})
    assert store.forced == 2


def test_random_wrong_tokens_cost_at_most_one_read_per_five_seconds() -> None:
    now = [0.0]
    store = SecretStore({"token": TOKEN})
    authenticator = IngestAuthenticator(store, clock=lambda: now[0])
    for attempt in range(600):  # ten per second for a minute, each a new guess
        now[0] = attempt / 10
        with pytest.raises(Unauthorized):
            authenticator.authenticate({"x-api-key": f"guess-{attempt}"})
    assert store.forced == 12


@pytest.mark.parametrize("wrong", ["same-wrong-token", "random"])
def test_a_rotated_token_works_within_five_seconds_whatever_others_send(wrong: str) -> None:
    now = [0.0]
    store = SecretStore({"token": "old"})
    authenticator = IngestAuthenticator(store, clock=lambda: now[0])
    rotated_at = 30.0
    works_at = None
    for step in range(1000):  # a wrong caller sends ten requests a second throughout
        now[0] = step / 10
        if now[0] == rotated_at:
            store.value = {"token": "new"}
        guess = wrong if wrong != "random" else f"guess-{step}"
        with pytest.raises(Unauthorized):
            authenticator.authenticate({"x-api-key": guess})
        if now[0] >= rotated_at and works_at is None:
            try:
                authenticator.authenticate({"x-api-key": "new"})
                works_at = now[0]
            except Unauthorized:
                pass
    assert works_at is not None and works_at - rotated_at <= 5.0


def test_a_token_refused_before_it_was_put_in_the_secret_works_within_a_minute() -> None:
    now = [0.0]
    store = SecretStore({"token": "old"})
    authenticator = IngestAuthenticator(store, clock=lambda: now[0])
    with pytest.raises(Unauthorized):
        authenticator.authenticate({"x-api-key": "new"})  # the caller was switched first
    store.value = {"token": "new"}
    now[0] = 30.0
    with pytest.raises(Unauthorized):
        authenticator.authenticate({"x-api-key": "new"})
    now[0] = 60.0
    authenticator.authenticate({"x-api-key": "new"})


def test_refused_credentials_are_remembered_in_bounded_memory() -> None:
    now = [0.0]
    authenticator = IngestAuthenticator(SecretStore({"token": TOKEN}), clock=lambda: now[0], max_remembered=3)
    for attempt in range(10):
        now[0] = attempt * 10.0
        with pytest.raises(Unauthorized):
            authenticator.authenticate({"x-api-key": f"guess-{attempt}"})
    assert len(authenticator._refused) == 3


def test_secret_shapes() -> None:
    assert accepted_tokens(json.dumps({"username": "aep", "token": "t"})) == ["t"]
    assert accepted_tokens("plain-token") == ["plain-token"]
    assert accepted_tokens({"token": "a", "previousToken": "b"}) == ["a", "b"]
    assert accepted_tokens({"username": "aep"}) == []


def test_presented_credentials_collects_all_schemes() -> None:
    assert presented_credentials({"Authorization": f"Bearer {TOKEN}", "x-api-key": "k"}) == [TOKEN, "k"]


def test_the_error_never_contains_the_token() -> None:
    with pytest.raises(Unauthorized) as raised:
        IngestAuthenticator(SecretStore({"token": TOKEN})).authenticate({"x-api-key": "guess"})
    assert TOKEN not in str(raised.value) and "guess" not in str(raised.value)
