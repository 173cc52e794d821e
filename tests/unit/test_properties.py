from __future__ import annotations

import re
from typing import Any

import pytest
from hubspot_activation.upsert.properties import (
    CoercionError,
    audience_property_name,
    audience_property_spec,
    coerce,
    coerce_attributes,
)


def definition(kind: str, field_type: str = "text", **extra: Any) -> dict[str, Any]:
    return {"name": f"p_{kind}", "type": kind, "fieldType": field_type, **extra}


def test_audience_property_names_are_stable_valid_and_bounded() -> None:
    name = audience_property_name("a1b2c3d4-0000-4000-8000-000000000001", "aud_")
    assert name == "aud_a1b2c3d4_0000_4000_8000_000000000001"
    assert audience_property_name("a1b2c3d4-0000-4000-8000-000000000001", "aud_") == name
    assert audience_property_name("gold_members", "aud_") == "aud_gold_members"
    assert audience_property_name("Weird ID / with spaces!", "aud_").startswith("aud_weird_id_with_spaces__")
    long = audience_property_name("x" * 300, "aud_")
    assert len(long) == 100 and long.startswith("aud_xxx")
    assert long != audience_property_name("x" * 299, "aud_")
    assert audience_property_name("---", "aud_").startswith("aud_audience__")


@pytest.mark.parametrize(
    "ids",
    [
        ("VIP", "vip", "vip!", "Vip", " vip", "_vip", "vip_"),
        ("a-b", "a_b", "a__b", "a b", "A_B"),
        ("a1b2c3d4-0000-4000-8000-000000000001", "a1b2c3d4_0000_4000_8000_000000000001"),
        ("x" * 300, "x" * 299 + "!", "x" * 299 + "y"),
    ],
)
def test_distinct_audience_ids_never_share_a_property(ids: tuple[str, ...]) -> None:
    names = [audience_property_name(audience_id, "aud_") for audience_id in ids]
    assert len(set(names)) == len(ids), names
    assert all(re.fullmatch(r"[a-z][a-z0-9_]{0,99}", name) for name in names)


def test_audience_property_spec_is_an_enumeration_of_statuses() -> None:
    spec = audience_property_spec("aud_x", "Gold", "audience_activations", "x")
    assert spec["type"] == "enumeration" and spec["fieldType"] == "select"
    assert [o["value"] for o in spec["options"]] == ["realized", "exited"]
    assert all(set(o) >= {"label", "value", "hidden"} for o in spec["options"])


@pytest.mark.parametrize(
    ("kind", "field_type", "value", "expected"),
    [
        ("string", "text", "Ada", "Ada"),
        ("string", "text", 42, "42"),
        ("string", "text", 4.0, "4"),
        ("string", "text", True, "true"),
        ("string", "text", "", ""),
        ("number", "number", 17, "17"),
        ("number", "number", 2.5, "2.5"),
        ("number", "number", " 3.75 ", "3.75"),
        ("number", "number", 10.0, "10"),
        ("bool", "booleancheckbox", True, "true"),
        ("bool", "booleancheckbox", "Yes", "true"),
        ("bool", "booleancheckbox", 0, "false"),
        ("date", "date", "2026-11-22", "2026-11-22"),
        ("date", "date", "2026-11-22T18:30:00Z", "2026-11-22"),
        ("date", "date", 1795305600000, "2026-11-22"),
        ("datetime", "date", "2026-11-22T10:00:00+0200", "2026-11-22T08:00:00.000Z"),
        ("datetime", "date", 1795341600000, "2026-11-22T10:00:00.000Z"),
    ],
)
def test_coercion(kind: str, field_type: str, value: Any, expected: str) -> None:
    assert coerce(definition(kind, field_type), value) == expected


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("number", "many"),
        ("number", True),
        ("number", float("nan")),
        ("bool", "maybe"),
        ("date", "22/11/2026"),
        ("date", "2026-02-30"),
        ("datetime", "soon"),
        ("string", "x" * 70_000),
    ],
)
def test_invalid_values_are_refused(kind: str, value: Any) -> None:
    with pytest.raises(CoercionError):
        coerce(definition(kind), value)


def test_enumeration_matches_values_then_labels() -> None:
    stages = definition(
        "enumeration",
        "radio",
        options=[{"label": "Lead", "value": "lead"}, {"label": "Customer", "value": "customer"}],
    )
    assert coerce(stages, "lead") == "lead"
    assert coerce(stages, "Customer") == "customer"
    with pytest.raises(CoercionError):
        coerce(stages, "astronaut")
    multi = definition(
        "enumeration", "checkbox", options=[{"label": "A", "value": "a"}, {"label": "B", "value": "b"}]
    )
    assert coerce(multi, "a;B") == "a;b"


def test_read_only_properties_are_not_written() -> None:
    with pytest.raises(CoercionError):
        coerce(definition("string", modificationMetadata={"readOnlyValue": True}), "x")


def test_coerce_attributes_drops_only_the_bad_fields() -> None:
    definitions = {"firstname": definition("string"), "score": definition("number", "number")}
    properties, warnings = coerce_attributes(definitions, {"firstname": "Ada", "score": "high", "unknown": 1})
    assert properties == {"firstname": "Ada"}
    assert set(warnings) == {"score", "unknown"}
