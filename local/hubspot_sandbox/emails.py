"""The sandbox's own reading of how HubSpot treats the ``email`` property.

It is written independently of the connector on purpose: the sandbox is the yardstick the connector
is measured against, so sharing code would make both wrong in the same way and no test would notice.
"""

from __future__ import annotations

import re

# The whole address in one pattern, applied after lower-casing. The local part is the standard's
# unquoted form: dot-separated runs of the allowed characters, so no leading, trailing or doubled dots.
# Quoted local parts and IP-literal domains are technically legal but refused here: a contact address
# using them is far more likely a data error than real, and refusing is the safer side for a yardstick.
# The domain needs at least two labels of letters, digits and inner hyphens, ending in an alphabetic
# top-level label or an internationalised ("xn--") one.
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_ADDRESS = re.compile(
    rf"(?P<local>{_ATOM}(?:\.{_ATOM})*)@(?P<domain>(?:{_LABEL}\.)+(?:[a-z]{{2,}}|xn--[a-z0-9-]+))",
    re.ASCII,
)
# Length limits from the mail standards (SMTP path and DNS label sizes).
_MAX_ADDRESS, _MAX_LOCAL, _MAX_LABEL = 254, 64, 63


def normalize_email(raw: str) -> str:
    """HubSpot stores and matches emails trimmed and lower-cased."""
    return raw.strip().lower()


def is_valid_email(email: str) -> bool:
    """Whether HubSpot would take ``email`` (already normalized) as a contact's address."""
    match = _ADDRESS.fullmatch(email)
    if match is None or len(email) > _MAX_ADDRESS or len(match["local"]) > _MAX_LOCAL:
        return False
    labels = match["domain"].split(".")
    if any(len(label) > _MAX_LABEL for label in labels):
        return False
    # HubSpot refuses a repeated top-level domain such as "example.com.com" even though the syntax
    # allows it: it is almost always a typo, and the address would bounce.
    return not (len(labels) > 2 and labels[-1] == labels[-2])
