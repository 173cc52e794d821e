"""The contact side of the audience lists on plain data: which statuses a contact's entry hands to
its lists (``upsert.listing``), and how the planner applies a status that goes to a list alone
(``AudienceTarget=list``)."""

from __future__ import annotations

from dataclasses import replace

from hubspot_activation.hubspot.batch import UpsertResult
from hubspot_activation.hubspot.errors import ErrorKind, HubSpotError
from hubspot_activation.lists.model import Toggle
from hubspot_activation.model import AudienceChange, AudienceStatus, ContactUpdate
from hubspot_activation.upsert.ledger import (
    DELETED,
    ERASED,
    FAILED,
    SYNCED,
    AppliedAudience,
    LedgerEntry,
    ListedAudience,
)
from hubspot_activation.upsert.listing import list_hand_offs
from hubspot_activation.upsert.plan import Outcome, coalesce, outcome_of, plan_writes, rejected_entry
from hubspot_activation.upsert.properties import AudienceProperty

from tests.unit.test_plan import DEFINITIONS, Messages

NOW_MS = 1_795_000_000_000
ADA = "ada@example.com"


def entry(*applied: tuple[str, str, int, tuple[int, int]], **changes: object) -> LedgerEntry:
    base = LedgerEntry(
        ADA,
        SYNCED,
        hubspot_id="101",
        audiences={aid: AppliedAudience(status, ts, order) for aid, status, ts, order in applied},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def listed(status: str, ts: int, order: tuple[int, int], generation: int = 0) -> ListedAudience:
    return ListedAudience(status, ts, order, generation)


def toggles(entry: LedgerEntry, generations: dict[str, int]) -> dict[str, Toggle]:
    return {aid: hand_off.toggle for aid, hand_off in list_hand_offs(entry, generations).items()}


# --- list_hand_offs -------------------------------------------------------------------------------


def test_a_status_never_handed_goes_to_its_list_as_an_add_or_a_removal() -> None:
    ada = entry(("gold", "realized", 200, (5, 0)), ("vip", "exited", 300, (6, 1)))
    assert toggles(ada, {"gold": 0, "vip": 2}) == {
        "gold": Toggle("101", True, (200, 5, 0, 0)),
        "vip": Toggle("101", False, (300, 6, 1, 2)),
    }
    hand_offs = list_hand_offs(ada, {"gold": 0, "vip": 2})
    assert hand_offs["vip"].listed == listed("exited", 300, (6, 1), 2)


def test_a_status_handed_already_goes_again_only_when_newer_by_timestamp_then_order() -> None:
    handed = {"gold": listed("realized", 200, (5, 0))}
    same = entry(("gold", "realized", 200, (5, 0)), listed=handed)
    later_received = entry(("gold", "realized", 200, (7, 0)), listed=handed)
    newer = entry(("gold", "exited", 201, (1, 0)), listed=handed)
    older = entry(("gold", "exited", 199, (9, 9)), listed=handed)
    assert toggles(same, {"gold": 0}) == {}
    assert toggles(older, {"gold": 0}) == {}
    assert toggles(later_received, {"gold": 0}) == {"gold": Toggle("101", True, (200, 7, 0, 0))}
    assert toggles(newer, {"gold": 0}) == {"gold": Toggle("101", False, (201, 1, 0, 0))}


def test_a_list_made_again_takes_the_same_status_again_at_its_new_generation() -> None:
    ada = entry(("gold", "realized", 200, (5, 0)), listed={"gold": listed("realized", 200, (5, 0), 1)})
    assert toggles(ada, {"gold": 1}) == {}
    assert toggles(ada, {"gold": 2}) == {"gold": Toggle("101", True, (200, 5, 0, 2))}


def test_deleted_unreadable_and_held_audiences_hand_nothing() -> None:
    # An audience absent from the generations: deleted through its metadata, or unreadable.
    ada = entry(("gold", "realized", 200, (5, 0)), ("vip", "realized", 200, (5, 0)))
    assert set(toggles(ada, {"vip": 0})) == {"vip"}
    assert toggles(ada, {}) == {}


def test_a_contact_without_a_record_deleted_or_erased_in_hubspot_hands_nothing() -> None:
    applied = ("gold", "realized", 200, (5, 0))
    assert toggles(entry(applied, hubspot_id=None), {"gold": 0}) == {}
    assert toggles(entry(applied, status=DELETED), {"gold": 0}) == {}
    assert toggles(entry(applied, status=FAILED, hubspot_state=ERASED), {"gold": 0}) == {}
    # A failed contact HubSpot holds (a refused value) still has its memberships kept.
    assert set(toggles(entry(applied, status=FAILED), {"gold": 0})) == {"gold"}


def test_a_record_forgotten_to_be_created_again_is_handed_every_status_again() -> None:
    ada = entry(("gold", "realized", 200, (5, 0)), listed={"gold": listed("realized", 200, (5, 0))})
    forgotten = ada.forgotten(SYNCED, NOW_MS)
    assert forgotten.listed == {}
    recreated = replace(forgotten, hubspot_id="202", audiences=dict(ada.audiences))
    assert toggles(recreated, {"gold": 0}) == {"gold": Toggle("202", True, (200, 5, 0, 0))}


# --- the planner with statuses that go to a list alone --------------------------------------------


def list_only(*audiences: str) -> dict[str, AudienceProperty]:
    return {audience: AudienceProperty(audience, "", list_only=True) for audience in audiences}


def realized(audience: str, ts: int) -> AudienceChange:
    return AudienceChange(audience, AudienceStatus.REALIZED, ts)


def test_a_new_contact_whose_only_change_goes_to_a_list_is_upserted_with_nothing_but_its_email() -> None:
    batch = coalesce(Messages()(ContactUpdate(ADA, (realized("gold", 200),))))
    plan = plan_writes(batch, {}, list_only("gold"), DEFINITIONS, NOW_MS)
    [write] = plan.writes
    assert write.properties == {}
    assert write.list_audiences == {"gold"}
    outcome, written = outcome_of(write, UpsertResult(ADA, contact_id="101"), NOW_MS, NOW_MS)
    assert outcome is Outcome.SYNCED
    assert written is not None
    assert written.hubspot_id == "101"
    assert written.audiences["gold"].status == "realized"
    assert written.written == {}


def test_a_known_contact_applies_a_list_status_without_a_write_and_keeps_what_it_listed() -> None:
    handed = {"gold": listed("realized", 100, (1, 0))}
    known = LedgerEntry(ADA, SYNCED, hubspot_id="101", listed=handed)
    batch = coalesce(Messages()(ContactUpdate(ADA, (AudienceChange("gold", AudienceStatus.EXITED, 200),))))
    plan = plan_writes(batch, {ADA: known}, list_only("gold"), DEFINITIONS, NOW_MS)
    assert plan.writes == []
    assert plan.outcomes == {ADA: Outcome.SKIPPED}
    [recorded] = plan.records
    assert recorded.audiences["gold"].status == "exited"
    assert recorded.listed == handed


def test_a_contact_deleted_in_hubspot_is_created_again_by_a_changed_list_status_alone() -> None:
    deleted = LedgerEntry(
        ADA,
        DELETED,
        hubspot_id="101",
        audiences={"gold": AppliedAudience("realized", 100, (1, 0))},
        listed={"gold": listed("realized", 100, (1, 0))},
    )
    messages = Messages()
    same = coalesce(messages(ContactUpdate(ADA, (realized("gold", 200),))))
    assert plan_writes(same, {ADA: deleted}, list_only("gold"), DEFINITIONS, NOW_MS).writes == []
    changed = coalesce(messages(ContactUpdate(ADA, (AudienceChange("gold", AudienceStatus.EXITED, 300),))))
    [write] = plan_writes(changed, {ADA: deleted}, list_only("gold"), DEFINITIONS, NOW_MS).writes
    assert write.previous is not None
    assert write.previous.hubspot_id is None
    assert write.previous.listed == {}


def test_a_refused_write_applies_a_list_status_of_a_known_record_and_keeps_one_of_an_unknown() -> None:
    batch = coalesce(Messages()(ContactUpdate(ADA, (realized("gold", 200),), {"city": "Paris"})))
    refusal = UpsertResult(ADA, error=HubSpotError(ErrorKind.PERMANENT, "refused", status=400))
    known = LedgerEntry(ADA, SYNCED, hubspot_id="101")
    [write] = plan_writes(batch, {ADA: known}, list_only("gold"), DEFINITIONS, NOW_MS).writes
    outcome, refused = outcome_of(write, refusal, NOW_MS, NOW_MS)
    assert outcome is Outcome.FAILED
    assert refused is not None
    assert refused.audiences["gold"].status == "realized"
    assert "gold" not in refused.pending_audiences
    [unknown] = plan_writes(batch, {}, list_only("gold"), DEFINITIONS, NOW_MS).writes
    kept = rejected_entry(unknown, NOW_MS)
    assert kept.audiences == {}
    assert kept.pending_audiences["gold"].status == "realized"
