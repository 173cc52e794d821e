"""The sandbox's own property value rules, checked directly (no HTTP): its email reading and one
validator per HubSpot property type."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from local.hubspot_sandbox import emails, values
from local.hubspot_sandbox.values import InvalidValue, validate

SANDBOX = Path(emails.__file__).parent


def definition(kind: str, name: str = "my_prop", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": kind,
        "fieldType": extra.pop("fieldType", "text"),
        "modificationMetadata": {"readOnlyValue": extra.pop("read_only", False)},
        **extra,
    }


EMAIL = definition("string", "email")


def refusal(prop: dict[str, Any], raw: Any) -> str:
    with pytest.raises(InvalidValue) as caught:
        validate(prop, raw)
    return caught.value.code


def imported_modules(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_sandbox_imports_nothing_from_the_connector() -> None:
    # The sandbox is the yardstick for the connector: borrowing the connector's rules would let a
    # shared mistake pass every test.
    for module in SANDBOX.glob("*.py"):
        imported = imported_modules(module.read_text(encoding="utf-8"))
        assert not {name for name in imported if name.split(".")[0] == "hubspot_activation"}, module.name


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("ada@example.com", "ada@example.com"),
        ("  Ada.Lovelace@Example.COM\t", "ada.lovelace@example.com"),
        ("first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("x_y-z@my-domain.example", "x_y-z@my-domain.example"),
        ("user@example.xn--p1ai", "user@example.xn--p1ai"),
        ("a@com.com", "a@com.com"),  # two labels only: a real domain, not a doubled suffix
        ("a" * 64 + "@example.com", "a" * 64 + "@example.com"),
    ],
)
def test_valid_emails_are_trimmed_and_lower_cased(raw: str, stored: str) -> None:
    assert validate(EMAIL, raw) == stored


@pytest.mark.parametrize(
    "raw",
    [
        "not-an-email",
        "bad@@example.com",
        "@example.com",
        "ada@",
        "ada@localhost",
        "ada@example",
        "ada@example.c",
        "ada@example.123",
        "ada@-example.com",
        "ada@example-.com",
        "ada@exa_mple.com",
        "ada@example..com",
        ".ada@example.com",
        "ada.@example.com",
        "ad..a@example.com",
        "ada lovelace@example.com",
        '"ada"@example.com',
        "ada@[192.0.2.1]",
        "adä@example.com",
        "typo@example.com.com",
        "typo@mail.example.net.net",
        "a" * 65 + "@example.com",
        "ada@" + "a" * 64 + ".com",
        "a@" + ".".join(["abcdefghij"] * 25) + ".com",  # over 254 characters
    ],
)
def test_invalid_emails_are_refused_with_invalid_email(raw: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        validate(EMAIL, raw)
    assert caught.value.code == "INVALID_EMAIL"
    assert caught.value.message == f'Property value "{raw}" is not a valid email'


def test_normalize_email_only_trims_and_lower_cases() -> None:
    assert emails.normalize_email("  MiXeD@Example.Com \n") == "mixed@example.com"
    assert emails.normalize_email("not an email") == "not an email"
    assert emails.is_valid_email("Ada@Example.com") is False  # expects a normalized address


@pytest.mark.parametrize(
    ("kind", "raw", "stored"),
    [
        ("string", "hello", "hello"),
        ("string", "x" * values.MAX_STRING_LENGTH, "x" * values.MAX_STRING_LENGTH),
        ("phone_number", "+1 (877) 929-0687", "+1 (877) 929-0687"),
        ("unknown_type", "kept as text", "kept as text"),
        ("number", "17", "17"),
        ("number", 12.5, "12.5"),
        ("number", "-1e3", "-1e3"),
        ("bool", "TRUE", "true"),
        ("bool", False, "false"),
        ("date", "2026-11-22", "2026-11-22"),
        ("date", "1795305600000", "2026-11-22"),
        ("date", 1795305600000, "2026-11-22"),
        ("datetime", "2026-11-22T10:00:00Z", "2026-11-22T10:00:00.000Z"),
        ("datetime", "2026-11-22T11:00:00+01:00", "2026-11-22T10:00:00.000Z"),
        ("datetime", "2026-11-22T10:00:00", "2026-11-22T10:00:00.000Z"),
        ("datetime", "1795341600000", "2026-11-22T10:00:00.000Z"),
    ],
)
def test_values_each_type_accepts(kind: str, raw: Any, stored: str) -> None:
    assert validate(definition(kind), raw) == stored


@pytest.mark.parametrize(
    ("kind", "raw", "code"),
    [
        ("string", "x" * (values.MAX_STRING_LENGTH + 1), "VALUE_TOO_LONG"),
        ("phone_number", "1" * (values.MAX_STRING_LENGTH + 1), "VALUE_TOO_LONG"),
        ("number", "seventeen", "INVALID_INTEGER"),
        ("bool", "yes", "INVALID_BOOLEAN"),
        ("bool", "1", "INVALID_BOOLEAN"),
        ("date", "1795305600001", "INVALID_DATE"),
        ("date", "22/11/2026", "INVALID_DATE"),
        ("date", "2026-02-30", "INVALID_DATE"),
        ("date", "2026-11-22T00:00:00Z", "INVALID_DATE"),
        ("datetime", "yesterday", "INVALID_DATETIME"),
    ],
)
def test_values_each_type_refuses(kind: str, raw: Any, code: str) -> None:
    assert refusal(definition(kind), raw) == code


def test_enumerations_take_option_values_and_checkboxes_take_several() -> None:
    options = [{"value": "lead"}, {"value": "customer"}]
    radio = definition("enumeration", fieldType="radio", options=options)
    checkbox = definition("enumeration", fieldType="checkbox", options=options)
    assert validate(radio, "lead") == "lead"
    assert refusal(radio, "Lead") == "INVALID_OPTION"  # the label's spelling is not the value
    assert refusal(radio, "lead;customer") == "INVALID_OPTION"  # only checkboxes hold several
    assert validate(checkbox, "lead;customer") == "lead;customer"
    assert refusal(checkbox, "lead;astronaut") == "INVALID_OPTION"
    with pytest.raises(InvalidValue, match="astronaut was not one of the allowed options"):
        validate(checkbox, "astronaut")


@pytest.mark.parametrize("kind", ["string", "number", "bool", "date", "datetime", "enumeration"])
@pytest.mark.parametrize("raw", ["", None])
def test_clearing_is_allowed_for_every_type(kind: str, raw: Any) -> None:
    assert validate(definition(kind), raw) == ""
    assert validate(EMAIL, raw) == ""


def test_read_only_properties_refuse_every_value_even_a_clear() -> None:
    read_only = definition("number", "hs_object_id", read_only=True)
    assert refusal(read_only, "5") == "READ_ONLY_VALUE"
    assert refusal(read_only, "") == "READ_ONLY_VALUE"


def test_every_modelled_type_has_its_own_validator() -> None:
    assert {"string", "number", "bool", "date", "datetime", "enumeration", "phone_number"} <= set(
        values.VALIDATORS
    )
    assert values.BY_NAME["email"] is not values.VALIDATORS["string"]
