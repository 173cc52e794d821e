"""Test doubles behind the library's small interfaces (the ledger Protocol)."""

from __future__ import annotations

from collections.abc import Sequence

from hubspot_activation.upsert.ledger import LedgerEntry


class InMemoryLedger:
    """The ledger Protocol in a dict; ``refuse`` names emails whose full entries it cannot hold (as
    DynamoDB refuses an item with a number out of its range), while a bare failure record fits."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.entries: dict[str, LedgerEntry] = {}
        self.refuse = set(refuse)

    def get_many(self, emails: Sequence[str]) -> dict[str, LedgerEntry]:
        return {email: self.entries[email] for email in emails if email in self.entries}

    def put_many(self, entries: Sequence[LedgerEntry]) -> dict[str, str]:
        refused: dict[str, str] = {}
        for entry in entries:
            if entry.email in self.refuse and (entry.audiences or entry.written):
                refused[entry.email] = "the ledger cannot store this contact's state (ValidationException)"
                continue
            self.entries[entry.email] = entry
        return refused
