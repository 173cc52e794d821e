"""The sandbox's HTTP surface (a WSGI app): HubSpot's paths, status codes, headers and bodies."""

from __future__ import annotations

import json
import random
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from werkzeug.wrappers import Request, Response

from .emails import normalize_email
from .journal import Journal, JournalError, is_journal_path
from .lists import PATTERN as _LISTS
from .lists import Lists, ListsError
from .state import ALL_SCOPES, PORTAL_ID, RestoreRefused, SandboxState, now_iso
from .validations import ConditionalRequired, RuleRefused, checked_rule, format_refusals, required_refusals
from .values import InvalidValue, validate

_OBJECTS = re.compile(r"^/crm/(?:v3/objects|objects/(2026-03|2026-09))/(?:contacts|0-1)(?P<rest>/.*)?$")
_PROPERTIES = re.compile(
    r"^/crm/(?:v3/properties|properties/(2026-03|2026-09))/(?:contacts|0-1)(?P<rest>/.*)?$"
)
_VALIDATIONS = re.compile(
    r"^/crm/(?:v3/property-validations|property-validations/(2026-03|2026-09))/(?P<object>[^/]+)"
    r"(?:/(?P<property>[^/]+)(?:/rule-type/(?P<rule>[^/]+))?)?$"
)
_LIMITS = re.compile(r"^/crm/(?:v3/limits|limits/2026-03)/custom-properties$")
_TOKEN = re.compile(r"^/oauth/(?:v1|v3|2026-03)/token$")
_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_FIELD_TYPES = {
    "bool": {"booleancheckbox", "calculation_equation"},
    "enumeration": {"booleancheckbox", "checkbox", "radio", "select", "calculation_equation"},
    "date": {"date"},
    "datetime": {"date"},
    "string": {"text", "textarea", "file", "html", "phonenumber", "calculation_equation"},
    "number": {"number", "calculation_equation"},
    "phone_number": {"phonenumber"},
}
READ_SCOPES = ("crm.objects.contacts.read", "crm.objects.contacts.write")
WRITE_SCOPES = ("crm.objects.contacts.write",)
SCHEMA_READ = ("crm.schemas.contacts.read", "crm.objects.contacts.read", "crm.objects.contacts.write")
SCHEMA_WRITE = ("crm.schemas.contacts.write",)
#: kept by HubSpot itself on every write, so no property-change event is sent for them
_SYSTEM_PROPERTIES = frozenset({"hs_object_id", "createdate", "lastmodifieddate"})
_NOT_FOUND_IN_BATCH = (
    "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid."
)

#: The message of an input the account's validation rules refuse; the properties and reasons are in
#: its ``errors`` (ErrorDetail), not in this text.
_RULES_MESSAGE = "Some property values did not pass the account's property validation rules"
#: HubSpot's object type id of contacts, the only object the sandbox keeps
CONTACTS_TYPE = "0-1"


#: (handler, scopes any one of which grants access)
Endpoint = tuple[Callable[..., tuple[int, Any]], tuple[str, ...]]
#: (handler, scopes, API version, path arguments)
Route = tuple[Callable[..., tuple[int, Any]], tuple[str, ...], str, tuple[str, ...]]


class InputProblem(Exception):
    def __init__(self, category: str, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.category, self.message = category, message
        #: ``ErrorDetail`` entries (a validation rule's refusals name their property there)
        self.details = details or []

    def as_error(self, context: dict[str, Any]) -> dict[str, Any]:
        """A ``StandardError`` entry of a batch answer."""
        return {
            "status": "error",
            "category": self.category,
            "message": self.message,
            "context": context,
            "errors": list(self.details),
            "links": {},
        }


class ApiError(Exception):
    def __init__(self, status: int, category: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.category, self.message, self.extra = status, category, message, extra


def error_body(category: str, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {}, content_type="application/json")


def _version(value: str, timestamp: str) -> dict[str, Any]:
    """One ``ValueWithTimestamp``; writes through the API are attributed to an integration."""
    return {"value": value, "timestamp": timestamp, "sourceType": "INTEGRATION"}


def query_list(request: Request, name: str) -> list[str]:
    """An array query parameter, in every form HubSpot accepts.

    HubSpot's spec declares these parameters exploded (``?properties=a&properties=b``, which is what
    its official clients send) while its descriptions and guides write them comma-separated
    (``?properties=a,b``). HubSpot answers both, so the sandbox takes both and any mix of them: reading
    only one form would fail a client that is right, or hide from the tests a client that is wrong.
    """
    return [item.strip() for value in request.args.getlist(name) for item in value.split(",") if item.strip()]


def query_flag(request: Request, name: str) -> bool:
    """A boolean query parameter, read case-insensitively: HubSpot's official Python client sends
    Python's spelling (``archived=True``), so HubSpot evidently takes it as true."""
    return request.args.get(name, "false").strip().lower() == "true"


class SandboxApp:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._random = random.Random(state.config.seed)  # noqa: S311 - fault injection, not security
        self._routes = ((_OBJECTS, self._object_routes()), (_PROPERTIES, self._property_routes()))
        self.journal = Journal(state)
        self.lists = Lists(state)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        if request.environ.get("sandbox.drop"):
            # Close the socket without an answer: what a dropped connection looks like to a client.
            connection = environ.get("werkzeug.socket")
            if connection is not None:
                connection.shutdown(socket.SHUT_RDWR)
            return []
        return response(environ, start_response)

    # --- plumbing ----------------------------------------------------------------------------------

    def _unmetered(self, request: Request) -> Response | None:
        """The answer to a call outside HubSpot's rate limits (test hooks, the OAuth token
        endpoint, the webhooks journal), or None for a metered API call."""
        path = request.path
        if path.startswith("/__sandbox/"):
            return self.admin(request, path.removeprefix("/__sandbox/"))
        if _TOKEN.match(path) and request.method == "POST":
            return self.oauth_token(request)
        if is_journal_path(path):
            return self.journal_call(request)
        return None

    def dispatch(self, request: Request) -> Response:
        unmetered = self._unmetered(request)
        if unmetered is not None:
            return unmetered
        path = request.path
        route = self.route(request.method, path)
        if route is None:
            return json_response(404, error_body("OBJECT_NOT_FOUND", f"No route for {request.method} {path}"))
        handler, scopes, version, args = route
        config = self.state.config
        if config.latency_ms:
            self._count_fault("latency")
            time.sleep(config.latency_ms / 1000)
        if config.drop_rate and self._random.random() < config.drop_rate:
            self._count_fault("drop")
            request.environ["sandbox.drop"] = True
            return Response(status=500)
        with self.state.lock:
            try:
                token = self.authenticate(request, scopes)
            except ApiError as exc:
                return json_response(exc.status, error_body(exc.category, exc.message, **exc.extra))
            policy, remaining, daily_remaining = self.state.take_rate_limit(token.value)
            headers = {
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(config.window_ms),
                "X-HubSpot-RateLimit-Max": str(config.ten_second_limit),
                "X-HubSpot-RateLimit-Remaining": str(remaining),
                "X-HubSpot-Correlation-Id": str(uuid.uuid4()),
            }
            if not token.oauth:  # HubSpot leaves the daily headers out for OAuth tokens
                headers["X-HubSpot-RateLimit-Daily"] = str(config.daily_limit)
                headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(daily_remaining)
            route_key = f"{request.method} {handler.__name__}"
            if policy is not None:
                self.state.throttled[policy] += 1
                limit = "daily" if policy == "DAILY" else "ten_secondly_rolling"
                return json_response(
                    429,
                    {
                        "status": "error",
                        "message": f"You have reached your {limit} limit.",
                        "errorType": "RATE_LIMIT",
                        "correlationId": headers["X-HubSpot-Correlation-Id"],
                        "policyName": policy,
                        "requestId": str(uuid.uuid4()),
                    },
                    headers,
                )
            self.state.requests[route_key] += 1
            refused = self._fault_instead_of_handling(headers)
            if refused is not None:
                return refused
            writes = request.method in ("POST", "PATCH", "PUT")
            try:
                body = self._json(request) if writes else None
                status, payload = handler(request, version, body, *args)
            except (ApiError, ListsError) as exc:
                return json_response(exc.status, error_body(exc.category, exc.message, **exc.extra), headers)
            lost = self._answer_lost_after_write(writes, headers)
            if lost is not None:
                return lost
            return (
                json_response(status, payload, headers)
                if payload is not None
                else Response(status=status, headers=headers)
            )

    def journal_call(self, request: Request) -> Response:
        """A webhooks-journal call: authenticated and counted like any other, but never throttled
        (HubSpot's spec exempts each of them from the 10-second and daily limits)."""
        route = self.journal.route(request.method, request.path)
        if route is None:
            return json_response(
                404, error_body("OBJECT_NOT_FOUND", f"No route for {request.method} {request.path}")
            )
        handler, scopes, args = route
        headers = {"X-HubSpot-Correlation-Id": str(uuid.uuid4())}
        with self.state.lock:
            try:
                self.authenticate(request, scopes)
                self.state.requests[f"{request.method} journal.{handler.__name__}"] += 1
                body = self._json(request) if request.method == "POST" else None
                status, payload = handler(request, body, *args)
            except (ApiError, JournalError) as exc:
                return json_response(exc.status, error_body(exc.category, exc.message, **exc.extra), headers)
        if payload is None:
            return Response(status=status, headers=headers)
        return json_response(status, payload, headers)

    @staticmethod
    def _json(request: Request) -> Any:
        try:
            return json.loads(request.get_data() or b"null")
        except json.JSONDecodeError as exc:
            raise ApiError(
                400, "VALIDATION_ERROR", f"Invalid input JSON on line {exc.lineno}, column {exc.colno}"
            ) from exc

    def _fault_instead_of_handling(self, headers: dict[str, str]) -> Response | None:
        """A 423 or an error answer (locked_rate, error_rate) for a call that is not processed."""
        config = self.state.config
        if config.locked_rate and self._random.random() < config.locked_rate:
            self.state.faults["locked"] += 1
            return json_response(
                423, error_body("LOCKED", "The resource is locked; retry after 2 seconds"), headers
            )
        if config.error_rate and self._random.random() < config.error_rate:
            self.state.faults["error"] += 1
            return json_response(config.error_status, error_body("INTERNAL_ERROR", "Internal error"), headers)
        return None

    def _answer_lost_after_write(self, writes: bool, headers: dict[str, str]) -> Response | None:
        """An error answer for a write that was done (applied_error_rate): the client cannot tell
        it from one that was not."""
        config = self.state.config
        if writes and config.applied_error_rate and self._random.random() < config.applied_error_rate:
            self.state.faults["applied_error"] += 1
            return json_response(config.error_status, error_body("INTERNAL_ERROR", "Internal error"), headers)
        return None

    def _count_fault(self, kind: str) -> None:
        with self.state.lock:
            self.state.faults[kind] += 1

    def authenticate(self, request: Request, scopes: tuple[str, ...]) -> Any:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        token = self.state.tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None or (token.expires_at is not None and self.state.clock() >= token.expires_at):
            self.state.faults["auth"] += 1  # revoked, expired or missing: a client must re-authenticate
        if token is None:
            raise ApiError(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports "
                "OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            )
        if token.expires_at is not None and self.state.clock() >= token.expires_at:
            ago = int(self.state.clock() - token.expires_at)
            raise ApiError(
                401,
                "EXPIRED_AUTHENTICATION",
                f"The OAuth token used to make this call expired {ago} second(s) ago.",
                context={"expire time": [now_iso(token.expires_at)]},
            )
        # An entry naming several scopes (space-separated, as OAuth writes a set) needs all of them.
        if not any(set(entry.split()) <= token.scopes for entry in scopes):
            raise ApiError(
                403,
                "MISSING_SCOPES",
                "This app hasn't been granted all required scopes to make this call.",
                errors=[
                    {
                        "message": "One or more of the following scopes are required.",
                        "context": {"requiredGranularScopes": list(dict.fromkeys(" ".join(scopes).split()))},
                    }
                ],
            )
        return token

    def route(self, method: str, path: str) -> Route | None:
        for pattern, (fixed, by_name) in self._routes:
            if match := pattern.match(path):
                version, rest = match.group(1) or "v3", match.group("rest") or ""
                if (method, rest) in fixed:
                    handler, scopes = fixed[(method, rest)]
                    return handler, scopes, version, ()
                if re.fullmatch(r"/[^/]+", rest) and method in by_name:
                    handler, scopes = by_name[method]
                    return handler, scopes, version, (rest[1:],)
                return None
        if match := _LISTS.match(path):
            found = self.lists.route(method, match.group("rest") or "")
            return None if found is None else (found[0], found[1], match.group(1) or "v3", found[2])
        if _LIMITS.match(path) and method == "GET":
            return self.custom_property_limits, SCHEMA_READ, "v3", ()
        if match := _VALIDATIONS.match(path):
            return self._validation_route(method, match)
        return None

    def _validation_route(self, method: str, match: re.Match[str]) -> Route | None:
        version = match.group(1) or "v3"
        found = match.group("object", "property", "rule")
        args = tuple(part for part in found if part is not None)
        if method == "PUT" and found[2] is not None:
            return self.put_validation_rule, SCHEMA_WRITE, version, args
        if method != "GET":
            return None
        handler = (self.list_validations, self.property_validations, self.get_validation_rule)[len(args) - 1]
        return handler, SCHEMA_READ, version, args

    def _object_routes(self) -> tuple[dict[tuple[str, str], Endpoint], dict[str, Endpoint]]:
        fixed = {
            ("POST", "/batch/upsert"): (self.batch_upsert, WRITE_SCOPES),
            ("POST", "/batch/read"): (self.batch_read, READ_SCOPES),
            ("POST", "/batch/create"): (self.batch_create, WRITE_SCOPES),
            ("POST", "/batch/update"): (self.batch_update, WRITE_SCOPES),
            ("POST", "/batch/archive"): (self.batch_archive, WRITE_SCOPES),
            ("POST", "/gdpr-delete"): (self.gdpr_delete, WRITE_SCOPES),
            ("POST", "/merge"): (self.merge_contacts, WRITE_SCOPES),
            ("POST", ""): (self.create_contact, WRITE_SCOPES),
        }
        return fixed, {
            "GET": (self.get_contact, READ_SCOPES),
            "PATCH": (self.patch_contact, WRITE_SCOPES),
            "DELETE": (self.delete_contact, WRITE_SCOPES),
        }

    def _property_routes(self) -> tuple[dict[tuple[str, str], Endpoint], dict[str, Endpoint]]:
        fixed = {
            ("GET", ""): (self.list_properties, SCHEMA_READ),
            ("POST", ""): (self.create_property, SCHEMA_WRITE),
            ("POST", "/batch/create"): (self.batch_create_properties, SCHEMA_WRITE),
            ("GET", "/groups"): (self.list_groups, SCHEMA_READ),
            ("POST", "/groups"): (self.create_group, SCHEMA_WRITE),
        }
        return fixed, {"GET": (self.get_property, SCHEMA_READ), "PATCH": (self.patch_property, SCHEMA_WRITE)}

    # --- contacts ----------------------------------------------------------------------------------

    def _contact_json(
        self,
        contact_id: str,
        new: bool | None = None,
        trace: str | None = None,
        only: Iterable[str] | None = None,
        history: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        archived = contact_id in self.state.archived
        contact = self.state.archived[contact_id] if archived else self.state.contacts[contact_id]
        names = set(only) if only is not None else set(contact["properties"])
        names |= {"hs_object_id", "createdate", "lastmodifieddate"}
        result: dict[str, Any] = {
            "id": contact_id,
            "properties": {k: v for k, v in contact["properties"].items() if k in names},
            "createdAt": contact["createdAt"],
            "updatedAt": contact["updatedAt"],
            "archived": archived,
        }
        if archived:
            result["archivedAt"] = contact["archivedAt"]
        if history is not None:
            result["propertiesWithHistory"] = self._history(contact, history)
        if new is not None:
            result["new"] = new
        if trace is not None:
            result["objectWriteTraceId"] = trace
        return result

    @staticmethod
    def _history(contact: dict[str, Any], names: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """``propertiesWithHistory``: each asked-for property that has a value, newest version first;
        properties without a value are left out, as HubSpot ignores names it has nothing for."""
        recorded: dict[str, list[dict[str, Any]]] = contact.get("history", {})
        current: dict[str, str] = contact["properties"]
        found: dict[str, list[dict[str, Any]]] = {}
        for name in dict.fromkeys(names):
            if name in recorded:
                found[name] = [dict(version) for version in recorded[name]]
            elif name in current:  # a contact put into the state directly by a test has no history
                found[name] = [_version(current[name], contact["updatedAt"])]
        return found

    def _validated(self, properties: Any) -> tuple[dict[str, str], list[dict[str, Any]]]:
        if not isinstance(properties, dict):
            raise ApiError(400, "VALIDATION_ERROR", "Invalid input JSON: 'properties' must be an object")
        clean: dict[str, str] = {}
        problems: list[dict[str, Any]] = []
        for name, raw in properties.items():
            definition = self.state.properties.get(name)
            if definition is None or definition.get("archived"):
                problems.append(
                    {
                        "isValid": False,
                        "message": f'Property "{name}" does not exist',
                        "error": "PROPERTY_DOESNT_EXIST",
                        "name": name,
                        "localizedErrorMessage": f'Property "{name}" does not exist',
                        "portalId": PORTAL_ID,
                    }
                )
                continue
            try:
                clean[name] = (
                    self._unblocked(validate(definition, raw))
                    if name == "email"
                    else validate(definition, raw)
                )
            except InvalidValue as exc:
                problems.append(
                    {
                        "isValid": False,
                        "message": exc.message,
                        "error": exc.code,
                        "name": name,
                        "localizedErrorMessage": exc.message,
                        "portalId": PORTAL_ID,
                    }
                )
        return clean, problems

    def _unblocked(self, email: str) -> str:
        """``email``, unless a GDPR delete blocklisted it. HubSpot documents the blocklist but not
        the error a write of such an address gets; the sandbox answers as for an address HubSpot
        will not take (INVALID_EMAIL), with a message naming the reason, so a client files it as a
        permanent failure of that one contact."""
        if email in self.state.blocklist:
            raise InvalidValue(
                "INVALID_EMAIL", f"Email address {email} was permanently deleted (GDPR) and is blocklisted"
            )
        return email

    def _write(
        self, contact_id: str | None, email: str | None, properties: dict[str, str]
    ) -> tuple[str, bool]:
        now = now_iso(self.state.clock())
        if contact_id is None:
            contact_id = self.state.next_id()
            self.state.contacts[contact_id] = {
                "properties": {},
                "history": {},
                "createdAt": now,
                "updatedAt": now,
            }
            properties = {"hs_object_id": contact_id, "createdate": now, **properties}
            created = True
            self.state.record("contact.creation", contact_id)
        else:
            created = False
        contact = self.state.contacts[contact_id]
        if email:
            properties = {**properties, "email": email}
        properties = {**properties, "lastmodifieddate": now}
        old_email = contact["properties"].get("email")
        history = contact.setdefault("history", {})
        for name, value in properties.items():
            # Only changes become versions, so repeated identical writes do not grow the history.
            if contact["properties"].get(name) != value or name not in history:
                history.setdefault(name, []).insert(0, _version(value, now))
                if name not in _SYSTEM_PROPERTIES:
                    self.state.record(
                        "contact.propertyChange", contact_id, propertyName=name, propertyValue=value
                    )
        contact["properties"].update(properties)
        contact["updatedAt"] = now
        new_email = contact["properties"].get("email")
        if old_email and old_email != new_email:
            self.state.email_index.pop(old_email, None)
        if new_email:
            self.state.email_index[new_email] = contact_id
        return contact_id, created

    def _run_batch(
        self,
        version: str,
        inputs: list[dict[str, Any]],
        check: Callable[[dict[str, Any]], Any],
        write: Callable[[dict[str, Any], Any], dict[str, Any]],
        success_status: int,
    ) -> tuple[int, Any]:
        """HubSpot's batch semantics: every input is checked first; with objectWriteTraceId a bad
        input becomes one entry of ``errors`` (207, or 200 in 2026-09) and the rest is written,
        without it the whole request fails with 400 and nothing is written."""
        started = now_iso(self.state.clock())
        planned: list[tuple[dict[str, Any], Any]] = []
        errors: list[dict[str, Any]] = []
        for item in inputs:
            trace = item.get("objectWriteTraceId")
            try:
                planned.append((item, check(item)))
            except InputProblem as problem:
                if trace is None or not self.state.config.per_input_errors:
                    raise ApiError(400, problem.category, problem.message, errors=problem.details) from None
                errors.append(problem.as_error({"objectWriteTraceId": [trace]}))
        results = []
        for item, plan in planned:
            try:
                results.append(write(item, plan))
            except InputProblem as problem:
                trace = item.get("objectWriteTraceId")
                errors.append(
                    problem.as_error({"objectWriteTraceId": [trace]} if trace else {"ids": [item.get("id")]})
                )
        if self.state.config.omit_results:
            results = results[self.state.config.omit_results :]
            self.state.config.omit_results = 0
        payload: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": now_iso(self.state.clock()),
        }
        if errors:
            payload["numErrors"] = len(errors)
            payload["errors"] = errors
            # 2026-09 documents only 200 (errors inside it); earlier versions answer 207.
            return (200 if version == "2026-09" else 207), payload
        return success_status, payload

    def _checked_properties(
        self,
        properties: Any,
        version: str,
        current: dict[str, str] | None = None,
        extra: list[dict[str, Any]] | None = None,
    ) -> dict[str, str]:
        """The values to store, or the input's problem: values HubSpot cannot take (named in the
        message's embedded JSON), else the account's validation rules (``ErrorDetail`` entries).
        ``current``: the record's values before the write (None: a new record)."""
        clean, problems = self._validated(properties)
        problems.extend(extra or [])
        if problems:
            raise InputProblem("VALIDATION_ERROR", "Property values were not valid: " + json.dumps(problems))
        details = self._rule_refusals(clean, version, current or {})
        if details:
            raise InputProblem("VALIDATION_ERROR", _RULES_MESSAGE, details)
        return clean

    def _rule_refusals(
        self, clean: dict[str, str], version: str, current: dict[str, str]
    ) -> list[dict[str, Any]]:
        details = format_refusals(self.state.validation_rules, clean)
        if version == "2026-09":  # conditional rules bind API writes from 2026-09 on
            details.extend(required_refusals(self.state.conditional_required, {**current, **clean}))
        return details

    def _current(self, contact_id: str | None) -> dict[str, str]:
        contact = self.state.contacts.get(contact_id) if contact_id is not None else None
        return dict(contact["properties"]) if contact is not None else {}

    def _checked_single(
        self, properties: Any, version: str, current: dict[str, str] | None
    ) -> dict[str, str]:
        """``_checked_properties`` for a single-record call: a problem is the call's 400."""
        try:
            return self._checked_properties(properties, version, current)
        except InputProblem as problem:
            raise ApiError(400, problem.category, problem.message, errors=problem.details) from None

    @staticmethod
    def _require_shape(inputs: list[Any], *keys: str) -> list[dict[str, Any]]:
        for item in inputs:
            if not isinstance(item, dict) or any(key not in item for key in keys):
                raise ApiError(
                    400, "VALIDATION_ERROR", f"Invalid input JSON: each input needs {', '.join(keys)}"
                )
        return inputs

    def _reject_duplicates(self, ids: list[str]) -> None:
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique",
                context={"ids": duplicates},
            )

    def batch_upsert(self, request: Request, version: str, body: Any) -> tuple[int, Any]:
        inputs = self._require_shape(self._inputs(body), "id", "properties")

        def key(item: dict[str, Any]) -> str:
            by_email = item.get("idProperty") == "email"
            return normalize_email(str(item["id"])) if by_email else str(item["id"])

        self._reject_duplicates([key(item) for item in inputs])

        def check(item: dict[str, Any]) -> dict[str, str]:
            id_property = item.get("idProperty") or "hs_object_id"
            extra = []
            if id_property == "email":
                try:
                    self._unblocked(validate(self.state.properties["email"], key(item)))
                except InvalidValue as exc:
                    extra.append(
                        {"isValid": False, "message": exc.message, "error": exc.code, "name": "email"}
                    )
            elif id_property != "hs_object_id":
                extra.append(
                    {
                        "isValid": False,
                        "name": id_property,
                        "error": "INVALID_ID_PROPERTY",
                        "message": f"Unable to perform update/upsert by non-unique {id_property} property",
                    }
                )
            found = self.state.find_email(key(item)) if id_property == "email" else None
            if id_property == "hs_object_id":
                found = self.state.resolve(key(item))
            return self._checked_properties(item["properties"], version, self._current(found), extra)

        def write(item: dict[str, Any], clean: dict[str, str]) -> dict[str, Any]:
            if item.get("idProperty") == "email":
                found = self.state.find_email(key(item))
                # An address matched as an additional email stays additional: the primary is kept.
                primary = found is None or self.state.email_index.get(key(item)) == found
                contact_id, created = self._write(found, key(item) if primary else None, clean)
            else:
                contact_id, created = self._write(self._existing(key(item)), None, clean)
            return self._contact_json(
                contact_id, created, item.get("objectWriteTraceId"), only=[*clean, "email"]
            )

        return self._run_batch(version, inputs, check, write, 200)

    def batch_create(self, request: Request, version: str, body: Any) -> tuple[int, Any]:
        inputs = self._require_shape(self._inputs(body), "properties")

        def check(item: dict[str, Any]) -> dict[str, str]:
            return self._checked_properties(item["properties"], version)

        def write(item: dict[str, Any], clean: dict[str, str]) -> dict[str, Any]:
            email = clean.get("email")
            holder = self.state.find_email(email) if email else None
            if holder is not None:
                raise InputProblem("CONFLICT", f"Contact already exists. Existing ID: {holder}")
            contact_id, _ = self._write(None, None, clean)
            return self._contact_json(contact_id, trace=item.get("objectWriteTraceId"))

        return self._run_batch(version, inputs, check, write, 201)

    def batch_update(self, request: Request, version: str, body: Any) -> tuple[int, Any]:
        inputs = self._require_shape(self._inputs(body), "id", "properties")
        self._reject_duplicates([str(item["id"]) for item in inputs])

        def check(item: dict[str, Any]) -> dict[str, str]:
            id_property = item.get("idProperty") or "hs_object_id"
            if id_property != "hs_object_id":
                # HubSpot's guide: batch update takes record ids; upsert is the by-email path.
                raise InputProblem(
                    "VALIDATION_ERROR",
                    f"Unable to perform update/upsert by non-unique {id_property} property",
                )
            current = self._current(self.state.resolve(str(item["id"])))
            return self._checked_properties(item["properties"], version, current)

        def write(item: dict[str, Any], clean: dict[str, str]) -> dict[str, Any]:
            contact_id, _ = self._write(self._existing(str(item["id"])), None, clean)
            return self._contact_json(contact_id, trace=item.get("objectWriteTraceId"))

        return self._run_batch(version, inputs, check, write, 200)

    def _existing(self, contact_id: str) -> str:
        contact_id = self.state.resolve(contact_id)
        if contact_id not in self.state.contacts:
            raise InputProblem(
                "OBJECT_NOT_FOUND",
                "Could not get some CONTACT objects, they may be deleted or not exist. "
                "Check that ids are valid.",
            )
        return contact_id

    def _inputs(self, body: Any) -> list[Any]:
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise ApiError(400, "VALIDATION_ERROR", "Invalid input JSON: 'inputs' must be an array")
        if len(body["inputs"]) > 100:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                "Batch input limit exceeded. Maximum 100 records allowed per request",
                context={"maxBatchSize": ["100"]},
            )
        return list(body["inputs"])

    def _lookup(self, key: str, by_email: bool, archived: bool) -> str | None:
        """The contact ``key`` names among live ones (or, with ``archived``, among deleted ones,
        which is all HubSpot's ``archived=true`` returns); a merged-away id names the record it
        became."""
        if by_email:
            email = normalize_email(key)
            return self.state.find_archived_email(email) if archived else self.state.find_email(email)
        contact_id = self.state.resolve(key)
        found = contact_id in (self.state.archived if archived else self.state.contacts)
        return contact_id if found else None

    def _not_found(self, keys: list[str]) -> list[dict[str, Any]]:
        """A batch read's ``errors`` for the inputs it did not find (see group_missing_reads)."""
        groups = [keys] if self.state.config.group_missing_reads else [[key] for key in keys]
        return [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": _NOT_FOUND_IN_BATCH,
                "context": {"ids": group},
                "errors": [],
                "links": {},
            }
            for group in groups
            if group
        ]

    def batch_read(self, request: Request, version: str, body: Any) -> tuple[int, Any]:
        inputs = self._require_shape(self._inputs(body), "id")
        id_property = body.get("idProperty") or "hs_object_id"
        if id_property not in ("hs_object_id", "email"):
            raise ApiError(400, "VALIDATION_ERROR", f"Unable to read by non-unique {id_property} property")
        wanted = body.get("properties") or []
        with_history = body.get("propertiesWithHistory") or None
        archived = query_flag(request, "archived")
        results, missing = [], []
        for item in inputs:
            key = str(item["id"])
            contact_id = self._lookup(key, id_property == "email", archived)
            if contact_id is None:
                missing.append(key)
                continue
            results.append(self._contact_json(contact_id, only=wanted or None, history=with_history))
        payload: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": now_iso(self.state.clock()),
            "completedAt": now_iso(self.state.clock()),
        }
        if missing:
            errors = self._not_found(missing)
            payload.update(numErrors=len(errors), errors=errors)
            return (200 if version == "2026-09" else 207), payload
        return 200, payload

    def create_contact(self, request: Request, version: str, body: Any) -> tuple[int, Any]:
        clean = self._checked_single((body or {}).get("properties"), version, None)
        email = clean.get("email")
        holder = self.state.find_email(email) if email else None
        if holder is not None:
            raise ApiError(409, "CONFLICT", f"Contact already exists. Existing ID: {holder}")
        contact_id, _ = self._write(None, None, clean)
        return 201, self._contact_json(contact_id)

    def _find(self, request: Request, key: str, archived: bool = False) -> str:
        contact_id = self._lookup(key, request.args.get("idProperty") == "email", archived)
        if contact_id is None:
            raise ApiError(404, "OBJECT_NOT_FOUND", "resource not found")
        return contact_id

    def get_contact(self, request: Request, version: str, body: Any, key: str) -> tuple[int, Any]:
        document = self._contact_json(
            self._find(request, key, archived=query_flag(request, "archived")),
            only=query_list(request, "properties") or None,
            history=query_list(request, "propertiesWithHistory") or None,
        )
        if query_list(request, "associations"):
            # The sandbox keeps no associations, so every asked-for object type has nothing to list:
            # an empty type -> CollectionResponseAssociatedId map is the answer the schema allows.
            # (Real HubSpot may leave the key out altogether in that case.)
            document["associations"] = {}
        return 200, document

    def patch_contact(self, request: Request, version: str, body: Any, key: str) -> tuple[int, Any]:
        """An edit of one contact (what a person's change in HubSpot amounts to): the properties
        are checked as in a batch upsert, and a new email must not be another contact's."""
        contact_id = self._find(request, key)
        clean = self._checked_single((body or {}).get("properties"), version, self._current(contact_id))
        holder = self.state.find_email(clean["email"]) if clean.get("email") else None
        if holder not in (None, contact_id):
            raise ApiError(409, "CONFLICT", f"Contact already exists. Existing ID: {holder}")
        self._write(contact_id, None, clean)
        return 200, self._contact_json(contact_id)

    def delete_contact(self, request: Request, version: str, body: Any, key: str) -> tuple[int, Any]:
        """Archive (HubSpot's "delete", restorable for 90 days). HubSpot answers 204 whether or not
        the id named a live contact, so a repeated delete is not an error."""
        self.state.archive(key)
        return 204, None

    def batch_archive(self, request: Request, version: str, body: Any) -> tuple[int, Any]:
        for item in self._require_shape(self._inputs(body), "id"):
            self.state.archive(str(item["id"]))
        return 204, None

    def gdpr_delete(self, request: Request, version: str, body: Any) -> tuple[int, Any]:
        """Erase a contact for good and blocklist its addresses. By email, an address that names
        no contact is blocklisted all the same (HubSpot's documented behaviour); by id, an unknown
        id is a 404."""
        if not isinstance(body, dict) or not str(body.get("objectId") or "").strip():
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                "Invalid input JSON: 'objectId' is required",
                context={"objectId": ["must not be empty"]},
            )
        id_property = body.get("idProperty") or "hs_object_id"
        key = str(body["objectId"])
        if id_property == "email":
            email = normalize_email(key)
            found = self.state.find_email(email) or self.state.find_archived_email(email)
            if found is None or not self.state.erase(found):
                self.state.blocklist.add(email)
            return 204, None
        if id_property != "hs_object_id":
            raise ApiError(400, "VALIDATION_ERROR", f"Unable to delete by non-unique {id_property} property")
        if not self.state.erase(key):
            raise ApiError(404, "OBJECT_NOT_FOUND", "resource not found")
        return 204, None

    def merge_contacts(self, request: Request, version: str, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or any(not body.get(k) for k in ("primaryObjectId", "objectIdToMerge")):
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                "Invalid input JSON: 'primaryObjectId' and 'objectIdToMerge' are required",
            )
        primary, other = str(body["primaryObjectId"]), str(body["objectIdToMerge"])
        for contact_id in (primary, other):
            if self.state.resolve(contact_id) not in self.state.contacts:
                raise ApiError(404, "OBJECT_NOT_FOUND", f"Object {contact_id} not found")
        try:
            new_id = self.state.merge(primary, other)
        except ValueError as exc:
            raise ApiError(400, "VALIDATION_ERROR", f"Cannot merge {primary} with itself: {exc}") from None
        return 200, self._contact_json(new_id)

    # --- properties --------------------------------------------------------------------------------

    def list_properties(self, request: Request, version: str, body: Any) -> tuple[int, Any]:
        archived = query_flag(request, "archived")
        return 200, {
            "results": [p for p in self.state.properties.values() if bool(p.get("archived")) == archived]
        }

    def get_property(self, request: Request, version: str, body: Any, name: str) -> tuple[int, Any]:
        if name not in self.state.properties:
            raise ApiError(404, "OBJECT_NOT_FOUND", f"Unable to find property {name}")
        return 200, self.state.properties[name]

    def _new_property(self, spec: Any) -> dict[str, Any]:
        if not isinstance(spec, dict):
            raise ApiError(400, "VALIDATION_ERROR", "Invalid input JSON: property must be an object")
        missing = [key for key in ("name", "label", "type", "fieldType", "groupName") if not spec.get(key)]
        if missing:
            raise ApiError(400, "VALIDATION_ERROR", f"Invalid input JSON: missing required fields {missing}")
        name = spec["name"]
        if not _PROPERTY_NAME.match(name) or len(name) > 100 or name.startswith("hs_"):
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"Property name {name!r} is invalid: lower-case letters, digits and "
                "underscores, starting with a letter, at most 100 characters, not starting with hs_",
            )
        if spec["fieldType"] not in _FIELD_TYPES.get(spec["type"], set()):
            raise ApiError(
                400, "VALIDATION_ERROR", f"fieldType {spec['fieldType']} is not valid for type {spec['type']}"
            )
        if spec["groupName"] not in self.state.groups:
            raise ApiError(400, "VALIDATION_ERROR", f"Property group {spec['groupName']} does not exist")
        if (
            spec["type"] == "enumeration"
            and not spec.get("options")
            and spec["fieldType"] != "booleancheckbox"
        ):
            raise ApiError(400, "VALIDATION_ERROR", "Enumeration properties need options")
        if name in self.state.properties:
            raise ApiError(
                409,
                "OBJECT_ALREADY_EXISTS",
                f"A property named '{name}' already exists.",
                context={"name": [name]},
            )
        if self.state.custom_property_count() >= self.state.config.custom_property_limit:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                "You have reached the maximum number of custom properties "
                f"({self.state.config.custom_property_limit}) for contacts",
                subCategory="PropertyValidationError.MAX_CUSTOM_PROPERTIES_LIMIT_REACHED",
            )
        now = now_iso(self.state.clock())
        options = [
            {
                "label": o["label"],
                "value": o["value"],
                "displayOrder": o.get("displayOrder", i),
                "hidden": o.get("hidden", False),
                "description": o.get("description", ""),
            }
            for i, o in enumerate(spec.get("options") or [])
        ]
        return {
            "name": name,
            "label": spec["label"],
            "type": spec["type"],
            "fieldType": spec["fieldType"],
            "groupName": spec["groupName"],
            "description": spec.get("description", ""),
            "options": options,
            "displayOrder": spec.get("displayOrder", -1),
            "hidden": bool(spec.get("hidden", False)),
            "formField": bool(spec.get("formField", False)),
            "hasUniqueValue": bool(spec.get("hasUniqueValue", False)),
            "calculated": False,
            "externalOptions": False,
            "hubspotDefined": False,
            "archived": False,
            "createdAt": now,
            "updatedAt": now,
            "modificationMetadata": {"archivable": True, "readOnlyDefinition": False, "readOnlyValue": False},
        }

    def create_property(self, request: Request, version: str, body: Any) -> tuple[int, Any]:
        prop = self._new_property(body)
        self.state.properties[prop["name"]] = prop
        return 201, prop

    def batch_create_properties(self, request: Request, version: str, body: Any) -> tuple[int, Any]:
        inputs = self._inputs(body)
        results, errors = [], []
        for spec in inputs:
            try:
                prop = self._new_property(spec)
            except ApiError as exc:
                errors.append(
                    {
                        "status": "error",
                        "category": exc.category,
                        "message": exc.message,
                        "context": {"name": [str((spec or {}).get("name"))]},
                        "errors": [],
                        "links": {},
                        **({"subCategory": exc.extra["subCategory"]} if "subCategory" in exc.extra else {}),
                    }
                )
                continue
            self.state.properties[prop["name"]] = prop
            results.append(prop)
        payload: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": now_iso(self.state.clock()),
            "completedAt": now_iso(self.state.clock()),
        }
        if errors:
            payload.update(numErrors=len(errors), errors=errors)
            return (200 if version == "2026-09" else 207), payload
        return (200 if version == "2026-09" else 201), payload

    def patch_property(self, request: Request, version: str, body: Any, name: str) -> tuple[int, Any]:
        prop = self.state.properties.get(name)
        if prop is None:
            raise ApiError(404, "OBJECT_NOT_FOUND", f"Unable to find property {name}")
        if prop.get("hubspotDefined") and prop["modificationMetadata"].get("readOnlyDefinition"):
            raise ApiError(400, "VALIDATION_ERROR", f"Property {name} is read-only")
        for key in ("label", "description", "groupName", "displayOrder", "hidden", "options", "formField"):
            if isinstance(body, dict) and key in body:
                prop[key] = body[key]
        prop["updatedAt"] = now_iso(self.state.clock())
        return 200, prop

    def list_groups(self, request: Request, version: str, body: Any) -> tuple[int, Any]:
        return 200, {"results": list(self.state.groups.values())}

    def create_group(self, request: Request, version: str, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not body.get("name") or not body.get("label"):
            raise ApiError(400, "VALIDATION_ERROR", "Invalid input JSON: 'name' and 'label' are required")
        if not _PROPERTY_NAME.match(body["name"]):
            raise ApiError(400, "VALIDATION_ERROR", f"Group name {body['name']!r} is invalid")
        if body["name"] in self.state.groups:
            raise ApiError(
                409, "OBJECT_ALREADY_EXISTS", f"A property group named '{body['name']}' already exists."
            )
        group = {
            "name": body["name"],
            "label": body["label"],
            "displayOrder": body.get("displayOrder", -1),
            "archived": False,
        }
        self.state.groups[group["name"]] = group
        return 201, group

    def custom_property_limits(self, request: Request, version: str, body: Any) -> tuple[int, Any]:
        usage, limit = self.state.custom_property_count(), self.state.config.custom_property_limit
        return 200, {
            "overallLimit": limit,
            "overallUsage": usage,
            "byObjectType": [
                {
                    "objectTypeId": "0-1",
                    "limit": limit,
                    "usage": usage,
                    "percentage": round(100 * usage / limit, 2) if limit else 100.0,
                }
            ],
        }

    # --- property validation rules -----------------------------------------------------------------

    def _validated_property(self, object_type: str, name: str) -> dict[str, dict[str, Any]]:
        if object_type != CONTACTS_TYPE:
            raise ApiError(404, "OBJECT_NOT_FOUND", f"Unknown object type {object_type}")
        definition = self.state.properties.get(name)
        if definition is None or definition.get("archived"):
            raise ApiError(404, "OBJECT_NOT_FOUND", f"Unable to find property {name}")
        return self.state.validation_rules.get(name, {})

    def list_validations(
        self, request: Request, version: str, body: Any, object_type: str
    ) -> tuple[int, Any]:
        if object_type != CONTACTS_TYPE:
            raise ApiError(404, "OBJECT_NOT_FOUND", f"Unknown object type {object_type}")
        return 200, {
            "results": [
                {"propertyName": name, "propertyValidationRules": [dict(rule) for rule in rules.values()]}
                for name, rules in self.state.validation_rules.items()
                if rules
            ]
        }

    def property_validations(
        self, request: Request, version: str, body: Any, object_type: str, name: str
    ) -> tuple[int, Any]:
        rules = self._validated_property(object_type, name)
        return 200, {"results": [dict(rule) for rule in rules.values()]}

    def get_validation_rule(
        self, request: Request, version: str, body: Any, object_type: str, name: str, rule_type: str
    ) -> tuple[int, Any]:
        rule = self._validated_property(object_type, name).get(rule_type)
        if rule is None:
            raise ApiError(404, "OBJECT_NOT_FOUND", f"Property {name} has no {rule_type} validation rule")
        return 200, dict(rule)

    def put_validation_rule(
        self, request: Request, version: str, body: Any, object_type: str, name: str, rule_type: str
    ) -> tuple[int, Any]:
        """Set one rule type of a property (the others are left as they are); 204."""
        self._validated_property(object_type, name)
        try:
            rule = checked_rule(rule_type, body)
        except RuleRefused as exc:
            raise ApiError(400, "VALIDATION_ERROR", str(exc)) from None
        self.state.validation_rules.setdefault(name, {})[rule_type] = rule
        return 204, None

    # --- OAuth -------------------------------------------------------------------------------------

    def oauth_token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()}

        def oauth_error(error: str, status: str, description: str) -> Response:
            return json_response(
                400,
                {
                    "error": error,
                    "error_description": description,
                    "status": status,
                    "message": description,
                    "correlationId": str(uuid.uuid4()),
                },
            )

        if form.get("grant_type") != "refresh_token":
            return oauth_error("unsupported_grant_type", "BAD_GRANT_TYPE", "grant_type must be refresh_token")
        client_id = form.get("client_id", "")
        if self.state.oauth_clients.get(client_id) != form.get("client_secret") or not client_id:
            return oauth_error("invalid_client", "BAD_CLIENT_ID", "client_id or client_secret is invalid")
        grant = self.state.refresh_tokens.get(form.get("refresh_token", ""))
        if grant is None or grant[0] != client_id:
            return oauth_error(
                "invalid_grant", "BAD_REFRESH_TOKEN", "refresh token is invalid, expired or revoked"
            )
        token = self.state.issue_access_token(grant[1])
        self.state.requests["POST oauth_token"] += 1
        return json_response(
            200,
            {
                "token_type": "bearer",
                "refresh_token": form["refresh_token"],
                "access_token": token.value,
                "expires_in": self.state.config.oauth_token_ttl_seconds,
                "token_use": "access_token",
                "hub_id": PORTAL_ID,
                "scopes": sorted(grant[1]),
            },
        )

    # --- test hooks --------------------------------------------------------------------------------

    def _admin_restore(self, request: Request) -> Response:
        """Restore a deleted contact, as a person does in HubSpot's UI."""
        contact_id = str((self._json(request) or {}).get("id"))
        try:
            self.state.restore(contact_id)
        except KeyError:
            return json_response(404, {"message": f"no deleted contact {contact_id}"})
        except RestoreRefused as exc:
            return json_response(409, {"message": str(exc)})
        return json_response(200, {"restored": contact_id})

    def _admin_records(self, request: Request, action: str) -> Response | None:
        """The hooks doing to contacts and lists what a person does in HubSpot's UI (None:
        ``action`` is not one of them)."""
        if action == "restore" and request.method == "POST":
            return self._admin_restore(request)
        if action == "lists" or action.startswith("lists/"):
            return self._admin_lists(request, action.removeprefix("lists").strip("/"))
        return None

    def _admin_lists(self, request: Request, target: str) -> Response:
        """``GET /__sandbox/lists``: every kept list with its members; ``GET
        /__sandbox/lists/{id}/members``: one list's member record ids; ``DELETE
        /__sandbox/lists/{id}``: a person deletes the list in HubSpot's UI (restorable)."""
        list_id, _, rest = target.partition("/")
        if not list_id and request.method == "GET":
            return json_response(200, {"lists": self.lists.summary()})
        if rest == "members" and request.method == "GET":
            members = self.lists.members(list_id)
            if members is None:
                return json_response(404, {"message": f"no list {list_id}"})
            return json_response(200, {"listId": list_id, "members": members})
        if list_id and not rest and request.method == "DELETE":
            try:
                self.lists.delete(list_id)
            except ListsError as exc:
                return json_response(exc.status, {"message": exc.message})
            return json_response(200, {"deleted": list_id})
        return json_response(404, {"message": f"unknown sandbox action lists/{target}"})

    def _admin_rules(self, request: Request, action: str) -> Response | None:
        """The validation-rule hooks (None: ``action`` is not one of them)."""
        if action.startswith("property-validations/") and request.method == "DELETE":
            return self._admin_remove_rule(action.removeprefix("property-validations/"))
        if action == "conditional-required":
            return self._admin_conditional_required(request)
        return None

    def _admin_remove_rule(self, target: str) -> Response:
        """``DELETE /__sandbox/property-validations/{property}/{ruleType}``: an administrator
        removes a rule in HubSpot's settings (the public API cannot)."""
        name, _, rule_type = target.partition("/")
        if self.state.validation_rules.get(name, {}).pop(rule_type, None) is None:
            return json_response(404, {"message": f"no {rule_type} rule on {name}"})
        return json_response(200, {"removed": [name, rule_type]})

    def _admin_conditional_required(self, request: Request) -> Response:
        """``POST`` ``{"whenProperty", "whenValue", "required"}`` adds a conditional required
        property (HubSpot's UI only); ``DELETE`` removes them all; ``GET`` lists them."""
        rules = self.state.conditional_required
        if request.method == "POST":
            spec = self._json(request) or {}
            try:
                rules.append(
                    ConditionalRequired(
                        str(spec["whenProperty"]), str(spec["whenValue"]), str(spec["required"])
                    )
                )
            except (KeyError, TypeError) as exc:
                return json_response(400, {"message": f"missing {exc}"})
        elif request.method == "DELETE":
            rules.clear()
        return json_response(
            200,
            {
                "results": [
                    {"whenProperty": r.when_property, "whenValue": r.when_value, "required": r.required}
                    for r in rules
                ]
            },
        )

    def admin(self, request: Request, action: str) -> Response:
        state = self.state
        with state.lock:
            if action == "config" and request.method == "POST":
                try:
                    state.config.update(self._json(request) or {})
                except (KeyError, TypeError, ValueError) as exc:
                    return json_response(400, {"message": f"unknown or bad setting: {exc}"})
                return json_response(200, vars(state.config))
            if action == "state" and request.method == "GET":
                contacts = [{"id": cid, "properties": c["properties"]} for cid, c in state.contacts.items()]
                return json_response(
                    200,
                    {
                        "contacts": contacts,
                        "requests": dict(state.requests),
                        "throttled": dict(state.throttled),
                        "dailyUsed": state.daily_used,
                        "faults": dict(state.faults),
                        "archived": [
                            {"id": cid, "properties": c["properties"]} for cid, c in state.archived.items()
                        ],
                        "mergedInto": dict(state.merged_into),
                        "blocklist": sorted(state.blocklist),
                        "properties": [p for p in state.properties.values() if not p.get("hubspotDefined")],
                    },
                )
            if action == "tokens" and request.method == "POST":
                spec = self._json(request) or {}
                scopes = frozenset(spec["scopes"]) if spec.get("scopes") is not None else ALL_SCOPES
                if spec.get("kind") == "oauth":
                    client_id, secret, refresh = state.add_oauth_app(scopes)
                    return json_response(
                        200, {"clientId": client_id, "clientSecret": secret, "refreshToken": refresh}
                    )
                return json_response(200, {"accessToken": state.add_private_app_token(scopes)})
            if action.startswith("journal-files/") and request.method == "GET":
                return self.journal.file(action.removeprefix("journal-files/"))
            for hooks in (self._admin_records, self._admin_rules):
                hook = hooks(request, action)
                if hook is not None:
                    return hook
            if action == "expire-tokens" and request.method == "POST":
                for token in state.tokens.values():
                    if token.oauth:
                        token.expires_at = state.clock() - 1
                return json_response(200, {"expired": True})
        return json_response(404, {"message": f"unknown sandbox action {action}"})
