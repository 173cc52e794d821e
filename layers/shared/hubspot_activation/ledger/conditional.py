"""Conditional writes: a condition that did not hold is an answer (False), any other DynamoDB
failure is ``LedgerUnavailable``."""

from __future__ import annotations

from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError

from ..upsert.ledger import LedgerUnavailable


def conditionally(write: Callable[[], object]) -> bool:
    """Make a conditional write: False when its condition did not hold; LedgerUnavailable when
    DynamoDB failed."""
    try:
        write()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
    except BotoCoreError as exc:
        raise LedgerUnavailable(f"DynamoDB call failed: {type(exc).__name__}") from exc
    return True
