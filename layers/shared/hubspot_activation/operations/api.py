"""HTTP adapter of the operations function (API Gateway HTTP API, payload v2).

Every route authenticates first, with the ingest token (the same authenticator, so the same
schemes, constant-time comparison and rotation windows). A body is read as ingest reads its own
(``http_body``: JSON only, any byte sequence refused with a 4xx), and every error leaves through the
mapping ingest installs too (``http_errors.map_errors``), with its body: ``{"error", "message",
"field"?, "requestId"}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.utilities.typing import LambdaContext

from ..auth import IngestAuthenticator, Unauthorized
from ..emails import email_problem, normalize_email
from ..http_body import parse_json, read_body
from ..http_errors import ApiError, as_api_error, error_response, map_errors, quoted, request_id
from ..hubspot.errors import HubSpotError
from ..ingest.publisher import EnqueueError
from ..ledger.keys import ISSUE_FAILED, ISSUE_STATUSES
from ..ledger.operations_store import OperationsStore, StoreUnavailable
from ..model import is_unicode
from ..observability import logger, metrics
from ..upsert.ledger import LedgerUnavailable
from .audiences import AudienceService
from .lists import AudienceLists
from .reconcile import ReconcileService
from .replay import ReplayService
from .status import StatusService
from .views import InvalidParameter, contact_view, decode_cursor, encode_cursor, hubspot_view, issue_view

DEFAULT_PAGE = 25
MAX_PAGE = 100


def _json(status: HTTPStatus, body: Any) -> Response[str]:
    return Response(status_code=status.value, content_type="application/json", body=json.dumps(body))


#: The 503s of these routes, by the exception that says a dependency failed.
UNAVAILABLE: dict[type[Exception], ApiError] = {
    StoreUnavailable: ApiError(
        HTTPStatus.SERVICE_UNAVAILABLE, "ledger_unavailable", "the ledger cannot be read right now; retry"
    ),
    LedgerUnavailable: ApiError(
        HTTPStatus.SERVICE_UNAVAILABLE, "ledger_unavailable", "the ledger cannot be read right now; retry"
    ),
    HubSpotError: ApiError(
        HTTPStatus.SERVICE_UNAVAILABLE,
        "hubspot_unavailable",
        "HubSpot could not be read right now; retry (a reconcile call repeats safely)",
    ),
    EnqueueError: ApiError(
        HTTPStatus.SERVICE_UNAVAILABLE,
        "queue_unavailable",
        "the replay was not (fully) queued; retry it (queueing a contact twice is harmless)",
    ),
}
#: The operator's bodies are a few fields (an audience's name and description at most 2,400
#: characters): a body of more than a MiB is refused before it is parsed.
MAX_BODY_BYTES = 1024 * 1024
#: A request without a body (``POST /replay`` with its defaults).
_NO_BODY = object()


def _log_error(exc: Exception, error: ApiError, rid: str) -> None:
    if error.status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        logger.error("operations route unavailable", extra={"error": str(exc)[:300], "requestId": rid})


def _routable(event: dict[str, Any]) -> dict[str, Any]:
    """The event with a path the resolver matches whatever the parameters hold.

    API Gateway has already matched the route and decoded both ``rawPath`` and ``pathParameters``:
    a decoded ``/`` (from ``%2F``) would split a parameter in two, and characters such as ``?`` or
    ``"`` fall outside the resolver's parameter pattern. So the path is rebuilt from the route key
    with each parameter percent-encoded, and the routes read the decoded ``pathParameters`` - never
    decoding a value a second time (``%25`` stays a literal ``%``). A lone surrogate is encoded
    too: the route refuses it with a 400 naming the parameter."""
    params = event.get("pathParameters") or {}
    _method, _, template = str(event.get("routeKey") or "").partition(" ")
    if not params or not template.startswith("/"):
        return event
    path = re.sub(
        r"\{(\w+)\}",
        lambda found: quote(str(params.get(found.group(1), "")), safe="", errors="surrogatepass"),
        template,
    )
    stage = (event.get("requestContext") or {}).get("stage")
    if stage and stage != "$default":
        path = f"/{stage}{path}"
    return {**event, "rawPath": path}


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE
    # ASCII digits only, and few of them: isdigit() alone also accepts "²" or "①", which int()
    # refuses, and int() refuses more than 4,300 digits.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not 1 <= int(raw) <= MAX_PAGE:
        raise InvalidParameter(
            "limit", f"limit must be an integer from 1 to {MAX_PAGE}, got {quoted(raw, 40)!r}"
        )
    return int(raw)


def _storable_text(document: Any, fields: tuple[str, ...]) -> Any:
    """``document`` as it is, once none of its text ``fields`` holds a lone surrogate (a JSON escape
    such as ``\\ud800``): such text has no UTF-8 form, so neither DynamoDB nor HubSpot can take it."""
    if isinstance(document, dict):
        for name in fields:
            value = document.get(name)
            if isinstance(value, str) and not is_unicode(value):
                raise InvalidParameter(name, f"{name} is not valid Unicode (a lone surrogate)")
    return document


def _replay_request(document: Any) -> tuple[bool, str | None]:
    if document is _NO_BODY:
        return False, None
    if not isinstance(document, dict):
        raise InvalidParameter("body", 'the body must be a JSON object: {"dryRun": true|false}')
    dry_run = document.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise InvalidParameter("dryRun", "dryRun must be true or false")
    cursor = document.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise InvalidParameter("cursor", "cursor must be the string a previous replay returned")
    return dry_run, cursor


#: A cursor is the reconciler's own opaque text: anything longer was never handed out.
MAX_RECONCILE_CURSOR = 2048


def _reconcile_request(document: Any, max_emails: int) -> tuple[bool, str | None, list[str] | None]:
    """``{"dryRun"?, "cursor"?, "emails"?}``: the emails normalized as ingest does, each once."""
    if document is _NO_BODY:
        return False, None, None
    if not isinstance(document, dict):
        raise InvalidParameter(
            "body", 'the body must be a JSON object: {"dryRun": true|false, "cursor"?, "emails"?}'
        )
    dry_run = document.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise InvalidParameter("dryRun", "dryRun must be true or false")
    cursor = document.get("cursor")
    if cursor is not None and not (
        isinstance(cursor, str) and 0 < len(cursor) <= MAX_RECONCILE_CURSOR and is_unicode(cursor)
    ):
        raise InvalidParameter("cursor", "cursor must be the string a previous reconcile returned")
    raw = document.get("emails")
    if raw is None:
        return dry_run, cursor, None
    if cursor is not None:
        raise InvalidParameter("cursor", "a cursor continues a walk of every contact: send it without emails")
    if not isinstance(raw, list) or not 1 <= len(raw) <= max_emails:
        raise InvalidParameter("emails", f"emails must be a list of 1 to {max_emails} email addresses")
    emails: dict[str, None] = {}
    for index, value in enumerate(raw):
        problem = "not a string" if not isinstance(value, str) else None
        address = normalize_email(value) if isinstance(value, str) else ""
        if problem is None and not is_unicode(address):
            problem = "not valid Unicode (a lone surrogate)"
        problem = problem or email_problem(address)
        if problem is not None:
            raise InvalidParameter("emails", f"emails[{index}]: {problem}")
        emails[address] = None
    return dry_run, None, list(emails)


def _publish_replay_metrics(answer: Mapping[str, Any]) -> None:
    dead_letters = answer["deadLetters"]
    for name, value in (
        ("ContactsReplayed", answer["failedContacts"]["count"]),
        ("DeadLettersMoved", dead_letters["moved"]),
        # Refused by the main queue, or undecodable: both still in the DLQ.
        ("DeadLettersNotMoved", dead_letters["failed"] + dead_letters["undecodable"]["count"]),
    ):
        metrics.add_metric(name=name, unit="Count", value=value)


class OperationsApi:
    """Routes: GET /sync/status, GET /sync/issues, GET /contacts/{email}, PUT and DELETE
    /audiences/{id}, POST /replay, POST /reconcile."""

    def __init__(
        self,
        authenticator: IngestAuthenticator,
        store: OperationsStore,
        status: StatusService,
        audiences: AudienceService,
        replay: ReplayService,
        reconcile: ReconcileService,
        lists: AudienceLists | None = None,
    ) -> None:
        """``lists``: the audiences' HubSpot lists, shown when they are kept (None: not kept)."""
        self._authenticator = authenticator
        self._store = store
        self._status = status
        self._audiences = audiences
        self._replay = replay
        self._reconcile = reconcile
        self._lists = lists
        self._http = APIGatewayHttpResolver()
        self._routes()
        self._map_errors()

    def handle(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        try:
            return self._http.resolve(_routable(dict(event)), context)
        finally:
            # Only routes that counted something publish (powertools' log_metrics would warn "No
            # application metrics to publish" on every read-only route).
            if metrics.metric_set:
                metrics.flush_metrics()

    def _path_parameter(self, name: str, matched: str) -> str:
        """API Gateway's decoded value; the resolver's match when the event has none (the path is
        then API Gateway's decoded ``rawPath``). Never decoded again. A value with a lone surrogate
        (an escape in the event's JSON) has no UTF-8 form: nothing could store or look it up."""
        value = self._http.current_event.path_parameters.get(name, matched)
        if not is_unicode(value):
            raise InvalidParameter(name, f"{name} is not valid Unicode (a lone surrogate)")
        return value

    def _json_body(self, expected: str) -> Any:
        """The request's JSON document, read as ingest reads its own; ``_NO_BODY`` without a body."""
        event = self._http.current_event
        raw = event.get("body")
        if raw is None or raw == "":
            return _NO_BODY
        body = read_body(
            event.headers, raw, bool(event.is_base64_encoded), MAX_BODY_BYTES, "", undeclared_is_json=True
        )
        return parse_json(body, expected)

    def _authenticated(self, route: Callable[..., Response[str]]) -> Callable[..., Response[str]]:
        def wrapped(**params: str) -> Response[str]:
            self._authenticator.authenticate(self._http.current_event.headers)
            return route(**params)

        return wrapped

    def _routes(self) -> None:
        http = self._http
        http.get("/sync/status")(self._authenticated(self._sync_status))
        http.get("/sync/issues")(self._authenticated(self._sync_issues))
        http.get("/contacts/<email>")(self._authenticated(self._contact))
        http.put("/audiences/<audience_id>")(self._authenticated(self._put_audience))
        http.delete("/audiences/<audience_id>")(self._authenticated(self._delete_audience))
        http.post("/replay")(self._authenticated(self._post_replay))
        http.post("/reconcile")(self._authenticated(self._post_reconcile))

    def _map_errors(self) -> None:
        resolver = self._http
        map_errors(resolver, UNAVAILABLE, _log_error)

        @resolver.not_found
        def not_found(_exc: NotFoundError) -> Response[str]:
            event = resolver.current_event
            try:
                self._authenticator.authenticate(event.headers)
            except Unauthorized as exc:
                return error_response(as_api_error(exc, UNAVAILABLE), request_id(event))
            error = ApiError(HTTPStatus.NOT_FOUND, "not_found", f"no route {quoted(event.path)}", "path")
            return error_response(error, request_id(event))

    # -- routes ------------------------------------------------------------------------------------
    def _sync_status(self) -> Response[str]:
        return _json(HTTPStatus.OK, self._status.status())

    def _sync_issues(self) -> Response[str]:
        event = self._http.current_event
        status = event.get_query_string_value("status") or ISSUE_FAILED
        if status not in ISSUE_STATUSES:
            raise InvalidParameter("status", f"status must be one of {', '.join(ISSUE_STATUSES)}")
        limit = _limit(event.get_query_string_value("limit"))
        cursor = event.get_query_string_value("cursor")
        start = decode_cursor(cursor, status) if cursor else None
        page = self._store.issues(status, limit, start)
        return _json(
            HTTPStatus.OK,
            {
                "status": status,
                "items": [issue_view(item) for item in page.items],
                "cursor": encode_cursor(page.last_key) if page.last_key else None,
            },
        )

    def _contact(self, email: str) -> Response[str]:
        address = normalize_email(self._path_parameter("email", email))
        problem = email_problem(address)
        if problem is not None:
            raise InvalidParameter("email", problem)
        contact = self._store.contact(address)
        if contact is None:
            raise ApiError(
                HTTPStatus.NOT_FOUND, "not_found", "the ledger has no sync state for this contact", "email"
            )
        lists = self._lists.of_contact(contact.entry) if self._lists is not None else None
        return _json(HTTPStatus.OK, contact_view(contact.entry, hubspot_view(contact.seen), lists))

    def _put_audience(self, audience_id: str) -> Response[str]:
        audience = self._path_parameter("id", audience_id)
        body = self._json_body('{"name": ..., "description": ...}')
        document = None if body is _NO_BODY else _storable_text(body, ("name", "description"))
        answer, created = self._audiences.put(audience, document)
        return _json(HTTPStatus.CREATED if created else HTTPStatus.OK, answer)

    def _delete_audience(self, audience_id: str) -> Response[str]:
        return _json(HTTPStatus.OK, self._audiences.delete(self._path_parameter("id", audience_id)))

    def _post_replay(self) -> Response[str]:
        event = self._http.current_event
        dry_run, cursor = _replay_request(self._json_body('{"dryRun": true|false}'))
        answer = self._replay.replay(dry_run, cursor, request_id(event))
        if not dry_run:
            _publish_replay_metrics(answer)
        logger.info(
            "replay",
            extra={
                "dryRun": dry_run,
                "contacts": answer["failedContacts"]["count"],
                "deadLetters": answer["deadLetters"],
                "more": answer["more"],
            },
        )
        return _json(HTTPStatus.OK, answer)

    def _post_reconcile(self) -> Response[str]:
        body = self._json_body('{"dryRun": true|false, "cursor"?: "...", "emails"?: ["..."]}')
        dry_run, cursor, emails = _reconcile_request(body, self._reconcile.limits.max_emails)
        context = self._http.lambda_context
        remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else None
        answer = self._reconcile.reconcile(dry_run, cursor, emails, remaining)
        logger.info(
            "reconcile",
            extra={
                "dryRun": dry_run,
                "emails": len(emails) if emails else None,
                "checked": answer["checked"],
                "drift": answer["drift"],
                "repaired": answer["repaired"],
                "stoppedBy": answer.get("stoppedBy"),
                "more": answer["more"],
            },
        )
        return _json(HTTPStatus.OK, answer)
