"""The benchmarks' AWS cost meter: item sizes and capacity units by AWS's rules, counted from real
boto3 calls against moto, and priced per million updates."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError
from moto import mock_aws

from bench.cost import (
    AWS_LATENCY_MS,
    GB_SECONDS_AWS,
    GB_SECONDS_LOCAL,
    PRICES,
    TOTAL_AWS,
    CostMeter,
    FunctionUsage,
    TableSchema,
    ThreadTimeline,
    item_size,
    item_write_units,
    number_size,
    read_units,
    seconds_saved,
    sqs_requests,
    table,
)

TABLE = "ledger"
INDEX = "issues"


@pytest.fixture
def aws() -> Iterator[tuple[CostMeter, boto3.session.Session]]:
    """A table with a sparse KEYS_ONLY index in moto, and a meter watching a session's clients."""
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        session.client("dynamodb").create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "email", "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": "email", "AttributeType": "S"},
                {"AttributeName": "issueStatus", "AttributeType": "S"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": INDEX,
                    "KeySchema": [{"AttributeName": "issueStatus", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["reason"]},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        meter = CostMeter({"IngestFunction": 512})
        with meter.attached(session):
            yield meter, session


def padded(email: str, size: int, **extra: Any) -> dict[str, Any]:
    """An item of exactly ``size`` bytes: ``email`` and ``filler`` plus ``extra`` string attributes."""
    item: dict[str, Any] = {"email": {"S": email}, **{name: {"S": value} for name, value in extra.items()}}
    item["filler"] = {"S": "x" * (size - item_size(item) - len("filler"))}
    assert item_size(item) == size
    return item


# --- sizes -----------------------------------------------------------------------------------------


def test_numbers_cost_a_byte_per_two_significant_digits_plus_one() -> None:
    assert number_size("7") == 2
    assert number_size("123") == 3
    assert number_size("1000000") == 2  # trailing zeros are not significant
    assert number_size("-0.00125") == 3
    assert number_size("1" * 38) == 20


def test_item_size_is_names_plus_values_with_container_overheads() -> None:
    assert item_size({"email": {"S": "a@b.c"}}) == 10
    assert (
        item_size({"n": {"N": "123"}, "ok": {"BOOL": True}, "gone": {"NULL": True}}) == 1 + 3 + 2 + 1 + 4 + 1
    )
    assert item_size({"é": {"S": "ü"}}) == 4  # UTF-8 bytes, not characters
    assert item_size({"m": {"M": {"k": {"S": "vv"}}}}) == 1 + 3 + (1 + 1 + 2)
    assert item_size({"l": {"L": [{"N": "1"}, {"BOOL": False}]}}) == 1 + 3 + (1 + 2) + (1 + 1)
    assert item_size({"b": {"B": b"\x00\x01\x02"}, "s": {"SS": ["ab", "c"]}}) == 1 + 3 + 1 + 3


def test_write_units_round_each_item_up_to_a_kilobyte() -> None:
    schema = TableSchema(("email",))
    assert item_write_units(schema, None, padded("a", 1024)) == {"table": 1}
    assert item_write_units(schema, None, padded("a", 1025)) == {"table": 2}
    assert item_write_units(schema, padded("a", 3000), padded("a", 20)) == {"table": 3}


def test_reads_round_to_four_kilobytes_and_eventually_consistent_ones_cost_half() -> None:
    assert read_units(4096, consistent=True) == 1
    assert read_units(4097, consistent=True) == 2
    assert read_units(4097, consistent=False) == 1
    assert read_units(0, consistent=False) == 0.5


def test_sqs_bills_every_started_64_kb_of_payload() -> None:
    assert sqs_requests(0) == 1
    assert sqs_requests(64 * 1024) == 1
    assert sqs_requests(64 * 1024 + 1) == 2
    assert sqs_requests(256 * 1024) == 4


# --- DynamoDB calls, counted ---------------------------------------------------------------------


def test_update_item_is_billed_on_the_larger_of_the_item_before_and_after(
    aws: tuple[CostMeter, boto3.session.Session],
) -> None:
    meter, session = aws
    dynamodb = session.client("dynamodb")
    dynamodb.put_item(TableName=TABLE, Item=padded("a", 3000))
    assert meter.usage.dynamodb_write_units == 3
    dynamodb.update_item(TableName=TABLE, Key={"email": {"S": "a"}}, UpdateExpression="REMOVE filler")
    assert meter.usage.dynamodb_write_units == 3 + 3


def test_each_index_write_costs_again(aws: tuple[CostMeter, boto3.session.Session]) -> None:
    meter, session = aws
    dynamodb = session.client("dynamodb")
    key = {"email": {"S": "a"}}

    def update(expression: str, **values: Any) -> dict[str, int]:
        before = dict(meter.usage.write_units_by_target)
        request: dict[str, Any] = {"TableName": TABLE, "Key": key, "UpdateExpression": expression}
        if values:
            request["ExpressionAttributeValues"] = values
        dynamodb.update_item(**request)
        return {
            target: units - before.get(target, 0)
            for target, units in meter.usage.write_units_by_target.items()
        }

    dynamodb.put_item(TableName=TABLE, Item=padded("a", 2000))
    assert meter.usage.write_units_by_target == {TABLE: 2}  # not in the sparse index
    entering = update("SET issueStatus = :s, reason = :r", **{":s": {"S": "failed"}, ":r": {"S": "x"}})
    assert entering == {TABLE: 2, f"{TABLE}/{INDEX}": 1}
    assert update("SET filler = :p", **{":p": {"S": "y"}}) == {
        TABLE: 2,
        f"{TABLE}/{INDEX}": 0,
    }  # not projected
    assert update("SET reason = :r", **{":r": {"S": "z" * 1500}}) == {TABLE: 2, f"{TABLE}/{INDEX}": 2}
    # a changed index key is a delete and a put of the entry
    assert update("SET issueStatus = :s", **{":s": {"S": "held"}}) == {TABLE: 2, f"{TABLE}/{INDEX}": 4}
    assert update("REMOVE issueStatus") == {TABLE: 2, f"{TABLE}/{INDEX}": 2}  # leaving the index


def test_a_failed_conditional_write_still_costs_a_unit_and_no_index_write(
    aws: tuple[CostMeter, boto3.session.Session],
) -> None:
    meter, session = aws
    dynamodb = session.client("dynamodb")
    dynamodb.put_item(TableName=TABLE, Item={"email": {"S": "a"}, "issueStatus": {"S": "failed"}})
    before = meter.usage.dynamodb_write_units
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        dynamodb.put_item(
            TableName=TABLE,
            Item={"email": {"S": "a"}, "issueStatus": {"S": "held"}},
            ConditionExpression="attribute_not_exists(email)",
        )
    assert meter.usage.dynamodb_write_units - before == 1


def test_batch_writes_and_batch_reads_are_billed_per_item(
    aws: tuple[CostMeter, boto3.session.Session],
) -> None:
    meter, session = aws
    dynamodb = session.client("dynamodb")
    dynamodb.batch_write_item(
        RequestItems={TABLE: [{"PutRequest": {"Item": padded(email, 100)}} for email in ("a", "b", "c")]}
    )
    assert meter.usage.dynamodb_write_units == 3  # 300 bytes, but three items of one unit each
    keys = [{"email": {"S": email}} for email in ("a", "b", "c", "missing")]
    dynamodb.batch_get_item(RequestItems={TABLE: {"Keys": keys, "ConsistentRead": True}})
    assert meter.usage.dynamodb_read_units == 4  # an absent item costs the minimum too
    dynamodb.batch_get_item(RequestItems={TABLE: {"Keys": keys}})
    assert meter.usage.dynamodb_read_units == 4 + 2


def test_a_query_sums_the_items_before_rounding_and_an_index_reads_its_projection(
    aws: tuple[CostMeter, boto3.session.Session],
) -> None:
    meter, session = aws
    dynamodb = session.client("dynamodb")
    for email in ("a", "b", "c"):
        dynamodb.put_item(TableName=TABLE, Item=padded(email, 2000, issueStatus="failed"))
    dynamodb.get_item(TableName=TABLE, Key={"email": {"S": "a"}}, ConsistentRead=True)
    assert meter.usage.dynamodb_read_units == 1
    dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="email = :e",
        ExpressionAttributeValues={":e": {"S": "a"}},
        ProjectionExpression="email",  # billed on the whole item all the same
        ConsistentRead=True,
    )
    assert meter.usage.dynamodb_read_units == 1 + 1
    dynamodb.scan(TableName=TABLE, ConsistentRead=True)
    assert meter.usage.dynamodb_read_units == 2 + 2  # 6,000 bytes: two units, not three
    dynamodb.query(
        TableName=TABLE,
        IndexName=INDEX,
        KeyConditionExpression="issueStatus = :s",
        ExpressionAttributeValues={":s": {"S": "failed"}},
    )
    # three small index entries ("filler" is not projected), eventually consistent
    assert meter.usage.dynamodb_read_units == 4 + 0.5
    assert meter.usage.read_units_by_target[f"{TABLE}/{INDEX}"] == 0.5


# --- SQS, Secrets Manager, Lambda, API Gateway --------------------------------------------------------


def test_sqs_requests_count_64_kb_chunks_and_fifo_apart(aws: tuple[CostMeter, boto3.session.Session]) -> None:
    meter, session = aws
    sqs = session.client("sqs")
    standard = sqs.create_queue(QueueName="plain")["QueueUrl"]
    fifo = sqs.create_queue(
        QueueName="q.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    base = meter.usage.sqs_standard_requests  # create_queue was one
    sqs.send_message_batch(
        QueueUrl=standard,
        Entries=[{"Id": str(i), "MessageBody": f"{i}" + "x" * 10_000} for i in range(10)],
    )
    assert meter.usage.sqs_standard_requests - base == 2  # ~100 KB in one call
    sqs.send_message(QueueUrl=fifo, MessageBody="small", MessageGroupId="g")
    assert meter.usage.sqs_fifo_requests == 1
    received = sqs.receive_message(QueueUrl=standard, MaxNumberOfMessages=10)["Messages"]
    assert len(received) == 10
    assert meter.usage.sqs_standard_requests - base == 2 + 2


def test_the_event_source_pays_for_batches_not_for_idle_polls_or_local_checks() -> None:
    with mock_aws():
        sqs = boto3.session.Session(region_name="us-east-1").client("sqs")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        meter = CostMeter()
        meter.observe_event_source(sqs)
        meter.attach(boto3.session.Session())
        sqs.receive_message(QueueUrl=url)
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        assert (meter.usage.idle_receives, meter.usage.sqs_standard_requests) == (1, 0)
        sqs.send_message(QueueUrl=url, MessageBody="m")  # not an event source call
        handle = sqs.receive_message(QueueUrl=url)["Messages"][0]["ReceiptHandle"]
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": "0", "ReceiptHandle": handle}])
        assert meter.usage.sqs_standard_requests == 2
        meter.detach()


def test_secrets_manager_calls_are_counted(aws: tuple[CostMeter, boto3.session.Session]) -> None:
    meter, session = aws
    secrets = session.client("secretsmanager")
    arn = secrets.create_secret(Name="s", SecretString="v")["ARN"]
    secrets.get_secret_value(SecretId=arn)
    assert meter.usage.secrets_manager_calls == 2


def test_a_metered_function_counts_invocations_and_api_gateway_512_kb_increments(
    aws: tuple[CostMeter, boto3.session.Session],
) -> None:
    meter, _session = aws
    function = meter.function("IngestFunction", lambda event, context: {"statusCode": 202})
    http = {"version": "2.0", "requestContext": {"http": {"method": "POST"}}}
    function({**http, "body": "x" * 100}, None)
    function({**http, "body": "x" * (600 * 1024)}, None)
    function({"Records": []}, None)  # an SQS batch: no API Gateway request
    usage = meter.usage.functions["IngestFunction"]
    assert (usage.invocations, usage.memory_mb) == (3, 512)
    assert meter.usage.api_gateway_requests == 1 + 2
    assert usage.billed_ms >= 3  # each invocation is billed at least a millisecond


def test_gb_seconds_are_billed_milliseconds_times_memory() -> None:
    assert FunctionUsage(invocations=2, billed_ms=3000, memory_mb=512).gb_seconds == 1.5


def test_the_report_prices_units_per_million_updates() -> None:
    meter = CostMeter()
    meter.usage.dynamodb_write_units = 3000
    meter.usage.dynamodb_read_units = 1000
    meter.usage.sqs_fifo_requests = 100
    meter.usage.sqs_standard_requests = 100
    meter.usage.api_gateway_requests = 100
    meter.usage.functions["F"] = FunctionUsage(
        invocations=100, billed_ms=200_000, aws_latency_billed_ms=20_000, memory_mb=1024
    )
    report = meter.report(updates=1000)
    lines = report["lines"]
    assert lines["DynamoDB write units"]["usd_per_million_updates"] == pytest.approx(3000 * 0.625 / 1000)
    assert lines["DynamoDB read units"]["usd_per_million_updates"] == pytest.approx(0.125)
    assert lines["SQS requests"]["usd_per_million_updates"] == pytest.approx(100 * (0.5 + 0.4) / 1000)
    assert lines[GB_SECONDS_LOCAL]["units_per_million_updates"] == 200_000
    assert lines[GB_SECONDS_AWS]["units_per_million_updates"] == 20_000
    fixed = (
        3000 * PRICES["dynamodb_write_unit"]
        + 1000 * PRICES["dynamodb_read_unit"]
        + 100 * (PRICES["sqs_fifo_request"] + PRICES["sqs_standard_request"])
        + 100 * PRICES["api_gateway_request"]
        + 100 * PRICES["lambda_request"]
    )
    # The total prices the GB-seconds at AWS's latency; the local wall time's total is beside it.
    assert report["usd_per_million_updates"] == pytest.approx(
        (fixed + 20 * PRICES["lambda_gb_second"]) * 1000, abs=1e-4
    )
    assert report["usd_per_million_updates_local_wall_time"] == pytest.approx(
        (fixed + 200 * PRICES["lambda_gb_second"]) * 1000, abs=1e-4
    )
    assert TOTAL_AWS in table({"row": report})


# --- Lambda durations at AWS's latency ---------------------------------------------------------------

SLOW_MS = 100  # what each AWS call takes here, far above its modeled latency


@pytest.fixture
def slow_aws(aws: tuple[CostMeter, boto3.session.Session]) -> tuple[CostMeter, boto3.session.Session]:
    """Every AWS call of the session takes at least ``SLOW_MS`` (as moto does on a loaded machine)."""
    meter, session = aws
    session.events.register("before-send", lambda **_: time.sleep(SLOW_MS / 1000))
    return meter, session


def test_aws_calls_are_billed_at_their_modeled_latency_instead_of_their_local_time(
    slow_aws: tuple[CostMeter, boto3.session.Session],
) -> None:
    meter, session = slow_aws
    dynamodb = session.client("dynamodb")
    calls = 4

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        for n in range(calls):
            dynamodb.get_item(TableName=TABLE, Key={"email": {"S": f"{n}@x.com"}})
        return {}

    meter.function("IngestFunction", handler)({}, None)
    usage = meter.usage.functions["IngestFunction"]
    modeled_ms = AWS_LATENCY_MS["dynamodb"]
    assert usage.aws_calls == calls
    assert usage.aws_call_modeled_seconds == pytest.approx(calls * modeled_ms / 1000)
    assert usage.billed_ms >= calls * SLOW_MS
    # Each call's local time (at least SLOW_MS) is replaced by its modeled latency; the rest of the
    # handler's time is kept.
    assert usage.aws_latency_billed_ms <= usage.billed_ms - calls * (SLOW_MS - modeled_ms)
    assert usage.aws_latency_billed_ms >= calls * modeled_ms
    assert usage.aws_latency_gb_seconds < usage.gb_seconds


def test_a_call_faster_here_than_on_aws_is_billed_at_its_modeled_latency(
    aws: tuple[CostMeter, boto3.session.Session],
) -> None:
    meter, session = aws
    session.events.register_first("before-send", _answered_at_once)
    lambda_client = session.client("lambda")
    calls = 20

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        for _ in range(calls):
            lambda_client.invoke(FunctionName="flush", InvocationType="Event", Payload=b"{}")
        return {}

    meter.function("MergeFunction", handler)({}, None)
    usage = meter.usage.functions["MergeFunction"]
    assert usage.aws_calls == calls
    assert usage.aws_latency_billed_ms >= calls * AWS_LATENCY_MS["lambda"]


def _answered_at_once(**_: Any) -> Any:  # an AWSResponse: the stubs type handlers as returning None
    """Lambda's answer to an asynchronous Invoke, at once (as the local stack's stand-in answers)."""
    return AWSResponse("https://lambda", 202, HTTPHeaders(), _Raw(b""))


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def test_calls_in_threads_the_handler_starts_count_once_for_threads_running_side_by_side(
    slow_aws: tuple[CostMeter, boto3.session.Session],
) -> None:
    meter, session = slow_aws
    dynamodb = session.client("dynamodb")
    workers, calls_each = 4, 2

    def work(worker: int) -> None:
        for n in range(calls_each):
            dynamodb.get_item(TableName=TABLE, Key={"email": {"S": f"{worker}-{n}@x.com"}})

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(work, range(workers)))
        return {}

    meter.function("FlushFunction", handler)({}, None)
    usage = meter.usage.functions["FlushFunction"]
    modeled_ms = AWS_LATENCY_MS["dynamodb"]
    assert usage.aws_calls == workers * calls_each
    # The workers ran side by side: the handler is shortened by what one worker saves, not four.
    assert usage.aws_latency_billed_ms <= usage.billed_ms - calls_each * (SLOW_MS - modeled_ms)
    assert usage.aws_latency_billed_ms >= calls_each * modeled_ms


def test_threads_one_after_the_other_add_their_savings_and_side_by_side_ones_do_not() -> None:
    def worker(started: float, calls: list[tuple[float, float]], modeled: float = 0.005) -> ThreadTimeline:
        thread = ThreadTimeline(started)
        for call_started, call_ended in calls:
            thread.call(call_started, call_ended, modeled)
        return thread

    handler = ThreadTimeline(0.0)
    handler.call(0.0, 0.1, 0.005)  # its own call: saves 95 ms
    # Two workers side by side: 1.0-1.5 and 1.1-1.4, each a call of 0.4 s then 0.1 s of other work
    # (say HubSpot's answer), which keeps its time.
    handler.children += [worker(1.0, [(1.0, 1.4)]), worker(1.1, [(1.1, 1.3)])]
    # Then one more, alone.
    handler.children.append(worker(2.0, [(2.0, 2.2), (2.2, 2.3)]))
    saved = seconds_saved(handler)
    # The first group ends at 1.4 here and at max(1.0 + 0.005, 1.1 + 0.005) at AWS's latency.
    first_group = 0.4 - 0.105
    assert saved == pytest.approx(0.095 + first_group + (0.3 - 0.01))


def test_a_worker_that_waits_on_something_else_keeps_that_time() -> None:
    handler = ThreadTimeline(0.0)
    fast = ThreadTimeline(0.0)
    fast.call(0.0, 1.0, 0.005)  # an AWS call of 1 s
    slow = ThreadTimeline(0.0)
    slow.call(0.8, 1.0, 0.005)  # 0.8 s of HubSpot's answer first, then a call of 0.2 s
    handler.children += [fast, slow]
    # At AWS's latency the group ends when the slow worker's call does: 0.8 + 0.005.
    assert seconds_saved(handler) == pytest.approx(1.0 - 0.805)
