"""The ingest Lambda handler end to end in-process: API Gateway v1/v2 events -> moto SQS."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from hubspot_activation.ingest.publisher import SqsFifoPublisher
from hubspot_activation.ingest.service import IngestService
from hubspot_activation.messages import decode_message, shard_of
from hubspot_activation.settings import IngestSettings

from local.functions import load_function
from tests.conftest import (
    INGEST_TOKEN,
    FakeContext,
    create_ledger_table,
    drain,
    http_api_event,
    rest_api_event,
)

AUTH = {"authorization": f"Bearer {INGEST_TOKEN}"}
GOLD = "a1b2c3d4-0000-4000-8000-000000000001"

Handler = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture
def invoke(aws_resources: dict[str, str]) -> Iterator[Handler]:
    module = load_function("ingest")
    module._api.cache_clear()

    def call(event: dict[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = module.lambda_handler(event, FakeContext())
        return response

    yield call
    module._api.cache_clear()


def body_of(response: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(response["body"])
    return document


def native(count: int, prefix: str = "user") -> dict[str, Any]:
    return {
        "profiles": [
            {
                "email": f"{prefix}{i}@example.com",
                "attributes": {"city": f"City {i}"},
                "audiences": {GOLD: {"status": "realized", "timestamp": "2026-11-21T08:00:00Z"}},
            }
            for i in range(count)
        ]
    }


@pytest.mark.parametrize("make_event", [http_api_event, rest_api_event], ids=["http-api-v2", "rest-api-v1"])
def test_accepted_profiles_are_enqueued_and_excluded_ones_reported(
    invoke: Handler, aws_resources: dict[str, str], make_event: Callable[..., dict[str, Any]]
) -> None:
    document = {
        "profiles": [
            {
                "identityMap": {"Email": [{"id": "Ada@Example.com"}]},
                "segmentMembership": {"ups": {GOLD: {"status": "realized"}}},
            },
            {
                "identityMap": {"email_lc_sha256": [{"id": "ab" * 32}]},
                "segmentMembership": {"ups": {GOLD: {"status": "realized"}}},
            },
            {"email": "grace@example.com", "attributes": {"firstname": "Grace"}},
        ]
    }
    headers = AUTH if make_event is http_api_event else {"Authorization": f"Bearer {INGEST_TOKEN}"}
    response = invoke(make_event(document, headers))
    assert response["statusCode"] == 202, response
    body = body_of(response)
    assert body["accepted"] == 2
    assert body["excluded"] == [
        {"index": 1, "reason": "only a hashed email identity; HubSpot needs a clear-text address"}
    ]
    assert body["requestId"] in ("req-v1", "req-v2")
    queued = [u for m in drain(aws_resources["QUEUE_URL"]) for u in decode_message(m["Body"])]
    assert sorted(u.email for u in queued) == ["ada@example.com", "grace@example.com"]


def test_base64_encoded_body_is_decoded(invoke: Handler) -> None:
    response = invoke(http_api_event(native(1), AUTH, base64_encoded=True))
    assert response["statusCode"] == 202 and body_of(response)["accepted"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong"},
        {"x-api-key": "wrong"},
        {"authorization": "Basic " + base64.b64encode(b"aep:wrong").decode()},
    ],
    ids=["missing", "wrong-bearer", "wrong-api-key", "wrong-basic"],
)
def test_unauthenticated_requests_get_401_and_enqueue_nothing(
    invoke: Handler, aws_resources: dict[str, str], headers: dict[str, str]
) -> None:
    response = invoke(http_api_event(native(1), headers))
    assert response["statusCode"] == 401
    assert body_of(response)["error"] == "unauthorized"
    assert INGEST_TOKEN not in response["body"]
    assert drain(aws_resources["QUEUE_URL"]) == []


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": INGEST_TOKEN},
        {"authorization": "Basic " + base64.b64encode(f"aep:{INGEST_TOKEN}".encode()).decode()},
    ],
    ids=["api-key", "basic"],
)
def test_api_key_and_basic_auth_work_through_the_handler(invoke: Handler, headers: dict[str, str]) -> None:
    assert invoke(http_api_event(native(1), headers))["statusCode"] == 202


def test_wrong_content_type_gets_415(invoke: Handler) -> None:
    event = http_api_event(native(1), {**AUTH, "content-type": "application/x-www-form-urlencoded"})
    response = invoke(event)
    assert response["statusCode"] == 415
    assert body_of(response)["field"] == "Content-Type"


def test_json_with_charset_and_vendor_types_are_accepted(invoke: Handler) -> None:
    for content_type in ("application/json; charset=utf-8", "application/vnd.adobe.xdm+json"):
        assert invoke(http_api_event(native(1), {**AUTH, "content-type": content_type}))["statusCode"] == 202


def test_body_over_the_limit_gets_413(invoke: Handler, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_BODY_BYTES", "2048")
    response = invoke(http_api_event(native(50), AUTH))
    assert response["statusCode"] == 413
    assert body_of(response)["field"] == "body"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"profiles": [', "body"),
        ('{"profiles": {}}', "profiles"),
        ('"text"', "body"),
        ('{"profiles": []}', "profiles"),
    ],
)
def test_bodies_that_can_never_succeed_get_400_naming_the_field(
    invoke: Handler, body: str, field: str
) -> None:
    response = invoke(http_api_event(body, AUTH, raw=True))
    assert response["statusCode"] == 400
    assert body_of(response)["field"] == field
    assert body_of(response)["message"]


def test_queue_failure_answers_503_so_the_caller_retries(
    invoke: Handler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/missing.fifo")
    response = invoke(http_api_event(native(3), AUTH))
    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"]
    assert body_of(response)["error"] == "queue_unavailable"


def test_a_rotated_ingest_token_is_accepted_without_a_redeploy(
    invoke: Handler, aws_resources: dict[str, str]
) -> None:
    assert invoke(http_api_event(native(1), AUTH))["statusCode"] == 202
    boto3.client("secretsmanager").put_secret_value(
        SecretId=aws_resources["INGEST_SECRET_ID"],
        SecretString=json.dumps({"token": "rotated", "previousToken": INGEST_TOKEN}),
    )
    assert invoke(http_api_event(native(1, "r"), {"authorization": "Bearer rotated"}))["statusCode"] == 202


def test_unknown_route_is_404(invoke: Handler) -> None:
    assert invoke(http_api_event(native(1), AUTH, path="/elsewhere"))["statusCode"] == 404


def test_a_retried_request_is_deduplicated_by_the_fifo_queue(
    invoke: Handler, aws_resources: dict[str, str]
) -> None:
    event = http_api_event(native(30), AUTH)
    assert invoke(event)["statusCode"] == 202
    assert invoke(event)["statusCode"] == 202
    queued = [u for m in drain(aws_resources["QUEUE_URL"]) for u in decode_message(m["Body"])]
    assert len(queued) == 30


def test_order_of_one_contact_is_kept_through_the_queue(
    invoke: Handler, aws_resources: dict[str, str]
) -> None:
    for city in ("first", "second", "third"):
        document = {"email": "ada@example.com", "attributes": {"city": city}}
        assert invoke(http_api_event(document, AUTH))["statusCode"] == 202
    messages = drain(aws_resources["QUEUE_URL"])
    assert {m["Attributes"]["MessageGroupId"] for m in messages} == {shard_of("ada@example.com", 16)}
    assert [decode_message(m["Body"])[0].attributes["city"] for m in messages] == ["first", "second", "third"]


def test_a_thousand_profiles_cost_two_sqs_requests(aws_resources: dict[str, str]) -> None:
    sqs = boto3.client("sqs")
    calls: list[str] = []
    sqs.meta.events.register("before-call.sqs.*", lambda model, **_: calls.append(model.name))
    service = IngestService(IngestSettings.from_env(), SqsFifoPublisher(sqs, aws_resources["QUEUE_URL"]))
    result = service.ingest(native(1000), "req-1000")
    assert result.accepted == 1000
    assert calls == ["SendMessageBatch", "SendMessageBatch"]
    assert result.sqs_requests == 2 and result.messages == 16
    queued = [u for m in drain(aws_resources["QUEUE_URL"]) for u in decode_message(m["Body"])]
    assert len(queued) == 1000


def test_unreadable_ingest_secret_answers_503_not_500(
    invoke: Handler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGEST_SECRET_ID", "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing")
    response = invoke(http_api_event(native(1), AUTH))
    assert response["statusCode"] == 503
    assert body_of(response)["error"] == "secret_unavailable"


@pytest.mark.parametrize(
    "document",
    [
        {"profiles": [{"email": "ada@example.com", "audiences": {GOLD: "realized"}}]},
        {
            "profiles": [
                {
                    "identities": [{"type": "email", "id": "ada@example.com"}],
                    "AdobeExperiencePlatformSegments": {"add": [GOLD], "remove": []},
                }
            ]
        },
    ],
    ids=["native-without-timestamps", "destination-sdk"],
)
def test_the_same_body_posted_twice_at_different_times_is_queued_once(
    invoke: Handler, aws_resources: dict[str, str], document: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audience times default to the receive time, which the envelope carries outside the
    deduplicated content: a re-post within SQS's 5-minute window is dropped by the queue."""
    from local.functions import load_function

    invoke(http_api_event({"email": "warm@example.com", "attributes": {"city": "x"}}, AUTH))
    drain(aws_resources["QUEUE_URL"])
    service = load_function("ingest")._api()._service
    for clock in (1_796_000_000.0, 1_796_000_090.0):
        monkeypatch.setattr(service, "_clock", lambda clock=clock: clock)
        assert invoke(http_api_event(document, AUTH))["statusCode"] == 202
    messages = drain(aws_resources["QUEUE_URL"])
    assert len(messages) == 1
    (update,) = decode_message(messages[0]["Body"])
    assert update.audiences[0].timestamp_ms == 1_796_000_000_000


def exclusions_request() -> dict[str, Any]:
    document = native(2)
    document["profiles"] += [
        {"email": "not-an-email", "attributes": {"city": "X"}},
        {"attributes": {"city": "Y"}},
    ]
    return document


def test_exclusions_are_kept_in_the_ledger_for_the_issues_list(
    invoke: Handler, aws_resources: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dynamodb = boto3.client("dynamodb")
    create_ledger_table()
    monkeypatch.setenv("LEDGER_TABLE", "ledger")
    response = invoke(http_api_event(exclusions_request(), AUTH))
    assert response["statusCode"] == 202
    items = dynamodb.scan(TableName="ledger")["Items"]
    kept = sorted((int(i["profileIndex"]["N"]), i.get("excludedEmail", {}).get("S")) for i in items)
    assert kept == [(2, "not-an-email"), (3, None)]
    assert {i["issueStatus"]["S"] for i in items} == {"excluded"}
    assert all("@" not in i["email"]["S"] and int(i["expiresAt"]["N"]) > 0 for i in items)


def test_a_retry_of_the_same_body_rewrites_its_exclusions_instead_of_adding_more(
    invoke: Handler, aws_resources: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dynamodb = boto3.client("dynamodb")
    create_ledger_table()
    monkeypatch.setenv("LEDGER_TABLE", "ledger")
    document = exclusions_request()
    for request_id in ("first-try", "retry"):
        event = http_api_event(document, AUTH)
        event["requestContext"]["requestId"] = request_id
        assert invoke(event)["statusCode"] == 202
    items = dynamodb.scan(TableName="ledger")["Items"]
    assert sorted(int(item["profileIndex"]["N"]) for item in items) == [2, 3]
    assert {item["requestId"]["S"] for item in items} == {"retry"}
    # Another body with the same excluded profiles is another request: listed on its own.
    document["profiles"][0]["attributes"]["city"] = "Elsewhere"
    assert invoke(http_api_event(document, AUTH))["statusCode"] == 202
    assert len(dynamodb.scan(TableName="ledger")["Items"]) == 4


def test_a_ledger_outage_never_costs_a_valid_request_its_answer(
    invoke: Handler, aws_resources: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_TABLE", "no-such-table")  # every write fails
    response = invoke(http_api_event(exclusions_request(), AUTH))
    assert response["statusCode"] == 202
    body = body_of(response)
    assert body["accepted"] == 2 and body["excludedCount"] == 2
    assert len(drain(aws_resources["QUEUE_URL"])) >= 1


class SilentServer:
    """A TCP endpoint that accepts connections, reads what is sent and never answers: DynamoDB as
    slow as it can be. Counts the HTTP requests it received."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self._socket.getsockname()[1]  # noqa: UP031
        self._received = bytearray()
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self._connections.append(connection)
            threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection: socket.socket) -> None:
        while True:
            try:
                data = connection.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self._received += data

    def requests(self) -> int:
        with self._lock:
            return self._received.count(b"POST / HTTP/1.1")

    def close(self) -> None:
        self._socket.close()
        for connection in self._connections:
            connection.close()


@pytest.fixture
def silent_dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[SilentServer]:
    server = SilentServer()
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", server.url)
    monkeypatch.setenv("LEDGER_TABLE", "ledger")
    yield server
    server.close()


def test_a_dynamodb_that_never_answers_costs_one_attempt_of_one_call(
    invoke: Handler, aws_resources: dict[str, str], silent_dynamodb: SilentServer
) -> None:
    document = native(2)
    # 120 exclusions: 100 kept for the list, in four batches if DynamoDB answered.
    document["profiles"] += [{"email": f"broken-{i}", "attributes": {"city": "X"}} for i in range(120)]
    response = invoke(http_api_event(document, AUTH))
    assert response["statusCode"] == 202
    assert body_of(response)["excludedCount"] == 120
    assert len(drain(aws_resources["QUEUE_URL"])) >= 1
    # The read timeout ended the one attempt; no retry of it, and no further batch after it.
    assert silent_dynamodb.requests() == 1
