"""The lists function's ports on HubSpot (``lists.ports.ListMemberships``,
``lists.ports.RemoteLists``) over ``hubspot.lists.HubSpotLists``, so over the connector's governed
client (rate governor, daily counter, credentials, retries). HubSpot's errors become the lists'
own:

- 404 on the list (``hubspot.lists.ListGone``) -> ``model.ListGone``;
- a 400 on an add-and-remove carrying more than one id -> ``ChunkTooLarge``. HubSpot documents no
  per-call cap nor the refusal's shape, and a chunk holds nothing else that HubSpot could refuse:
  ids are strings, never both added and removed, and records it does not hold come back in
  ``recordIdsMissing`` rather than refusing the call. So any such 400 is taken for the size: the
  chunk is halved (at most log2(chunk) calls more), and a single id refused is ``ListRefused``;
- 429, 5xx, timeouts, a call that may have been applied, no time left before the run's deadline
  -> ``MembershipUnavailable`` (add-and-remove is idempotent: sent again as it is);
- the daily limit, or 401/403 (a credential without ``crm.lists.read``/``crm.lists.write``) ->
  ``ListsStopped``: no lists call can pass until it changes;
- a duplicate name -> ``ListNameTaken``; any other refusal -> ``ListRefused``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from ..lists.model import (
    ChunkTooLarge,
    ListGone,
    ListNameTaken,
    ListRefused,
    ListsStopped,
    MembershipResult,
    MembershipUnavailable,
    RemoteList,
)
from .errors import DailyLimitReached, ErrorKind, HubSpotError
from .lists import DuplicateListName, HubSpotList, HubSpotLists
from .lists import ListGone as HubSpotListGone


class HubSpotListMemberships:
    """``ports.ListMemberships``: ``deadline`` gives the monotonic time every call must end by
    (None: none), the run's (``lists.runner.CallBudget``)."""

    def __init__(self, lists: HubSpotLists, deadline: Callable[[], float | None] = lambda: None) -> None:
        self._lists = lists
        self._deadline = deadline

    def add_and_remove(self, list_id: str, add: list[str], remove: list[str]) -> MembershipResult:
        try:
            change = self._lists.add_and_remove(list_id, add, remove, deadline=self._deadline())
        except HubSpotListGone as gone:
            raise ListGone(list_id) from gone
        except HubSpotError as error:
            if error.status == 400 and error.kind is ErrorKind.PERMANENT and len(add) + len(remove) > 1:
                raise ChunkTooLarge(str(error)) from error
            _raise(error)
        return MembershipResult(frozenset(change.missing))


class HubSpotRemoteLists:
    """``ports.RemoteLists``."""

    def __init__(self, lists: HubSpotLists) -> None:
        self._lists = lists

    def create(self, name: str) -> RemoteList:
        try:
            return _remote(self._lists.create(name))
        except DuplicateListName as taken:
            raise ListNameTaken(name) from taken
        except HubSpotError as error:
            _raise(error)

    def find_by_name(self, name: str) -> RemoteList | None:
        try:
            found = self._lists.find_by_name(name)
        except HubSpotError as error:
            _raise(error)
        return _remote(found) if found is not None else None

    def restore(self, list_id: str) -> bool:
        try:
            self._lists.restore(list_id)
        except HubSpotListGone:
            return False
        except DuplicateListName as taken:
            raise ListNameTaken(taken.name) from taken
        except HubSpotError as error:
            _raise(error)
        return True


def _remote(found: HubSpotList) -> RemoteList:
    return RemoteList(found.list_id, found.name, found.manual_contacts)


def _raise(error: HubSpotError) -> NoReturn:
    """The lists' error for a HubSpot error no call maps to its own."""
    if isinstance(error, DailyLimitReached):
        raise ListsStopped(
            f"HubSpot's daily limit (or the connector's share of it) is used up: {error}"
        ) from error
    if error.kind is ErrorKind.CONFIGURATION:
        raise ListsStopped(
            f"HubSpot refuses the credential for lists (it needs the crm.lists.read and "
            f"crm.lists.write scopes): {error}"
        ) from error
    if error.kind in (ErrorKind.RETRYABLE, ErrorKind.RATE_LIMITED) or error.ambiguous:
        raise MembershipUnavailable(str(error)) from error
    raise ListRefused(str(error)) from error
