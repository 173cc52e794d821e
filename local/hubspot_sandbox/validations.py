"""An account's property validation rules, as an administrator sets them in HubSpot, and what
they refuse on a contact write.

Two kinds:
- format rules (``REGEX``, ``MIN_LENGTH``, ``MAX_LENGTH``, ``ALPHANUMERIC``, ``MIN_NUMBER``,
  ``MAX_NUMBER``), which HubSpot's property-validations API reads and sets
  (``PUT .../{propertyName}/rule-type/{ruleType}`` overwrites one rule type of a property; the API
  has no delete, so the sandbox's ``/__sandbox/property-validations`` hook removes one, as an
  administrator does in HubSpot's settings). Other rule types of the API's enum are kept and read
  back but not enforced here.
- conditional required properties ("B is required when A is X"), configured in HubSpot's UI only
  (no public API): set through ``/__sandbox/conditional-required``. HubSpot enforces them on API
  writes from version 2026-09 on.

A refusal is one ``ErrorDetail`` per property (``message``, ``code``, ``context.propertyName``),
which the batch endpoints put in the ``errors`` of the input's ``StandardError``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: HubSpot's ``ruleType`` enum (PublicPropertyValidationRule).
RULE_TYPES = frozenset(
    {
        "AFTER_DATETIME_DURATION",
        "AFTER_DURATION",
        "ALPHANUMERIC",
        "BEFORE_DATETIME_DURATION",
        "BEFORE_DURATION",
        "DAYS_OF_WEEK",
        "DECIMAL",
        "DOMAIN",
        "EMAIL",
        "EMAIL_ALLOWED_DOMAINS",
        "EMAIL_BLOCKED_DOMAINS",
        "END_DATE",
        "END_DATETIME",
        "FORMAT",
        "MAX_LENGTH",
        "MAX_NUMBER",
        "MIN_LENGTH",
        "MIN_NUMBER",
        "PHONE_NUMBER_WITH_EXPLICIT_COUNTRY_CODE",
        "REGEX",
        "SPECIAL_CHARACTERS",
        "START_DATE",
        "START_DATETIME",
        "URL",
        "URL_ALLOWED_DOMAINS",
        "URL_BLOCKED_DOMAINS",
        "WHITESPACE",
    }
)
_NUMERIC_RULES = frozenset({"MIN_LENGTH", "MAX_LENGTH", "MIN_NUMBER", "MAX_NUMBER"})
#: the code a conditional-required refusal carries
REQUIRED_CODE = "REQUIRED_PROPERTY_MISSING"


class RuleRefused(ValueError):
    """A rule an administrator cannot set (bad arguments): HubSpot answers 400."""


@dataclass(frozen=True)
class ConditionalRequired:
    """``required`` must have a value whenever ``when_property`` holds ``when_value``."""

    when_property: str
    when_value: str
    required: str


def checked_rule(rule_type: str, body: Any) -> dict[str, Any]:
    """The stored rule for a PUT body ``{ruleArguments, shouldApplyNormalization?}``."""
    if rule_type not in RULE_TYPES:
        raise RuleRefused(f"{rule_type} is not a valid ruleType")
    arguments = body.get("ruleArguments") if isinstance(body, dict) else None
    if not isinstance(arguments, list) or not all(isinstance(a, str) for a in arguments):
        raise RuleRefused("ruleArguments must be an array of strings")
    if rule_type in _NUMERIC_RULES or rule_type == "REGEX":
        if not arguments:
            raise RuleRefused(f"{rule_type} needs one argument")
        try:
            if rule_type == "REGEX":
                re.compile(arguments[0])
            else:
                float(arguments[0])
        except (re.error, ValueError) as exc:
            raise RuleRefused(f"{rule_type} argument {arguments[0]!r} is not valid: {exc}") from None
    return {
        "ruleType": rule_type,
        "ruleArguments": list(arguments),
        "shouldApplyNormalization": bool(body.get("shouldApplyNormalization", False)),
    }


def _broken(rule: Mapping[str, Any], value: str) -> str | None:
    """Why ``value`` breaks ``rule`` (None: it does not, or the rule type is not enforced here)."""
    kind, arguments = rule["ruleType"], rule["ruleArguments"]
    if rule.get("shouldApplyNormalization"):
        value = value.strip()
    if kind == "REGEX" and not re.fullmatch(arguments[0], value):
        return f"does not match the pattern {arguments[0]}"
    if kind == "MIN_LENGTH" and len(value) < float(arguments[0]):
        return f"is shorter than {arguments[0]} characters"
    if kind == "MAX_LENGTH" and len(value) > float(arguments[0]):
        return f"is longer than {arguments[0]} characters"
    if kind == "ALPHANUMERIC" and not value.isalnum():
        return "may hold letters and digits only"
    if kind in ("MIN_NUMBER", "MAX_NUMBER"):
        try:
            number = float(value)
        except ValueError:
            return "is not a number"
        if kind == "MIN_NUMBER" and number < float(arguments[0]):
            return f"is less than {arguments[0]}"
        if kind == "MAX_NUMBER" and number > float(arguments[0]):
            return f"is more than {arguments[0]}"
    return None


def format_refusals(
    rules: Mapping[str, Mapping[str, Mapping[str, Any]]], values: Mapping[str, str]
) -> list[dict[str, Any]]:
    """An ``ErrorDetail`` for each written value a format rule of its property refuses (empty
    values clear a property and are never refused)."""
    details = []
    for name, value in values.items():
        for rule in (rules.get(name) or {}).values():
            reason = _broken(rule, value) if value != "" else None
            if reason is not None:
                details.append(
                    {
                        "message": f'Property "{name}" value {reason}',
                        "code": rule["ruleType"],
                        "context": {"propertyName": [name]},
                    }
                )
                break
    return details


def required_refusals(
    conditions: list[ConditionalRequired], result: Mapping[str, str]
) -> list[dict[str, Any]]:
    """An ``ErrorDetail`` for each conditional-required property the record would lack after the
    write (``result``: its values once written)."""
    return [
        {
            "message": (
                f'Property "{rule.required}" is required when "{rule.when_property}" is "{rule.when_value}"'
            ),
            "code": REQUIRED_CODE,
            "context": {"propertyName": [rule.required]},
        }
        for rule in conditions
        if result.get(rule.when_property) == rule.when_value and not result.get(rule.required)
    ]
