"""HubSpot API paths for each supported version, from one setting.

v3 goes unsupported in September 2027; the date versions (2026-03, 2026-09) move the version from the
front of the path to after the object family (``/crm/objects/2026-09/contacts``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
    def oauth_token(self) -> str:
        # OAuth v1 is deprecated (sunset 2027-02-16); the 2026-03 endpoint takes the same form fields.
        return "/oauth/2026-03/token"
