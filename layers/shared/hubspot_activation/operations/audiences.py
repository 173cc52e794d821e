"""``PUT /audiences/{id}`` and ``DELETE /audiences/{id}``: audience metadata, shaped for AEP's
Destination SDK audience-metadata template (the answer's ``externalAudienceId`` is what its
response path reads).

A rename stores the name and relabels the audience's HubSpot property at once when it exists. A
delete stops writing the audience (its changes are held in the ledger) and keeps its property. The
PUT re-activating a deleted audience queues one resume job. The contract: docs/operations.md;
the rationale: docs/architecture.md ("Audience metadata").
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from ..ledger.audience_item import AudienceRecord
from ..ledger.operations_store import OperationsStore
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


#: The longest a PUT waits for the relabel (API Gateway gives up after 30 s, AEP sooner).
RELABEL_BUDGET_SECONDS = 4.0


class BudgetedLabels:
    """A relabel that never costs the answer: whatever it does (HubSpot slow, retries, the
    credential's secret unreadable), the PUT waits at most ``budget_seconds`` and every failure is
    a reason, not an exception. The metadata is already stored by then, and the consumer labels the
    property with the stored name on the audience's next sync, so nothing is lost."""

    def __init__(self, inner: LabelUpdater, budget_seconds: float = RELABEL_BUDGET_SECONDS) -> None:
        self._inner = inner
        self._budget = budget_seconds

    def relabel(self, property_name: str, label: str) -> str | None:
        outcome: list[str | None] = []

        def run() -> None:
            try:
                outcome.append(self._inner.relabel(property_name, label))
            except Exception as exc:  # every failure, credentials included: the PUT still answers
                logger.warning("audience relabel failed", extra={"error": type(exc).__name__})
                outcome.append(
                    f"the label could not be set now ({type(exc).__name__}); "
                    "the next sync of the audience sets it"
                )

        # A daemon thread: a relabel still waiting on the network when the budget is spent is left
        # behind (it can only set the same label) instead of holding the answer.
        worker = threading.Thread(target=run, name="relabel", daemon=True)
        worker.start()
        worker.join(self._budget)
        if not outcome:
            logger.warning("audience relabel timed out", extra={"budgetSeconds": self._budget})
            return (
                f"HubSpot did not take the new label within {self._budget:g} s; "
                "the next sync of the audience sets it"
            )
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
        self, store: OperationsStore, labels: LabelUpdater | None, prefix: str, resume: Resume | None = None
    ) -> None:
        self._store = store
        self._labels = labels
        self._prefix = prefix
        self._resume = resume

    def put(self, raw_id: str, body: Any) -> tuple[dict[str, Any], bool]:
        """The answer, and whether the audience was created (201) rather than updated (200)."""
        audience_id = _audience_id(raw_id)
        name, description = _metadata(body)
        record, created = self._store.save_audience(audience_id, name, description)
        property_name = audience_property_name(audience_id, self._prefix)
        problem = self._labels.relabel(property_name, name) if self._labels else "no HubSpot client"
        answer = self._view(record)
        answer["labelUpdated"] = problem is None
        if problem is not None:
            answer["labelNote"] = problem
        if self._resume is not None:
            # Only a PUT re-activating the audience (or retried after its job could not be sent)
            # queues a job; a rename queues nothing. One SQS message, no HubSpot call: the consumer
            # pages through the held contacts at its own pace.
            answer["resumed"] = {"queued": False}
            if record.resume_due:
                answer["resumed"] = self._resume(audience_id, str(uuid.uuid4()))
                self._store.resume_queued(record)
        return answer, created

    def delete(self, raw_id: str) -> dict[str, Any]:
        record = self._store.delete_audience(_audience_id(raw_id))
        answer = self._view(record)
        answer["note"] = (
            "no longer written to HubSpot: each contact's newest change of it is kept in the ledger "
            "(listed by GET /sync/issues?status=held) and written when a PUT re-activates the "
            "audience; its HubSpot property and the values contacts have are kept (deleting the "
            "property would erase them on every contact)."
        )
        return answer

    def _view(self, record: AudienceRecord) -> dict[str, Any]:
        return {
            "externalAudienceId": record.audience_id,
            "audienceId": record.audience_id,
            "name": record.name,
            "description": record.description,
            "status": record.status,
            "property": audience_property_name(record.audience_id, self._prefix),
        }
