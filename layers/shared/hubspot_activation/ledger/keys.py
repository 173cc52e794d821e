"""The ledger table's keys and sparse indexes, shared by every function that reads or writes it.

- A contact is keyed by its lower-cased email; every other item kind has a key without ``@`` (an
  audience id percent-encoded, or hashed when the key would pass DynamoDB's 2,048 bytes).
- ``pending`` index: pending markers (``#pending#<partition>#<digest>``, the contacts in
  ``emails``), keyed ``pendingPartition`` (a flush lane) and ``dueAt`` (epoch ms).
- ``issues`` index: items with ``issueStatus`` (failed, held, excluded, deleted), newest first.
- ``held`` index: held markers (``#held#<audience digest>#<quoted email>``), keyed
  ``heldAudience`` and ``heldEmail``: the contacts holding changes of one audience.
- ``hubspotId`` index: contacts HubSpot holds, keyed by their record id (``hubspotId``) and email:
  the contacts the webhooks journal's events name.
- ``#journal#offset``: the journal poller's position (one item).
- List buffers (``#list#<audience digest>#<shard>``): the membership changes of one audience's
  HubSpot list waiting for a drain; a buffer with changes to send sits in the ``pending`` index
  under the partition ``lists`` (never a lane's ``pNN``), keyed by when it is due.

Why markers and not index entries per contact: docs/architecture.md.
"""

from __future__ import annotations

import hashlib
import zlib
from urllib.parse import quote

KEY = "email"
ISSUES_INDEX = "issues"
#: The index's partition key: ``failed``, ``held``, ``excluded`` or ``deleted``.
ISSUE_STATUS = "issueStatus"
#: The index's sort key: when the issue arose (epoch ms).
ISSUE_AT = "issueAt"
ISSUE_FAILED = "failed"
ISSUE_EXCLUDED = "excluded"
ISSUE_HELD = "held"
#: Contacts deleted in HubSpot (found by reconcile) and left deleted.
ISSUE_DELETED = "deleted"
ISSUE_STATUSES = (ISSUE_FAILED, ISSUE_HELD, ISSUE_EXCLUDED, ISSUE_DELETED)
#: What reconcile last saw HubSpot hold for a contact (``reconcile.model.Seen``): the managed
#: properties' values (a map, NULL for an empty one), when (epoch ms), the record's id, the drift.
SEEN = "seen"
SEEN_AT = "seenAt"
SEEN_ID = "seenId"
SEEN_DRIFT = "seenDrift"
#: DynamoDB's time-to-live attribute (epoch seconds).
EXPIRES_AT = "expiresAt"

#: The held markers' index: the contacts holding changes of one audience.
HELD_INDEX = "held"
#: The index's partition key: the digest of the audience id (``audience_digest``).
HELD_AUDIENCE = "heldAudience"
#: The index's sort key: the contact's email.
HELD_EMAIL = "heldEmail"

#: The pending contacts' index, its partition key and its sort key (see above).
PENDING_INDEX = "pending"
PENDING_PARTITION = "pendingPartition"
DUE_AT = "dueAt"
#: The pending index's partition key values: a flusher lane owns those whose number modulo the
#: number of lanes is its own, so any number of lanes up to this one splits them without a move.
PENDING_PARTITIONS = 16

#: The contacts' record-id index: partition key ``hubspotId`` (the contact items' attribute), sort
#: key the table's key (several contacts may name one record after a merge).
HUBSPOT_ID_INDEX = "hubspotId"
HUBSPOT_ID = "hubspotId"

DAILY_CALLS_PREFIX = "#hubspot-calls#"
#: Reconcile's own HubSpot calls of a day (its daily share), counted like the connector's.
RECONCILE_CALLS_PREFIX = "#reconcile-calls#"
#: The scheduled walk's cursor and lease, and the last reconcile's report.
RECONCILE_PROGRESS_KEY = "#reconcile#progress"
FLUSH_LEASE_PREFIX = "#flush-lane#"
PENDING_PREFIX = "#pending#"
#: A pending marker's contacts (a string set).
PENDING_EMAILS = "emails"
HELD_PREFIX = "#held#"
EXCLUDED_PREFIX = "#excluded#"
AUDIENCE_PREFIX = "#audience#"
JOURNAL_PREFIX = "#journal#"
LIST_BUFFER_PREFIX = "#list#"
LIST_LEASE_PREFIX = "#list-lease#"
#: The pending index's partition of the list buffers with changes to send: lanes' partitions are
#: ``p00``..``p15``, so no flusher ever reads a buffer as a marker of contacts.
LIST_PENDING_PARTITION = "lists"
#: DynamoDB's limit on a partition key value (UTF-8 bytes), on reads and writes alike.
MAX_KEY_BYTES = 2048
#: Follows AUDIENCE_PREFIX in the key of an audience whose id is too long to spell out. Percent
#: encoding never produces ``#``, so a hashed key can never equal a spelled-out one.
HASHED_AUDIENCE_MARK = "#sha256#"


def journal_offset_key() -> str:
    """The journal poller's one position item of the deployment (it names its account inside)."""
    return JOURNAL_PREFIX + "offset"


def daily_calls_key(day: str) -> str:
    return DAILY_CALLS_PREFIX + day


def reconcile_calls_key(day: str) -> str:
    return RECONCILE_CALLS_PREFIX + day


def exclusion_key(content_id: str, index: int) -> str:
    """``content_id`` is a hash of the request body (a retry of the same body rewrites the same
    items); quoted anyway, so no value can make the key read as an email."""
    return f"{EXCLUDED_PREFIX}{quote(content_id, safe='')}#{index}"


def audience_key(audience_id: str) -> str:
    """An audience id may be anything (even contain ``@``): percent-encoded, it can never read as
    an email. An id whose encoded key would pass DynamoDB's limit (an id of 256 CJK characters is
    2,304 bytes encoded) is keyed by the SHA-256 of its UTF-8 form: stable, collision-free in
    practice, and never the key of another id. Which form an id gets depends on the id alone, and
    every id that fits keeps the key it always had."""
    spelled = AUDIENCE_PREFIX + quote(audience_id, safe="")
    if len(spelled) <= MAX_KEY_BYTES:  # percent-encoded: ASCII, one byte a character
        return spelled
    digest = hashlib.sha256(audience_id.encode("utf-8")).hexdigest()
    return AUDIENCE_PREFIX + HASHED_AUDIENCE_MARK + digest


def audience_digest(audience_id: str) -> str:
    """The SHA-256 of the audience id's UTF-8 form: 64 characters whatever the id's length."""
    return hashlib.sha256(audience_id.encode("utf-8")).hexdigest()


def held_marker_key(audience_id: str, email: str) -> str:
    """At most 6 + 64 + 1 + 3 x 254 bytes (an email percent-encoded): far within the key limit, and
    never read as an email (``@`` is encoded)."""
    return f"{HELD_PREFIX}{audience_digest(audience_id)}#{quote(email, safe='')}"


def pending_partition(email: str) -> int:
    """The partition of the contact's lane (a lane owns partition p when p mod lanes is its own)."""
    return zlib.crc32(email.encode("utf-8")) % PENDING_PARTITIONS


def pending_marker_key(partition: int, emails: list[str], due_ms: int) -> str:
    """A marker of the same contacts due at another time is another marker (a flusher that
    handled some of the first one's contacts must not take the second for it)."""
    text = "\n".join([str(due_ms), *sorted(emails)])
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
    return f"{PENDING_PREFIX}{pending_partition_value(partition)}#{digest}"


def pending_partition_value(partition: int) -> str:
    return f"p{partition:02d}"


def flush_lease_key(lane: int) -> str:
    return f"{FLUSH_LEASE_PREFIX}{lane}"


def list_buffer_key(audience_id: str, shard: int) -> str:
    """A shard of an audience's list buffer: 6 + 64 + 1 + a few digits, whatever the audience id,
    and never read as an email or as another kind of item (no ``@``, a prefix of its own)."""
    return f"{LIST_BUFFER_PREFIX}{audience_digest(audience_id)}#{shard}"


def list_lease_key(audience_id: str) -> str:
    """The lease of the one drain sending an audience's list changes at a time."""
    return LIST_LEASE_PREFIX + audience_digest(audience_id)
