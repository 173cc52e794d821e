"""``GET /sync/status`` shows the field rules in force, through the real operations handler with
the environment the template gives it (``FieldRules`` set as a deployer would)."""

from __future__ import annotations

import json

import pytest

from tests.corpus.operations import STATUS, event_of, operations_handler


@pytest.mark.parametrize(
    ("rules", "shown"),
    [
        (
            '{"phone": "fill_empty", "lifecyclestage": "never", "city": "overwrite", "firstname": "always"}',
            {"firstname": "always", "lifecyclestage": "never", "phone": "fill_empty"},
        ),
        ("", {}),
    ],
    ids=["rules", "none"],
)
def test_status_shows_the_rules_in_force_and_that_audience_properties_are_overwrite(
    monkeypatch: pytest.MonkeyPatch, rules: str, shown: dict[str, str]
) -> None:
    with operations_handler(monkeypatch.setenv) as call:
        # The template's environment is in place; the function reads it on its first request.
        monkeypatch.setenv("FIELD_RULES", rules)
        response = call(event_of({"method": "GET", "route": STATUS}))
    assert response["statusCode"] == 200, response
    field_rules = json.loads(response["body"])["fieldRules"]
    assert field_rules["rules"] == shown
    assert "audience properties are always overwrite" in field_rules["note"]
