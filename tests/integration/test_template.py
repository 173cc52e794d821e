"""template.yaml as CloudFormation would see it: translated offline with aws-sam-translator."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hubspot_activation import settings as settings_module
from hubspot_activation.ledger.keys import PENDING_PARTITIONS
from hubspot_activation.settings import (
    ChoiceSetting,
    IngestSettings,
    NumberSetting,
    OperationsSettings,
    RulesSetting,
    Setting,
    TextSetting,
    UpsertSettings,
)

from local.template import load_sam, translate


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return translate()


def of_type(cfn: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in cfn["Resources"].items() if spec["Type"] == kind}


def test_queues_are_fifo_encrypted_with_a_fifo_dead_letter_queue(cfn: dict[str, Any]) -> None:
    queue = cfn["Resources"]["ActivationsQueue"]["Properties"]
    dlq = cfn["Resources"]["ActivationsDeadLetterQueue"]["Properties"]
    assert queue["FifoQueue"] is True and dlq["FifoQueue"] is True
    assert queue["SqsManagedSseEnabled"] is True and dlq["SqsManagedSseEnabled"] is True
    assert queue["ContentBasedDeduplication"] is False  # ingest sets the deduplication id itself
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["ActivationsDeadLetterQueue", "Arn"]
    }
    assert queue["RedrivePolicy"]["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    assert cfn["Parameters"]["MaxReceiveCount"]["MinValue"] >= 5


def test_ingest_function_runtime_layer_and_settings(cfn: dict[str, Any]) -> None:
    function = cfn["Resources"]["IngestFunction"]["Properties"]
    assert function["Runtime"] == "python3.12" and function["Architectures"] == ["arm64"]
    (layer_name,) = of_type(cfn, "AWS::Lambda::LayerVersion")
    assert function["Layers"] == [{"Ref": layer_name}]
    variables = function["Environment"]["Variables"]
    assert variables["QUEUE_URL"] == {"Ref": "ActivationsQueue"}
    assert variables["INGEST_SECRET_ID"] == {"Ref": "IngestTokenSecret"}
    for name in ("SHARD_COUNT", "AUDIENCE_ALLOWLIST", "ATTRIBUTE_MAPPING", "MAX_BODY_BYTES"):
        assert name in variables
    assert function["Timeout"] <= 29  # API Gateway's integration limit


def test_ingest_role_can_only_send_to_its_queue_and_read_its_secret(cfn: dict[str, Any]) -> None:
    role = cfn["Resources"]["IngestFunctionRole"]["Properties"]
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    actions = sorted(action for s in statements for action in s["Action"])
    # ... and add its exclusions to the ledger table (nothing else on it: no read of any contact).
    assert actions == ["dynamodb:BatchWriteItem", "secretsmanager:GetSecretValue", "sqs:SendMessage*"]
    for statement in statements:
        assert statement["Resource"] != "*"
    rendered = str(statements)
    assert "ActivationsQueue" in rendered and "IngestTokenSecret" in rendered
    assert "ActivationsDeadLetterQueue" not in rendered
    managed = role.get("ManagedPolicyArns", [])
    assert all(
        "AWSLambdaBasicExecutionRole" in str(arn) or "AWSXrayWriteOnlyAccess" in str(arn) for arn in managed
    )


def test_http_api_routes_post_activations_with_throttling(cfn: dict[str, Any]) -> None:
    (api,) = of_type(cfn, "AWS::ApiGatewayV2::Api").values()
    paths = api["Properties"]["Body"]["paths"]
    # The operations routes share the API (tests/integration/test_template_operations.py).
    assert "/activations" in paths and list(paths["/activations"]) == ["post"]
    (stage,) = of_type(cfn, "AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["DefaultRouteSettings"]
    assert settings["ThrottlingRateLimit"] == {"Ref": "IngestThrottleRate"}


def test_ingest_secret_is_generated_and_logs_are_retained(cfn: dict[str, Any]) -> None:
    secret = cfn["Resources"]["IngestTokenSecret"]["Properties"]["GenerateSecretString"]
    assert secret["GenerateStringKey"] == "token" and secret["PasswordLength"] >= 32
    log_group = cfn["Resources"]["IngestLogGroup"]["Properties"]
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert cfn["Resources"]["IngestFunction"]["Properties"]["LoggingConfig"]["LogGroup"] == {
        "Ref": "IngestLogGroup"
    }


def test_dead_letter_queue_has_an_alarm(cfn: dict[str, Any]) -> None:
    alarm = cfn["Resources"]["DeadLetterQueueAlarm"]["Properties"]
    assert alarm["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["ActivationsDeadLetterQueue", "QueueName"]}


def test_outputs(cfn: dict[str, Any]) -> None:
    assert {"ActivationsUrl", "IngestTokenSecretArn", "ActivationsQueueUrl"} <= set(cfn["Outputs"])


def test_merge_event_source_settings(cfn: dict[str, Any]) -> None:
    (mapping,) = [
        spec
        for spec in of_type(cfn, "AWS::Lambda::EventSourceMapping").values()
        if spec["Properties"]["FunctionName"] == {"Ref": "MergeFunction"}
    ]
    properties = mapping["Properties"]
    assert properties["EventSourceArn"] == {"Fn::GetAtt": ["ActivationsQueue", "Arn"]}
    assert properties["FunctionName"] == {"Ref": "MergeFunction"}
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BatchSize"] == 10
    assert properties["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "MaxConcurrency"}}
    assert cfn["Parameters"]["MaxConcurrency"]["MinValue"] >= 2  # the event source's own minimum


def test_visibility_timeout_is_at_least_six_times_the_merge_timeout(cfn: dict[str, Any]) -> None:
    timeout = cfn["Resources"]["MergeFunction"]["Properties"]["Timeout"]
    assert cfn["Resources"]["ActivationsQueue"]["Properties"]["VisibilityTimeout"] >= 6 * timeout


def role_statements(cfn: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [
        s
        for policy in cfn["Resources"][role]["Properties"]["Policies"]
        for s in policy["PolicyDocument"]["Statement"]
    ]


def grants(cfn: dict[str, Any], role: str) -> dict[str, set[str]]:
    """action -> the resources (as text) the role grants it on."""
    found: dict[str, set[str]] = {}
    for statement in role_statements(cfn, role):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            found.setdefault(action, set()).add(str(statement["Resource"]))
    return found


QUEUE_ARN = str({"Fn::GetAtt": ["ActivationsQueue", "Arn"]})
DLQ_ARN = str({"Fn::GetAtt": ["ActivationsDeadLetterQueue", "Arn"]})
TABLE_ARN = str({"Fn::GetAtt": ["LedgerTable", "Arn"]})
FLUSH_NAME = "${AWS::StackName}-flush"
FLUSH_ARN = "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:" + FLUSH_NAME


def test_merge_role_grants_only_the_calls_the_merge_and_its_event_source_make(cfn: dict[str, Any]) -> None:
    assert grants(cfn, "MergeFunctionRole") == {
        # The event source receives and deletes; the merge backs off what failed.
        "sqs:ReceiveMessage": {QUEUE_ARN},
        "sqs:DeleteMessage": {QUEUE_ARN},
        "sqs:ChangeMessageVisibility": {QUEUE_ARN},
        "sqs:GetQueueAttributes": {QUEUE_ARN},
        # A resume job's contacts and next page to its own queue; undecodable messages to the DLQ.
        "sqs:SendMessage": {QUEUE_ARN, DLQ_ARN},
        "dynamodb:BatchGetItem": {TABLE_ARN},
        "dynamodb:BatchWriteItem": {TABLE_ARN},  # the pending markers
        "dynamodb:UpdateItem": {TABLE_ARN},
        # The held index only (resume jobs): never the pending index, never a scan.
        "dynamodb:Query": {str({"Fn::Sub": "${LedgerTable.Arn}/index/held"})},
        # It wakes the flush function and nothing else.
        "lambda:InvokeFunction": {str({"Fn::GetAtt": ["FlushFunction", "Arn"]})},
    }
    # No HubSpot credential: the merge never calls HubSpot.
    assert "HubSpotCredentialSecret" not in str(cfn["Resources"]["MergeFunctionRole"])
    assert "IngestTokenSecret" not in str(cfn["Resources"]["MergeFunctionRole"])


def test_flush_role_grants_only_the_calls_the_flush_makes(cfn: dict[str, Any]) -> None:
    found = grants(cfn, "FlushFunctionRole")
    secret = found.pop("secretsmanager:GetSecretValue")
    assert len(secret) == 1 and "HubSpotCredentialSecret" in next(iter(secret))
    assert found == {
        "dynamodb:BatchGetItem": {TABLE_ARN},
        "dynamodb:BatchWriteItem": {TABLE_ARN},  # held markers
        "dynamodb:PutItem": {TABLE_ARN},  # a lane's lease
        "dynamodb:DeleteItem": {TABLE_ARN},
        "dynamodb:UpdateItem": {TABLE_ARN},  # recordings; the shared daily count of HubSpot calls
        "dynamodb:GetItem": {TABLE_ARN},  # the lists' buffer shards (AudienceTarget list or both)
        # The pending index only.
        "dynamodb:Query": {str({"Fn::Sub": "${LedgerTable.Arn}/index/pending"})},
        # The queue's depth, nothing else of it: the flush never touches a message.
        "sqs:GetQueueAttributes": {QUEUE_ARN},
        # Its own next run only.
        "lambda:InvokeFunction": {str({"Fn::Sub": FLUSH_ARN})},
        # The lists function's timers, started by a list's first buffered change.
        "sqs:SendMessage": {str({"Fn::GetAtt": ["ListTimerQueue", "Arn"]})},
    }


def test_the_flush_function_runs_every_minute_and_wakes_itself_by_its_own_name(cfn: dict[str, Any]) -> None:
    function = cfn["Resources"]["FlushFunction"]["Properties"]
    assert function["Timeout"] == 900  # Lambda's longest: a run drains while contacts are pending
    assert function["FunctionName"] == {"Fn::Sub": FLUSH_NAME}
    assert function["Environment"]["Variables"]["FLUSH_FUNCTION_NAME"] == {"Fn::Sub": FLUSH_NAME}
    merge = cfn["Resources"]["MergeFunction"]["Properties"]["Environment"]["Variables"]
    assert merge["FLUSH_FUNCTION_NAME"] == {"Ref": "FlushFunction"}
    (schedule,) = [
        spec
        for spec in of_type(cfn, "AWS::Scheduler::Schedule").values()
        if spec["Properties"]["Target"]["Arn"] == {"Fn::GetAtt": ["FlushFunction", "Arn"]}
    ]
    assert schedule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert schedule["Properties"]["Target"]["Arn"] == {"Fn::GetAtt": ["FlushFunction", "Arn"]}
    # EventBridge Scheduler's role may invoke the flush function, and nothing else.
    role = schedule["Properties"]["Target"]["RoleArn"]["Fn::GetAtt"][0]
    assert grants(cfn, role) == {"lambda:InvokeFunction": {str({"Fn::GetAtt": ["FlushFunction", "Arn"]})}}
    assert cfn["Resources"]["FlushFunction"]["Properties"]["LoggingConfig"]["LogGroup"] == {
        "Ref": "FlushLogGroup"
    }
    assert cfn["Resources"]["MergeFunction"]["Properties"]["LoggingConfig"]["LogGroup"] == {
        "Ref": "MergeLogGroup"
    }


def test_ledger_table_is_on_demand_encrypted_with_ttl(cfn: dict[str, Any]) -> None:
    table = cfn["Resources"]["LedgerTable"]
    assert table["DeletionPolicy"] == "Retain"
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert properties["KeySchema"] == [{"AttributeName": "email", "KeyType": "HASH"}]


def test_flush_function_settings_come_from_parameters(cfn: dict[str, Any]) -> None:
    function = cfn["Resources"]["FlushFunction"]["Properties"]
    assert function["Runtime"] == "python3.12" and function["Architectures"] == ["arm64"]
    variables = function["Environment"]["Variables"]
    expected = {
        "HUBSPOT_TEN_SECOND_LIMIT": "HubSpotTenSecondLimit",
        "HUBSPOT_LIMIT_SHARE": "HubSpotLimitShare",
        "HUBSPOT_DAILY_RESERVE": "HubSpotDailyReserve",
        "HUBSPOT_DAILY_LIMIT": "HubSpotDailyLimit",
        "HUBSPOT_API_VERSION": "HubSpotApiVersion",
        "AUDIENCE_PROPERTY_GROUP": "AudiencePropertyGroup",
        "AUDIENCE_PROPERTY_PREFIX": "AudiencePropertyPrefix",
        "FLUSH_LANES": "FlushLanes",
        "FLUSH_PARALLEL_CALLS": "FlushParallelCalls",
        "FLUSH_MAX_DELAY_SECONDS": "FlushMaxDelaySeconds",
    }
    for variable, parameter in expected.items():
        assert variables[variable] == {"Ref": parameter}
    assert variables["LEDGER_TABLE"] == {"Ref": "LedgerTable"}
    assert variables["HUBSPOT_SECRET_ID"] == {"Ref": "HubSpotCredentialSecret"}
    assert cfn["Parameters"]["FlushLanes"]["MaxValue"] == PENDING_PARTITIONS


def test_every_function_that_maps_contacts_to_lanes_has_the_same_lane_count(cfn: dict[str, Any]) -> None:
    """The merge wakes the lane a contact's partition belongs to, the flush reads its partitions by
    the same count, and every HubSpot client (the flush lanes', the operator's relabel) takes its
    share of the budget by it: one parameter for all three functions."""
    for function in ("MergeFunction", "FlushFunction", "OperationsFunction"):
        variables = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert variables["FLUSH_LANES"] == {"Ref": "FlushLanes"}, function


class ReadNames(dict[str, str]):
    """An environment that remembers which variables were read."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)


#: What each function reads its settings with.
_SETTINGS: dict[str, Callable[[Mapping[str, str]], object]] = {
    "IngestFunction": IngestSettings.from_env,
    "MergeFunction": UpsertSettings.from_env,
    "FlushFunction": UpsertSettings.from_env,
    "OperationsFunction": OperationsSettings.from_env,
    "ReconcileFunction": UpsertSettings.from_env,
    "ListsFunction": UpsertSettings.from_env,
}


@pytest.mark.parametrize("function", sorted(_SETTINGS))
def test_every_variable_a_function_is_given_is_one_its_settings_read(
    cfn: dict[str, Any], function: str
) -> None:
    """A variable the settings do not read would be a setting the operator changes for nothing."""
    variables = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
    # Any value the settings accept: the names read are what matters here.
    environment = ReadNames(
        {"LEDGER_TABLE": "t", "HUBSPOT_SECRET_ID": "s", "INGEST_SECRET_ID": "s", "QUEUE_URL": "q"}
    )
    _SETTINGS[function](environment)
    given = {name for name in variables if not name.startswith("POWERTOOLS_")}
    assert given - environment.read == set()


def test_each_function_variable_is_declared_once(cfn: dict[str, Any]) -> None:
    """The Globals' variables are the powertools ones alone: a setting of the functions is declared
    in each function that reads it, never both globally and per function."""
    sam = load_sam()
    shared = set(sam["Globals"]["Function"]["Environment"]["Variables"])
    assert all(name.startswith("POWERTOOLS_") for name in shared)
    for function in _SETTINGS:
        own = set(sam["Resources"][function]["Properties"]["Environment"]["Variables"])
        assert own & shared == set(), function


def test_alarms_cover_failures_throttling_and_queue_age(cfn: dict[str, Any]) -> None:
    metrics = {spec["Properties"]["MetricName"] for spec in of_type(cfn, "AWS::CloudWatch::Alarm").values()}
    assert {
        "ContactsFailed",
        "HubSpotThrottled",
        "ApproximateAgeOfOldestMessage",
        "ApproximateNumberOfMessagesVisible",
    } <= metrics


#: Services whose actions cannot be scoped to a resource (or are scoped by other means).
# CloudWatch metric reads and writes have no resource-level permission (the operations function
# reads the queue's oldest message age).
_UNSCOPABLE_PREFIXES = ("logs:", "xray:", "cloudwatch:PutMetricData", "cloudwatch:GetMetricData")


def _policy_statements(cfn: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, spec in of_type(cfn, "AWS::IAM::Role").items():
        for policy in spec["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                found.append((name, statement))
    return found


def test_no_role_grants_anything_on_every_resource_but_logs_traces_and_metrics(cfn: dict[str, Any]) -> None:
    statements = _policy_statements(cfn)
    assert statements
    for role, statement in statements:
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if "*" in resources:
            assert all(action.startswith(_UNSCOPABLE_PREFIXES) for action in actions), (role, statement)
    for name, spec in of_type(cfn, "AWS::IAM::Role").items():
        for arn in spec["Properties"].get("ManagedPolicyArns", []):
            # The basic execution role writes logs only; anything else managed (like the SQS
            # execution role SAM adds for SQS events) grants on every resource of the account.
            assert "AWSLambdaBasicExecutionRole" in str(arn) or "AWSXrayWriteOnlyAccess" in str(arn), name


def test_http_api_writes_access_logs_with_retention(cfn: dict[str, Any]) -> None:
    (stage,) = of_type(cfn, "AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["AccessLogSettings"]
    assert settings["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert "$context.status" in settings["Format"] and "$context.requestId" in settings["Format"]
    assert "authorization" not in settings["Format"].lower()
    group = cfn["Resources"]["ApiAccessLogGroup"]["Properties"]
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_a_stack_update_never_rewrites_a_secret_value(cfn: dict[str, Any]) -> None:
    """CloudFormation writes a secret's value only when these blocks change: they are pinned so an
    edit (which would regenerate the ingest token or blank the HubSpot credential) fails here."""
    ingest = cfn["Resources"]["IngestTokenSecret"]["Properties"]
    assert ingest["GenerateSecretString"] == {
        "SecretStringTemplate": '{"username": "aep"}',
        "GenerateStringKey": "token",
        "PasswordLength": 48,
        "ExcludePunctuation": True,
    }
    assert "SecretString" not in ingest
    hubspot = cfn["Resources"]["HubSpotCredentialSecret"]["Properties"]
    assert hubspot["SecretString"] == '{"accessToken": ""}'
    assert "GenerateSecretString" not in hubspot


def test_profile_limit_is_a_parameter_of_the_ingest_function(cfn: dict[str, Any]) -> None:
    variables = cfn["Resources"]["IngestFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["MAX_PROFILES_PER_REQUEST"] == {"Ref": "MaxProfilesPerRequest"}
    assert cfn["Parameters"]["MaxProfilesPerRequest"]["Default"] == 10000


def declarations() -> dict[str, Setting[Any]]:
    """Every setting settings.py declares, by environment variable."""
    return {value.env: value for value in vars(settings_module).values() if isinstance(value, Setting)}


def parameter_feeds(cfn: dict[str, Any]) -> set[tuple[str, str]]:
    """(parameter, environment variable) for every function variable set straight from a parameter."""
    return {
        (value["Ref"], variable)
        for spec in of_type(cfn, "AWS::Lambda::Function").values()
        for variable, value in spec["Properties"].get("Environment", {}).get("Variables", {}).items()
        if isinstance(value, dict) and value.get("Ref") in cfn["Parameters"]
    }


def disagreements(parameter: dict[str, Any], setting: Setting[Any]) -> list[str]:
    """Where a template parameter and the setting it feeds disagree on the default or the bounds."""
    found = []
    if setting.read({setting.env: str(parameter.get("Default", ""))}) != setting.default:
        found.append(f"Default {parameter.get('Default')!r} is not {setting.default!r}")
    bounds = {
        key: parameter[key]
        for key in ("MinValue", "MaxValue", "AllowedValues", "AllowedPattern")
        if key in parameter
    }
    if isinstance(setting, NumberSetting):
        expected: dict[str, Any] = {"MinValue": setting.low, "MaxValue": setting.high}
        kind = "Number"
    elif isinstance(setting, ChoiceSetting):
        expected, kind = {"AllowedValues": sorted(setting.choices)}, "String"
        bounds = {**bounds, "AllowedValues": sorted(bounds.get("AllowedValues", []))}
    elif isinstance(setting, TextSetting | RulesSetting) and setting.pattern:
        expected, kind = {"AllowedPattern": setting.pattern}, "String"
    else:
        expected, kind = {}, "String"
    if parameter["Type"] != kind:
        found.append(f"Type {parameter['Type']} is not {kind}")
    if bounds != expected:
        found.append(f"bounds {bounds} are not {expected}")
    return found


def test_every_parameter_agrees_with_the_setting_it_feeds(cfn: dict[str, Any]) -> None:
    """A parameter value the settings refuse would deploy, then fail every invocation: each
    parameter that sets a function's variable has the default, bounds and type of its declaration."""
    settings = declarations()
    feeds = parameter_feeds(cfn)
    assert feeds, "no function variable is set from a parameter"
    problems = {}
    for parameter, variable in sorted(feeds):
        setting = settings.get(variable)
        if setting is None:
            problems[parameter] = [f"feeds {variable}, which no setting declares"]
            continue
        found = disagreements(cfn["Parameters"][parameter], setting)
        if setting.parameter != parameter:
            found.append(f"feeds {variable}, declared as set by {setting.parameter or 'no parameter'}")
        if found:
            problems[parameter] = found
    assert problems == {}
    # ... and every declared parameter is one the template has, feeding its variable.
    declared = {(setting.parameter, env) for env, setting in settings.items() if setting.parameter}
    assert declared - feeds == set()


@pytest.mark.parametrize("function", sorted(_SETTINGS))
def test_every_function_builds_its_settings_from_the_template_at_its_bounds(
    cfn: dict[str, Any], function: str
) -> None:
    """Each function's settings accept its variables at the template's defaults and at each
    number parameter's MinValue and MaxValue."""
    variables = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
    base = {"LEDGER_TABLE": "t", "HUBSPOT_SECRET_ID": "s", "INGEST_SECRET_ID": "s", "QUEUE_URL": "q"}
    parameters = {
        variable: cfn["Parameters"][value["Ref"]]
        for variable, value in variables.items()
        if isinstance(value, dict) and value.get("Ref") in cfn["Parameters"]
    }
    defaults = {variable: str(parameter.get("Default", "")) for variable, parameter in parameters.items()}
    _SETTINGS[function]({**base, **defaults})
    for variable, parameter in parameters.items():
        for bound in ("MinValue", "MaxValue"):
            if bound in parameter:
                _SETTINGS[function]({**base, **defaults, variable: str(parameter[bound])})
