"""Writes ``cases.jsonl``: the hostile requests, each with the answer it must get.

Run ``python -m tests.corpus.build`` after a deliberate change of behaviour, then review the diff of
``cases.jsonl`` line by line: the answers are recorded from the handler, so the review is what makes
them expectations. ``--check`` only reports the cases whose answer changed.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import sys
from collections import Counter
from typing import Any

from tests.conftest import INGEST_TOKEN
from tests.corpus.harness import CASES, event_of, ingest_handler

GOLD = "a1b2c3d4-0000-4000-8000-000000000001"
SILVER = "a1b2c3d4-0000-4000-8000-000000000002"
WRONG_TYPES: dict[str, Any] = {
    "null": None,
    "true": True,
    "zero": 0,
    "negative-float": -1.5,
    "empty-string": "",
    "string": "x",
    "empty-array": [],
    "empty-object": {},
    "array-of-number": [1],
}

NATIVE: dict[str, Any] = {
    "email": "ada@example.com",
    "attributes": {"city": "Paris", "firstname": "Ada"},
    "audiences": {GOLD: {"status": "realized", "name": "Gold", "timestamp": "2026-11-20T09:15:00Z"}},
}
AEP: dict[str, Any] = {
    "identityMap": {"email": [{"id": "Ada@Example.com"}], "ECID": [{"id": "4948"}]},
    "person": {"name": {"firstName": "Ada"}},
    "segmentMembership": {
        "ups": {GOLD: {"status": "realized", "lastQualificationTime": "2026-11-20T09:15:00Z", "name": "Gold"}}
    },
}
SDK: dict[str, Any] = {
    "identities": [{"type": "email", "id": "ada@example.com"}],
    "attributes": {"firstName": {"value": "Ada"}, "city": "Paris"},
    "AdobeExperiencePlatformSegments": {"add": [GOLD], "remove": [SILVER]},
}
Path = list[str | int]


def _set(document: Any, path: Path, value: Any) -> Any:
    document = copy.deepcopy(document)
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return document


def native(profile: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    return {"profiles": [{**(profile or NATIVE), **changes}]}


def case(name: str, document: Any = None, **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name}
    if document is not None:
        entry["body"] = json.dumps(document)
    entry.update(fields)
    return entry


def raw(name: str, body: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "body": body, **fields}


def b64(name: str, body: bytes, **fields: Any) -> dict[str, Any]:
    return {"name": name, "body_b64": base64.b64encode(body).decode(), **fields}


def wrong_types() -> list[dict[str, Any]]:
    """Every wrong type at every level of the three formats."""
    envelopes: list[tuple[str, dict[str, Any], list[Path]]] = [
        (
            "native",
            {"profiles": [NATIVE]},
            [
                ["profiles"],
                ["profiles", 0],
                ["profiles", 0, "email"],
                ["profiles", 0, "attributes"],
                ["profiles", 0, "attributes", "city"],
                ["profiles", 0, "audiences"],
                ["profiles", 0, "audiences", GOLD],
                ["profiles", 0, "audiences", GOLD, "status"],
                ["profiles", 0, "audiences", GOLD, "timestamp"],
                ["profiles", 0, "audiences", GOLD, "name"],
            ],
        ),
        (
            "aep",
            {"profiles": [AEP]},
            [
                ["profiles", 0, "identityMap"],
                ["profiles", 0, "identityMap", "email"],
                ["profiles", 0, "identityMap", "email", 0],
                ["profiles", 0, "identityMap", "email", 0, "id"],
                ["profiles", 0, "person", "name", "firstName"],
                ["profiles", 0, "segmentMembership"],
                ["profiles", 0, "segmentMembership", "ups"],
                ["profiles", 0, "segmentMembership", "ups", GOLD],
                ["profiles", 0, "segmentMembership", "ups", GOLD, "status"],
                ["profiles", 0, "segmentMembership", "ups", GOLD, "lastQualificationTime"],
                ["profiles", 0, "segmentMembership", "ups", GOLD, "name"],
            ],
        ),
        (
            "sdk",
            {"profiles": [SDK], "audienceId": SILVER},
            [
                ["profiles", 0, "identities"],
                ["profiles", 0, "identities", 0],
                ["profiles", 0, "identities", 0, "type"],
                ["profiles", 0, "identities", 0, "id"],
                ["profiles", 0, "attributes"],
                ["profiles", 0, "attributes", "firstName"],
                ["profiles", 0, "attributes", "firstName", "value"],
                ["profiles", 0, "AdobeExperiencePlatformSegments"],
                ["profiles", 0, "AdobeExperiencePlatformSegments", "add"],
                ["profiles", 0, "AdobeExperiencePlatformSegments", "add", 0],
                ["profiles", 0, "AdobeExperiencePlatformSegments", "remove"],
                ["audienceId"],
            ],
        ),
    ]
    cases = []
    for format_name, document, paths in envelopes:
        for path in paths:
            where = ".".join(str(part) for part in path)
            for type_name, value in WRONG_TYPES.items():
                cases.append(
                    case(f"wrong-type/{format_name}/{where}/{type_name}", _set(document, path, value))
                )
    # The sdk envelope's audience applies only when a profile has no segments of its own.
    for type_name, value in WRONG_TYPES.items():
        document = {
            "profiles": [{"identities": SDK["identities"]}],
            "audienceId": SILVER,
            "segmentStatus": value,
        }
        cases.append(case(f"wrong-type/sdk/segmentStatus/{type_name}", document))
    return cases


def malformed_json() -> list[dict[str, Any]]:
    body = json.dumps({"profiles": [NATIVE]})
    cases = [raw(f"truncated/at-{cut}", body[:cut]) for cut in range(0, len(body), max(1, len(body) // 40))]
    for name, text in {
        "trailing-comma-array": '{"profiles": [{"email": "a@example.com"},]}',
        "trailing-comma-object": '{"email": "a@example.com",}',
        "single-quotes": "{'email': 'a@example.com'}",
        "unquoted-key": '{email: "a@example.com"}',
        "comment": '{"email": "a@example.com" /* hi */}',
        "two-documents": '{"email": "a@example.com"}{"email": "b@example.com"}',
        "trailing-garbage": '{"email": "a@example.com"} x',
        "nan-literal": '{"email": "a@example.com", "attributes": {"score": NaN}}',
        "infinity-literal": '{"email": "a@example.com", "attributes": {"score": Infinity}}',
        "minus-infinity-timestamp": '{"email": "a@example.com", "audiences": {"g": {"status": "realized", '
        '"timestamp": -Infinity}}}',
        "nan-timestamp": '{"email": "a@example.com", "audiences": {"g": {"status": "realized", '
        '"timestamp": NaN}}}',
        "raw-control-character": '{"email": "a@example.com", "attributes": {"city": "Pa\x01ris"}}',
        "raw-newline-in-string": '{"email": "a@example.com", "attributes": {"city": "Pa\nris"}}',
        "bad-escape": '{"email": "a@example.com", "attributes": {"city": "\\x41"}}',
        "short-unicode-escape": '{"email": "a@example.com", "attributes": {"city": "\\u12"}}',
        "leading-zero": '{"email": "a@example.com", "attributes": {"n": 012}}',
        "hex-number": '{"email": "a@example.com", "attributes": {"n": 0x1F}}',
        "plus-number": '{"email": "a@example.com", "attributes": {"n": +1}}',
        "python-none": '{"email": "a@example.com", "attributes": {"n": None}}',
        "only-whitespace": " \n\t ",
        "empty": "",
        "just-null": "null",
        "just-true": "true",
        "just-number": "42",
        "just-string": '"activation"',
        "empty-object": "{}",
        "empty-array": "[]",
        "array-of-nulls": "[null, null]",
        "profiles-null": '{"profiles": null}',
        "profile-not-object": '{"profile": "ada@example.com"}',
        "unrelated-object": '{"hello": "world"}',
    }.items():
        cases.append(raw(f"malformed/{name}", text))
    cases.append({"name": "malformed/no-body", "body": None})
    return cases


def numbers() -> list[dict[str, Any]]:
    cases = []
    big = "9" * 400
    huge = "1" + "0" * 4300
    for where, template in {
        "attribute": '{"email": "a@example.com", "attributes": {"score": %s}}',
        "timestamp": '{"email": "a@example.com", "audiences": {"g": {"status": "realized", '
        '"timestamp": %s}}}',
        "aep-timestamp": '{"identityMap": {"email": [{"id": "a@example.com"}]}, "segmentMembership": '
        '{"ups": {"g": {"status": "realized", "lastQualificationTime": %s}}}}',
        "audience-id": '{"email": "a@example.com", "audiences": [{"id": %s, "status": "realized"}]}',
        "email": '{"email": %s}',
    }.items():
        for name, literal in {
            "1e400": "1e400",
            "-1e400": "-1e400",
            "400-digits": big,
            "negative-400-digits": "-" + big,
            "4301-digits": huge,
            "tiny-float": "1e-400",
            "long-fraction": "0." + "3" * 2000,
            "400-digit-string": f'"{big}"',
        }.items():
            cases.append(raw(f"number/{where}/{name}", template % literal))
    return cases


def timestamps() -> list[dict[str, Any]]:
    values: dict[str, Any] = {
        "iso-z": "2026-11-20T09:15:00Z",
        "iso-lower-z": "2026-11-20t09:15:00z",
        "iso-0000": "2026-11-20T09:15:00.000+0000",
        "iso-micro": "2021-06-30T18:40:07.591378Z",
        "iso-nano": "2021-06-30T18:40:07.591378123Z",
        "iso-offset": "2026-11-20T10:15:00+01:00",
        "iso-naive": "2026-11-20 09:15:00",
        "date-only": "2026-11-20",
        "seconds": 1795166100,
        "seconds-float": 1795166100.5,
        "milliseconds": 1795166100000,
        "microseconds": 1795166100000000,
        "nanoseconds": 1795166100000000000,
        "seconds-string": "1795166100",
        "nanoseconds-string": "1795166100000000000",
        "within-skew": "2026-11-30T00:56:00Z",
        "year-2999": "2999-01-01T00:00:00Z",
        "year-2999-seconds": 32472144000,
        "far-future-ms": 32472144000000,
        "year-1999": "1999-12-31T23:59:59Z",
        "epoch-zero": 0,
        "negative": -1,
        "year-0001": "0001-01-01T00:00:00+10:00",
        "year-9999": "9999-12-31T23:59:59-10:00",
        "garbage": "yesterday",
        "empty": "",
        "bool": True,
        "object": {"at": 1},
        "array": [1795166100],
        "too-many-digits": 10**22,
    }
    cases = []
    for name, value in values.items():
        profile = {**NATIVE, "audiences": {GOLD: {"status": "realized", "timestamp": value}}}
        cases.append(case(f"timestamp/{name}", {"profiles": [profile]}))
    return cases


def texts() -> list[dict[str, Any]]:
    lone = "\ud800"
    cases = [
        raw("surrogate/attribute", '{"email": "a@example.com", "attributes": {"city": "Pa\\ud800ris"}}'),
        raw(
            "surrogate/attribute-wrapped",
            '{"profiles": [{"identities": [{"type": "email", "id": "a@example.com"}],'
            ' "attributes": {"city": {"value": "\\udfff"}}}]}',
        ),
        raw("surrogate/attribute-key", '{"email": "a@example.com", "attributes": {"ci\\ud800ty": "Paris"}}'),
        raw("surrogate/audience-id", '{"email": "a@example.com", "audiences": {"\\ud800": "realized"}}'),
        raw(
            "surrogate/audience-name",
            '{"email": "a@example.com", "audiences": {"g": {"status": "realized", "name": "Gold \\udbff"}}}',
        ),
        raw(
            "surrogate/aep-audience-id",
            '{"identityMap": {"email": [{"id": "a@example.com"}]}, '
            '"segmentMembership": {"ups": {"\\ud800x": {"status": "realized"}}}}',
        ),
        raw(
            "surrogate/sdk-add",
            '{"profiles": [{"identities": [{"type": "email", "id": "a@example.com"}], '
            '"AdobeExperiencePlatformSegments": {"add": ["\\ud800"]}}]}',
        ),
        raw(
            "surrogate/sdk-envelope-audience",
            '{"audienceId": "\\ud800", "audienceName": "\\ud800", '
            '"profiles": [{"identities": [{"type": "email", "id": "a@example.com"}]}]}',
        ),
        raw("surrogate/email", '{"email": "a\\ud800@example.com", "attributes": {"city": "Paris"}}'),
        raw(
            "surrogate/identity-type",
            '{"profiles": [{"identities": [{"type": "em\\ud800ail", '
            '"id": "a@example.com"}], "attributes": {"city": "x"}}]}',
        ),
        raw("surrogate/status", '{"email": "a@example.com", "audiences": {"g": "\\ud800"}}'),
        raw(
            "surrogate/raw-in-event-text",
            '{"email": "a@example.com", "attributes": {"city": "' + lone + '"}}',
        ),
        raw(
            "surrogate/escaped-pair-is-fine",
            '{"email": "a@example.com", "attributes": {"city": "\\ud83d\\ude00"}}',
        ),
        case(
            "unicode/emoji-everywhere",
            native(
                attributes={"city": "🏙️ Zürich", "firstname": "👩‍💻"},
                audiences={"🎯": {"status": "realized", "name": "Gold 🥇"}},
            ),
        ),
        case(
            "unicode/right-to-left",
            native(
                attributes={"city": "القاهرة", "firstname": "\u202eevil\u202c"},
                audiences={GOLD: {"status": "exited", "name": "עברית"}},
            ),
        ),
        case("unicode/zero-width-and-bom-chars", native(attributes={"city": "Pa\u200bris\ufeff"})),
        case("unicode/nul-character-escaped", native(attributes={"city": "Pa\u0000ris"})),
        case("unicode/combining-marks", native(attributes={"firstname": "Z̷̡a̶l̷g̸o̵"})),
        case(
            "injection/sql-audience-name",
            native(audiences={GOLD: {"status": "realized", "name": "'; DROP TABLE contacts; --"}}),
        ),
        case(
            "injection/script-audience-name",
            native(audiences={GOLD: {"status": "realized", "name": "<script>alert(1)</script>"}}),
        ),
        case("injection/template-audience-id", native(audiences={"{{7*7}}${jndi:ldap://x/a}": "realized"})),
        case("injection/path-audience-id", native(audiences={"../../etc/passwd": "realized"})),
        case(
            "injection/attribute-keys",
            native(
                attributes={
                    "__proto__": "x",
                    "constructor": "y",
                    "hs_object_id": "1",
                    "email": "b@example.com",
                    "a.b": "c",
                    "$where": "1",
                }
            ),
        ),
        case("injection/crlf-attribute", native(attributes={"city": "Paris\r\nX-Injected: 1"})),
        case("injection/format-string", native(attributes={"city": "%s%s%n{0}{email}"})),
        case("attribute/at-hubspot-limit", native(attributes={"city": "x" * 65_536})),
        case("attribute/over-hubspot-limit", native(attributes={"city": "x" * 65_537, "firstname": "Ada"})),
        case("attribute/only-over-limit", native(attributes={"city": "y" * 100_000}, audiences=None)),
        case("attribute/empty-string-clears", native(attributes={"city": ""})),
        case(
            "attribute/value-wrappers-1500-deep",
            None,
            body='{"email": "a@example.com", "attributes": {"city": '
            + '{"value": ' * 1500
            + '"x"'
            + "}" * 1500
            + "}}",
        ),
        case(
            "attribute/value-wrappers-30-deep",
            None,
            body='{"email": "a@example.com", "attributes": {"city": '
            + '{"value": ' * 30
            + '"x"'
            + "}" * 30
            + "}}",
        ),
        case(
            "attribute/nan-and-infinity-as-strings", native(attributes={"score": "NaN", "city": "Infinity"})
        ),
        case(
            "attribute/booleans-and-numbers",
            native(attributes={"a_flag": True, "a_count": 3, "a_ratio": 0.25}),
        ),
        case("attribute/nested-object", native(attributes={"city": {"name": "Paris"}})),
        case("attribute/array", native(attributes={"city": ["Paris", "Lyon"]})),
        case("attribute/many-unmapped", native(attributes={f"Key {i}": i for i in range(500)})),
    ]
    return cases


def emails() -> list[dict[str, Any]]:
    values = {
        "uppercase": "ADA@EXAMPLE.COM",
        "whitespace": "  ada@example.com \t",
        "no-at": "ada.example.com",
        "two-at": "ada@@example.com",
        "no-domain": "ada@",
        "no-local": "@example.com",
        "no-tld": "ada@example",
        "numeric-tld": "ada@example.123",
        "dot-start": ".ada@example.com",
        "double-dot": "ada..l@example.com",
        "space-inside": "ada lovelace@example.com",
        "unicode-local": "adä@example.com",
        "unicode-domain": "ada@exämple.com",
        "punycode-domain": "ada@xn--exmple-cua.com",
        "very-long": "a" * 250 + "@example.com",
        "long-local": "a" * 65 + "@example.com",
        "sha256": "a" * 64,
        "quoted-local": '"ada"@example.com',
        "plus-tag": "ada+crm@example.com",
        "ip-domain": "ada@[127.0.0.1]",
        "trailing-dot": "ada@example.com.",
        "hyphen-label": "ada@-example.com",
        "empty": "",
    }
    cases = [case(f"email/native/{name}", native(email=value)) for name, value in values.items()]
    cases += [
        case(
            "email/aep/hashed-only",
            {
                "identityMap": {"email_lc_sha256": [{"id": "ab" * 32}]},
                "segmentMembership": {"ups": {GOLD: {"status": "realized"}}},
            },
        ),
        case(
            "email/aep/hashed-and-clear",
            {
                "identityMap": {"Email_LC_SHA256": [{"id": "ab" * 32}], "EMAIL": [{"id": "ada@example.com"}]},
                "segmentMembership": {"ups": {GOLD: {"status": "realized"}}},
            },
        ),
        case(
            "email/aep/first-invalid-second-valid",
            {
                "identityMap": {"email": [{"id": "bad"}, {"id": "ada@example.com"}]},
                "segmentMembership": {"ups": {GOLD: {"status": "realized"}}},
            },
        ),
        case(
            "email/aep/personal-email-fallback",
            {
                "identityMap": {"ECID": [{"id": "1"}]},
                "personalEmail": {"address": "ada@example.com"},
                "segmentMembership": {"ups": {GOLD: {"status": "realized"}}},
            },
        ),
        case(
            "email/sdk/hashed-only",
            {
                "profiles": [
                    {
                        "identities": [{"type": "email_lc_sha256", "id": "ab" * 32}],
                        "AdobeExperiencePlatformSegments": {"add": [GOLD]},
                    }
                ]
            },
        ),
        case(
            "email/sdk/identity-map-shape",
            {
                "profiles": [
                    {
                        "identities": {"Email": ["ada@example.com"]},
                        "AdobeExperiencePlatformSegments": {"add": [GOLD]},
                    }
                ]
            },
        ),
    ]
    return cases


def envelopes_and_sizes() -> list[dict[str, Any]]:
    one = json.dumps(NATIVE)
    cases = [
        case("envelope/single-native", NATIVE),
        case("envelope/single-aep", AEP),
        case("envelope/bare-array-mixed-formats", [NATIVE, AEP, SDK]),
        case("envelope/profile-key", {"profile": NATIVE}),
        case("envelope/profiles-with-junk", {"profiles": [NATIVE, None, 1, "x", [], {}, {"email": None}]}),
        case(
            "envelope/duplicate-keys-last-wins",
            None,
            body='{"email": "a@example.com", "email": "b@example.com",'
            ' "attributes": {"city": "A", "city": "B"}}',
        ),
        case("envelope/duplicate-profiles-key", None, body='{"profiles": [], "profiles": [' + one + "]}"),
        case(
            "envelope/same-contact-twice", {"profiles": [NATIVE, {**NATIVE, "attributes": {"city": "Lyon"}}]}
        ),
        case("envelope/200-excluded-profiles", {"profiles": [{"email": f"bad{i}"} for i in range(200)]}),
        case(
            "envelope/150-warnings",
            {
                "profiles": [
                    {"email": f"u{i}@example.com", "attributes": {"city": "x", "Bad Key": 1}}
                    for i in range(150)
                ]
            },
        ),
        case(
            "envelope/thousands-of-audiences-fit",
            native(audiences={f"aud-{i}": "realized" for i in range(2000)}),
        ),
        case(
            "envelope/thousands-of-audiences-too-big",
            native(
                audiences={
                    f"audience-{i:06d}": {"status": "realized", "name": f"Audience number {i}"}
                    for i in range(6000)
                }
            ),
        ),
        case(
            "envelope/limit-profiles",
            {
                "profiles": [
                    {"email": f"u{i}@example.com", "attributes": {"city": "x"}} for i in range(10_000)
                ]
            },
        ),
        case(
            "envelope/over-limit-profiles",
            {"profiles": [{"email": f"u{i}@example.com"} for i in range(10_001)]},
        ),
        {
            "name": "size/empty-objects-5mb",
            "body_repeat": {"head": "[", "unit": "{},", "count": 1_700_000, "tail": "{}]"},
        },
        {
            "name": "size/over-max-body",
            "body_repeat": {
                "head": '{"email": "a@example.com", "attributes": {"city": "',
                "unit": "x",
                "count": 5_300_000,
                "tail": '"}}',
            },
        },
        {
            "name": "size/just-under-max-body-one-string",
            "body_repeat": {
                "head": '{"email": "a@example.com", "attributes": {"city": "',
                "unit": "x",
                "count": 5_200_000,
                "tail": '"}}',
            },
        },
        {
            "name": "nesting/arrays-100000",
            "body_repeat": {"head": "", "unit": "[", "count": 100_000, "tail": ""},
        },
        {
            "name": "nesting/arrays-1500-closed",
            "body_repeat": {"head": "[" * 1500, "unit": "]", "count": 1500, "tail": ""},
        },
        {
            "name": "nesting/objects-1500",
            "body_repeat": {"head": "", "unit": '{"a":', "count": 1500, "tail": "1" + "}" * 1500},
        },
        {
            "name": "nesting/65-levels-in-attribute",
            "body": '{"email": "a@example.com", "attributes": {"x": ' + "[" * 63 + "]" * 63 + "}}",
        },
        {
            "name": "nesting/64-levels-total",
            "body": '{"email": "a@example.com", "attributes": {"x": '
            + "[" * 62
            + "]" * 62
            + ', "city": "Paris"}}',
        },
    ]
    return cases


def encodings() -> list[dict[str, Any]]:
    text = json.dumps({"email": "ada@example.com", "attributes": {"city": "Zürich"}}, ensure_ascii=False)
    return [
        b64("encoding/utf-8-base64", text.encode()),
        b64("encoding/utf-8-bom", b"\xef\xbb\xbf" + text.encode()),
        b64("encoding/utf-16-le-bom", text.encode("utf-16")),
        b64("encoding/utf-16-be", text.encode("utf-16-be")),
        b64("encoding/utf-16-le", text.encode("utf-16-le")),
        b64("encoding/utf-32", text.encode("utf-32")),
        b64("encoding/utf-32-be", text.encode("utf-32-be")),
        b64("encoding/latin-1", text.encode("latin-1")),
        b64(
            "encoding/cp1252-quotes",
            '{"email": "a@example.com", "attributes": {"city": "\u201cx\u201d"}}'.encode("cp1252"),
        ),
        b64(
            "encoding/invalid-continuation", b'{"email": "a@example.com", "attributes": {"city": "\xc3\x28"}}'
        ),
        b64("encoding/overlong-slash", b'{"email": "a@example.com", "attributes": {"city": "\xc0\xaf"}}'),
        b64(
            "encoding/encoded-surrogate",
            b'{"email": "a@example.com", "attributes": {"city": "\xed\xa0\x80"}}',
        ),
        b64("encoding/truncated-multibyte", b'{"email": "a@example.com", "attributes": {"city": "\xe2\x82'),
        b64("encoding/nul-bytes", b'{"email": "a@example.com"\x00}'),
        b64("encoding/gzip-magic", b"\x1f\x8b\x08\x00\x00\x00\x00\x00"),
        {"name": "encoding/invalid-base64", "body_b64": "not base64 !!!"},
        {"name": "encoding/non-ascii-base64", "body_b64": "eyJlbWFpbCI6ICJhQGV4YW1wbGUuY29tIn0=é"},
        {"name": "encoding/base64-of-nothing", "body_b64": ""},
    ]


def http() -> list[dict[str, Any]]:
    body = json.dumps(native())
    token = INGEST_TOKEN

    def basic(text: str) -> str:
        return "Basic " + base64.b64encode(text.encode()).decode()

    cases = []
    for name, headers in {
        "none": {},
        "bearer-empty": {"authorization": "Bearer"},
        "bearer-spaces": {"authorization": "Bearer    "},
        "bearer-wrong": {"authorization": "Bearer wrong"},
        "bearer-token-with-prefix-space": {"authorization": f"Bearer  x{token}"},
        "bearer-token-twice": {"authorization": f"Bearer {token} {token}"},
        "token-scheme": {"authorization": f"Token {token}"},
        "no-scheme": {"authorization": token},
        "digest-scheme": {"authorization": f'Digest username="aep", response="{token}"'},
        "basic-not-base64": {"authorization": "Basic !!!"},
        "basic-no-colon": {"authorization": basic(token)},
        "basic-empty-password": {"authorization": basic("aep:")},
        "basic-wrong-password": {"authorization": basic("aep:wrong")},
        "basic-token-as-user": {"authorization": basic(f"{token}:x")},
        "basic-latin-1": {"authorization": "Basic " + base64.b64encode(b"\xe9:\xe9").decode()},
        "api-key-empty": {"x-api-key": ""},
        "api-key-wrong": {"x-api-key": "wrong"},
        "api-key-unicode": {"x-api-key": "ключ🔑"},
        "api-key-huge": {"x-api-key": "k" * 100_000},
        "bearer-huge": {"authorization": "Bearer " + "t" * 100_000},
        "bearer-lowercase-token": {"authorization": f"Bearer {token.upper()}"},
    }.items():
        cases.append({"name": f"auth/{name}", "body": body, "auth": False, "headers": headers})
    cases += [
        {
            "name": "auth/wrong-bearer-and-right-api-key",
            "body": body,
            "auth": False,
            "headers": {"authorization": "Bearer wrong", "x-api-key": token},
        },
        {
            "name": "auth/basic-right",
            "body": body,
            "auth": False,
            "headers": {"authorization": basic(f"any:{token}")},
        },
        {
            "name": "auth/checked-before-body",
            "body": "{",
            "auth": False,
            "headers": {"authorization": "Bearer no"},
        },
    ]
    for name, content_type in {
        "missing": None,
        "text-plain": "text/plain",
        "form": "application/x-www-form-urlencoded",
        "xml": "application/xml",
        "multipart": "multipart/form-data; boundary=x",
        "json-with-charset": "application/json; charset=utf-8",
        "json-latin1-charset": "application/json; charset=iso-8859-1",
        "uppercase": "APPLICATION/JSON",
        "vendor-json": "application/vnd.adobe.xdm+json",
        "json-patch": "application/json-patch+json",
        "json-seq": "application/json-seq",
        "empty": "",
        "huge": "application/" + "x" * 10_000,
    }.items():
        cases.append(
            {"name": f"content-type/{name}", "body": body, "headers": {"content-type": content_type}}
        )
    for method in ("GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"):
        cases.append({"name": f"method/{method}", "method": method, "body": body})
    for name, path in {
        "root": "/",
        "singular": "/activation",
        "sub-path": "/activations/123",
        "trailing-slash": "/activations/",
        "upper-case": "/ACTIVATIONS",
        "traversal": "/activations/../admin",
        "huge": "/" + "a" * 5000,
        "encoded": "/activations%00",
    }.items():
        cases.append({"name": f"path/{name}", "path": path, "body": body})
    return cases


def all_cases() -> list[dict[str, Any]]:
    return (
        wrong_types()
        + malformed_json()
        + numbers()
        + timestamps()
        + texts()
        + emails()
        + envelopes_and_sizes()
        + encodings()
        + http()
    )


def main() -> int:
    cases = all_cases()
    names = Counter(entry["name"] for entry in cases)
    duplicates = [name for name, count in names.items() if count > 1]
    if duplicates:
        raise SystemExit(f"duplicate case names: {duplicates}")
    check = "--check" in sys.argv
    old = {}
    if check:
        old = {json.loads(line)["name"]: json.loads(line) for line in CASES.read_text().splitlines()}
    lines = []
    changed = 0
    with ingest_handler(lambda name, value: os.environ.__setitem__(name, value)) as (handler, _queue):
        for entry in cases:
            response = handler(event_of(entry))
            entry["status"] = response["statusCode"]
            entry["response"] = json.loads(response["body"]) if response.get("body") else None
            if check and old.get(entry["name"], {}).get("response") != entry["response"]:
                changed += 1
                print("changed:", entry["name"], entry["status"], str(entry["response"])[:300])
            lines.append(json.dumps(entry, ensure_ascii=True))
    if not check:
        CASES.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(len(cases), "cases", dict(sorted(Counter(json.loads(line)["status"] for line in lines).items())))
    return 1 if changed else 0


if __name__ == "__main__":
    raise SystemExit(main())
