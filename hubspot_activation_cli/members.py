"""Audience members from a CSV or JSONL file, grouped into native-format profiles and batches.

A member row has the columns (or keys) ``email``, ``audience_id``, ``audience_name``, ``status``
(realized or exited) and optionally ``timestamp``; every other column is a contact attribute. Rows
of one email within a batch become one profile, so a contact in several audiences costs one
profile, not one per audience.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Format = Literal["csv", "jsonl"]
EXTENSIONS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
#: Columns that describe the membership; any other column is an attribute.
MEMBERSHIP_COLUMNS = ("email", "audience_id", "audience_name", "status", "timestamp")


class MemberFileError(ValueError):
    """The file cannot be read as members; nothing should be sent."""


@dataclass(frozen=True)
class Member:
    line: int
    #: As written: the API normalizes and validates emails, and reports the ones it cannot use.
    email: Any
    audience_id: Any = None
    audience_name: Any = None
    status: Any = None
    timestamp: Any = None
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def has_membership(self) -> bool:
        return any(v not in (None, "") for v in (self.audience_id, self.status, self.audience_name))


def detect_format(path: Path, explicit: str | None = None) -> Format:
    if explicit in ("csv", "jsonl"):
        return "csv" if explicit == "csv" else "jsonl"
    detected = EXTENSIONS.get(path.suffix.lower())
    if detected is None:
        raise MemberFileError(f"{path}: cannot tell the format from the extension; pass --format csv|jsonl")
    return detected


def read_members(path: Path, fmt: Format) -> Iterator[Member]:
    try:
        # utf-8-sig: spreadsheets often start their CSV exports with a byte-order mark.
        with path.open(encoding="utf-8-sig", newline="") as stream:
            yield from (_csv_members(path, stream) if fmt == "csv" else _jsonl_members(path, stream))
    except OSError as exc:
        raise MemberFileError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise MemberFileError(f"{path}: not UTF-8 text") from None


def _member(line: int, values: dict[str, Any]) -> Member:
    membership = {name: values.pop(name, None) for name in MEMBERSHIP_COLUMNS}
    return Member(line=line, attributes=values, **membership)


def _csv_members(path: Path, stream: Iterable[str]) -> Iterator[Member]:
    reader = csv.reader(stream)
    header = next(reader, None)
    if header is None:
        raise MemberFileError(f"{path}: the file is empty")
    # Membership columns are matched loosely ("Email", " status "); attribute names are kept as
    # written because the API maps source names such as firstName.
    names = [
        name.strip().lower() if name.strip().lower() in MEMBERSHIP_COLUMNS else name.strip()
        for name in header
    ]
    if "email" not in names:
        raise MemberFileError(f"{path}: no email column in the header {header}")
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(names):
            raise MemberFileError(f"{path}:{reader.line_num}: {len(cells)} cells for {len(names)} columns")
        # An empty cell means "no change" (as an absent attribute does), not "clear the value".
        values = {name: cell.strip() for name, cell in zip(names, cells, strict=False) if cell.strip()}
        yield _member(reader.line_num, values)


def _jsonl_members(path: Path, stream: Iterable[str]) -> Iterator[Member]:
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MemberFileError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(values, dict):
            raise MemberFileError(f"{path}:{number}: each line must be a JSON object")
        if "email" not in values:
            raise MemberFileError(f"{path}:{number}: no email key")
        yield _member(number, dict(values))


@dataclass
class Batch:
    profiles: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0


def batches(members: Iterable[Member], size: int) -> Iterator[Batch]:
    """Native-format profiles, at most ``size`` per batch, one per email within a batch."""
    if size < 1:
        raise ValueError("the batch size must be at least 1")
    batch = Batch()
    by_email: dict[object, dict[str, Any]] = {}
    for member in members:
        key = _grouping_key(member)
        if key not in by_email and len(by_email) >= size:
            yield batch
            batch, by_email = Batch(), {}
        profile = by_email.get(key)
        if profile is None:
            profile = by_email[key] = {"email": member.email, "attributes": {}, "audiences": {}}
            batch.profiles.append(profile)
        _merge(profile, member)
        batch.rows += 1
    if batch.profiles:
        yield batch


def _grouping_key(member: Member) -> object:
    if isinstance(member.email, str) and member.email.strip():
        return member.email.strip().lower()
    # Without an email there is nothing to group by: the API reports each such row on its own.
    return ("line", member.line)


def _merge(profile: dict[str, Any], member: Member) -> None:
    """Later rows win, as later updates do in the pipeline; a name once given is kept."""
    profile["attributes"].update(member.attributes)
    if not member.has_membership:
        return
    entry: dict[str, Any] = {"status": member.status}
    if member.audience_name not in (None, ""):
        entry["name"] = member.audience_name
    if member.timestamp not in (None, ""):
        entry["timestamp"] = member.timestamp
    # A status without an audience id is still sent: the API reports it as a warning rather than
    # this tool dropping it silently.
    audience_id = "" if member.audience_id is None else str(member.audience_id)
    profile["audiences"].setdefault(audience_id, {}).update(entry)
