"""The lists function in template.yaml: its timer queue (standard, encrypted, redriven), its
event source and schedule (both only when lists are kept), its role, and the flush's right to
start its timers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hubspot_activation.list_function.wiring import LISTS_MAX_CONCURRENCY, lists_governor_settings
from hubspot_activation.settings import UpsertSettings

from local.template import translate
from tests.integration.test_template import TABLE_ARN, grants, of_type
from tests.integration.test_template_operations import evaluate

TIMER_ARN = str({"Fn::GetAtt": ["ListTimerQueue", "Arn"]})
LISTS = {"Fn::GetAtt": ["ListsFunction", "Arn"]}


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return translate()


def test_the_timer_queue_is_standard_encrypted_and_redriven(cfn: dict[str, Any]) -> None:
    queue = cfn["Resources"]["ListTimerQueue"]["Properties"]
    dlq = cfn["Resources"]["ListTimerDeadLetterQueue"]["Properties"]
    # Only a standard queue delays each message on its own (FIFO queues delay the queue).
    assert "FifoQueue" not in queue and "FifoQueue" not in dlq
    assert queue["SqsManagedSseEnabled"] is True and dlq["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["ListTimerDeadLetterQueue", "Arn"]
    }
    timeout = cfn["Resources"]["ListsFunction"]["Properties"]["Timeout"]
    assert queue["VisibilityTimeout"] >= 6 * timeout


def test_the_lists_function_reads_the_lists_settings_and_its_queue(cfn: dict[str, Any]) -> None:
    function = cfn["Resources"]["ListsFunction"]["Properties"]
    assert function["Timeout"] <= 300
    assert function["LoggingConfig"]["LogGroup"] == {"Ref": "ListsLogGroup"}
    variables = function["Environment"]["Variables"]
    assert variables["LEDGER_TABLE"] == {"Ref": "LedgerTable"}
    assert variables["HUBSPOT_SECRET_ID"] == {"Ref": "HubSpotCredentialSecret"}
    assert variables["LIST_TIMER_QUEUE_URL"] == {"Ref": "ListTimerQueue"}
    for variable, parameter in {
        "AUDIENCE_TARGET": "AudienceTarget",
        "LIST_FLUSH_SECONDS": "ListFlushSeconds",
        "LIST_CHUNK_SIZE": "ListChunkSize",
        "HUBSPOT_API_VERSION": "HubSpotApiVersion",
        "HUBSPOT_DAILY_LIMIT": "HubSpotDailyLimit",
        "HUBSPOT_DAILY_RESERVE": "HubSpotDailyReserve",
    }.items():
        assert variables[variable] == {"Ref": parameter}, variable
    flush = cfn["Resources"]["FlushFunction"]["Properties"]["Environment"]["Variables"]
    assert flush["LIST_TIMER_QUEUE_URL"] == {"Ref": "ListTimerQueue"}


def test_the_lists_role_grants_only_the_calls_the_lists_function_makes(cfn: dict[str, Any]) -> None:
    found = grants(cfn, "ListsFunctionRole")
    secret = found.pop("secretsmanager:GetSecretValue")
    assert len(secret) == 1 and "HubSpotCredentialSecret" in next(iter(secret))
    assert found == {
        "dynamodb:GetItem": {TABLE_ARN},
        "dynamodb:UpdateItem": {TABLE_ARN},
        "dynamodb:PutItem": {TABLE_ARN},  # a list's lease
        "dynamodb:DeleteItem": {TABLE_ARN},
        "dynamodb:Scan": {TABLE_ARN},  # a refill
        "dynamodb:Query": {str({"Fn::Sub": "${LedgerTable.Arn}/index/pending"})},
        "sqs:ReceiveMessage": {TIMER_ARN},
        "sqs:DeleteMessage": {TIMER_ARN},
        "sqs:ChangeMessageVisibility": {TIMER_ARN},
        "sqs:GetQueueAttributes": {TIMER_ARN},
        "sqs:SendMessage": {TIMER_ARN},
    }
    assert "IngestTokenSecret" not in str(cfn["Resources"]["ListsFunctionRole"])
    assert not cfn["Resources"]["ListsFunctionRole"]["Properties"].get("ManagedPolicyArns", []) or all(
        "AWSLambdaBasicExecutionRole" in str(arn) or "AWSXrayWriteOnlyAccess" in str(arn)
        for arn in cfn["Resources"]["ListsFunctionRole"]["Properties"]["ManagedPolicyArns"]
    )


def test_timers_and_the_sweep_reach_the_function_only_when_lists_are_kept(cfn: dict[str, Any]) -> None:
    (mapping,) = [
        spec
        for spec in of_type(cfn, "AWS::Lambda::EventSourceMapping").values()
        if spec["Properties"]["FunctionName"] == {"Ref": "ListsFunction"}
    ]
    assert mapping["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["ListTimerQueue", "Arn"]}
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["Properties"]["ScalingConfig"] == {"MaximumConcurrency": 2}
    (schedule,) = [
        spec
        for spec in of_type(cfn, "AWS::Scheduler::Schedule").values()
        if spec["Properties"]["Target"]["Arn"] == LISTS
    ]
    assert schedule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert grants(cfn, schedule["Properties"]["Target"]["RoleArn"]["Fn::GetAtt"][0]) == {
        "lambda:InvokeFunction": {str(LISTS)}
    }
    conditions = cfn["Conditions"]
    for spec in (mapping, schedule, cfn["Resources"]["ListsScheduleRole"]):
        name = spec["Condition"]
        for target, kept in (("property", False), ("list", True), ("both", True)):
            assert evaluate(conditions[name], {"AudienceTarget": target}, conditions) is kept


def test_the_lists_governor_counts_as_many_drains_in_flight_as_the_event_source_runs(
    cfn: dict[str, Any],
) -> None:
    (mapping,) = [
        resource["Properties"]
        for resource in of_type(cfn, "AWS::Lambda::EventSourceMapping").values()
        if resource["Properties"]["FunctionName"] == {"Ref": "ListsFunction"}
    ]
    assert mapping["ScalingConfig"]["MaximumConcurrency"] == LISTS_MAX_CONCURRENCY


def test_the_lists_send_their_part_of_the_window_and_leave_only_the_other_integrations_part() -> None:
    """A drain waits only for what the connector leaves to other integrations (as the flush does),
    not for a headroom of everything but the lists' part: with the flush's handful of calls in the
    window, that would hold every drain back until the window cleared."""
    settings = UpsertSettings(ledger_table="t", hubspot_secret_id="s", tier_limit=100, share=0.8)
    governor = lists_governor_settings(settings)
    assert governor.budget == 10  # LISTS_BURST_SHARE of a 100-request window
    assert governor.headroom(100) == pytest.approx(100 * (1 - 0.8) + LISTS_MAX_CONCURRENCY)
    assert lists_governor_settings(replace(settings, share=0.05)).budget == 5  # never past the share
