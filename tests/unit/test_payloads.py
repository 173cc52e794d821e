"""Every payload format and every identity / attribute / membership shape of aep-facts sections 2-3."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hubspot_activation.attribute_mapping import AttributeMapping
from hubspot_activation.ingest.payloads import InvalidRequest, ParsedRequest, ParseOptions, parse_activation
from hubspot_activation.model import AudienceChange, AudienceStatus, ContactUpdate

from tests.conftest import RECEIVED_AT_MS

GOLD = "a1b2c3d4-0000-4000-8000-000000000001"
CART = "a1b2c3d4-0000-4000-8000-000000000002"


def aep_profile(
    email_namespace: str = "email", email: str = "Ada@Example.com", **extra: Any
) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "identityMap": {email_namespace: [{"id": email}], "ECID": [{"id": "4948"}]},
        "segmentMembership": {
            "ups": {
                GOLD: {"status": "realized", "lastQualificationTime": "2026-11-20T09:15:00Z", "name": "Gold"}
            }
        },
    }
    profile.update(extra)
    return profile


def only(result: ParsedRequest) -> ContactUpdate:
    assert not result.excluded, result.excluded
    assert len(result.updates) == 1
    return result.updates[0][1]


# --- envelopes -------------------------------------------------------------------------------------


def test_single_aep_profile_object(options: ParseOptions) -> None:
    update = only(parse_activation(aep_profile(), options))
    assert update == ContactUpdate(
        "ada@example.com",
        (AudienceChange(GOLD, AudienceStatus.REALIZED, 1_795_166_100_000, "Gold"),),
        {},
        "aep",
    )


def test_bare_array_and_profiles_envelope_give_the_same_result(options: ParseOptions) -> None:
    profiles = [aep_profile(email="a@example.com"), aep_profile(email="b@example.com")]
    as_array = parse_activation(profiles, options)
    as_envelope = parse_activation({"profiles": profiles}, options)
    assert as_array.updates == as_envelope.updates
    assert [update.email for _, update in as_array.updates] == ["a@example.com", "b@example.com"]


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ("just a string", "body"),
        (42, "body"),
        ({"profiles": "nope"}, "profiles"),
        ({"profiles": []}, "profiles"),
        ([], "profiles"),
        ({"hello": "world"}, "body"),
    ],
)
def test_bodies_that_can_never_succeed_name_the_field(
    options: ParseOptions, document: Any, field: str
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_activation(document, options)
    assert raised.value.field == field
    assert raised.value.message


def test_bad_profiles_are_excluded_by_index_and_the_rest_accepted(options: ParseOptions) -> None:
    result = parse_activation(
        {
            "profiles": [
                aep_profile(email="ok@example.com"),
                "not an object",
                {"ECID": "x"},
                aep_profile(email="bad"),
            ]
        },
        options,
    )
    assert [index for index, _ in result.updates] == [0]
    assert [(item.index, item.reason) for item in result.excluded] == [
        (1, "profile is not a JSON object"),
        (2, "unrecognised profile: expected identityMap, identities or email"),
        (3, "email has no '@' between a local part and a domain"),
    ]


# --- AEP identities ----------------------------------------------------------------------------------


@pytest.mark.parametrize("namespace", ["email", "Email", "EMAIL"])
def test_email_namespace_is_matched_case_insensitively(options: ParseOptions, namespace: str) -> None:
    assert only(parse_activation(aep_profile(namespace), options)).email == "ada@example.com"


@pytest.mark.parametrize("path", ["personalEmail", "workEmail"])
def test_email_falls_back_to_xdm_email_fields(options: ParseOptions, path: str) -> None:
    profile = {
        "identityMap": {"ECID": [{"id": "1"}]},
        path: {"address": " Alan@Example.org "},
        "segmentMembership": {"ups": {GOLD: {"status": "realized"}}},
    }
    assert only(parse_activation(profile, options)).email == "alan@example.org"


def test_first_valid_clear_text_email_wins(options: ParseOptions) -> None:
    profile = aep_profile()
    profile["identityMap"]["Email"] = [
        {"id": "broken"},
        {"id": "second@example.com"},
        {"id": "third@example.com"},
    ]
    del profile["identityMap"]["email"]
    assert only(parse_activation(profile, options)).email == "second@example.com"


def test_hashed_only_email_is_excluded_with_a_reason(options: ParseOptions) -> None:
    profile = aep_profile()
    profile["identityMap"] = {"email_lc_sha256": [{"id": "ab" * 32}], "ECID": [{"id": "1"}]}
    result = parse_activation(profile, options)
    assert result.updates == []
    assert result.excluded[0].reason == "only a hashed email identity; HubSpot needs a clear-text address"


def test_hashed_value_in_the_email_namespace_is_excluded(options: ParseOptions) -> None:
    result = parse_activation(aep_profile(email="cd" * 32), options)
    assert "hashed" in result.excluded[0].reason


def test_profile_without_email_is_excluded(options: ParseOptions) -> None:
    profile = {
        "identityMap": {"ECID": [{"id": "1"}]},
        "segmentMembership": {"ups": {GOLD: {"status": "realized"}}},
    }
    assert parse_activation(profile, options).excluded[0].reason == "no email identity"


@pytest.mark.parametrize(
    "email",
    [
        "no-at-sign",
        "a@b",
        "a@@b.com",
        "a b@example.com",
        "a@example.c0m",
        "@example.com",
        "x" * 250 + "@e.com",
    ],
)
def test_invalid_emails_are_excluded(options: ParseOptions, email: str) -> None:
    result = parse_activation(aep_profile(email=email), options)
    assert result.updates == [] and result.excluded[0].reason.startswith("email")


# --- AEP memberships ---------------------------------------------------------------------------------


def memberships(options: ParseOptions, entries: dict[str, Any], namespace: str = "ups") -> ParsedRequest:
    return parse_activation(
        {"identityMap": {"email": [{"id": "a@example.com"}]}, "segmentMembership": {namespace: entries}},
        options,
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("realized", AudienceStatus.REALIZED),
        ("existing", AudienceStatus.REALIZED),
        ("exited", AudienceStatus.EXITED),
        ("Realized", AudienceStatus.REALIZED),
    ],
)
def test_statuses_and_legacy_existing(options: ParseOptions, status: str, expected: AudienceStatus) -> None:
    update = only(memberships(options, {GOLD: {"status": status}}))
    assert update.audiences[0].status is expected


def test_unknown_status_drops_only_that_membership_with_a_warning(options: ParseOptions) -> None:
    result = memberships(options, {GOLD: {"status": "pending"}, CART: {"status": "exited"}})
    assert [change.audience_id for change in only(result).audiences] == [CART]
    assert result.warnings[0].field == f"segmentMembership.ups.{GOLD}"
    assert "pending" in result.warnings[0].reason


@pytest.mark.parametrize(
    "timestamp",
    [
        "2019-04-15T02:41:50.000+0000",
        "2019-04-15T02:41:50Z",
        "2019-04-15T02:41:50+0000",
        "2019-04-15T02:41:50.000000Z",
        "2019-04-15T04:41:50+02:00",
        1555296110000,
        1555296110,
        "1555296110000",
    ],
)
def test_lenient_timestamps(options: ParseOptions, timestamp: Any) -> None:
    update = only(memberships(options, {GOLD: {"status": "realized", "lastQualificationTime": timestamp}}))
    assert update.audiences[0].timestamp_ms == 1_555_296_110_000


def test_microsecond_timestamps_keep_milliseconds(options: ParseOptions) -> None:
    update = only(
        memberships(
            options, {GOLD: {"status": "realized", "lastQualificationTime": "2021-06-30T18:40:07.591378Z"}}
        )
    )
    assert update.audiences[0].timestamp_ms % 1000 == 591


def test_missing_timestamp_means_time_received_and_a_bad_one_warns(options: ParseOptions) -> None:
    result = memberships(
        options, {GOLD: {"status": "realized"}, CART: {"status": "exited", "lastQualificationTime": "soon"}}
    )
    assert [change.timestamp_ms for change in only(result).audiences] == [RECEIVED_AT_MS, RECEIVED_AT_MS]
    assert result.warnings[0].field == f"segmentMembership.ups.{CART}"


def test_memberships_from_every_namespace_and_names_when_present(options: ParseOptions) -> None:
    result = parse_activation(
        {
            "identityMap": {"email": [{"id": "a@example.com"}]},
            "segmentMembership": {
                "ups": {GOLD: {"status": "realized", "name": " Gold "}},
                "CustomerAudienceUpload": {CART: {"status": "realized"}},
            },
        },
        options,
    )
    assert [(c.audience_id, c.name) for c in only(result).audiences] == [(GOLD, "Gold"), (CART, None)]


def test_allowlist_keeps_only_listed_audiences(options: ParseOptions) -> None:
    allowed = replace(options, audience_allowlist=frozenset({CART}))
    update = only(memberships(allowed, {GOLD: {"status": "realized"}, CART: {"status": "exited"}}))
    assert [change.audience_id for change in update.audiences] == [CART]


def test_profile_left_with_nothing_to_sync_is_excluded_not_dropped(options: ParseOptions) -> None:
    allowed = replace(options, audience_allowlist=frozenset({CART}))
    result = memberships(allowed, {GOLD: {"status": "realized"}})
    assert result.updates == []
    assert result.excluded[0].reason.startswith("nothing to sync")


# --- attributes --------------------------------------------------------------------------------------


def test_default_mapping_reads_nested_xdm_paths(options: ParseOptions) -> None:
    profile = aep_profile(
        person={"name": {"firstName": "Ada", "lastName": "Lovelace"}},
        workAddress={"street1": "12 St James's Square", "city": "London", "country": "UK"},
        mobilePhone={"number": "+44 20 7946 0000"},
        loyalty={"tier": "gold"},  # not mapped: a raw export carries the whole profile
    )
    assert only(parse_activation(profile, options)).attributes == {
        "firstname": "Ada",
        "lastname": "Lovelace",
        "address": "12 St James's Square",
        "city": "London",
        "country": "UK",
        "phone": "+44 20 7946 0000",
    }


def test_attributes_map_values_plain_wrapped_empty_null_and_cleared(options: ParseOptions) -> None:
    profile = aep_profile(
        attributes={
            "firstName": {"value": "Ada"},
            "lastName": {},
            "city": None,
            "country": "",
            "phone": "+1 555",
        }
    )
    assert only(parse_activation(profile, options)).attributes == {
        "firstname": "Ada",
        "country": "",
        "phone": "+1 555",
    }


def test_custom_mapping_extends_and_removes_defaults(options: ParseOptions) -> None:
    custom = replace(
        options,
        mapping=AttributeMapping.from_overrides({"loyalty.tier": "loyalty_tier", "workAddress.city": None}),
    )
    profile = aep_profile(loyalty={"tier": "gold"}, workAddress={"city": "London"})
    assert only(parse_activation(profile, custom)).attributes == {"loyalty_tier": "gold"}


def test_non_scalar_attribute_is_ignored_with_a_warning(options: ParseOptions) -> None:
    result = parse_activation(aep_profile(attributes={"firstName": ["a", "b"], "city": "Paris"}), options)
    assert only(result).attributes == {"city": "Paris"}
    assert result.warnings[0].field == "firstName"


# --- Destination SDK ---------------------------------------------------------------------------------


def sdk(**profile: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"identities": [{"type": "email", "id": "Kat@Example.com"}]}
    base.update(profile)
    return {"profiles": [base]}


def test_sdk_add_is_realized_and_remove_is_exited_at_time_received(options: ParseOptions) -> None:
    update = only(
        parse_activation(sdk(AdobeExperiencePlatformSegments={"add": [GOLD], "remove": [CART]}), options)
    )
    assert update.source == "sdk"
    assert update.email == "kat@example.com"
    assert update.audiences == (
        AudienceChange(GOLD, AudienceStatus.REALIZED, RECEIVED_AT_MS),
        AudienceChange(CART, AudienceStatus.EXITED, RECEIVED_AT_MS),
    )


def test_sdk_freeform_and_predefined_attributes(options: ParseOptions) -> None:
    update = only(
        parse_activation(
            sdk(
                attributes={
                    "firstName": {"value": "Kat"},
                    "lastName": {},
                    "city": "Hampton",
                    "loyalty_points": 12,
                    "Mixed Case": "x",
                }
            ),
            options,
        )
    )
    assert update.attributes == {"firstname": "Kat", "city": "Hampton", "loyalty_points": 12}


def test_sdk_unmapped_attribute_that_is_not_a_property_name_warns(options: ParseOptions) -> None:
    result = parse_activation(sdk(attributes={"Mixed Case": "x", "city": "Hampton"}), options)
    assert result.warnings[0].field == "attributes.Mixed Case"


def test_sdk_identity_type_is_case_insensitive_and_hashed_only_is_excluded(options: ParseOptions) -> None:
    assert (
        only(
            parse_activation(
                {
                    "profiles": [
                        {
                            "identities": [{"type": "EMAIL", "id": "k@example.com"}],
                            "attributes": {"city": "x"},
                        }
                    ]
                },
                options,
            )
        ).email
        == "k@example.com"
    )
    hashed = parse_activation(
        {
            "profiles": [
                {
                    "identities": [{"type": "email_lc_sha256", "id": "ab" * 32}],
                    "AdobeExperiencePlatformSegments": {"add": [GOLD]},
                }
            ]
        },
        options,
    )
    assert "hashed" in hashed.excluded[0].reason


def test_sdk_aggregation_by_audience_uses_the_envelope_audience(options: ParseOptions) -> None:
    document = {
        "audienceId": GOLD,
        "segmentStatus": "exited",
        "profiles": [{"identities": [{"type": "email", "id": "k@example.com"}]}],
    }
    assert only(parse_activation(document, options)).audiences == (
        AudienceChange(GOLD, AudienceStatus.EXITED, RECEIVED_AT_MS),
    )


def test_sdk_segment_entries_may_be_objects_with_names(options: ParseOptions) -> None:
    update = only(
        parse_activation(
            sdk(AdobeExperiencePlatformSegments={"add": [{"id": GOLD, "name": "Gold"}]}), options
        )
    )
    assert update.audiences[0].name == "Gold"


# --- native ------------------------------------------------------------------------------------------


def test_native_profile(options: ParseOptions) -> None:
    update = only(
        parse_activation(
            {
                "profiles": [
                    {
                        "email": " Margaret@Example.com ",
                        "attributes": {"firstname": "Margaret", "lastName": "Hamilton"},
                        "audiences": {
                            GOLD: {"status": "realized", "name": "Gold", "timestamp": "2026-11-21T08:00:00Z"},
                            CART: "exited",
                        },
                    }
                ]
            },
            options,
        )
    )
    assert update == ContactUpdate(
        "margaret@example.com",
        (
            AudienceChange(GOLD, AudienceStatus.REALIZED, 1_795_248_000_000, "Gold"),
            AudienceChange(CART, AudienceStatus.EXITED, RECEIVED_AT_MS),
        ),
        {"lastname": "Hamilton", "firstname": "Margaret"},
        "native",
    )


def test_native_audiences_as_a_list(options: ParseOptions) -> None:
    update = only(
        parse_activation({"email": "m@example.com", "audiences": [{"id": GOLD, "status": "exited"}]}, options)
    )
    assert update.audiences[0].status is AudienceStatus.EXITED


def test_native_email_that_is_not_a_string_is_excluded(options: ParseOptions) -> None:
    assert (
        parse_activation({"email": 5, "attributes": {"city": "x"}}, options).excluded[0].reason
        == "no email identity"
    )


def test_canonical_update_survives_the_queue_encoding(options: ParseOptions) -> None:
    update = only(
        parse_activation(aep_profile(attributes={"city": "Paris", "score": 3.5, "vip": True}), options)
    )
    assert ContactUpdate.from_json(update.to_json()) == update
