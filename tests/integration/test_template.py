"""template.yaml as CloudFormation would see it: translated offline with aws-sam-translator."""

from __future__ import annotations

from typing import Any

import pytest

from local.template import translate


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


def test_upsert_event_source_settings(cfn: dict[str, Any]) -> None:
    (mapping,) = of_type(cfn, "AWS::Lambda::EventSourceMapping").values()
    properties = mapping["Properties"]
    assert properties["EventSourceArn"] == {"Fn::GetAtt": ["ActivationsQueue", "Arn"]}
    assert properties["FunctionName"] == {"Ref": "UpsertFunction"}
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BatchSize"] == 10
    assert properties["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "MaxConcurrency"}}
    assert cfn["Parameters"]["MaxConcurrency"]["MinValue"] >= 2


def test_visibility_timeout_is_at_least_six_times_the_consumer_timeout(cfn: dict[str, Any]) -> None:
    timeout = cfn["Resources"]["UpsertFunction"]["Properties"]["Timeout"]
    assert cfn["Resources"]["ActivationsQueue"]["Properties"]["VisibilityTimeout"] >= 6 * timeout


def test_upsert_role_reaches_only_its_queue_table_and_secret(cfn: dict[str, Any]) -> None:
    role = cfn["Resources"]["UpsertFunctionRole"]["Properties"]
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    rendered = str(statements)
    assert (
        "ActivationsQueue" in rendered and "LedgerTable" in rendered and "HubSpotCredentialSecret" in rendered
    )
    assert "IngestTokenSecret" not in rendered
    assert all(statement["Resource"] != "*" for statement in statements)
    # It sends to the DLQ (undecodable messages are moved there at once) and, only SendMessage, to
    # its own queue (a resume job's contacts and next page).
    sends = [s for s in statements if any(action.startswith("sqs:Send") for action in s["Action"])]
    assert sorted(str(s["Resource"]) for s in sends) == sorted(
        str({"Fn::GetAtt": [queue, "Arn"]}) for queue in ("ActivationsDeadLetterQueue", "ActivationsQueue")
    )
    assert all(s["Action"] == ["sqs:SendMessage"] for s in sends)
    (query,) = [s for s in statements if "dynamodb:Query" in s["Action"]]
    assert query["Action"] == ["dynamodb:Query"]
    assert query["Resource"] == {"Fn::Sub": "${LedgerTable.Arn}/index/held"}
    actions = {action for statement in statements for action in statement["Action"]}
    assert {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:UpdateItem",
        "secretsmanager:GetSecretValue",
    } <= actions
    ingest = str(cfn["Resources"]["IngestFunctionRole"]["Properties"]["Policies"])
    assert "HubSpotCredentialSecret" not in ingest
    ingest_statements = [
        s
        for policy in cfn["Resources"]["IngestFunctionRole"]["Properties"]["Policies"]
        for s in policy["PolicyDocument"]["Statement"]
        if "LedgerTable" in str(s["Resource"])
    ]
    assert [s["Action"] for s in ingest_statements] == [["dynamodb:BatchWriteItem"]]


def test_ledger_table_is_on_demand_encrypted_with_ttl(cfn: dict[str, Any]) -> None:
    table = cfn["Resources"]["LedgerTable"]
    assert table["DeletionPolicy"] == "Retain"
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert properties["KeySchema"] == [{"AttributeName": "email", "KeyType": "HASH"}]


def test_upsert_function_settings_come_from_parameters(cfn: dict[str, Any]) -> None:
    function = cfn["Resources"]["UpsertFunction"]["Properties"]
    assert function["Runtime"] == "python3.12" and function["Architectures"] == ["arm64"]
    variables = function["Environment"]["Variables"]
    expected = {
        "HUBSPOT_TEN_SECOND_LIMIT": "HubSpotTenSecondLimit",
        "HUBSPOT_LIMIT_SHARE": "HubSpotLimitShare",
        "HUBSPOT_DAILY_RESERVE": "HubSpotDailyReserve",
        "HUBSPOT_API_VERSION": "HubSpotApiVersion",
        "AUDIENCE_PROPERTY_GROUP": "AudiencePropertyGroup",
        "AUDIENCE_PROPERTY_PREFIX": "AudiencePropertyPrefix",
        "MAX_CONCURRENCY": "MaxConcurrency",
    }
    for variable, parameter in expected.items():
        assert variables[variable] == {"Ref": parameter}
    assert variables["LEDGER_TABLE"] == {"Ref": "LedgerTable"}
    assert variables["HUBSPOT_SECRET_ID"] == {"Ref": "HubSpotCredentialSecret"}


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


def test_upsert_role_grants_only_the_calls_the_code_makes(cfn: dict[str, Any]) -> None:
    statements = [s for role, s in _policy_statements(cfn) if role == "UpsertFunctionRole"]
    actions = {action for statement in statements for action in statement["Action"]}
    assert {a for a in actions if a.startswith("dynamodb:")} == {
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:UpdateItem",  # the shared daily count of HubSpot calls
        "dynamodb:Query",  # the held index only (see the test above)
    }
    assert {a for a in actions if a.startswith("sqs:")} == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "sqs:SendMessage",  # to the DLQ and resume jobs' messages (see the test above)
    }


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
