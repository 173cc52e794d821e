"""Reconcile's view of HubSpot, and the flusher's before a ``fill_empty`` write: the
``reconcile.ports.HubSpotReader`` and ``upsert.ports.ContactReader`` adapter over the client's
batch reads, one HubSpot call per method call.

What HubSpot is assumed to do (its specs and guides leave it open; the sandbox does the same):

- A batch read answers with no per-input echo of the key asked: a ``SimplePublicObject`` carries
  its own ``id`` and ``properties`` only, and results come in no promised order. So each record is
  matched to a key by what it holds: by email, its ``email`` (or, should HubSpot match an address
  a merge left in ``hs_additional_emails``, that property); by id, its own ``id`` or, for a record
  id a merge retired, ``hs_merged_object_ids``, which lists the ids merged into the record (every
  one since its 2024-25 merge change, earlier merges' included). Both properties are always asked
  for.
- A key it does not find is listed in an ``errors`` entry's ``context.ids`` (category
  ``OBJECT_NOT_FOUND``), whether the answer is a 207 or, in 2026-09, a 200.

A record matching no key is given to the one key left unexplained when there is exactly one of
each; otherwise, and for a key HubSpot reports another error for, the read raises rather than
answer without the key, which would tell reconcile HubSpot does not hold that contact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from ..reconcile.model import IDENTITY_PROPERTIES, HubSpotRecord
from .batch import BatchReadOutcome, ReadRecord
from .client import HubSpotClient
from .errors import ErrorKind, HubSpotError


class HubSpotContactReader:
    def __init__(self, client: HubSpotClient) -> None:
        self._client = client

    def by_email(
        self, emails: Sequence[str], properties: Sequence[str], deadline: float | None = None
    ) -> dict[str, HubSpotRecord]:
        """Live contacts by email, keyed by the email asked for in lower case; one HubSpot does not
        hold is absent. ``deadline``: as the client's ``batch_read``."""
        keys = list(dict.fromkeys(email.strip().lower() for email in emails))
        outcome = self._client.batch_read(keys, _asked(properties), id_property="email", deadline=deadline)
        return _match(keys, outcome, _emails_of)

    def by_id(
        self, ids: Sequence[str], properties: Sequence[str], archived: bool, deadline: float | None = None
    ) -> dict[str, HubSpotRecord]:
        """Contacts by record id, keyed by the id asked for: live ones (a merged-away id answers
        with the record it was merged into, whose ``id`` is the survivor's), or with ``archived``
        only archived ones."""
        keys = list(dict.fromkeys(str(contact_id) for contact_id in ids))
        outcome = self._client.batch_read(keys, _asked(properties), archived=archived, deadline=deadline)
        return _match(keys, outcome, _ids_of)


def _asked(properties: Iterable[str]) -> list[str]:
    return list(dict.fromkeys([*properties, *IDENTITY_PROPERTIES]))


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(";") if part.strip()]


def _emails_of(record: ReadRecord) -> tuple[set[str], set[str]]:
    """The emails ``record`` answers to: its own first, then its additional ones."""
    own = {email.lower() for email in _split(record.properties.get("email"))}
    additional = {email.lower() for email in _split(record.properties.get("hs_additional_emails"))}
    return own, additional - own


def _ids_of(record: ReadRecord) -> tuple[set[str], set[str]]:
    """The record ids ``record`` answers to: its own first, then those merged into it."""
    return {record.id}, set(_split(record.properties.get("hs_merged_object_ids"))) - {record.id}


def _match(
    keys: list[str],
    outcome: BatchReadOutcome,
    names_of: Callable[[ReadRecord], tuple[set[str], set[str]]],
) -> dict[str, HubSpotRecord]:
    if outcome.failed:
        # The first failure stands for them all: the read as a whole cannot be answered.
        raise next(iter(outcome.failed.values()))
    asked = set(keys)
    found: dict[str, ReadRecord] = {}
    # Own names first: a key a record answers to as itself is never given to another record.
    for rank in (0, 1):
        for record in outcome.records:
            for name in names_of(record)[rank] & asked:
                found.setdefault(name, record)
    # A record answering for several keys may come back once for each.
    matched = {record.id for record in found.values()}
    strays = list({r.id: r for r in outcome.records if r.id not in matched}.values())
    missing = set(outcome.missing)
    unexplained = [key for key in keys if key not in found and key not in missing]
    if len(strays) == 1 and len(unexplained) == 1:
        found[unexplained[0]] = strays[0]
    elif unexplained:
        raise HubSpotError(
            ErrorKind.PERMANENT,
            f"HubSpot's batch read accounted for {len(keys) - len(unexplained)} of {len(keys)} "
            f"contacts; {len(strays)} records it returned match none of the others",
        )
    return {
        key: HubSpotRecord(record.id, dict(record.properties), archived=record.archived)
        for key, record in found.items()
    }
