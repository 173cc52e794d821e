"""What reconcile does with a contact deleted in HubSpot (the ``HubSpotDeletions`` setting): plain
and dependency-free, so the settings can name it."""

from __future__ import annotations

from enum import StrEnum


class DeletionPolicy(StrEnum):
    #: a contact deleted in HubSpot stays deleted until the source sends a changed update
    RESPECT = "respect"
    #: reconcile re-creates it with its full current state
    RECREATE = "recreate"
