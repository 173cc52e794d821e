"""DynamoDB's low-level attribute values, shared by the codecs of this package only."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

#: One item as DynamoDB's low-level API reads and writes it: attribute name -> attribute value.
Item = dict[str, Any]


def string(value: str) -> dict[str, Any]:
    return {"S": value}


def number(value: int) -> dict[str, Any]:
    return {"N": str(value)}


def text(item: Mapping[str, Any], name: str) -> str | None:
    """The string attribute ``name``, None when absent (or of another type)."""
    value = item.get(name)
    return str(value["S"]) if value and "S" in value else None


def integer(item: Mapping[str, Any], name: str) -> int | None:
    """The number attribute ``name`` as an int, None when absent (or of another type)."""
    value = item.get(name)
    return int(Decimal(value["N"])) if value and "N" in value else None
