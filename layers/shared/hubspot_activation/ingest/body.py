"""Reading a request body as JSON so that no byte sequence can make the function fail.

Everything wrong with a body is a ``MalformedBody`` (400 naming ``body``): a body that is not
UTF-8 or not JSON never becomes valid by being retried, and a 5xx would make AEP retry it for hours.
"""

from __future__ import annotations

import codecs
import json
from typing import Any, NoReturn

from .payloads import InvalidRequest

#: Deepest nesting accepted. An AEP profile nests about 8 levels (envelope, profile, identityMap,
#: namespace, list, identity); 64 leaves room for any real attribute and keeps every later walk of
#: the document far from Python's recursion limit.
MAX_DEPTH = 64
#: Python refuses to convert longer integers (and could not write them back to the queue either).
MAX_INTEGER_DIGITS = 4300
_UTF16_32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


class MalformedBody(InvalidRequest):
    error = "invalid_json"

    def __init__(self, message: str) -> None:
        super().__init__("body", message)


def _reject_constant(name: str) -> NoReturn:
    raise MalformedBody(f"body is not valid JSON: {name} is not a JSON value")


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise MalformedBody(f"body has an integer of more than {MAX_INTEGER_DIGITS} digits")
    return int(text)


def _text(body: bytes) -> str:
    if body.startswith(_UTF16_32_BOMS) or b"\x00" in body[:4]:
        raise MalformedBody(
            "body must be UTF-8 JSON; it starts with a UTF-16/UTF-32 byte-order mark or a NUL byte"
        )
    if body.startswith(codecs.BOM_UTF8):
        body = body[len(codecs.BOM_UTF8) :]  # some tools write one; it carries no content
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(f"body is not valid UTF-8 (byte {exc.start})") from None


def _check_depth(document: Any) -> None:
    """Iterative on purpose: a recursive walk is exactly what deep nesting breaks. One nesting
    level at a time, with exact type checks (json.loads makes only dicts and lists): this walks
    every value of the body, so it is on the ingest's hot path."""
    level: list[Any] = [document]
    depth = 1
    while level:
        if depth > MAX_DEPTH:
            raise MalformedBody(f"body nests deeper than {MAX_DEPTH} levels")
        below: list[Any] = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        level = below
        depth += 1


def parse_json(body: bytes) -> Any:
    """The JSON document of ``body``; raises ``MalformedBody`` for anything else."""
    text = _text(body)
    if not text.strip():
        raise MalformedBody("body is empty: send a JSON activation")
    try:
        document = json.loads(text, parse_constant=_reject_constant, parse_int=_integer)
    except json.JSONDecodeError as exc:
        raise MalformedBody(
            f"body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        # The decoder itself gives up on nesting of about a thousand levels.
        raise MalformedBody(f"body nests deeper than {MAX_DEPTH} levels") from None
    if isinstance(document, dict | list):
        _check_depth(document)
    return document
