"""Reading a request body as JSON so that no byte sequence can make the function fail: the one
path every route's body takes (ingest's activations, the operator's audience metadata and replay).

Everything wrong with a body is an ``InvalidInput`` naming ``body`` (or ``Content-Type``): a body
that is not UTF-8 or not JSON never becomes valid by being retried, and a 5xx would make AEP retry it
for hours.
"""

from __future__ import annotations

import base64
import codecs
import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, NoReturn

from .http_errors import InvalidInput, quoted

#: Deepest nesting accepted. An AEP profile nests about 8 levels (envelope, profile, identityMap,
#: namespace, list, identity); 64 leaves room for any real attribute and keeps every later walk of
#: the document far from Python's recursion limit.
MAX_DEPTH = 64
#: Python refuses to convert longer integers (and could not write them back to the queue either).
MAX_INTEGER_DIGITS = 4300
_UTF16_32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


class MalformedBody(InvalidInput):
    error = "invalid_json"

    def __init__(self, message: str) -> None:
        super().__init__("body", message)


class UnsupportedMediaType(InvalidInput):
    error = "unsupported_media_type"
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class BodyTooLarge(InvalidInput):
    error = "body_too_large"
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class InvalidBase64(InvalidInput):
    error = "invalid_body"


def is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def read_body(
    headers: Mapping[str, str],
    raw_body: str | None,
    is_base64: bool,
    max_bytes: int,
    advice: str,
    *,
    undeclared_is_json: bool = False,
) -> bytes:
    """The bytes of a JSON request's body as API Gateway hands it (text, or base64 for a body that
    is not UTF-8). Refuses a media type that is not JSON (415 naming ``Content-Type``), invalid
    base64 (400) and a body over ``max_bytes`` (413, with ``advice`` for the caller). With
    ``undeclared_is_json``, a body without a Content-Type (absent or empty) is read as JSON and only
    a declared non-JSON type is refused: the operator's routes, whose callers (an AEP audience-metadata
    template lists its headers itself, a script) may leave the header out; ingest keeps asking for it."""
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    undeclared = not (content_type or "").strip()
    if not is_json(content_type) and not (undeclared and undeclared_is_json):
        raise UnsupportedMediaType(
            "Content-Type", f"Content-Type must be application/json, got {quoted(content_type) or 'none'}"
        )
    try:
        # surrogatepass: a lone surrogate in the event's text must reach the UTF-8 check (400),
        # not fail here.
        body = (
            base64.b64decode(raw_body or "", validate=True)
            if is_base64
            else (raw_body or "").encode("utf-8", "surrogatepass")
        )
    except ValueError:  # binascii.Error, or text that is not even ASCII
        raise InvalidBase64("body", "body is not valid base64") from None
    if len(body) > max_bytes:
        raise BodyTooLarge("body", f"body is {len(body)} bytes, over the limit of {max_bytes}{advice}")
    return body


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


def parse_json(body: bytes, expected: str) -> Any:
    """The JSON document of ``body``; raises ``MalformedBody`` for anything else. ``expected`` names
    what the route wants, for the answer to an empty body."""
    text = _text(body)
    if not text.strip():
        raise MalformedBody(f"body is empty: send {expected}")
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
