"""Whether the value HubSpot holds is the value the connector wrote: HubSpot answers with its own
spelling of some types (a datetime written as ISO comes back with milliseconds, a number as written
or with a trailing ``.0``, a checkbox's options in its order), which is not drift."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..timestamps import TimestampError, to_epoch_ms


def same_value(written: str | None, seen: str | None, definition: Mapping[str, Any] | None) -> bool:
    """``written``: what the connector last wrote (``""`` cleared it); ``seen``: what HubSpot
    holds (None or ``""``: empty)."""
    if (written or "") == (seen or ""):
        return True
    if not written or not seen:
        return False
    kind = (definition or {}).get("type", "string")
    if kind == "number":
        return _numbers_equal(written, seen)
    if kind in ("datetime", "date"):
        return _instants_equal(written, seen, kind)
    if kind == "bool":
        return written.strip().lower() == seen.strip().lower()
    if kind == "enumeration" and (definition or {}).get("fieldType") == "checkbox":
        return _options(written) == _options(seen)
    return written.strip() == seen.strip()


def _numbers_equal(written: str, seen: str) -> bool:
    try:
        first, second = float(written), float(seen)
    except ValueError:
        return False
    return math.isclose(first, second, rel_tol=1e-12, abs_tol=0.0)


def _instants_equal(written: str, seen: str, kind: str) -> bool:
    try:
        first, second = to_epoch_ms(written.strip()), to_epoch_ms(seen.strip())
    except TimestampError:
        return False
    if kind == "date":
        day = 86_400_000
        return first // day == second // day
    return first == second


def _options(text: str) -> set[str]:
    return {part.strip() for part in text.split(";") if part.strip()}
