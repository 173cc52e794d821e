"""How a contact appears in the logs: by a hash, never its email address."""

from __future__ import annotations

import hashlib

from ..emails import scrub_emails
from ..observability import logger
from .plan import ContactWrite, Outcome


def contact_hash(email: str) -> str:
    """Logs identify a contact without writing its email address."""
    return hashlib.sha256(email.encode("utf-8")).hexdigest()[:16]


def log_contact(contact: ContactWrite, outcome: Outcome | None) -> None:
    logger.info(
        "contact synced with warnings" if outcome is Outcome.SYNCED else "contact not fully synced",
        extra={
            "contactHash": contact_hash(contact.email),
            "warnings": {name: scrub_emails(text) for name, text in contact.warnings.items()},
            "problems": [scrub_emails(text) for text in contact.problems],
        },
    )
