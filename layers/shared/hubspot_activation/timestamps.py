"""Lenient timestamp parsing: AEP's own examples use at least four formats."""

from __future__ import annotations

import re
from datetime import UTC, datetime

# Below this an integer is seconds, above it milliseconds: 10^11 s is the year 5138, 10^11 ms is 1973.
_SECONDS_CEILING = 100_000_000_000
_OFFSET_WITHOUT_COLON = re.compile(r"([+-])(\d{2})(\d{2})$")
_FRACTION = re.compile(r"\.(\d+)")


class TimestampError(ValueError):
    pass


def to_epoch_ms(value: object) -> int:
    """Parse ISO 8601 (``Z``, ``+0000``, ``+00:00``, any fraction), epoch seconds or epoch milliseconds."""
    if isinstance(value, bool):
        raise TimestampError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        number = float(value)
        return int(number * 1000) if abs(number) < _SECONDS_CEILING else int(number)
    if not isinstance(value, str) or not value.strip():
        raise TimestampError(f"not a timestamp: {value!r}")
    text = value.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return to_epoch_ms(float(text))
    text = text.replace(" ", "T", 1) if "T" not in text and " " in text else text
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    text = _OFFSET_WITHOUT_COLON.sub(r"\1\2:\3", text)
    # fromisoformat takes 3 or 6 fraction digits only before 3.11's relaxations; normalise to 6.
    text = _FRACTION.sub(lambda match: "." + match.group(1)[:6].ljust(6, "0"), text, count=1)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise TimestampError(f"not a timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def iso_from_ms(epoch_ms: int) -> str:
    return (
        datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
