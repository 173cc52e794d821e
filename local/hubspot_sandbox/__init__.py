"""A HubSpot CRM emulator for tests, benchmarks and the local stack (never deployed).

It keeps contacts, properties, groups and MANUAL contact lists in memory and reproduces what the
connector depends on: date-versioned and v3 paths, bearer auth, scopes, the 10-second and daily
limits with HubSpot's headers and 429 bodies, batch upsert semantics and per-input errors, property
rules, list names, memberships and their errors, the OAuth token endpoint, and fault injection.
It also does what happens to contacts behind a client's back: edits, deletions (archive and
restore), GDPR erasure with its blocklist, and merges that give the record a new id, each noted as
an event that the webhooks journal (subscriptions, entries read by offset, offsets that expire)
reports to an OAuth app. Shapes follow HubSpot's published OpenAPI specs.

It deliberately imports nothing from the connector's package: it is what the connector
is checked against, so it keeps its own reading of HubSpot's rules and is free to disagree.
"""

from .server import SandboxServer
from .state import RestoreRefused, SandboxConfig, SandboxState

__all__ = ["RestoreRefused", "SandboxConfig", "SandboxServer", "SandboxState"]
