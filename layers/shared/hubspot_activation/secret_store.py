"""Reading a secret from Secrets Manager through powertools' cache, the one way both functions do it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Returns a secret's value; ``True`` asks for a fresh read (after a rotation) instead of the cache.
SecretFetcher = Callable[[bool], Any]


def secrets_manager_fetcher(secret_id: str, max_age_seconds: int, client: Any) -> SecretFetcher:
    """A fetcher with a provider of its own (not powertools' module-level default) around
    ``client`` (a boto3 Secrets Manager client, built by the function's composition root); its
    cache still spans invocations."""
    from aws_lambda_powertools.utilities import parameters

    provider = parameters.SecretsProvider(boto3_client=client)

    def fetch(force: bool) -> Any:
        return provider.get(secret_id, max_age=max_age_seconds, force_fetch=force)

    return fetch
