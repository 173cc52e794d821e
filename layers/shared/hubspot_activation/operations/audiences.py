"""``PUT /audiences/{id}`` and ``DELETE /audiences/{id}``: audience metadata, shaped for AEP's
Destination SDK audience-metadata template (the answer's ``externalAudienceId`` is what its
response path reads).

A rename stores the name and relabels the audience's HubSpot property at once when it exists. A
delete stops writing the audience (its changes are held in the ledger) and keeps its property. The
PUT re-activating a deleted audience queues one resume job. The contract: docs/operations.md;
the rationale: docs/architecture.md ("Audience metadata").

With the audiences' lists kept (``AudienceTarget`` list or both), a PUT also renames the
audience's HubSpot list once it has one, within the same time budget as the relabel: to the
name, or ``"<name> (<audience id>)"`` when another list holds it (HubSpot's list names are unique
in the account), and stores the name the list got. A rename that does not go through (HubSpot
slow or failing, both names taken) leaves the stored list name as it was, so the next PUT of the
audience, which compares it with the name, renames the list again; a PUT whose list already has
the name makes no call. A delete keeps the list as it is and stops its membership changes, like
the property's values. With ``list`` alone no property is relabelled.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..ledger.audience_item import AudienceRecord
from ..ledger.operations_store import OperationsStore, StoreUnavailable
from ..lists.target import AudienceTarget
from ..observability import logger
from ..upsert.properties import audience_property_name
from .views import InvalidParameter

MAX_ID_CHARACTERS = 256
MAX_NAME_CHARACTERS = 400
MAX_DESCRIPTION_CHARACTERS = 2000


class LabelUpdater(Protocol):
    def relabel(self, property_name: str, label: str) -> str | None:
        """Set the property's label; None when done, else why not (nothing raised)."""
        ...


class NameTaken(Exception):
    """Another HubSpot list holds the name (HubSpot compares list names without regard to case)."""


class ListRenamer(Protocol):
    def rename_list(self, list_id: str, name: str) -> str | None:
        """Rename the HubSpot list; None when done, else why not. Raises ``NameTaken``."""
        ...


@dataclass(frozen=True)
class ListRename:
    #: the name the list has now (None: not renamed)
    name: str | None
    #: why not (None: renamed, or named so already)
    problem: str | None = None


#: The longest a PUT waits for HubSpot, the relabel and the list's rename together (API Gateway
#: gives up after 30 s, AEP sooner).
RELABEL_BUDGET_SECONDS = 4.0

_T = TypeVar("_T")


def suffixed(name: str, audience_id: str) -> str:
    """The list name used when another list holds the audience's: unique, as its id is."""
    return f"{name} ({audience_id})"


class BudgetedLabels:
    """A relabel (and a list rename) that never costs the answer: whatever they do (HubSpot slow,
    retries, the credential's secret unreadable), the PUT waits at most ``budget_seconds`` and
    every failure is a reason, not an exception. The metadata is already stored by then, and the
    consumer labels the property with the stored name on the audience's next sync, so nothing is
    lost; a list not renamed is renamed by the next PUT."""

    def __init__(
        self,
        inner: LabelUpdater,
        budget_seconds: float = RELABEL_BUDGET_SECONDS,
        lists: ListRenamer | None = None,
    ) -> None:
        self._inner = inner
        self._budget = budget_seconds
        self._lists = lists

    @property
    def budget_seconds(self) -> float:
        return self._budget

    def relabel(self, property_name: str, label: str, seconds: float | None = None) -> str | None:
        """Within ``seconds`` (default: the whole budget)."""
        later = "the next sync of the audience sets it"
        return _within(
            "relabel",
            self._budget if seconds is None else seconds,
            lambda: self._inner.relabel(property_name, label),
            lambda error: f"the label could not be set now ({error}); {later}",
            lambda waited: f"HubSpot did not take the new label within {waited:g} s; {later}",
        )

    def rename_list(self, list_id: str, audience_id: str, name: str, seconds: float) -> ListRename:
        """Rename the list to ``name``, else to ``suffixed(name, audience_id)``, within ``seconds``."""
        later = "the next PUT of the audience renames it"
        lists = self._lists
        if lists is None:
            return ListRename(None, f"no HubSpot client to rename the list; {later}")
        if seconds <= 0:
            return ListRename(None, f"no time was left to rename the list; {later}")
        other = suffixed(name, audience_id)

        def rename() -> ListRename:
            for candidate in (name, other):
                try:
                    problem = lists.rename_list(list_id, candidate)
                except NameTaken:
                    continue
                return ListRename(None if problem else candidate, problem and f"{problem}; {later}")
            return ListRename(None, f"other HubSpot lists hold both {name!r} and {other!r}; {later}")

        return _within(
            "list rename",
            seconds,
            rename,
            lambda error: ListRename(None, f"the list could not be renamed now ({error}); {later}"),
            lambda waited: ListRename(None, f"HubSpot did not rename the list within {waited:g} s; {later}"),
        )


def _within(
    what: str,
    seconds: float,
    work: Callable[[], _T],
    failed: Callable[[str], _T],
    timed_out: Callable[[float], _T],
) -> _T:
    """``work``'s answer if it comes within ``seconds``; ``failed`` (the exception's type) if it
    raises, ``timed_out`` if it does not answer in time."""
    outcome: list[_T] = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as exc:  # every failure, credentials included: the PUT still answers
            logger.warning(f"audience {what} failed", extra={"error": type(exc).__name__})
            outcome.append(failed(type(exc).__name__))

    # A daemon thread: a call still waiting on the network when the budget is spent is left
    # behind (it can only set the same name) instead of holding the answer.
    worker = threading.Thread(target=run, name=what, daemon=True)
    worker.start()
    worker.join(seconds)
    if not outcome:
        logger.warning(f"audience {what} timed out", extra={"budgetSeconds": seconds})
        return timed_out(seconds)
    return outcome[0]


def _audience_id(raw: str) -> str:
    audience_id = raw.strip()
    if not audience_id or len(audience_id) > MAX_ID_CHARACTERS:
        raise InvalidParameter("id", f"the audience id must be 1 to {MAX_ID_CHARACTERS} characters")
    return audience_id


def _metadata(body: Any) -> tuple[str, str | None]:
    if not isinstance(body, dict):
        raise InvalidParameter("body", 'the body must be a JSON object: {"name": ..., "description": ...}')
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameter("name", "name is required: the audience's name (a non-empty string)")
    if len(name) > MAX_NAME_CHARACTERS:
        raise InvalidParameter("name", f"name is longer than {MAX_NAME_CHARACTERS} characters")
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise InvalidParameter("description", "description must be a string")
    if description is not None and len(description) > MAX_DESCRIPTION_CHARACTERS:
        raise InvalidParameter(
            "description", f"description is longer than {MAX_DESCRIPTION_CHARACTERS} characters"
        )
    return name.strip(), description


#: Queues a resume job (``ReplayService.queue_resume``): (audience id, request id) -> its answer.
Resume = Callable[[str, str], dict[str, Any]]


class AudienceService:
    def __init__(
        self,
        store: OperationsStore,
        labels: BudgetedLabels | None,
        prefix: str,
        resume: Resume | None = None,
        target: AudienceTarget = AudienceTarget.PROPERTY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._labels = labels
        self._prefix = prefix
        self._resume = resume
        self._target = target
        self._monotonic = monotonic

    def put(self, raw_id: str, body: Any) -> tuple[dict[str, Any], bool]:
        """The answer, and whether the audience was created (201) rather than updated (200)."""
        audience_id = _audience_id(raw_id)
        name, description = _metadata(body)
        record, created = self._store.save_audience(audience_id, name, description)
        started = self._monotonic()
        answer = self._view(record)
        if self._target.writes_property:
            property_name = audience_property_name(audience_id, self._prefix)
            problem = self._labels.relabel(property_name, name) if self._labels else "no HubSpot client"
            answer["labelUpdated"] = problem is None
            if problem is not None:
                answer["labelNote"] = problem
        if self._target.keeps_lists:
            left = (self._labels.budget_seconds if self._labels else 0.0) - (self._monotonic() - started)
            answer.update(self._rename_list(record, name, left))
        if self._resume is not None:
            # Only a PUT re-activating the audience (or retried after its job could not be sent)
            # queues a job; a rename queues nothing. One SQS message, no HubSpot call: the consumer
            # pages through the held contacts at its own pace.
            answer["resumed"] = {"queued": False}
            if record.resume_due:
                answer["resumed"] = self._resume(audience_id, str(uuid.uuid4()))
                self._store.resume_queued(record)
        return answer, created

    def _rename_list(self, record: AudienceRecord, name: str, seconds: float) -> dict[str, Any]:
        """The answer's ``listRenamed`` (and ``listNote`` when not): the list renamed, or named so
        already, or why not."""
        if record.list_id is None:
            return {
                "listRenamed": False,
                "listNote": "the audience has no HubSpot list yet: it is made with this name when its "
                "first membership change is sent",
            }
        if record.list_name in (name, suffixed(name, record.audience_id)):
            return {"listRenamed": True}
        outcome = (
            self._labels.rename_list(record.list_id, record.audience_id, name, seconds)
            if self._labels
            else ListRename(None, "no HubSpot client; the next PUT of the audience renames the list")
        )
        if outcome.name is None:
            return {"listRenamed": False, "listNote": outcome.problem}
        try:
            stored = self._store.list_renamed(record.audience_id, record.list_id, outcome.name)
        except StoreUnavailable:
            # Renamed all the same: the next PUT, not knowing it, renames it again (to the same name).
            logger.warning("list name not stored", extra={"audience": record.audience_id})
            return {"listRenamed": True, "listName": outcome.name}
        if not stored:
            return {
                "listRenamed": False,
                "listNote": "the audience's list was made again meanwhile; the next PUT renames it",
            }
        return {"listRenamed": True, "listName": outcome.name}

    def delete(self, raw_id: str) -> dict[str, Any]:
        record = self._store.delete_audience(_audience_id(raw_id))
        answer = self._view(record)
        held = (
            "no longer written to HubSpot: each contact's newest change of it is kept in the ledger "
            "(listed by GET /sync/issues?status=held) and written when a PUT re-activates the "
            "audience"
        )
        kept: list[str] = []
        if self._target.writes_property:
            kept.append(
                "its HubSpot property and the values contacts have are kept (deleting the "
                "property would erase them on every contact)"
            )
        if self._target.keeps_lists:
            kept.append(
                "its HubSpot list is kept with its members as they are: no membership changes "
                "are sent to it until then"
            )
        answer["note"] = f"{held}; {'; '.join(kept)}."
        return answer

    def _view(self, record: AudienceRecord) -> dict[str, Any]:
        view: dict[str, Any] = {
            "externalAudienceId": record.audience_id,
            "audienceId": record.audience_id,
            "name": record.name,
            "description": record.description,
            "status": record.status,
        }
        if self._target.writes_property:
            view["property"] = audience_property_name(record.audience_id, self._prefix)
        if self._target.keeps_lists:
            view["listId"] = record.list_id
            view["listName"] = record.list_name
        return view
