"""HubSpot API paths for each supported version, from one setting.

v3 goes unsupported in September 2027; the date versions (2026-03, 2026-09) move the version from the
front of the path to after the object family (``/crm/objects/2026-09/contacts``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote


class ApiVersion(StrEnum):
    V3 = "v3"
    V2026_03 = "2026-03"
    V2026_09 = "2026-09"


@dataclass(frozen=True)
class Paths:
    version: ApiVersion

    @property
    def _objects(self) -> str:
        if self.version is ApiVersion.V3:
            return "/crm/v3/objects/contacts"
        return f"/crm/objects/{self.version.value}/contacts"

    @property
    def properties(self) -> str:
        if self.version is ApiVersion.V3:
            return "/crm/v3/properties/contacts"
        return f"/crm/properties/{self.version.value}/contacts"

    @property
    def batch_upsert(self) -> str:
        return f"{self._objects}/batch/upsert"

    @property
    def batch_read(self) -> str:
        return f"{self._objects}/batch/read"

    @property
    def batch_update(self) -> str:
        return f"{self._objects}/batch/update"

    @property
    def properties_batch_create(self) -> str:
        return f"{self.properties}/batch/create"

    def property_path(self, name: str) -> str:
        return f"{self.properties}/{name}"

    @property
    def groups(self) -> str:
        return f"{self.properties}/groups"

    @property
    def lists(self) -> str:
        """The Lists API's base: create (POST) and lists by id (GET)."""
        if self.version is ApiVersion.V3:
            return "/crm/v3/lists"
        return f"/crm/lists/{self.version.value}"

    def list_path(self, list_id: str) -> str:
        """One list: read (GET) and delete (DELETE)."""
        return f"{self.lists}/{quote(list_id, safe='')}"

    def list_by_name(self, object_type_id: str, name: str) -> str:
        # The name is one path segment: a "/" in it is escaped, not a separator.
        return f"{self.lists}/object-type-id/{quote(object_type_id, safe='')}/name/{quote(name, safe='')}"

    def list_rename(self, list_id: str) -> str:
        """The new name goes in the ``listName`` query parameter; the call has no body."""
        return f"{self.list_path(list_id)}/update-list-name"

    def list_restore(self, list_id: str) -> str:
        return f"{self.list_path(list_id)}/restore"

    def list_add_and_remove(self, list_id: str) -> str:
        return f"{self.list_path(list_id)}/memberships/add-and-remove"

    @property
    def list_memberships_batch_read(self) -> str:
        return f"{self.lists}/records/memberships/batch/read"

    @property
    def oauth_token(self) -> str:
        # OAuth v1 is deprecated (sunset 2027-02-16); the 2026-03 endpoint takes the same form fields.
        return "/oauth/2026-03/token"
