"""Lenient timestamp parsing: AEP's own examples use at least four formats, and callers send epoch
numbers in any unit.

Python 3.11's ``datetime.fromisoformat`` reads every ISO 8601 variant AEP sends (``Z``, ``+0000``,
``+00:00``, any number of fraction digits, a space instead of ``T``), so only the unit of epoch
numbers and the range checks are ours.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

#: Epoch numbers carry no unit; the magnitude tells it. Today is ~1.8e9 s, 1.8e12 ms, 1.8e15 µs and
#: 1.8e18 ns, and each unit's band below covers the years 1973 to 5138 with no overlap, so any date
#: a CDP can mean is read in the right unit (a date before 1973 only in seconds).
_UNIT_CEILINGS: tuple[tuple[int, int], ...] = (
    (100_000_000_000, 1000),  # seconds: multiply by 1000
    (100_000_000_000_000, 1),  # milliseconds
    (100_000_000_000_000_000, -1_000),  # microseconds: divide by 1000
    (100_000_000_000_000_000_000, -1_000_000),  # nanoseconds: divide by 1,000,000
)
_NUMBER = re.compile(r"-?\d{1,30}(\.\d{1,30})?")
#: Audience timestamps before this are a sender's bug (epoch 0, a unit mistake), not a membership:
#: 2000-01-01T00:00:00Z.
MIN_AUDIENCE_MS = 946_684_800_000


class TimestampError(ValueError):
    pass


def _shown(value: object) -> str:
    """The caller's value in a message, never longer than a line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _from_number(number: int | float, original: object) -> int:
    if isinstance(number, float) and not math.isfinite(number):
        raise TimestampError(f"not a timestamp: {_shown(original)}")
    magnitude = abs(number)
    for ceiling, factor in _UNIT_CEILINGS:
        if magnitude < ceiling:
            return int(number * factor) if factor > 0 else int(number / -factor)
    raise TimestampError(f"not a timestamp: {_shown(original)} is out of range for any epoch unit")


def to_epoch_ms(value: object) -> int:
    """Epoch milliseconds from ISO 8601 text or an epoch number (or numeric text) in seconds,
    milliseconds, microseconds or nanoseconds. Anything else raises ``TimestampError``, including
    non-finite and absurdly large numbers."""
    if isinstance(value, bool):
        raise TimestampError(f"not a timestamp: {_shown(value)}")
    if isinstance(value, int | float):
        return _from_number(value, value)
    if not isinstance(value, str) or not value.strip():
        raise TimestampError(f"not a timestamp: {_shown(value)}")
    text = value.strip()
    if _NUMBER.fullmatch(text):
        return _from_number(float(text) if "." in text else int(text), value)
    try:
        parsed = datetime.fromisoformat(text.upper())
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        # Years 1 and 9999 with an offset fall outside what timestamp() can represent.
        return int(parsed.timestamp() * 1000)
    except (ValueError, OverflowError, OSError) as exc:
        raise TimestampError(f"not a timestamp: {_shown(value)}") from exc


def audience_epoch_ms(value: object) -> int:
    """``to_epoch_ms`` for an audience membership, which cannot predate 2000."""
    epoch_ms = to_epoch_ms(value)
    if epoch_ms < MIN_AUDIENCE_MS:
        raise TimestampError(f"timestamp {_shown(value)} is before 2000")
    return epoch_ms


def iso_from_ms(epoch_ms: int) -> str:
    return (
        datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
