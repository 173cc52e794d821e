"""What the reconcile function's composition root decides on its own: the properties the journal
watches."""

from __future__ import annotations

from typing import Any

from hubspot_activation.attribute_mapping import AttributeMapping
from hubspot_activation.field_rules import FieldRules
from hubspot_activation.reconcile.wiring import managed_properties
from hubspot_activation.settings import UpsertSettings


class Schema:
    def __init__(self, definitions: dict[str, dict[str, Any]]) -> None:
        self.loads = 0
        self._definitions = definitions

    def definitions(self) -> dict[str, dict[str, Any]]:
        self.loads += 1
        return self._definitions


def test_the_managed_properties_are_the_groups_and_the_mappings_targets_hubspot_defines() -> None:
    settings = UpsertSettings(
        ledger_table="t",
        hubspot_secret_id="s",
        mapping=AttributeMapping.from_overrides({"loyalty.tier": "loyalty_tier", "phone": None}),
    )
    schema = Schema(
        {
            "aud_gold": {"groupName": "audience_activations"},
            "aud_silver": {"groupName": "audience_activations"},
            "firstname": {"groupName": "contactinformation"},
            "loyalty_tier": {"groupName": "custom"},
            "jobtitle": {"groupName": "contactinformation"},
            "email": {"groupName": "contactinformation"},
        }
    )
    names = managed_properties(schema, settings)  # type: ignore[arg-type]
    assert schema.loads == 0  # read when the journal asks, from the schema's cache
    # "phone" stays mapped from mobilePhone.number; HubSpot defining no phone leaves it out.
    assert list(names()) == ["aud_gold", "aud_silver", "firstname", "loyalty_tier"]
    assert schema.loads == 1


def test_the_journal_does_not_watch_properties_whose_rule_is_never() -> None:
    settings = UpsertSettings(
        ledger_table="t",
        hubspot_secret_id="s",
        mapping=AttributeMapping.from_overrides({"loyalty.tier": "loyalty_tier"}),
        field_rules=FieldRules.from_mapping({"firstname": "never", "loyalty_tier": "fill_empty"}),
    )
    schema = Schema(
        {
            "aud_gold": {"groupName": "audience_activations"},
            "firstname": {"groupName": "contactinformation"},
            "lastname": {"groupName": "contactinformation"},
            "loyalty_tier": {"groupName": "custom"},
        }
    )
    # A fill_empty property is still watched: HubSpot emptying it is filled from the source.
    assert list(managed_properties(schema, settings)()) == ["aud_gold", "lastname", "loyalty_tier"]  # type: ignore[arg-type]
