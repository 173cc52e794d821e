"""Reading a secret from Secrets Manager through powertools' cache, the one way both functions do it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Returns a secret's value; ``True`` asks for a fresh read (after a rotation) instead of the cache.
SecretFetcher = Callable[[bool], Any]


def secrets_manager_fetcher(secret_id: str, max_age_seconds: int, client: Any = None) -> SecretFetcher:
    """A fetcher with a provider of its own (not powertools' module-level default), so its boto3
    client follows this container's configuration; its cache still spans invocations."""
    import boto3  # only the functions' adapters call this: keep the pure modules importable without it
    from aws_lambda_powertools.utilities import parameters

    provider = parameters.SecretsProvider(boto3_client=client or boto3.client("secretsmanager"))

    def fetch(force: bool) -> Any:
        return provider.get(secret_id, max_age=max_age_seconds, force_fetch=force)

    return fetch
