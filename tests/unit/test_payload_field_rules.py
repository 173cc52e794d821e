"""The field rules at ingest, cell by cell: every rule x (a value, "", null, {"value": null}, {},
absent) in both shapes AEP sends (the HTTP API's raw XDM export and the Destination SDK's flat
attributes), and the native format's flat attributes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hubspot_activation.attribute_mapping import AttributeMapping
from hubspot_activation.field_rules import FieldRule, FieldRules
from hubspot_activation.ingest.payloads import ParsedRequest, ParseOptions, parse_activation
from hubspot_activation.model import AttributeValue

GOLD = "a1b2c3d4-0000-4000-8000-000000000001"
ABSENT = object()
NULLS: dict[str, Any] = {"null": None, "value-null": {"value": None}, "empty-object": {}}
CELLS: dict[str, Any] = {"value": "V", "blank": "", **NULLS, "absent": ABSENT}

#: One property per rule; ``lifecyclestage`` reaches the mapping from XDM only through a custom path.
PROPERTY_OF: dict[FieldRule, str] = {
    FieldRule.OVERWRITE: "city",
    FieldRule.UNLESS_BLANK: "lastname",
    FieldRule.ALWAYS: "firstname",
    FieldRule.FILL_EMPTY: "phone",
    FieldRule.NEVER: "lifecyclestage",
}
XDM_PATH = {
    "city": "workAddress.city",
    "lastname": "person.name.lastName",
    "firstname": "person.name.firstName",
    "phone": "mobilePhone.number",
    "lifecyclestage": "_acme.lifecycleStage",
}
RULES = FieldRules({prop: rule for rule, prop in PROPERTY_OF.items() if rule is not FieldRule.OVERWRITE})


@pytest.fixture
def ruled(options: ParseOptions) -> ParseOptions:
    mapping = AttributeMapping.from_json('{"_acme.lifecycleStage": "lifecyclestage"}')
    return replace(options, mapping=mapping, rules=RULES)


def xdm_profile(path: str, raw: Any) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "identityMap": {"Email": [{"id": "ada@example.com"}]},
        "segmentMembership": {"ups": {GOLD: {"status": "realized"}}},
    }
    if raw is not ABSENT:
        *parents, leaf = path.split(".")
        node = profile
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = raw
    return profile


def sdk_profile(prop: str, raw: Any) -> dict[str, Any]:
    return {
        "identities": [{"type": "email", "id": "ada@example.com"}],
        "AdobeExperiencePlatformSegments": {"add": [GOLD]},
        "attributes": {} if raw is ABSENT else {prop: raw},
    }


def native_profile(prop: str, raw: Any) -> dict[str, Any]:
    return {
        "email": "ada@example.com",
        "audiences": {GOLD: "realized"},
        "attributes": {} if raw is ABSENT else {prop: raw},
    }


SHAPES = {
    "aep-xdm": lambda prop, raw: xdm_profile(XDM_PATH[prop], raw),
    # The HTTP API export also carries flat names in its attributes map.
    "aep-attributes": lambda prop, raw: {
        **xdm_profile("", ABSENT),
        "attributes": sdk_profile(prop, raw)["attributes"],
    },
    "sdk": sdk_profile,
    "native": native_profile,
}


def expected(rule: FieldRule, cell: str) -> tuple[AttributeValue | None, int]:
    """(the value queued, None for no change; fields the rule dropped) for one cell."""
    if cell == "absent":
        return None, 0
    if cell in NULLS:
        return ("" if rule is FieldRule.ALWAYS else None), 0
    if rule is FieldRule.NEVER or (
        cell == "blank" and rule in (FieldRule.UNLESS_BLANK, FieldRule.FILL_EMPTY)
    ):
        return None, 1
    return CELLS[cell], 0


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("rule", list(FieldRule))
def test_each_rule_and_cell_in_every_shape(
    ruled: ParseOptions, shape: str, cell: str, rule: FieldRule
) -> None:
    prop = PROPERTY_OF[rule]
    result = parse_activation(SHAPES[shape](prop, CELLS[cell]), ruled)
    assert not result.excluded and not result.warnings, (result.excluded, result.warnings)
    [(_index, update)] = result.updates
    value, skipped = expected(rule, cell)
    assert update.attributes == ({} if value is None else {prop: value})
    assert result.skipped_by_rule == ({rule.value: 1} if skipped else {})


def test_without_rules_every_property_is_overwrite(options: ParseOptions) -> None:
    result = parse_activation(
        sdk_profile("city", "")
        | {"attributes": {"city": "", "firstname": None, "lastname": {}, "lifecyclestage": "lead"}},
        options,
    )
    assert result.updates[0][1].attributes == {"city": "", "lifecyclestage": "lead"}
    assert result.skipped_by_rule == {}


def test_skips_are_counted_per_profile_and_property_over_the_request(ruled: ParseOptions) -> None:
    profiles = [
        native_profile("lifecyclestage", "lead") | {"email": f"p{i}@example.com"} for i in range(3)
    ] + [
        {
            "email": "q@example.com",
            "audiences": {GOLD: "realized"},
            "attributes": {"lastname": "", "phone": "", "lifecyclestage": "customer"},
        }
    ]
    result = parse_activation({"profiles": profiles}, ruled)
    assert len(result.updates) == 4 and all(update.attributes == {} for _i, update in result.updates)
    assert result.skipped_by_rule == {"never": 4, "unless_blank": 1, "fill_empty": 1}


def test_a_null_does_not_clear_a_property_another_source_gives_a_value(ruled: ParseOptions) -> None:
    # firstname from the XDM path (null) and from the attributes map's flat name (a value).
    profile = xdm_profile("person.name.firstName", None) | {"attributes": {"firstname": "Ada"}}
    [(_index, update)] = parse_activation(profile, ruled).updates
    assert update.attributes == {"firstname": "Ada"}


def test_a_blank_dropped_by_its_rule_is_not_counted_when_another_source_gives_a_value(
    ruled: ParseOptions,
) -> None:
    profile = xdm_profile("person.name.lastName", "") | {"attributes": {"lastname": "Lovelace"}}
    result = parse_activation(profile, ruled)
    assert result.updates[0][1].attributes == {"lastname": "Lovelace"}
    assert result.skipped_by_rule == {}
    assert not result.warnings


def test_a_never_property_is_dropped_whatever_its_value_without_a_warning(ruled: ParseOptions) -> None:
    result: ParsedRequest = parse_activation(native_profile("lifecyclestage", ["not", "a", "scalar"]), ruled)
    assert result.updates[0][1].attributes == {} and not result.warnings
    assert result.skipped_by_rule == {"never": 1}


def test_a_profile_left_with_only_never_fields_is_excluded_as_nothing_to_sync(ruled: ParseOptions) -> None:
    profile = {"email": "ada@example.com", "attributes": {"lifecyclestage": "lead"}}
    result = parse_activation(profile, ruled)
    assert result.updates == [] and result.excluded[0].reason.startswith("nothing to sync")
    assert result.skipped_by_rule == {"never": 1}
