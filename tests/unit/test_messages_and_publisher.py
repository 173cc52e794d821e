"""FIFO grouping, packing limits, deduplication ids and SendMessageBatch failure handling."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from hubspot_activation.ingest.publisher import SQS_MAX_BATCH_BYTES, EnqueueError, SqsFifoPublisher
from hubspot_activation.messages import QueueMessage, decode_message, shard_of
from hubspot_activation.model import ContactUpdate
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import pack


def update(email: str, city: str = "Paris", padding: int = 0) -> ContactUpdate:
    attributes: dict[str, str | int | float | bool] = {"city": city}
    if padding:
        attributes["notes"] = "x" * padding
    return ContactUpdate(email, (), attributes)


def test_same_email_same_group_and_groups_spread() -> None:
    assert shard_of("a@example.com", 16) == shard_of("a@example.com", 16)
    groups = {shard_of(f"user{i}@example.com", 16) for i in range(500)}
    assert groups == {f"c{i}" for i in range(16)}


def test_pack_keeps_request_order_inside_each_group() -> None:
    updates = [
        update("a@example.com", "1"),
        update("b@example.com", "1"),
        update("a@example.com", "2"),
        update("a@example.com", "3"),
    ]
    messages = pack(updates, shard_count=1)
    assert len(messages) == 1
    decoded = decode_message(messages[0].body)
    assert [(u.email, u.attributes["city"]) for u in decoded] == [
        ("a@example.com", "1"),
        ("b@example.com", "1"),
        ("a@example.com", "2"),
        ("a@example.com", "3"),
    ]


def test_pack_respects_the_message_size_limit_and_keeps_every_update() -> None:
    updates = [update(f"user{i}@example.com", padding=900) for i in range(200)]
    messages = pack(updates, shard_count=2, max_message_bytes=16 * 1024)
    assert all(message.size <= 16 * 1024 for message in messages)
    assert sum(message.update_count for message in messages) == 200
    assert sorted(u.email for m in messages for u in decode_message(m.body)) == sorted(
        u.email for u in updates
    )
    for message in messages:
        assert {shard_of(u.email, 2) for u in decode_message(message.body)} == {message.group_id}


def test_pack_refuses_an_update_that_cannot_fit() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        pack([update("a@example.com", padding=5000)], shard_count=1, max_message_bytes=4096)


def test_deduplication_id_is_stable_for_the_same_content_and_differs_otherwise() -> None:
    first = pack([update("a@example.com")], 16)[0]
    again = pack([update("a@example.com")], 16)[0]
    other = pack([update("a@example.com", "Lyon")], 16)[0]
    assert first.deduplication_id == again.deduplication_id
    assert first.deduplication_id != other.deduplication_id
    assert len(first.deduplication_id) <= 128


class FakeSqs:
    """Records send_message_batch calls and fails entries on a script."""

    def __init__(self, failures: list[dict[str, Any]] | None = None) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.failures = failures or []  # per call: {"ids": [...], "sender": bool} or {"raise": exc}

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        script = self.failures.pop(0) if self.failures else {}
        if "raise" in script:
            raise script["raise"]
        failed_ids = script.get("ids", [])
        return {
            "Successful": [{"Id": e["Id"]} for e in Entries if e["Id"] not in failed_ids],
            "Failed": [
                {"Id": i, "Code": "InternalError", "SenderFault": script.get("sender", False)}
                for i in failed_ids
            ],
        }

    def sent_bodies(self) -> list[str]:
        return [entry["MessageBody"] for call in self.calls for entry in call]


def publisher(fake: FakeSqs, attempts: int = 4) -> SqsFifoPublisher:
    return SqsFifoPublisher(fake, "https://sqs/queue.fifo", max_attempts=attempts, sleep=lambda _: None)  # type: ignore[arg-type]


def messages(count: int, group: str | None = None, size: int = 10) -> list[QueueMessage]:
    return [QueueMessage(group or f"c{i}", json.dumps({"i": i, "pad": "x" * size}), 1) for i in range(count)]


def test_batches_hold_at_most_ten_entries_with_fifo_fields() -> None:
    fake = FakeSqs()
    assert publisher(fake).publish(messages(25), "req-1") == 3
    assert [len(call) for call in fake.calls] == [10, 10, 5]
    entry = fake.calls[0][0]
    assert entry["MessageGroupId"] == "c0"
    assert entry["MessageDeduplicationId"] == messages(1)[0].deduplication_id
    assert entry["MessageAttributes"]["requestId"]["StringValue"] == "req-1"


def test_batches_stay_under_the_sqs_request_size() -> None:
    fake = FakeSqs()
    publisher(fake).publish(messages(10, size=300_000), "r")
    for call in fake.calls:
        assert sum(len(entry["MessageBody"]) for entry in call) <= SQS_MAX_BATCH_BYTES


def test_failed_entries_are_retried_until_they_succeed() -> None:
    fake = FakeSqs(failures=[{"ids": ["m1", "m3"]}, {"ids": ["m0"]}])
    publisher(fake).publish(messages(5), "r")
    assert sorted(fake.sent_bodies()) == sorted(
        [m.body for m in messages(5)] + [messages(5)[1].body, messages(5)[3].body, messages(5)[1].body]
    )
    # every message went through at least once and the last call held only the retried ones
    assert len(fake.calls) == 3


def test_a_group_never_overtakes_its_own_failed_message() -> None:
    ordered = messages(3, group="c7")
    fake = FakeSqs(failures=[{"ids": ["m0"]}])
    publisher(fake).publish(ordered, "r")
    # one message of a group per request: the second is only sent after the first succeeded
    assert [len(call) for call in fake.calls] == [1, 1, 1, 1]
    assert fake.sent_bodies() == [ordered[0].body, ordered[0].body, ordered[1].body, ordered[2].body]


def test_entries_still_failing_after_the_attempts_raise_so_the_caller_retries() -> None:
    fake = FakeSqs(failures=[{"ids": ["m0"]}] * 10)
    with pytest.raises(EnqueueError) as raised:
        publisher(fake, attempts=3).publish(messages(2), "r")
    assert raised.value.unsent == 1 and raised.value.sent == 1
    assert len(fake.calls) == 3


def test_sender_fault_is_not_retried() -> None:
    fake = FakeSqs(failures=[{"ids": ["m0"], "sender": True}])
    with pytest.raises(EnqueueError):
        publisher(fake).publish(messages(1), "r")
    assert len(fake.calls) == 1


def test_throttled_or_unreachable_sqs_is_retried() -> None:
    throttled = ClientError(
        {"Error": {"Code": "RequestThrottled", "Message": "slow down"}}, "SendMessageBatch"
    )
    fake = FakeSqs(
        failures=[{"raise": throttled}, {"raise": EndpointConnectionError(endpoint_url="https://sqs")}]
    )
    publisher(fake).publish(messages(2), "r")
    assert len(fake.calls) == 3


def test_missing_queue_fails_at_once() -> None:
    missing = ClientError(
        {"Error": {"Code": "AWS.SimpleQueueService.NonExistentQueue", "Message": "no"}}, "SendMessageBatch"
    )
    fake = FakeSqs(failures=[{"raise": missing}])
    with pytest.raises(EnqueueError, match="NonExistentQueue"):
        publisher(fake).publish(messages(1), "r")


def test_receive_order_round_trips_and_a_default_timestamp_is_read_back_as_the_receive_time() -> None:
    from hubspot_activation.model import AudienceChange, AudienceStatus

    received = 1_795_000_000_000
    sent = ContactUpdate(
        "a@example.com",
        (
            AudienceChange("gold", AudienceStatus.REALIZED, received),
            AudienceChange("cart", AudienceStatus.EXITED, received - 5_000),
        ),
        {"city": "Paris"},
        received_ms=received,
        position=7,
    )
    (message,) = pack([sent], 8)
    assert '"ts"' in message.body and message.body.count('"ts"') == 1  # only the explicit one
    (back,) = decode_message(message.body)
    assert back == sent and back.order == (received, 7)


def test_deduplication_covers_the_content_not_the_receive_time() -> None:
    first = pack([ContactUpdate("a@example.com", (), {"city": "Paris"}, received_ms=1_000)], 8)[0]
    retry = pack([ContactUpdate("a@example.com", (), {"city": "Paris"}, received_ms=90_000)], 8)[0]
    other = pack([ContactUpdate("a@example.com", (), {"city": "Lyon"}, received_ms=1_000)], 8)[0]
    assert first.body != retry.body
    assert first.deduplication_id == retry.deduplication_id != other.deduplication_id


def test_messages_of_the_first_format_still_decode() -> None:
    body = '{"v":1,"updates":[{"email":"a@example.com","audiences":[{"id":"x","status":"realized","ts":5}]}]}'
    (update,) = decode_message(body)
    assert update.audiences[0].timestamp_ms == 5 and update.order == (0, 0)


#: JSON scalars as a hostile writer could put them in a message: numbers no integer holds, text with
#: no UTF-8 form, and the constants Python's encoder writes for non-finite floats.
_HOSTILE_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["\ud800", "a\udfff", "realized", "exited", "x@example.com"]),
)
_HOSTILE_VALUES = st.recursive(
    _HOSTILE_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["id", "status", "ts", "name", "email", "pos", "x"]), inner, max_size=4
        )
    ),
    max_leaves=12,
)
_UPDATES = st.lists(
    st.fixed_dictionaries(
        {"email": _HOSTILE_VALUES},
        optional={
            "pos": _HOSTILE_VALUES,
            "source": _HOSTILE_VALUES,
            "attributes": _HOSTILE_VALUES,
            "audiences": st.lists(
                st.fixed_dictionaries(
                    {"id": _HOSTILE_VALUES, "status": _HOSTILE_VALUES},
                    optional={"ts": _HOSTILE_VALUES, "name": _HOSTILE_VALUES},
                )
                | _HOSTILE_VALUES,
                max_size=2,
            )
            | _HOSTILE_VALUES,
        },
    )
    | _HOSTILE_VALUES,
    max_size=3,
)
_ENVELOPES = st.fixed_dictionaries(
    {"v": st.sampled_from([1, 2]) | _HOSTILE_VALUES}, optional={"rcv": _HOSTILE_VALUES, "updates": _UPDATES}
)


def _as_body(document: Any, overflow: bool) -> str:
    body = json.dumps(document)  # ensure_ascii: a lone surrogate becomes its escape, as a writer may
    # JSON's 1e999 is an infinite float once decoded: what int() overflows on.
    return body.replace("Infinity", "1e999") if overflow else body


@settings(max_examples=400, deadline=None)
@given(document=_ENVELOPES | _HOSTILE_VALUES, overflow=st.booleans())
def test_a_hostile_message_is_decoded_or_refused_with_value_error_only(document: Any, overflow: bool) -> None:
    body = _as_body(document, overflow)
    try:
        updates = decode_message(body)
    except ValueError:
        return
    # What decodes is an update of ours: text that encodes, bounded integers, scalar attributes.
    for update in updates:
        json.dumps(update.to_json(), ensure_ascii=False).encode("utf-8")
        assert isinstance(update.email, str) and isinstance(update.position, int)
        assert all(isinstance(value, str | int | float | bool) for value in update.attributes.values())
        assert all(
            float("-inf") < value < float("inf")
            for value in update.attributes.values()
            if isinstance(value, float)
        )
