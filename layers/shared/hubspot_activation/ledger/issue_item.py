"""The sparse ``issues`` index's attributes, and its items as the operator's routes read them.

An item is in the index only while it has ``issueStatus``: a failed contact, a contact holding
changes of an audience deleted when they arrived, an exclusion. The index sorts one status by
``issueAt`` (epoch ms), newest first; its key (``IssueKey``) is where a page continues.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .exclusion_item import EXCLUDED_EMAIL, PROFILE_INDEX, REQUEST_ID
from .keys import ISSUE_AT, ISSUE_STATUS, KEY
from .values import Item, integer, number, string, text


@dataclass(frozen=True)
class IssueKey:
    """An item's position in the index: its table key, its status and when the issue arose."""

    key: str
    status: str
    at_ms: int


@dataclass(frozen=True)
class Issue:
    """An item of the index: a contact (``key`` is its email) or an exclusion (``excluded_email``,
    ``request_id`` and ``profile_index`` say which profile of which request)."""

    key: str
    status: str | None
    at_ms: int | None
    reason: str | None
    hubspot_id: str | None = None
    excluded_email: str | None = None
    request_id: str | None = None
    profile_index: int | None = None


def issue_attributes(status: str, at_ms: int) -> Item:
    """What puts an item in the index under ``status``."""
    return {ISSUE_STATUS: string(status), ISSUE_AT: number(at_ms)}


def issue_from_item(item: Mapping[str, Any]) -> Issue:
    return Issue(
        key=str(item[KEY]["S"]),
        status=text(item, ISSUE_STATUS),
        at_ms=integer(item, ISSUE_AT),
        reason=text(item, "reason"),
        hubspot_id=text(item, "hubspotId"),
        excluded_email=text(item, EXCLUDED_EMAIL),
        request_id=text(item, REQUEST_ID),
        profile_index=integer(item, PROFILE_INDEX),
    )


def key_attributes(key: IssueKey) -> Item:
    """The index key DynamoDB continues a query after (its ``ExclusiveStartKey``)."""
    return {KEY: string(key.key), **issue_attributes(key.status, key.at_ms)}


def key_from_attributes(attributes: Mapping[str, Any]) -> IssueKey:
    """The index key DynamoDB stopped at (its ``LastEvaluatedKey`` for this index)."""
    return IssueKey(
        key=text(attributes, KEY) or "",
        status=text(attributes, ISSUE_STATUS) or "",
        at_ms=integer(attributes, ISSUE_AT) or 0,
    )
