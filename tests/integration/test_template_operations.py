"""The template's operations side: alarms and where they notify, and the CloudWatch dashboard."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hubspot_activation.ledger.keys import (
    AUDIENCE_PREFIX,
    DAILY_CALLS_PREFIX,
    DUE_AT,
    EXCLUDED_PREFIX,
    FLUSH_LEASE_PREFIX,
    HUBSPOT_ID,
    HUBSPOT_ID_INDEX,
    KEY,
    PENDING_EMAILS,
    PENDING_INDEX,
    PENDING_PARTITION,
    PENDING_PREFIX,
)

from local.template import translate

DASHBOARD_METRICS = {
    "ProfilesAccepted",
    "ContactsUpserted",
    "ContactsSkippedUnchanged",
    "ContactsFailed",
    "ProfilesExcluded",
    "HubSpotRequests",
    "HubSpotThrottled",
    "RateLimitRemaining",
    "ApproximateNumberOfMessagesVisible",
    "ApproximateAgeOfOldestMessage",
}
DYNAMODB_WRITES = {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
}
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ops-alarms"


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return translate()


def alarms(cfn: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: spec["Properties"]
        for name, spec in cfn["Resources"].items()
        if spec["Type"] == "AWS::CloudWatch::Alarm"
    }


def evaluate(value: Any, parameters: dict[str, str], conditions: dict[str, Any]) -> Any:
    """Ref / Fn::If / Fn::Not / Fn::Equals as CloudFormation evaluates them for these parameters;
    a resource's Ref stays {"Ref": name}. AWS::NoValue items disappear from lists."""
    if isinstance(value, list):
        items = [evaluate(item, parameters, conditions) for item in value]
        return [item for item in items if item != {"Ref": "AWS::NoValue"}]
    if not isinstance(value, dict) or len(value) != 1:
        return value
    ((key, argument),) = value.items()
    if key == "Ref":
        return parameters.get(argument, value)
    if key == "Fn::If":
        name, when_true, when_false = argument
        chosen = when_true if evaluate(conditions[name], parameters, conditions) else when_false
        return evaluate(chosen, parameters, conditions)
    if key == "Fn::Not":
        return not evaluate(argument[0], parameters, conditions)
    if key == "Fn::Equals":
        left, right = (evaluate(item, parameters, conditions) for item in argument)
        return left == right
    return value


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"AlarmTopicArn": TOPIC, "AlarmEmail": ""}, [TOPIC]),
        ({"AlarmTopicArn": "", "AlarmEmail": "ops@example.com"}, [{"Ref": "AlarmEmailTopic"}]),
        ({"AlarmTopicArn": TOPIC, "AlarmEmail": "ops@example.com"}, [TOPIC, {"Ref": "AlarmEmailTopic"}]),
        ({"AlarmTopicArn": "", "AlarmEmail": ""}, []),
    ],
)
def test_every_alarm_notifies_the_configured_targets(
    cfn: dict[str, Any], parameters: dict[str, str], expected: list[Any]
) -> None:
    found = alarms(cfn)
    assert len(found) >= 5
    for name, alarm in found.items():
        for key in ("AlarmActions", "OKActions"):
            assert evaluate(alarm.get(key, []), parameters, cfn["Conditions"]) == expected, (name, key)


def test_alarm_parameters_default_to_no_notifications(cfn: dict[str, Any]) -> None:
    assert cfn["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert cfn["Parameters"]["AlarmEmail"]["Default"] == ""
    assert re.fullmatch(cfn["Parameters"]["AlarmTopicArn"]["AllowedPattern"], TOPIC)
    assert re.fullmatch(cfn["Parameters"]["AlarmTopicArn"]["AllowedPattern"], "")


def test_the_email_topic_exists_only_with_an_email_and_cloudwatch_can_use_its_key(
    cfn: dict[str, Any],
) -> None:
    resources = cfn["Resources"]
    topic, key = resources["AlarmEmailTopic"], resources["AlarmTopicKey"]
    assert topic["Condition"] == "HasAlarmEmail" and key["Condition"] == "HasAlarmEmail"
    assert topic["Properties"]["Subscription"] == [{"Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}]
    # Encrypted, but not with alias/aws/sns: CloudWatch could not publish to that.
    assert topic["Properties"]["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in statements if s["Principal"].get("Service") == "cloudwatch.amazonaws.com"]
    assert cloudwatch and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(cloudwatch[0]["Action"])
    assert key["Properties"]["EnableKeyRotation"] is True


def test_alarms_cover_undecodable_messages_with_the_emf_dimension(cfn: dict[str, Any]) -> None:
    services = {
        cfn["Resources"][function]["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        for function in ("MergeFunction", "FlushFunction")
    }
    # The merge counts undecodable messages and refused contacts, the flush failed contacts and
    # 429s: one service dimension for both, or one alarm would watch half of them.
    (service,) = services
    by_metric = {alarm["MetricName"]: alarm for alarm in alarms(cfn).values()}
    alarm = by_metric["UndecodableMessages"]
    assert alarm["Namespace"] == "HubSpotActivation"
    # EMF metrics carry the powertools service as a dimension: an alarm without it watches nothing.
    for own in ("UndecodableMessages", "ContactsFailed", "HubSpotThrottled"):
        assert by_metric[own]["Dimensions"] == [{"Name": "service", "Value": service}]


def dashboard(cfn: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """The dashboard body as CloudFormation would render it (fake values for ${...}), and the names
    it substitutes."""
    (spec,) = [spec for spec in cfn["Resources"].values() if spec["Type"] == "AWS::CloudWatch::Dashboard"]
    body = spec["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(body, str)
    names = set(re.findall(r"\$\{([^}]+)\}", body))
    rendered = re.sub(r"\$\{([^}]+)\}", lambda m: f"fake-{m.group(1).replace('::', '-')}", body)
    return json.loads(rendered), names


def test_dashboard_body_is_json_and_shows_every_metric(cfn: dict[str, Any]) -> None:
    body, names = dashboard(cfn)
    metric_widgets = [w["properties"] for w in body["widgets"] if w["type"] == "metric"]
    shown = {line[1] for widget in metric_widgets for line in widget["metrics"]}
    assert shown >= DASHBOARD_METRICS
    queues = {line[3] for widget in metric_widgets for line in widget["metrics"] if line[0] == "AWS/SQS"}
    assert queues == {"fake-ActivationsQueue.QueueName", "fake-ActivationsDeadLetterQueue.QueueName"}
    own = [line for widget in metric_widgets for line in widget["metrics"] if line[0] == "HubSpotActivation"]
    assert all(line[2:4] == ["service", "hubspot-activation"] for line in own)
    assert all(widget["region"] == "fake-AWS-Region" for widget in metric_widgets)
    # Everything substituted is a pseudo parameter or an attribute of a resource of this template.
    for name in names:
        assert name.startswith("AWS::") or name.split(".")[0] in cfn["Resources"], name


def test_dashboard_lists_every_alarm_and_has_an_output(cfn: dict[str, Any]) -> None:
    body, _ = dashboard(cfn)
    (alarm_widget,) = [w["properties"] for w in body["widgets"] if w["type"] == "alarm"]
    assert set(alarm_widget["alarms"]) == {f"fake-{name}.Arn" for name in alarms(cfn)}
    url = cfn["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"]
    assert "#dashboards:name=${OperationsDashboard}" in url


OPERATIONS_ROUTES = {
    "GET /sync/status",
    "GET /sync/issues",
    "GET /contacts/{email}",
    "PUT /audiences/{id}",
    "DELETE /audiences/{id}",
    "POST /replay",
    "POST /reconcile",
}


def api_routes(cfn: dict[str, Any]) -> dict[str, str]:
    """route key -> the function its integration invokes, from the HttpApi's OpenAPI body."""
    (api,) = [spec for spec in cfn["Resources"].values() if spec["Type"] == "AWS::ApiGatewayV2::Api"]
    routes = {}
    for path, methods in api["Properties"]["Body"]["paths"].items():
        for method, spec in methods.items():
            uri = json.dumps(spec["x-amazon-apigateway-integration"]["uri"])
            (function,) = re.findall(
                r"(IngestFunction|OperationsFunction|MergeFunction|FlushFunction)\.Arn", uri
            )
            routes[f"{method.upper()} {path}"] = function
    return routes


def test_the_operations_routes_share_the_activations_api_on_their_own_function(cfn: dict[str, Any]) -> None:
    routes = api_routes(cfn)
    assert routes == {
        "POST /activations": "IngestFunction",
        **dict.fromkeys(OPERATIONS_ROUTES, "OperationsFunction"),
    }


def statements(cfn: dict[str, Any], role: str) -> list[dict[str, Any]]:
    found = []
    for policy in cfn["Resources"][role]["Properties"].get("Policies", []):
        found.extend(policy["PolicyDocument"]["Statement"])
    return found


def actions_on(cfn: dict[str, Any], role: str) -> dict[str, set[str]]:
    """resource (as JSON) -> the actions the role may take on it."""
    result: dict[str, set[str]] = {}
    for statement in statements(cfn, role):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for resource in resources:
            result.setdefault(json.dumps(resource, sort_keys=True), set()).update(actions)
    return result


def test_the_operations_role_is_scoped_to_this_stack(cfn: dict[str, Any]) -> None:
    granted = actions_on(cfn, "OperationsFunctionRole")
    dlq = json.dumps({"Fn::GetAtt": ["ActivationsDeadLetterQueue", "Arn"]}, sort_keys=True)
    queue = json.dumps({"Fn::GetAtt": ["ActivationsQueue", "Arn"]}, sort_keys=True)
    table = json.dumps({"Fn::GetAtt": ["LedgerTable", "Arn"]}, sort_keys=True)
    assert granted[dlq] == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "sqs:SendMessage",  # an undecodable letter set aside in the DLQ's own group
    }
    assert granted[queue] == {"sqs:SendMessage", "sqs:GetQueueAttributes"}
    assert granted[table] == {
        "dynamodb:GetItem",
        "dynamodb:DescribeTable",
        "dynamodb:UpdateItem",
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:Scan",  # reconcile's walk of the tracked contacts
    }
    # Reads are table-wide; the writes are limited to the item kinds the function owns: audience
    # metadata and the daily count, and what POST /reconcile stores (contacts, their pending
    # markers, the runs' outcome).
    by_sid = {s["Sid"]: s for s in statements(cfn, "OperationsFunctionRole") if "Sid" in s}
    assert by_sid["WriteAudiences"]["Action"] == ["dynamodb:UpdateItem"]
    assert by_sid["WriteAudiences"]["Condition"] == {
        "ForAllValues:StringLike": {
            "dynamodb:LeadingKeys": [AUDIENCE_PREFIX + "*", DAILY_CALLS_PREFIX + "*"],
        }
    }
    assert by_sid["Reconcile"]["Condition"] == {
        "ForAllValues:StringLike": {
            "dynamodb:LeadingKeys": ["*@*", PENDING_PREFIX + "*", "#reconcile*", FLUSH_LEASE_PREFIX + "*"]
        }
    }
    assert by_sid["WakeFlusher"]["Resource"] == {"Fn::GetAtt": ["FlushFunction", "Arn"]}
    indexes = sorted(resource for resource in granted if "/index/" in resource)
    assert [index.rsplit("/", 1)[1].strip('"}') for index in indexes] == ["issues", "pending"]
    assert all(granted[index] == {"dynamodb:Query"} for index in indexes)
    # Only CloudWatch's metric read is account-wide (it has no resource-level permission).
    assert granted[json.dumps("*")] == {"cloudwatch:GetMetricData"}
    # Ingest may only add exclusions to the table.
    assert actions_on(cfn, "IngestFunctionRole")[table] == {"dynamodb:BatchWriteItem"}
    (ingest_write,) = [s for s in statements(cfn, "IngestFunctionRole") if s.get("Sid") == "KeepExclusions"]
    assert ingest_write["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [EXCLUDED_PREFIX + "*"]}
    }
    # No other statement of either role grants a DynamoDB write without such a condition.
    for role in ("IngestFunctionRole", "OperationsFunctionRole"):
        for statement in statements(cfn, role):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(action in DYNAMODB_WRITES for action in actions):
                assert "dynamodb:LeadingKeys" in json.dumps(statement.get("Condition")), (role, statement)
    assert [
        s["Sid"] for s in statements(cfn, "OperationsFunctionRole") if "dynamodb:Scan" in s["Action"]
    ] == ["ReconcileWalk"]


def test_the_ledger_has_sparse_issues_held_pending_and_hubspot_id_indexes(cfn: dict[str, Any]) -> None:
    table = cfn["Resources"]["LedgerTable"]["Properties"]
    index, held, pending, by_id = table["GlobalSecondaryIndexes"]
    # The contacts by HubSpot record id: the journal poller's events name records, not emails.
    assert by_id["IndexName"] == HUBSPOT_ID_INDEX and by_id["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert [k["AttributeName"] for k in by_id["KeySchema"]] == [HUBSPOT_ID, KEY]
    # The pending markers' index: a flush lane reads its partitions oldest due first, each marker
    # with the contacts it lists (then each contact's own item: the index is eventually consistent).
    assert pending["IndexName"] == PENDING_INDEX
    assert pending["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": [PENDING_EMAILS]}
    assert [k["AttributeName"] for k in pending["KeySchema"]] == [PENDING_PARTITION, DUE_AT]
    types = {d["AttributeName"]: d["AttributeType"] for d in table["AttributeDefinitions"]}
    assert (types[PENDING_PARTITION], types[DUE_AT], types[HUBSPOT_ID]) == ("S", "N", "S")
    # The held markers' index: a resume job reads one audience's contacts, whatever else is held.
    assert held["IndexName"] == "held" and held["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert [k["AttributeName"] for k in held["KeySchema"]] == ["heldAudience", "heldEmail"]
    assert index["IndexName"] == "issues"
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["issueStatus", "issueAt"]
    assert {"reason", "excludedEmail", "requestId"} <= set(index["Projection"]["NonKeyAttributes"])
    operations = cfn["Resources"]["OperationsFunction"]["Properties"]
    assert operations["Timeout"] < 30  # API Gateway answers 504 after 30 s
    assert operations["LoggingConfig"]["LogGroup"] == {"Ref": "OperationsLogGroup"}
