"""Email normalization and validation, shared by ingest, the sync and the operator's routes."""

from __future__ import annotations

import re

# Deliberately pragmatic (HubSpot's own check is stricter and is handled as a per-contact failure):
# one "@", no whitespace, a dotted domain made of valid DNS labels, a TLD of letters.
_LOCAL_PART = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+$")
_DOMAIN_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_TLD = re.compile(r"^(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})$")
_SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")

MAX_EMAIL_LENGTH = 254
# Any run of address characters around an "@" (also malformed ones like "a@@b.com": those are
# exactly the addresses HubSpot quotes back when it refuses them).
_ANY_EMAIL = re.compile(r"[^\s\"'<>(),;\[\]]*@[^\s\"'<>(),;\[\]]*")


def scrub_emails(text: str) -> str:
    """``text`` without the email addresses it quotes (HubSpot's error messages often do): logs
    promise to identify a contact only by a hash."""
    return _ANY_EMAIL.sub("<email>", text)


def normalize_email(raw: str) -> str:
    """HubSpot lower-cases emails; doing it here makes one contact one queue group and one ledger key."""
    return raw.strip().lower()


def looks_hashed(value: str) -> bool:
    return bool(_SHA256_HEX.match(value.strip()))


def email_problem(email: str) -> str | None:
    """Why ``email`` (already normalized) cannot be used, or None when it is usable."""
    if not email:
        return "email is empty"
    if len(email) > MAX_EMAIL_LENGTH:
        return f"email is longer than {MAX_EMAIL_LENGTH} characters"
    if looks_hashed(email):
        return "email is hashed (sha256); HubSpot needs a clear-text address"
    local, sep, domain = email.rpartition("@")
    if not sep or not local or not domain:
        return "email has no '@' between a local part and a domain"
    if len(local) > 64 or not _LOCAL_PART.match(local) or local.startswith(".") or ".." in local:
        return "email has an invalid local part"
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels[:-1]):
        return "email has an invalid domain"
    if not _TLD.match(labels[-1]):
        return "email has an invalid top-level domain"
    return None
