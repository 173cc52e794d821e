"""Which side wins, per HubSpot property, when the source and HubSpot disagree.

The rules an admin picks per mapped property, as HubSpot's own integrations offer them (its
Salesforce sync's *Prefer Salesforce unless blank*, *Always use Salesforce*, *Don't sync*; its data
sync's default app whose blanks change nothing). A property without a rule is ``overwrite``.

| rule | a value | blank ``""`` | null / nothing | HubSpot changed it |
|---|---|---|---|---|
| ``overwrite`` | written | clears | no change | repaired |
| ``unless_blank`` | written | no change | no change | repaired |
| ``always`` | written | clears | clears when the field is present as null | repaired |
| ``fill_empty`` | written only while HubSpot's value is empty | no change | no change | left |
| ``never`` | not written | - | - | - |

Audience properties are the connector's own: always ``overwrite``, never configurable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from .attribute_mapping import PROPERTY_NAME


class FieldRule(StrEnum):
    OVERWRITE = "overwrite"
    UNLESS_BLANK = "unless_blank"
    ALWAYS = "always"
    FILL_EMPTY = "fill_empty"
    NEVER = "never"

    @property
    def ignores_blank(self) -> bool:
        """An explicit blank (``""``) from the source changes nothing."""
        return self in (FieldRule.UNLESS_BLANK, FieldRule.FILL_EMPTY)

    @property
    def clears_on_null(self) -> bool:
        """A field the source carries as null clears the property (AEP exports every mapped field
        on each run, null when the profile has no value)."""
        return self is FieldRule.ALWAYS

    @property
    def repairs_drift(self) -> bool:
        """A value HubSpot changed behind the connector's back is written again from the source."""
        return self not in (FieldRule.FILL_EMPTY, FieldRule.NEVER)


#: The template's AllowedPattern for ``FieldRules``: a flat JSON object of property -> rule (or
#: nothing). Both CloudFormation (Java) and Python read it alike; ``FieldRules.from_json`` gives the
#: precise message at cold start for what gets past it (a duplicate, an audience property).
_RULE_WORDS = "|".join(rule.value for rule in FieldRule)
_PAIR = rf'\s*"[a-z][a-z0-9_]{{0,99}}"\s*:\s*"({_RULE_WORDS})"\s*'
FIELD_RULES_PATTERN = rf"^\s*(\{{\s*\}}|\{{{_PAIR}(,{_PAIR})*\}})?\s*$"


class FieldRulesError(ValueError):
    pass


@dataclass(frozen=True)
class FieldRules:
    """HubSpot property -> the rule it is synced by (only the properties not ``overwrite``)."""

    rules: Mapping[str, FieldRule] = field(default_factory=dict)

    def rule_for(self, prop: str) -> FieldRule:
        return self.rules.get(prop, FieldRule.OVERWRITE)

    def with_rule(self, rule: FieldRule) -> frozenset[str]:
        return frozenset(name for name, chosen in self.rules.items() if chosen is rule)

    @property
    def needs_reads(self) -> bool:
        """Whether a write may first need to read what HubSpot holds (``fill_empty``)."""
        return FieldRule.FILL_EMPTY in self.rules.values()

    def as_json(self) -> dict[str, str]:
        """The rules in force, as an operator writes them (for the status)."""
        return {name: rule.value for name, rule in sorted(self.rules.items())}

    def check_audience_prefix(self, prefix: str) -> None:
        """Audience properties are the connector's own: a rule on one is a deployment mistake."""
        for name in self.rules:
            if name.startswith(prefix):
                raise FieldRulesError(
                    f"{name!r} is an audience property (prefix {prefix!r}); audience properties are "
                    "always overwrite"
                )

    @classmethod
    def from_mapping(cls, raw: Mapping[str, object]) -> FieldRules:
        choices = ", ".join(rule.value for rule in FieldRule)
        rules: dict[str, FieldRule] = {}
        for name, rule in raw.items():
            if not isinstance(name, str) or not PROPERTY_NAME.match(name):
                raise FieldRulesError(
                    f"{name!r} is not a HubSpot property name (lower-case letters, digits and "
                    "underscores, starting with a letter)"
                )
            if name == "email":
                raise FieldRulesError("'email' identifies the contact; it takes no rule")
            if not isinstance(rule, str) or rule not in FieldRule.__members__.values():
                raise FieldRulesError(f"{name!r}: rule {rule!r} is not one of {choices}")
            if rule != FieldRule.OVERWRITE:
                rules[name] = FieldRule(rule)
        return cls(rules)

    @classmethod
    def from_json(cls, text: str | None) -> FieldRules:
        if not text or not text.strip():
            return cls()
        try:
            raw = json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise FieldRulesError(f"field rules are not valid JSON: {exc.msg}") from exc
        if not isinstance(raw, dict):
            raise FieldRulesError(
                'field rules must be a JSON object of property -> rule, e.g. {"phone": "fill_empty"}'
            )
        return cls.from_mapping(raw)


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise FieldRulesError(f"{key!r} is given a rule twice")
        seen[key] = value
    return seen
