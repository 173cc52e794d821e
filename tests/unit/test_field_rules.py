"""FieldRules: the parse an operator's FIELD_RULES goes through, and the template's first check."""

from __future__ import annotations

import re

import pytest
from hubspot_activation.field_rules import FIELD_RULES_PATTERN, FieldRule, FieldRules, FieldRulesError
from hubspot_activation.settings import SettingsError, UpsertSettings

BASE = {"LEDGER_TABLE": "t", "HUBSPOT_SECRET_ID": "s"}


def test_a_property_without_a_rule_is_overwrite_and_overwrite_is_not_kept() -> None:
    rules = FieldRules.from_json('{"phone": "fill_empty", "city": "overwrite", "lifecyclestage": "never"}')
    assert rules.rule_for("phone") is FieldRule.FILL_EMPTY
    assert rules.rule_for("city") is FieldRule.OVERWRITE
    assert rules.rule_for("firstname") is FieldRule.OVERWRITE
    assert rules.as_json() == {"lifecyclestage": "never", "phone": "fill_empty"}
    assert rules.needs_reads and not FieldRules.from_json('{"city": "never"}').needs_reads
    assert rules.with_rule(FieldRule.NEVER) == {"lifecyclestage"}


def test_blank_settings_mean_no_rules() -> None:
    assert FieldRules.from_json("") == FieldRules() == FieldRules.from_json(" {} ")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('{"phone": "fill"}', "'phone': rule 'fill' is not one of overwrite, unless_blank"),
        ('{"Phone": "never"}', "'Phone' is not a HubSpot property name"),
        ('{"email": "never"}', "'email' identifies the contact"),
        ('{"phone": "never", "phone": "always"}', "'phone' is given a rule twice"),
        ('["phone"]', "must be a JSON object"),
        ('{"phone": null}', "'phone': rule None is not one of"),
        ("{phone: never}", "not valid JSON"),
    ],
)
def test_a_bad_rule_names_the_property(text: str, named: str) -> None:
    with pytest.raises(FieldRulesError, match=re.escape(named)):
        FieldRules.from_json(text)


def test_cold_start_names_the_variable_and_refuses_a_rule_on_an_audience_property() -> None:
    with pytest.raises(SettingsError, match=r"FIELD_RULES: 'phone': rule 'sometimes'"):
        UpsertSettings.from_env({**BASE, "FIELD_RULES": '{"phone": "sometimes"}'})
    with pytest.raises(SettingsError, match=r"FIELD_RULES: 'seg_123' is an audience property"):
        UpsertSettings.from_env(
            {**BASE, "FIELD_RULES": '{"seg_123": "never"}', "AUDIENCE_PROPERTY_PREFIX": "seg_"}
        )
    settings = UpsertSettings.from_env({**BASE, "FIELD_RULES": '{"phone": "fill_empty"}'})
    assert settings.field_rules.rule_for("phone") is FieldRule.FILL_EMPTY


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{}",
        '{"phone": "fill_empty"}',
        ' { "phone" : "never" , "city":"always", "x_1": "unless_blank", "lifecyclestage": "overwrite" } ',
    ],
)
def test_the_template_pattern_lets_through_what_the_parse_accepts(text: str) -> None:
    assert re.match(FIELD_RULES_PATTERN, text)
    FieldRules.from_json(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"phone": "fill"}',
        '{"Phone": "never"}',
        '["phone"]',
        '{"phone": null}',
        '{"phone": "never",}',
        "phone",
    ],
)
def test_the_template_pattern_stops_what_the_parse_refuses(text: str) -> None:
    assert not re.match(FIELD_RULES_PATTERN, text)
    with pytest.raises(FieldRulesError):
        FieldRules.from_json(text)
