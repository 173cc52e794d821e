"""Test doubles behind the library's small interfaces (the ledger Protocol)."""

from __future__ import annotations

from collections.abc import Sequence

from hubspot_activation.upsert.ledger import LedgerEntry


class InMemoryLedger:
    """The ledger Protocol in a dict."""

    def __init__(self) -> None:
        self.entries: dict[str, LedgerEntry] = {}

    def get_many(self, emails: Sequence[str]) -> dict[str, LedgerEntry]:
        return {email: self.entries[email] for email in emails if email in self.entries}

    def put_many(self, entries: Sequence[LedgerEntry]) -> None:
        for entry in entries:
            self.entries[entry.email] = entry
