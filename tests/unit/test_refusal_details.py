"""``refusal_details``: the refused properties and reasons of a HubSpot write error, read from each
shape HubSpot uses, and never guessed from free text."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hubspot_activation.hubspot.errors import refusal_details


def standard_error(**fields: Any) -> dict[str, Any]:
    """A batch input's ``StandardError`` (what the spec requires, then ``fields``)."""
    return {
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": "Some values were not valid",
        "context": {"objectWriteTraceId": ["t1"]},
        "errors": [],
        "links": {},
        **fields,
    }


def test_the_json_array_embedded_in_the_message() -> None:
    problems = [
        {"isValid": False, "name": "phone", "error": "INVALID_OPTION", "message": "x was not one of ..."},
        {
            "isValid": False,
            "name": "age",
            "error": "INVALID_INTEGER",
            "message": "old was not a valid number",
        },
    ]
    error = standard_error(message="Property values were not valid: " + json.dumps(problems))
    details = refusal_details(error)
    assert [(d["name"], d["error"], d["message"]) for d in details] == [
        ("phone", "INVALID_OPTION", "x was not one of ..."),
        ("age", "INVALID_INTEGER", "old was not a valid number"),
    ]


def test_error_details_naming_the_property_in_their_context() -> None:
    error = standard_error(
        errors=[
            {"message": "does not match", "code": "REGEX", "context": {"propertyName": ["phone"]}},
            {"message": "not a number", "code": "INVALID_INTEGER", "context": {"propertyName": "discount"}},
        ]
    )
    assert refusal_details(error) == [
        {"name": "phone", "error": "REGEX", "message": "does not match"},
        {"name": "discount", "error": "INVALID_INTEGER", "message": "not a number"},
    ]


@pytest.mark.parametrize("where", ["phone", "properties.phone", "properties/phone"])
def test_error_details_naming_the_property_in_in(where: str) -> None:
    error = standard_error(errors=[{"message": "too short", "in": where, "subCategory": "MIN_LENGTH"}])
    assert refusal_details(error) == [{"name": "phone", "error": "MIN_LENGTH", "message": "too short"}]


def test_a_sub_category_object_naming_the_property_and_its_code() -> None:
    error = standard_error(
        message="Validation failed",
        subCategory={"type": "PROPERTY_VALIDATION_RULE", "propertyName": "phone"},
    )
    assert refusal_details(error) == [
        {"name": "phone", "error": "PROPERTY_VALIDATION_RULE", "message": "Validation failed"}
    ]


def test_the_errors_own_context_with_a_sub_category_string_as_the_code() -> None:
    error = standard_error(
        message="Value too long",
        subCategory="PropertyValidationError.MAX_LENGTH",
        context={"objectWriteTraceId": ["t1"], "propertyName": ["city"]},
    )
    assert refusal_details(error) == [
        {"name": "city", "error": "PropertyValidationError.MAX_LENGTH", "message": "Value too long"}
    ]


def test_a_property_named_twice_is_one_refusal_keeping_the_first_reason() -> None:
    problems = [{"name": "phone", "error": "INVALID_PHONE", "message": "bad phone"}]
    error = standard_error(
        message="Property values were not valid: " + json.dumps(problems),
        errors=[{"message": "other words", "code": "REGEX", "context": {"propertyName": ["phone"]}}],
    )
    (detail,) = refusal_details(error)
    assert (detail["name"], detail["error"], detail["message"]) == ("phone", "INVALID_PHONE", "bad phone")


def test_a_detail_naming_no_property_is_kept_without_a_name() -> None:
    error = standard_error(errors=[{"message": "company is required when the stage is customer"}])
    assert refusal_details(error) == [
        {
            "name": None,
            "error": "VALIDATION_ERROR",
            "message": "company is required when the stage is customer",
        }
    ]


@pytest.mark.parametrize(
    "error",
    [
        standard_error(message='Property "phone" does not match the rule'),
        standard_error(message="Property values were not valid: phone is wrong"),
        standard_error(errors=[{"message": "bad", "in": "body.properties[phone]"}]),
        {"message": 'Property "phone" is invalid', "category": "VALIDATION_ERROR"},
        None,
        "Property phone is invalid",
    ],
)
def test_a_property_is_never_guessed_from_free_text(error: Any) -> None:
    assert all(detail["name"] is None for detail in refusal_details(error))
