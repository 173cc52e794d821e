"""The reconcile function in template.yaml: its settings, its two schedules (both off with
ReconcileSchedule=none), its role, and the dashboard's drift widget."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hubspot_activation.reconcile.model import DriftKind
from hubspot_activation.settings import UpsertSettings

from local.template import translate
from tests.integration.test_template import QUEUE_ARN, TABLE_ARN, grants, of_type
from tests.integration.test_template_operations import evaluate

RECONCILE_NAME = "${AWS::StackName}-reconcile"
RECONCILE_ARN = "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:" + RECONCILE_NAME
RECONCILE = {"Fn::GetAtt": ["ReconcileFunction", "Arn"]}


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return translate()


def schedules(cfn: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: spec
        for name, spec in of_type(cfn, "AWS::Scheduler::Schedule").items()
        if spec["Properties"]["Target"]["Arn"] == RECONCILE
    }


def test_the_reconcile_role_grants_only_the_calls_reconcile_makes(cfn: dict[str, Any]) -> None:
    found = grants(cfn, "ReconcileFunctionRole")
    secret = found.pop("secretsmanager:GetSecretValue")
    assert len(secret) == 1 and "HubSpotCredentialSecret" in next(iter(secret))
    assert found == {
        "dynamodb:Scan": {TABLE_ARN},  # the walk
        "dynamodb:GetItem": {TABLE_ARN},  # the walk's progress
        "dynamodb:BatchGetItem": {TABLE_ARN},
        "dynamodb:UpdateItem": {TABLE_ARN},
        "dynamodb:BatchWriteItem": {TABLE_ARN},  # pending markers of repaired contacts
        "dynamodb:PutItem": {TABLE_ARN},  # the webhooks journal's offset
        # The journal names records by id: their contacts, through this index only.
        "dynamodb:Query": {str({"Fn::Sub": "${LedgerTable.Arn}/index/hubspotId"})},
        # The queue's depth only: reconcile never touches a message.
        "sqs:GetQueueAttributes": {QUEUE_ARN},
        # The flusher writes the repairs; the function continues its own walk.
        "lambda:InvokeFunction": {
            str({"Fn::GetAtt": ["FlushFunction", "Arn"]}),
            str({"Fn::Sub": RECONCILE_ARN}),
        },
    }
    # No other index, no delete: the flush's leases and markers are the flusher's to remove.
    assert "IngestTokenSecret" not in str(cfn["Resources"]["ReconcileFunctionRole"])


def test_the_reconcile_function_is_configured_like_the_flush_and_names_itself(cfn: dict[str, Any]) -> None:
    function = cfn["Resources"]["ReconcileFunction"]["Properties"]
    flush = cfn["Resources"]["FlushFunction"]["Properties"]
    assert function["Timeout"] == flush["Timeout"] == 900
    assert function["MemorySize"] == flush["MemorySize"]
    assert function["Layers"] == flush["Layers"]
    assert function["FunctionName"] == {"Fn::Sub": RECONCILE_NAME}
    assert function["LoggingConfig"]["LogGroup"] == {"Ref": "ReconcileLogGroup"}
    variables = function["Environment"]["Variables"]
    assert variables["RECONCILE_FUNCTION_NAME"] == {"Fn::Sub": RECONCILE_NAME}
    assert variables["FLUSH_FUNCTION_NAME"] == {"Ref": "FlushFunction"}
    for variable, parameter in {
        "RECONCILE_SCHEDULE": "ReconcileSchedule",
        "RECONCILE_DAILY_SHARE": "ReconcileDailyShare",
        "HUBSPOT_DELETIONS": "HubSpotDeletions",
        "FLUSH_LANES": "FlushLanes",
        "HUBSPOT_DAILY_LIMIT": "HubSpotDailyLimit",
        "HUBSPOT_DAILY_RESERVE": "HubSpotDailyReserve",
        "ATTRIBUTE_MAPPING": "AttributeMapping",
    }.items():
        assert variables[variable] == {"Ref": parameter}, variable
    # Every HubSpot setting the flush is given, reconcile is given the same way (one governor's
    # figures, one daily count).
    shared = {name for name in flush["Environment"]["Variables"] if name.startswith("HUBSPOT_")}
    assert {name: variables[name] for name in shared} == {
        name: flush["Environment"]["Variables"][name] for name in shared
    }
    # POST /reconcile builds the same reconciler in the operations function.
    operations = cfn["Resources"]["OperationsFunction"]["Properties"]["Environment"]["Variables"]
    assert operations["RECONCILE_DAILY_SHARE"] == {"Ref": "ReconcileDailyShare"}
    assert operations["HUBSPOT_DELETIONS"] == {"Ref": "HubSpotDeletions"}


def test_the_walk_and_the_journal_run_on_schedules_that_none_turns_off(cfn: dict[str, Any]) -> None:
    found = schedules(cfn)
    assert {
        json.dumps(spec["Properties"]["Target"]["Input"], sort_keys=True): spec["Properties"][
            "ScheduleExpression"
        ]
        for spec in found.values()
    } == {
        json.dumps('{"walk": "schedule"}'): {"Ref": "ReconcileSchedule"},
        json.dumps('{"journal": true}'): "rate(1 minute)",
    }
    role = {spec["Properties"]["Target"]["RoleArn"]["Fn::GetAtt"][0] for spec in found.values()}
    assert role == {"ReconcileScheduleRole"}
    # EventBridge Scheduler may invoke the reconcile function, and nothing else.
    assert grants(cfn, "ReconcileScheduleRole") == {"lambda:InvokeFunction": {str(RECONCILE)}}
    condition = cfn["Conditions"]["ReconcileScheduled"]
    for name in [*found, "ReconcileScheduleRole"]:
        assert cfn["Resources"][name]["Condition"] == "ReconcileScheduled", name
    for value, scheduled in (("rate(1 day)", True), ("cron(0 3 * * ? *)", True), ("none", False)):
        assert evaluate(condition, {"ReconcileSchedule": value}, cfn["Conditions"]) is scheduled
    # The function itself stays: POST /reconcile and an operator's invoke still use it.
    assert "Condition" not in cfn["Resources"]["ReconcileFunction"]


@pytest.mark.parametrize("value", ["none", "rate(1 day)", "rate(6 hours)", "cron(0 3 * * ? *)"])
def test_the_schedule_parameter_takes_what_the_settings_take(cfn: dict[str, Any], value: str) -> None:
    pattern = cfn["Parameters"]["ReconcileSchedule"]["AllowedPattern"]
    assert re.fullmatch(pattern, value)
    settings = UpsertSettings.from_env(
        {"LEDGER_TABLE": "t", "HUBSPOT_SECRET_ID": "s", "RECONCILE_SCHEDULE": value}
    )
    assert settings.reconcile_scheduled is (value != "none")


def test_the_dashboard_shows_drift_found_and_repaired_by_kind(cfn: dict[str, Any]) -> None:
    body = cfn["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    rendered = json.loads(re.sub(r"\$\{([^}]+)\}", "fake", body))
    lines = [
        line
        for widget in rendered["widgets"]
        if widget["type"] == "metric"
        for line in widget["properties"]["metrics"]
        if line[1] in ("DriftDetected", "DriftRepaired")
    ]
    # The dimensions the reconcile function publishes with (service and Kind).
    assert all(line[2:6] == ["service", "hubspot-activation", "Kind", line[5]] for line in lines)
    detected = {line[5] for line in lines if line[1] == "DriftDetected"}
    repaired = {line[5] for line in lines if line[1] == "DriftRepaired"}
    assert detected == {kind.value for kind in DriftKind}
    # An erased contact is recorded as failed, never repaired.
    assert repaired == {kind.value for kind in DriftKind} - {DriftKind.ERASED.value}
