"""template.yaml, offline: translate SAM to CloudFormation and resolve intrinsics against local
resources. The local stack and the template tests both read the deployed template through here, so
what runs locally is what `sam deploy` would create."""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
_LOCAL_URI_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}


class _NoManagedPolicies:
    """The template uses SAM policy templates only, so the managed-policy map is never needed."""

    def load(self) -> dict[str, str]:
        return {}


def load_sam(path: Path = TEMPLATE) -> dict[str, Any]:
    document: dict[str, Any] = yaml_parse(path.read_text(encoding="utf-8"))
    return document


def translate(
    sam: Mapping[str, Any] | None = None, parameters: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """SAM -> CloudFormation as `sam deploy` would, with local code folders rewritten to S3 URIs
    (the translator accepts only those)."""
    document = copy.deepcopy(dict(sam if sam is not None else load_sam()))
    for resource in document.get("Resources", {}).values():
        key = _LOCAL_URI_PROPERTIES.get(resource.get("Type"))
        if key and isinstance(resource["Properties"].get(key), str):
            folder = resource["Properties"][key].strip("/").replace("/", "-")
            resource["Properties"][key] = f"s3://local-artifacts/{folder}.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    logging.getLogger("samtranslator").setLevel(logging.ERROR)  # its own usage metrics, not ours
    result: dict[str, Any] = transform(document, dict(parameters or {}), _NoManagedPolicies())
    return result


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, Any]:
    return {name: spec.get("Default") for name, spec in template.get("Parameters", {}).items()}


class Resolver:
    """Resolves Ref / GetAtt / Sub / Join with the physical ids and attributes of local resources."""

    def __init__(
        self, parameters: Mapping[str, Any], refs: Mapping[str, str], attributes: Mapping[str, str]
    ) -> None:
        self.parameters = dict(parameters)
        self.refs = refs
        self.attributes = attributes

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key == "Fn::GetAtt":
                name = argument if isinstance(argument, str) else ".".join(argument)
                return self.attributes[name]
            if key == "Fn::Sub":
                return self._sub(argument)
            if key == "Fn::Join":
                separator, items = argument
                return separator.join(str(self(item)) for item in items)
        return {key: self(item) for key, item in value.items()}

    def _ref(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        if name == "AWS::Region":
            return os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        return self.refs[name]

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self(variables[name]))
            if "." in name:
                return str(self.attributes[name])
            return str(self._ref(name))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)


def http_routes(sam: Mapping[str, Any] | None = None) -> list[tuple[str, str, str]]:
    """(function logical id, METHOD, path) of every HttpApi event in the SAM template: the routes
    API Gateway creates, which the local API server serves the same way."""
    document = sam if sam is not None else load_sam()
    routes = []
    for logical_id, resource in document.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in (resource.get("Properties", {}).get("Events") or {}).values():
            if event.get("Type") == "HttpApi":
                properties = event.get("Properties", {})
                routes.append((logical_id, str(properties["Method"]).upper(), str(properties["Path"])))
    return routes


def condition_holds(cfn: Mapping[str, Any], name: str, resolver: Resolver) -> bool:
    """A template Condition as CloudFormation evaluates it for the resolved parameters."""

    def evaluate(value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Fn::Not":
                return not evaluate(argument[0])
            if key == "Fn::And":
                return all(evaluate(item) for item in argument)
            if key == "Fn::Or":
                return any(evaluate(item) for item in argument)
            if key == "Fn::Equals":
                left, right = (str(evaluate(item)) for item in argument)
                return left == right
            if key == "Condition":
                return condition_holds(cfn, argument, resolver)
        return resolver(value)

    return bool(evaluate(cfn.get("Conditions", {})[name]))


#: EventBridge Scheduler's rate units, in seconds.
_RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86_400}


def rate_seconds(expression: str) -> float | None:
    """The period of ``rate(N unit)``; None for any other expression (cron, at)."""
    match = re.fullmatch(r"rate\((\d+) (minute|hour|day)s?\)", expression.strip())
    return float(int(match.group(1)) * _RATE_UNITS[match.group(2)]) if match else None


def function_schedules(
    cfn: Mapping[str, Any], resolver: Resolver, function: str
) -> list[tuple[float | None, dict[str, Any]]]:
    """(period in seconds, or None when it is not a rate; the event) of each schedule of the
    template that invokes ``function`` and whose Condition holds."""
    found = []
    for spec in cfn.get("Resources", {}).values():
        if spec.get("Type") != "AWS::Scheduler::Schedule":
            continue
        if "Condition" in spec and not condition_holds(cfn, spec["Condition"], resolver):
            continue
        properties = spec["Properties"]
        if properties["Target"]["Arn"] != {"Fn::GetAtt": [function, "Arn"]}:
            continue
        event = json.loads(properties["Target"].get("Input") or "{}")
        found.append((rate_seconds(str(resolver(properties["ScheduleExpression"]))), event))
    return found
