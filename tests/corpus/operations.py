"""The hostile corpus of the operator's routes: requests as data, each with the status and the field
its answer must name, and how one is turned into the event API Gateway hands the operations
function (HTTP API, payload v2, the route already matched) and driven through the real handler
(moto for DynamoDB, SQS and Secrets Manager, the ledger table as the template declares it).

A case is ``{"name", "method", "route", "params"?, "query"?, "headers"?, "auth"?, "body" |
"body_b64", "status", "field"}`` (``status`` a list when either answer is right): ``route`` is the
template's route key path (``/audiences/{id}``), ``params`` the decoded path parameters, ``query``
the decoded query string parameters. ``headers`` replace the defaults (``content-type:
application/json`` and, unless ``auth`` is false, the bearer token); a header set to None is
removed. ``field`` is what a 4xx answer names (None: no field).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlencode

import boto3
from moto import mock_aws

from local.functions import load_function
from local.template import Resolver, parameter_defaults, translate
from tests.conftest import INGEST_TOKEN, FakeContext, create_fifo_queue_with_dlq, create_ledger_table
from tests.corpus.harness import set_fake_aws_environment

REQUEST_ID = "operations-corpus"
#: Nothing listens there: a rename's relabel fails at once and the PUT still answers.
UNREACHABLE_HUBSPOT = "http://127.0.0.1:9"
DIGITS_5000 = "1" * 5000

Handler = Callable[[dict[str, Any]], dict[str, Any]]

#: The routes as the template declares them (the function serves nothing else).
ISSUES = "/sync/issues"
STATUS = "/sync/status"
CONTACT = "/contacts/{email}"
AUDIENCE = "/audiences/{id}"
REPLAY = "/replay"
RECONCILE = "/reconcile"


def _path(route: str, params: dict[str, str]) -> str:
    path = route
    for name, value in params.items():
        path = path.replace("{" + name + "}", quote(value, safe="", errors="surrogatepass"))
    return path


def event_of(case: dict[str, Any]) -> dict[str, Any]:
    """An API Gateway HTTP API (payload v2) event for ``case``, as API Gateway builds it once the
    route matched: decoded ``pathParameters`` and ``queryStringParameters``."""
    headers: dict[str, str | None] = {"content-type": "application/json"}
    if case.get("auth", True):
        headers["authorization"] = f"Bearer {INGEST_TOKEN}"
    headers.update(case.get("headers", {}))
    method, route = case["method"], case["route"]
    params: dict[str, str] = case.get("params", {})
    query: dict[str, str] = case.get("query", {})
    path = _path(route, params)
    if "body_b64" in case:
        body, is_base64 = case["body_b64"], True
    else:
        body, is_base64 = case.get("body"), False
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": case.get("route_key", f"{method} {route}"),
        "rawPath": path,
        "rawQueryString": urlencode(query, errors="surrogatepass"),
        "headers": {name: value for name, value in headers.items() if value is not None},
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9"},
            "requestId": REQUEST_ID,
            "routeKey": case.get("route_key", f"{method} {route}"),
            "stage": "$default",
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }
    if params:
        event["pathParameters"] = params
    if query:
        event["queryStringParameters"] = query
    return event


def _environment(refs: dict[str, str]) -> dict[str, str]:
    cfn = translate()
    resolver = Resolver(parameter_defaults(cfn), refs, {})
    variables = cfn["Resources"]["OperationsFunction"]["Properties"]["Environment"]["Variables"]
    environment = {name: str(resolver(value)) for name, value in variables.items()}
    environment["HUBSPOT_BASE_URL"] = UNREACHABLE_HUBSPOT
    return environment


@contextmanager
def operations_handler(setenv: Callable[[str, str], None]) -> Iterator[Handler]:
    """The operations handler against moto (inside ``mock_aws``); ``setenv`` sets its environment.
    A handler that raises is what API Gateway answers 500 for: the call returns that 500."""
    with mock_aws():
        queue, dlq = create_fifo_queue_with_dlq("ops", "ops-dlq", max_receive_count=5)
        secrets = boto3.client("secretsmanager")
        ingest_secret = secrets.create_secret(
            Name="ops-ingest-token", SecretString=json.dumps({"token": INGEST_TOKEN})
        )["ARN"]
        hubspot_secret = secrets.create_secret(
            Name="ops-hubspot", SecretString=json.dumps({"accessToken": "pat-corpus"})
        )["ARN"]
        create_ledger_table("ops-ledger")
        refs = {
            "LedgerTable": "ops-ledger",
            "IngestTokenSecret": ingest_secret,
            "HubSpotCredentialSecret": hubspot_secret,
            "ActivationsQueue": queue,
            "ActivationsDeadLetterQueue": dlq,
            "FlushFunction": "ops-flush",
        }
        for name, value in _environment(refs).items():
            setenv(name, value)
        module = load_function("operations", cold_start=True)

        def call(event: dict[str, Any]) -> dict[str, Any]:
            try:
                response: dict[str, Any] = module.lambda_handler(event, FakeContext())
            except Exception as exc:  # the function failed: API Gateway answers 500
                return {"statusCode": 500, "body": json.dumps({"raised": repr(exc)[:300]})}
            return response

        try:
            yield call
        finally:
            module._api.cache_clear()


def isolated_operations_handler() -> Iterator[Handler]:
    """The handler with fake credentials, for a module-scoped fixture."""
    import pytest

    with pytest.MonkeyPatch.context() as patch:
        set_fake_aws_environment(patch)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        with operations_handler(patch.setenv) as call:
            yield call


# -- the cases ---------------------------------------------------------------------------------------


def _case(
    name: str, method: str, route: str, status: int | list[int], field: str | None, **fields: Any
) -> dict[str, Any]:
    return {"name": name, "method": method, "route": route, "status": status, "field": field, **fields}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


#: A number (as text) for every way ``isdigit()``, ``int()`` or a range check can be fooled.
BAD_LIMITS = {
    "superscript-two": "²",
    "circled-one": "①",
    "arabic-indic-three": "٣",
    "fullwidth-five": "\uff15",
    "devanagari-seven": "७",
    "5000-digits": DIGITS_5000,
    "20-digits": "9" * 20,
    "zero": "0",
    "negative": "-1",
    "over-max": "101",
    "float": "1.5",
    "exponent": "1e2",
    "hex": "0x10",
    "plus": "+5",
    "spaces": " 5 ",
    "letters": "ten",
    "nul": "\x00",
    "digit-and-nul": "5\x00",
    "two-values": "5,6",
    "lone-surrogate": "\ud800",
    "infinity": "Infinity",
    "nan": "NaN",
}


def _cursor(document: Any) -> str:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_CURSORS = {
    "garbage": "!!!not base64!!!",
    "plain-word": "cursor",
    "base64-of-text": "bm90LWEtY3Vyc29y",
    "empty-object": _cursor({}),
    "array": _cursor([1, 2, 3]),
    "wrong-keys": _cursor({"k": "a@example.com", "s": "failed", "x": 1}),
    "other-status": _cursor({"k": "a@example.com", "s": "excluded", "t": 1}),
    "time-string": _cursor({"k": "a@example.com", "s": "failed", "t": "1"}),
    "time-float": _cursor({"k": "a@example.com", "s": "failed", "t": 1.5}),
    "time-negative": _cursor({"k": "a@example.com", "s": "failed", "t": -1}),
    "time-bool": _cursor({"k": "a@example.com", "s": "failed", "t": True}),
    "time-huge": _cursor({"k": "a@example.com", "s": "failed", "t": 10**40}),
    "time-1500-digits": _cursor(b'{"k":"a","s":"failed","t":' + b"9" * 1400 + b"}"),
    "time-1e400": _cursor(b'{"k":"a","s":"failed","t":1e400}'),
    "time-nan": _cursor(b'{"k":"a","s":"failed","t":NaN}'),
    "key-number": _cursor({"k": 5, "s": "failed", "t": 1}),
    "key-empty": _cursor({"k": "", "s": "failed", "t": 1}),
    "nested-1500": _cursor(b"[" * 1500 + b"]" * 1),
    "nested-1000-closed": _cursor(b"[" * 700 + b"]" * 700),
    "not-utf8": _cursor(b'{"k":"\xff\xfe","s":"failed","t":1}'),
    "utf16": _cursor(json.dumps({"k": "a", "s": "failed", "t": 1}).encode("utf-16")),
    "overlong": "A" * 5000,
    "non-ascii": "é" * 10,
    "lone-surrogate": "\ud800abc",
    "nul": "\x00",
    "padding-only": "====",
    "truncated": _cursor({"k": "a@example.com", "s": "failed", "t": 1})[:-3],
}


def issues_cases() -> list[dict[str, Any]]:
    cases = [
        _case(f"issues/limit/{name}", "GET", ISSUES, 400, "limit", query={"limit": value})
        for name, value in BAD_LIMITS.items()
    ]
    for name, value in {"one": "1", "max": "100", "leading-zeros": "007", "empty": ""}.items():
        cases.append(_case(f"issues/limit-ok/{name}", "GET", ISSUES, 200, None, query={"limit": value}))
    for name, value in {
        "unknown": "lost",
        "upper-case": "FAILED",
        "nul": "failed\x00",
        "lone-surrogate": "\ud800",
        "overlong": "f" * 5000,
        "digits": DIGITS_5000,
    }.items():
        cases.append(_case(f"issues/status/{name}", "GET", ISSUES, 400, "status", query={"status": value}))
    cases.append(_case("issues/status-ok/excluded", "GET", ISSUES, 200, None, query={"status": "excluded"}))
    cases.append(_case("issues/status-ok/empty", "GET", ISSUES, 200, None, query={"status": ""}))
    for name, value in BAD_CURSORS.items():
        cases.append(_case(f"issues/cursor/{name}", "GET", ISSUES, 400, "cursor", query={"cursor": value}))
    cases.append(
        _case(
            "issues/cursor-ok/valid-but-unknown-key",
            "GET",
            ISSUES,
            200,
            None,
            query={"cursor": _cursor({"k": "nobody@example.com", "s": "failed", "t": 5})},
        )
    )
    cases.append(
        _case("issues/junk-parameter", "GET", ISSUES, 200, None, query={"junk": "\x00" * 10, "page": "²"})
    )
    return cases


def status_cases() -> list[dict[str, Any]]:
    return [
        _case("status/plain", "GET", STATUS, 200, None),
        _case("status/junk-query", "GET", STATUS, 200, None, query={"limit": "²", "cursor": "!!!"}),
        _case("status/with-a-body", "GET", STATUS, 200, None, body="\x00[[[["),
    ]


def contact_cases() -> list[dict[str, Any]]:
    cases = [
        _case(f"contact/email/{name}", "GET", CONTACT, 400, "email", params={"email": value})
        for name, value in {
            "no-at": "ada.example.com",
            "empty": " ",
            "overlong": "a" * 5000 + "@example.com",
            "5000-digits": DIGITS_5000,
            "nul": "ada\x00@example.com",
            "lone-surrogate": "\ud800@example.com",
            "domain-surrogate": "ada@ex\udc80ample.com",
            "hashed": "ab" * 32,
            "traversal": "../../etc/passwd",
            "unicode-digits": "²①@example.com",
            "emoji": "🙂@🙂.com",
        }.items()
    ]
    for name, value in {"unknown": "nobody@example.com", "upper-case-unknown": "NoBody@Example.COM"}.items():
        cases.append(
            _case(f"contact/not-found/{name}", "GET", CONTACT, 404, "email", params={"email": value})
        )
    return cases


def _hostile_bodies() -> dict[str, dict[str, Any]]:
    """Bodies no route can use: each must be a 400 naming ``body``."""
    text = json.dumps({"name": "Zürich", "dryRun": False}, ensure_ascii=False)
    return {
        "nested-arrays-100000": {"body": "[" * 100_000},
        "nested-arrays-100000-closed": {"body": "[" * 100_000 + "]" * 100_000},
        "nested-objects-100000": {"body": '{"a":' * 100_000 + "1" + "}" * 100_000},
        "nested-in-field-2000": {"body": '{"name": ' + "[" * 2000 + "]" * 2000 + "}"},
        "nested-65-levels": {"body": '{"name": ' + "[" * 64 + "]" * 64 + "}"},
        "invalid-utf8": {"body_b64": _b64(b'{"name": "\xc3\x28"}')},
        "utf16-bom": {"body_b64": _b64(text.encode("utf-16"))},
        "utf16-le": {"body_b64": _b64(text.encode("utf-16-le"))},
        "utf32": {"body_b64": _b64(text.encode("utf-32"))},
        "latin-1": {"body_b64": _b64(text.encode("latin-1"))},
        "encoded-surrogate": {"body_b64": _b64(b'{"name": "\xed\xa0\x80"}')},
        "truncated-multibyte": {"body_b64": _b64(b'{"name": "\xe2\x82')},
        "nul-bytes": {"body_b64": _b64(b'{"name": "x"\x00}')},
        "nul-first": {"body_b64": _b64(b'\x00{"name": "x"}')},
        "binary": {"body_b64": _b64(bytes(range(256)) * 4)},
        "gzip": {"body_b64": _b64(b"\x1f\x8b\x08\x00\x00\x00\x00\x00")},
        "invalid-base64": {"body_b64": "not base64 !!!"},
        "non-ascii-base64": {"body_b64": "eyJuYW1lIjogIkdvbGQifQ==é"},
        "not-json": {"body": "name=Gold"},
        "truncated-json": {"body": '{"name": "Go'},
        "trailing-garbage": {"body": '{"name": "Gold"} x'},
        "nan": {"body": '{"name": "Gold", "dryRun": NaN}'},
        "number-5000-digits": {"body": '{"name": "Gold", "n": ' + DIGITS_5000 + "}"},
        "lone-surrogate-raw": {"body": '{"name": "G\ud800old"}'},
        "bom-then-utf16": {"body_b64": _b64(b"\xef\xbb\xbf" + text.encode("utf-16-le"))},
        "over-size": {"body": '{"name": "' + "x" * 1_100_000 + '"}'},
    }


#: JSON values of every type, for each field that wants one type.
WRONG_TYPES: dict[str, Any] = {
    "null": None,
    "true": True,
    "zero": 0,
    "negative": -1,
    "float": 1.5,
    "huge": 10**30,
    "string": "x",
    "empty-string": "",
    "array": ["x"],
    "object": {"x": 1},
}


def audience_cases() -> list[dict[str, Any]]:
    good = json.dumps({"name": "Gold", "description": "members"})
    cases = []
    for name, spec in _hostile_bodies().items():
        status = 413 if name == "over-size" else 400
        cases.append(
            _case(f"audience/put/body/{name}", "PUT", AUDIENCE, status, "body", params={"id": "gold"}, **spec)
        )
    for name, text in {
        "empty": "",
        "whitespace": " \n",
        "null": "null",
        "array": "[]",
        "number": DIGITS_5000[:100],
        "string": '"Gold"',
    }.items():
        cases.append(
            _case(
                f"audience/put/body-shape/{name}",
                "PUT",
                AUDIENCE,
                400,
                "body",
                params={"id": "gold"},
                body=text,
            )
        )
    cases.append(
        _case("audience/put/no-body", "PUT", AUDIENCE, 400, "body", params={"id": "gold"}, body=None)
    )
    for type_name, value in WRONG_TYPES.items():
        if type_name != "string":
            cases.append(
                _case(
                    f"audience/put/name/{type_name}",
                    "PUT",
                    AUDIENCE,
                    400,
                    "name",
                    params={"id": "gold"},
                    body=json.dumps({"name": value}),
                )
            )
        if type_name not in ("null", "string", "empty-string"):
            cases.append(
                _case(
                    f"audience/put/description/{type_name}",
                    "PUT",
                    AUDIENCE,
                    400,
                    "description",
                    params={"id": "gold"},
                    body=json.dumps({"name": "Gold", "description": value}),
                )
            )
    for name in ("name", "description"):
        cases.append(
            _case(
                f"audience/put/{name}/escaped-lone-surrogate",
                "PUT",
                AUDIENCE,
                400,
                name,
                params={"id": "gold"},
                body='{"name": "Gold", "' + name + '": "G\\ud800old"}',
            )
        )
    cases.append(
        _case(
            "audience/put/name/overlong",
            "PUT",
            AUDIENCE,
            400,
            "name",
            params={"id": "gold"},
            body=json.dumps({"name": "n" * 401}),
        )
    )
    for name, content_type in {
        "text-plain": "text/plain",
        "octet-stream": "application/octet-stream",
        "form": "application/x-www-form-urlencoded",
        "huge": "application/" + "x" * 10_000,
    }.items():
        cases.append(
            _case(
                f"audience/put/content-type/{name}",
                "PUT",
                AUDIENCE,
                415,
                "Content-Type",
                params={"id": "gold"},
                body=good,
                headers={"content-type": content_type},
            )
        )
    cases.append(
        _case(
            "audience/put/content-type/octet-stream-binary",
            "PUT",
            AUDIENCE,
            415,
            "Content-Type",
            params={"id": "gold"},
            body_b64=_b64(b"\xff\xfe\x00\x01" * 64),
            headers={"content-type": "application/octet-stream"},
        )
    )
    # No Content-Type at all (an audience-metadata template that lists no such header): read as JSON.
    for name, value in {
        "json-charset": "application/json; charset=utf-8",
        "upper": "APPLICATION/JSON",
        "missing": None,
        "empty": "",
    }.items():
        cases.append(
            _case(
                f"audience/put/content-type-ok/{name}",
                "PUT",
                AUDIENCE,
                [200, 201],
                None,
                params={"id": "gold-ct"},
                body=good,
                headers={"content-type": value},
            )
        )
    for method in ("PUT", "DELETE"):
        cases.append(
            _case(
                f"audience/{method.lower()}/id/empty",
                method,
                AUDIENCE,
                404,
                "path",
                params={"id": ""},
                body=good,
            )
        )
        for name, value in {
            "blank": "   ",
            "257-characters": "a" * 257,
            "5000-characters": "a" * 5000,
            "5000-digits": DIGITS_5000,
            "lone-surrogate": "gold\ud800",
            "only-surrogate": "\udfff",
        }.items():
            cases.append(
                _case(
                    f"audience/{method.lower()}/id/{name}",
                    method,
                    AUDIENCE,
                    400,
                    "id",
                    params={"id": value},
                    body=good,
                )
            )
    cases.append(
        _case("audience/put/ok", "PUT", AUDIENCE, [200, 201], None, params={"id": "gold"}, body=good)
    )
    cases.append(
        _case(
            "audience/put/ok-base64",
            "PUT",
            AUDIENCE,
            [200, 201],
            None,
            params={"id": "gold"},
            body_b64=_b64(good.encode()),
        )
    )
    cases.append(
        _case(
            "audience/put/ok-utf8-bom",
            "PUT",
            AUDIENCE,
            [200, 201],
            None,
            params={"id": "gold"},
            body_b64=_b64(b"\xef\xbb\xbf" + good.encode()),
        )
    )
    cases.append(
        _case(
            "audience/delete/ok-with-garbage-body",
            "DELETE",
            AUDIENCE,
            200,
            None,
            params={"id": "gold"},
            body="\x00[[[",
        )
    )
    return cases


def replay_cases() -> list[dict[str, Any]]:
    cases = []
    for name, spec in _hostile_bodies().items():
        status = 413 if name == "over-size" else 400
        cases.append(_case(f"replay/body/{name}", "POST", REPLAY, status, "body", **spec))
    for name, text in {
        "null": "null",
        "array": "[]",
        "number": "1",
        "string": '"yes"',
        "whitespace": " \n",
    }.items():
        cases.append(_case(f"replay/body-shape/{name}", "POST", REPLAY, 400, "body", body=text))
    for type_name, value in WRONG_TYPES.items():
        if type_name == "true":
            continue  # a valid value
        cases.append(
            _case(
                f"replay/dryRun/{type_name}",
                "POST",
                REPLAY,
                400,
                "dryRun",
                body=json.dumps({"dryRun": value}),
            )
        )
        if type_name not in ("null", "string", "empty-string"):
            cases.append(
                _case(
                    f"replay/cursor/{type_name}",
                    "POST",
                    REPLAY,
                    400,
                    "cursor",
                    body=json.dumps({"dryRun": True, "cursor": value}),
                )
            )
    for name, value in BAD_CURSORS.items():
        if name == "lone-surrogate":
            continue  # json.dumps writes it escaped; the raw-body case covers a surrogate
        for dry in (True, False):
            cases.append(
                _case(
                    f"replay/cursor/{name}/{'dry' if dry else 'real'}",
                    "POST",
                    REPLAY,
                    400,
                    "cursor",
                    body=json.dumps({"dryRun": dry, "cursor": value}),
                )
            )
    for name, content_type in {
        "text-plain": "text/plain",
        "octet-stream": "application/octet-stream",
    }.items():
        cases.append(
            _case(
                f"replay/content-type/{name}",
                "POST",
                REPLAY,
                415,
                "Content-Type",
                body='{"dryRun": true}',
                headers={"content-type": content_type},
            )
        )
    cases += [
        _case("replay/ok/no-body", "POST", REPLAY, 200, None, body=None),
        _case("replay/ok/no-body-no-content-type", "POST", REPLAY, 200, None, headers={"content-type": None}),
        _case(
            "replay/ok/no-content-type",
            "POST",
            REPLAY,
            200,
            None,
            body='{"dryRun": true}',
            headers={"content-type": None},
        ),
        _case(
            "replay/no-content-type/not-json",
            "POST",
            REPLAY,
            400,
            "body",
            body="dryRun=true",
            headers={"content-type": None},
        ),
        _case("replay/ok/dry-run", "POST", REPLAY, 200, None, body='{"dryRun": true}'),
        _case("replay/ok/real", "POST", REPLAY, 200, None, body='{"dryRun": false}'),
        _case("replay/ok/unknown-keys", "POST", REPLAY, 200, None, body='{"dryRun": true, "x": [1]}'),
        _case("replay/ok/base64", "POST", REPLAY, 200, None, body_b64=_b64(b'{"dryRun": true}')),
    ]
    return cases


#: Entries of ``emails`` none of which is an address: each a 400 naming ``emails``.
BAD_EMAIL_ENTRIES: dict[str, Any] = {
    "number": 5,
    "null": None,
    "object": {"email": "ada@example.com"},
    "empty": "",
    "spaces": "   ",
    "no-at": "ada.example.com",
    "no-domain": "ada@",
    "sha256": "a" * 64,
    "overlong": "a" * 300 + "@example.com",
    "lone-surrogate": "ad\ud800@example.com",
}


def reconcile_cases() -> list[dict[str, Any]]:
    """Everything here is refused before the reconciler is built, but the OK cases and the cursors
    only the reconciler can tell from its own (each a 400 naming ``cursor``, never a 5xx)."""
    cases = []
    for name, spec in _hostile_bodies().items():
        size = 413 if name == "over-size" else 400
        cases.append(_case(f"reconcile/body/{name}", "POST", RECONCILE, size, "body", **spec))
    for name, text in {"null": "null", "array": "[]", "number": "1", "string": '"yes"'}.items():
        cases.append(_case(f"reconcile/body-shape/{name}", "POST", RECONCILE, 400, "body", body=text))
    for type_name, value in WRONG_TYPES.items():
        if type_name != "true":
            body = json.dumps({"dryRun": value})
            cases.append(_case(f"reconcile/dryRun/{type_name}", "POST", RECONCILE, 400, "dryRun", body=body))
        if type_name not in ("null", "string"):
            body = json.dumps({"dryRun": True, "cursor": value})
            cases.append(
                _case(f"reconcile/cursor-type/{type_name}", "POST", RECONCILE, 400, "cursor", body=body)
            )
        if type_name not in ("null", "array"):
            body = json.dumps({"dryRun": True, "emails": value})
            cases.append(_case(f"reconcile/emails/{type_name}", "POST", RECONCILE, 400, "emails", body=body))
    for name, value in BAD_CURSORS.items():
        # The issues index's cursors: a reconcile refuses each (400 naming it) unless it reads as
        # one of its own, which only the reconciler can tell (a walk from there); never a 5xx.
        status: int | list[int] = 400 if name in ("overlong", "lone-surrogate") else [200, 400]
        body = json.dumps({"dryRun": True, "cursor": value})  # a lone surrogate as a JSON escape
        cases.append(_case(f"reconcile/cursor/{name}", "POST", RECONCILE, status, "cursor", body=body))
    for name, value in BAD_EMAIL_ENTRIES.items():
        body = json.dumps({"dryRun": True, "emails": ["ada@example.com", value]})
        cases.append(_case(f"reconcile/emails/entry-{name}", "POST", RECONCILE, 400, "emails", body=body))
    cases += [
        _case(
            "reconcile/emails/101",
            "POST",
            RECONCILE,
            400,
            "emails",
            body=json.dumps({"emails": [f"u{i}@example.com" for i in range(101)]}),
        ),
        _case(
            "reconcile/emails-and-cursor",
            "POST",
            RECONCILE,
            400,
            "cursor",
            body=json.dumps({"emails": ["ada@example.com"], "cursor": "abc"}),
        ),
        _case(
            "reconcile/content-type/text-plain",
            "POST",
            RECONCILE,
            415,
            "Content-Type",
            body='{"dryRun": true}',
            headers={"content-type": "text/plain"},
        ),
        # An empty ledger: nothing to read from HubSpot (unreachable here) or to repair.
        _case("reconcile/ok/no-body", "POST", RECONCILE, 200, None, body=None),
        _case("reconcile/ok/dry-run", "POST", RECONCILE, 200, None, body='{"dryRun": true}'),
        _case("reconcile/ok/unknown-keys", "POST", RECONCILE, 200, None, body='{"dryRun": true, "x": 1}'),
        # Untracked contacts: the ledger says so without asking HubSpot, or HubSpot is unreachable.
        _case(
            "reconcile/ok-or-unavailable/emails",
            "POST",
            RECONCILE,
            [200, 503],
            None,
            body=json.dumps({"dryRun": True, "emails": ["Ada@Example.com", "ada@example.com"]}),
        ),
    ]
    return cases


def auth_cases() -> list[dict[str, Any]]:
    routes = [
        ("GET", STATUS, {}),
        ("GET", ISSUES, {}),
        ("GET", CONTACT, {"email": "ada@example.com"}),
        ("PUT", AUDIENCE, {"id": "gold"}),
        ("DELETE", AUDIENCE, {"id": "gold"}),
        ("POST", REPLAY, {}),
        ("POST", RECONCILE, {}),
    ]
    cases = []
    for method, route, params in routes:
        for name, headers in {
            "none": {},
            "wrong": {"authorization": "Bearer wrong"},
            "huge": {"authorization": "Bearer " + "t" * 100_000},
            "surrogate": {"x-api-key": "\ud800"},
        }.items():
            cases.append(
                _case(
                    f"auth/{method.lower()}{route}/{name}",
                    method,
                    route,
                    401,
                    None,
                    params=params,
                    auth=False,
                    headers=headers,
                    # checked before the body: a hostile body changes nothing
                    body="[" * 100_000,
                )
            )
    return cases


def unknown_route_cases() -> list[dict[str, Any]]:
    return [
        _case("route/unknown", "GET", "/sync/unknown", 404, "path", route_key="$default"),
        _case("route/overlong", "GET", "/" + "a" * 5000, 404, "path", route_key="$default"),
    ]


def all_cases() -> list[dict[str, Any]]:
    return (
        issues_cases()
        + status_cases()
        + contact_cases()
        + audience_cases()
        + replay_cases()
        + reconcile_cases()
        + auth_cases()
        + unknown_route_cases()
    )
