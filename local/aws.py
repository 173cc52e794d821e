"""The AWS side of the local stack: a moto server with the resources template.yaml declares."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import requests
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from . import dynamodb_limits, sqs_fifo
from .template import Resolver, parameter_defaults, translate

REGION = "us-east-1"
ACCOUNT = "123456789012"
_FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
_QUEUE_ATTRIBUTES = (
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "SqsManagedSseEnabled",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "MaximumMessageSize",
)


@dataclass
class LocalAws:
    """A moto server and the template's queues and secrets, with the functions' resolved settings."""

    endpoint: str
    cfn: dict[str, Any]
    resolver: Resolver
    secret_values: dict[str, str] = field(default_factory=dict)
    server: ThreadedMotoServer | None = None

    def client(self, service: str) -> Any:
        return boto3.session.Session().client(service, endpoint_url=self.endpoint, region_name=REGION)  # type: ignore[call-overload]

    def function_environment(self, logical_id: str) -> dict[str, str]:
        properties = self.cfn["Resources"][logical_id]["Properties"]
        variables = properties.get("Environment", {}).get("Variables", {})
        return {name: str(self.resolver(value)) for name, value in variables.items()}

    def physical_id(self, logical_id: str) -> str:
        return str(self.resolver.refs[logical_id])

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def use_endpoint(endpoint: str) -> None:
    """Point every boto3 client of this process (the handlers' too) at the local endpoint."""
    os.environ.update(_FAKE_CREDENTIALS)
    os.environ["AWS_ENDPOINT_URL"] = endpoint


def start(
    parameters: Mapping[str, Any] | None = None, endpoint: str | None = None, stack_name: str = "local"
) -> LocalAws:
    """Start a moto server (unless ``endpoint`` is given) and create the template's resources."""
    server = None
    sqs_fifo.install()  # moto's FIFO receive departs from SQS where the upsert function relies on it
    dynamodb_limits.install()  # moto measures keys only on writes; DynamoDB on reads too
    if endpoint is None:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        # moto keeps its state per process, not per server: start from a clean account.
        requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
    use_endpoint(endpoint)
    cfn = translate()
    values = {**parameter_defaults(cfn), **dict(parameters or {})}
    refs: dict[str, str] = {"AWS::StackName": stack_name, "AWS::Partition": "aws", "AWS::AccountId": ACCOUNT}
    attributes: dict[str, str] = {}
    resolver = Resolver(values, refs, attributes)
    local = LocalAws(endpoint, cfn, resolver, server=server)
    resources = cfn["Resources"]
    # Dead-letter queues first: the source queue's redrive policy refers to them.
    queues = sorted(
        (name for name, spec in resources.items() if spec["Type"] == "AWS::SQS::Queue"),
        key=lambda name: "RedrivePolicy" in resources[name].get("Properties", {}),
    )
    sqs = local.client("sqs")
    for logical_id in queues:
        properties = resources[logical_id].get("Properties", {})
        fifo = bool(resolver(properties.get("FifoQueue", False)))
        queue_name = f"{stack_name}-{logical_id}" + (".fifo" if fifo else "")
        queue_attributes = {
            key: _attribute(resolver(properties[key])) for key in _QUEUE_ATTRIBUTES if key in properties
        }
        if "RedrivePolicy" in properties:
            queue_attributes["RedrivePolicy"] = json.dumps(resolver(properties["RedrivePolicy"]))
        url = sqs.create_queue(QueueName=queue_name, Attributes=queue_attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        refs[logical_id] = url
        attributes[f"{logical_id}.Arn"] = arn
        attributes[f"{logical_id}.QueueName"] = queue_name
        attributes[f"{logical_id}.QueueUrl"] = url
    dynamodb = local.client("dynamodb")
    for logical_id, spec in resources.items():
        if spec["Type"] != "AWS::DynamoDB::Table":
            continue
        properties = resolver(spec["Properties"])
        table_name = f"{stack_name}-{logical_id}"
        indexes = {"GlobalSecondaryIndexes": properties["GlobalSecondaryIndexes"]}
        dynamodb.create_table(
            TableName=table_name,
            KeySchema=properties["KeySchema"],
            AttributeDefinitions=properties["AttributeDefinitions"],
            BillingMode=properties.get("BillingMode", "PAY_PER_REQUEST"),
            **(indexes if properties.get("GlobalSecondaryIndexes") else {}),
        )
        if properties.get("TimeToLiveSpecification"):
            dynamodb.update_time_to_live(
                TableName=table_name, TimeToLiveSpecification=properties["TimeToLiveSpecification"]
            )
        refs[logical_id] = table_name
        attributes[f"{logical_id}.Arn"] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table_name}"
    # Functions are named like CloudFormation names them (or as the template says): the local async
    # invocations (local/lambda_async.py) route by these names.
    for logical_id, spec in resources.items():
        if spec["Type"] == "AWS::Lambda::Function":
            name = spec.get("Properties", {}).get("FunctionName")
            refs[logical_id] = str(resolver(name)) if name else f"{stack_name}-{logical_id}"
            attributes[f"{logical_id}.Arn"] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{refs[logical_id]}"
    secretsmanager = local.client("secretsmanager")
    for logical_id, spec in resources.items():
        if spec["Type"] != "AWS::SecretsManager::Secret":
            continue
        value = _secret_value(resolver(spec.get("Properties", {})))
        arn = secretsmanager.create_secret(Name=f"{stack_name}/{logical_id}", SecretString=value)["ARN"]
        refs[logical_id] = arn
        local.secret_values[logical_id] = value
    return local


def _attribute(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _secret_value(properties: Mapping[str, Any]) -> str:
    if "SecretString" in properties:
        return str(properties["SecretString"])
    generate = properties.get("GenerateSecretString", {})
    generated = secrets.token_urlsafe(int(generate.get("PasswordLength", 32)))[
        : int(generate.get("PasswordLength", 32))
    ]
    if "SecretStringTemplate" in generate:
        document = json.loads(generate["SecretStringTemplate"])
        document[generate["GenerateStringKey"]] = generated
        return json.dumps(document)
    return generated
