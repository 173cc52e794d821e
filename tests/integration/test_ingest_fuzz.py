"""Property-based: any JSON value through parse + encode gives 202 or 4xx, never an exception, and
every accepted profile is enqueued and decodes back to exactly what was accepted."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from typing import Any

import pytest
from hubspot_activation.attribute_mapping import AttributeMapping
from hubspot_activation.http_body import parse_json
from hubspot_activation.http_errors import InvalidInput
from hubspot_activation.ingest.payloads import ParseOptions
from hubspot_activation.ingest.service import IngestService
from hubspot_activation.messages import QueueMessage, decode_message
from hubspot_activation.model import ContactUpdate
from hubspot_activation.settings import IngestSettings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.corpus.harness import REQUEST_ID, Handler, event_of, isolated_ingest_handler

RECEIVED_MS = 1_796_000_000_000
GOLD = "a1b2c3d4-0000-4000-8000-000000000001"

text = st.text(st.characters(codec=None), max_size=12) | st.sampled_from(
    [
        "email",
        "attributes",
        "audiences",
        "status",
        "realized",
        "exited",
        "timestamp",
        "value",
        "id",
        "name",
        "identityMap",
        "segmentMembership",
        "ups",
        "identities",
        "type",
        "AdobeExperiencePlatformSegments",
        "add",
        "remove",
        "profiles",
        "city",
        "firstName",
        "a@example.com",
        "\ud800",
        GOLD,
        "1795166100000",
    ]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | text
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=25,
)
# Shapes close to real activations, so the fuzzer reaches deep into each format's parser.
profiles = st.fixed_dictionaries(
    {"email": st.sampled_from(["ada@example.com", "B@Example.org", "bad", "\ud800@x.io"]) | json_values},
    optional={
        "attributes": st.dictionaries(text, json_values, max_size=4) | json_values,
        "audiences": st.dictionaries(
            text,
            st.fixed_dictionaries(
                {"status": st.sampled_from(["realized", "exited", "existing"]) | json_values},
                optional={"timestamp": json_values, "name": json_values},
            )
            | json_values,
            max_size=3,
        ),
        "identityMap": st.dictionaries(
            text, st.lists(st.fixed_dictionaries({"id": json_values}), max_size=2)
        ),
        "segmentMembership": st.dictionaries(
            text, st.dictionaries(text, json_values, max_size=2), max_size=2
        ),
        "identities": st.lists(st.fixed_dictionaries({"type": text, "id": json_values}), max_size=2),
        "AdobeExperiencePlatformSegments": st.dictionaries(
            st.sampled_from(["add", "remove"]), st.lists(json_values, max_size=3)
        ),
    },
)
documents = (
    json_values | st.fixed_dictionaries({"profiles": st.lists(profiles | json_values, max_size=4)}) | profiles
)


class RecordingPublisher:
    def __init__(self) -> None:
        self.messages: list[QueueMessage] = []

    def publish(self, messages: Sequence[QueueMessage], request_id: str) -> int:
        self.messages.extend(messages)
        return 1


def _as_body(document: Any) -> bytes:
    # Lone surrogates are sent as JSON escapes, the way a caller's JSON library would write them.
    return json.dumps(document, allow_nan=True).encode("ascii")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_any_json_value_is_accepted_or_refused_never_raises(document: Any) -> None:
    publisher = RecordingPublisher()
    settings_ = IngestSettings(queue_url="q", ingest_secret_id="s", shard_count=4)
    service = IngestService(settings_, publisher, clock=lambda: RECEIVED_MS / 1000)
    refused: InvalidInput | None = None
    try:
        result = service.ingest(parse_json(_as_body(document), "a JSON activation"), "fuzz")
    except InvalidInput as exc:
        refused = exc
    if refused is not None:
        assert refused.field and refused.message
        return
    response = result.to_response()
    json.dumps(response)  # the answer can always be written
    assert len(response["excluded"]) <= 100 and len(response.get("warnings", [])) <= 100
    queued = [update for message in publisher.messages for update in decode_message(message.body)]
    assert len(queued) == result.accepted
    for update in queued:
        _assert_writable(update)


def _assert_writable(update: ContactUpdate) -> None:
    assert update.received_ms == RECEIVED_MS
    update.email.encode("utf-8")
    for change in update.audiences:
        change.audience_id.encode("utf-8")
        assert 946_684_800_000 <= change.timestamp_ms <= RECEIVED_MS + 5 * 60 * 1000
    for value in update.attributes.values():
        if isinstance(value, float):
            assert math.isfinite(value)
        if isinstance(value, str):
            value.encode("utf-8")
            assert len(value) <= 65_536


handler = pytest.fixture(scope="module")(isolated_ingest_handler)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=64) | documents.map(_as_body))
def test_any_body_through_the_handler_gets_202_or_4xx(handler: Handler, body: bytes) -> None:
    response = handler(event_of({"name": "fuzz", "body_b64": base64.b64encode(body).decode()}))
    assert response["statusCode"] in (202, 400, 413)
    answer = json.loads(response["body"])
    assert answer["requestId"] == REQUEST_ID
    if response["statusCode"] != 202:
        assert answer["field"] and answer["message"]


def test_the_fuzzer_reaches_accepted_profiles() -> None:
    """Guards the strategies: a fuzzer that only produced 400s would prove nothing."""
    mapping = AttributeMapping.from_overrides()
    assert ParseOptions(mapping=mapping).max_profiles == 10_000
    body = _as_body({"profiles": [{"email": "ada@example.com", "attributes": {"city": "\ud800"}}]})
    publisher = RecordingPublisher()
    service = IngestService(
        IngestSettings(queue_url="q", ingest_secret_id="s"), publisher, lambda: 1_796_000_000
    )
    result = service.ingest(parse_json(body, "a JSON activation"), "r")
    assert result.accepted == 0 and result.warning_count == 1
