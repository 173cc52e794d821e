"""Where audiences go in HubSpot (``AudienceTarget``): a contact property per audience, a MANUAL
contact list per audience, or both. Each says what the flush writes and whether lists are kept."""

from __future__ import annotations

from enum import StrEnum


class AudienceTarget(StrEnum):
    #: one contact property per audience (realized / exited), as Adobe's own destination does
    PROPERTY = "property"
    #: one MANUAL contact list per audience: a contact is a member exactly while it is realized
    LIST = "list"
    BOTH = "both"

    @property
    def writes_property(self) -> bool:
        return self is not AudienceTarget.LIST

    @property
    def keeps_lists(self) -> bool:
        return self is not AudienceTarget.PROPERTY
