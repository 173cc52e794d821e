"""The upsert planner's rules, one by one, on plain data (no sockets: see conftest)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hubspot_activation.hubspot.batch import UpsertResult
from hubspot_activation.hubspot.errors import ErrorKind, HubSpotError
from hubspot_activation.model import AudienceChange, AudienceStatus, ContactUpdate
from hubspot_activation.upsert.ledger import AppliedAudience, LedgerEntry, PendingAudience, value_fingerprint
from hubspot_activation.upsert.plan import (
    AMBIGUITY_SETTLE_MS,
    DELETED_AUDIENCE_WARNING,
    MAX_RETRY_DELAY_SECONDS,
    MAX_VISIBILITY_SECONDS,
    MIN_DAILY_PAUSE_SECONDS,
    Batch,
    InboundMessage,
    Outcome,
    audiences_to_ensure,
    coalesce,
    drop_refused_fields,
    messages_to_return,
    outcome_of,
    plan_writes,
    retry_schedule,
)
from hubspot_activation.upsert.properties import AudienceProperty

from tests.builders import pack

NOW_MS = 1_795_000_000_000
ADA = "ada@example.com"
DEFINITIONS: dict[str, dict[str, Any]] = {
    "firstname": {"name": "firstname", "type": "string", "fieldType": "text"},
    "city": {"name": "city", "type": "string", "fieldType": "text"},
    "age": {"name": "age", "type": "number", "fieldType": "number"},
}


def realized(audience: str, ts: int, name: str | None = None) -> AudienceChange:
    return AudienceChange(audience, AudienceStatus.REALIZED, ts, name)


def exited(audience: str, ts: int, name: str | None = None) -> AudienceChange:
    return AudienceChange(audience, AudienceStatus.EXITED, ts, name)


class Messages:
    """Packs updates into inbound messages, one message per call, numbered in delivery order; each
    call is a request received a second after the previous one (unless ``received_ms`` says)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(
        self, *updates: ContactUpdate, group: str | None = None, received_ms: int | None = None
    ) -> list[InboundMessage]:
        result = []
        received = received_ms if received_ms is not None else NOW_MS + 1000 * (self.count + 1)
        stamped = [replace(u, received_ms=received, position=i) for i, u in enumerate(updates)]
        for message in pack(stamped, 1):
            self.count += 1
            result.append(
                InboundMessage(f"m{self.count}", group or message.group_id, message.body, f"rh{self.count}")
            )
        return result


@pytest.fixture
def messages() -> Messages:
    return Messages()


def properties_for(*audiences: str, broken: str | None = None) -> dict[str, AudienceProperty]:
    return {
        audience: AudienceProperty(audience, f"aud_{audience}", "no room" if audience == broken else None)
        for audience in audiences
    }


def plan_for(batch: Batch, ledger: dict[str, LedgerEntry] | None = None, broken: str | None = None) -> Any:
    audiences = properties_for(*audiences_to_ensure(batch, ledger or {}), broken=broken)
    return plan_writes(batch, ledger or {}, audiences, DEFINITIONS, NOW_MS)


# --- coalescing --------------------------------------------------------------------------------


def test_newest_audience_timestamp_wins_whatever_the_message_order(messages: Messages) -> None:
    batch = coalesce(
        messages(ContactUpdate(ADA, (realized("gold", 200),)))
        + messages(ContactUpdate(ADA, (exited("gold", 100),)))
    )
    assert batch.contacts[ADA].audiences["gold"].change.status is AudienceStatus.REALIZED


def test_a_tie_goes_to_the_later_message_and_a_name_is_never_forgotten(messages: Messages) -> None:
    batch = coalesce(
        messages(ContactUpdate(ADA, (realized("gold", 100, "Gold"),)))
        + messages(ContactUpdate(ADA, (exited("gold", 100),)))
    )
    change = batch.contacts[ADA].audiences["gold"].change
    assert change.status is AudienceStatus.EXITED and change.name == "Gold"
    assert batch.audience_names() == {"gold": "Gold"}


def test_later_attributes_win_and_absent_ones_are_kept(messages: Messages) -> None:
    batch = coalesce(
        messages(ContactUpdate(ADA, (), {"city": "Paris", "firstname": "Ada"}))
        + messages(ContactUpdate(ADA, (), {"city": "Lyon"}))
    )
    values = {name: value for name, (value, _order) in batch.contacts[ADA].attributes.items()}
    assert values == {"city": "Lyon", "firstname": "Ada"}
    assert batch.contacts[ADA].message_ids == ["m1", "m2"]
    assert batch.attribute_names() == {"city", "firstname"}


def test_undecodable_messages_are_set_apart_with_a_reason(messages: Messages) -> None:
    good = messages(ContactUpdate(ADA, (), {"city": "Paris"}))
    bad = InboundMessage("junk", "c0", '{"Type": "Notification"}')
    batch = coalesce([bad, *good])
    assert list(batch.undecodable) == ["junk"] and "unsupported" in batch.undecodable["junk"]
    assert list(batch.contacts) == [ADA]


# --- what the ledger makes stale or unchanged --------------------------------------------------


def synced(**written: str) -> LedgerEntry:
    return LedgerEntry(
        ADA, "synced", hubspot_id="101", audiences={"gold": AppliedAudience("realized", 200)}, written=written
    )


def test_a_new_contact_with_nothing_to_write_is_not_created_and_keeps_its_value(messages: Messages) -> None:
    plan = plan_for(coalesce(messages(ContactUpdate(ADA, (), {"unknown_prop": "x"}))))
    assert plan.writes == [] and plan.outcomes == {ADA: Outcome.FAILED}
    (record,) = plan.records
    assert record.status == "failed" and record.pending_attributes["unknown_prop"].value == "x"
    assert record.reason is not None and record.reason.startswith("attribute unknown_prop: ")


def test_audience_changes_not_newer_than_applied_are_dropped(messages: Messages) -> None:
    ledger = {ADA: synced(aud_gold="realized")}
    stale = plan_for(coalesce(messages(ContactUpdate(ADA, (exited("gold", 150),)))), ledger)
    assert stale.writes == [] and stale.outcomes == {ADA: Outcome.SKIPPED} and stale.records == []
    newer = plan_for(coalesce(messages(ContactUpdate(ADA, (exited("gold", 250),)))), ledger)
    assert newer.writes[0].properties == {"aud_gold": "exited"}


def test_a_write_identical_to_the_last_successful_one_is_skipped(messages: Messages) -> None:
    ledger = {ADA: synced(aud_gold="realized", city="Paris")}
    plan = plan_for(coalesce(messages(ContactUpdate(ADA, (), {"city": "Paris"}))), ledger)
    assert plan.writes == [] and plan.outcomes == {ADA: Outcome.SKIPPED}
    changed = plan_for(coalesce(messages(ContactUpdate(ADA, (), {"city": "Lyon"}))), ledger)
    assert [w.properties for w in changed.writes] == [{"city": "Lyon"}]


def test_a_requalification_with_the_same_status_is_remembered_without_a_write(messages: Messages) -> None:
    ledger = {ADA: synced(aud_gold="realized")}
    plan = plan_for(coalesce(messages(ContactUpdate(ADA, (realized("gold", 300),)))), ledger)
    assert plan.writes == []
    (record,) = plan.records
    assert record.audiences["gold"] == AppliedAudience("realized", 300, (NOW_MS + 1000, 0))


def test_a_write_hubspot_refused_is_not_sent_again(messages: Messages) -> None:
    batch = coalesce(messages(ContactUpdate(ADA, (), {"city": "Paris"})))
    first = plan_for(batch)
    (write,) = first.writes
    ledger = {ADA: LedgerEntry(ADA, "failed", rejected=write.fingerprint())}
    again = plan_for(batch, ledger)
    assert again.writes == [] and again.records == [] and again.outcomes == {ADA: Outcome.SKIPPED}


def test_an_audience_without_a_property_is_a_problem_but_attributes_still_go(messages: Messages) -> None:
    batch = coalesce(messages(ContactUpdate(ADA, (realized("gold", 100),), {"city": "Paris"})))
    plan = plan_for(batch, broken="gold")
    (write,) = plan.writes
    assert write.properties == {"city": "Paris"} and write.problems == ["audience gold: no room"]


def test_invalid_values_are_dropped_with_a_warning_and_email_is_never_a_property(messages: Messages) -> None:
    batch = coalesce(messages(ContactUpdate(ADA, (), {"age": "old", "email": ADA, "city": "Paris"})))
    (write,) = plan_for(batch).writes
    assert write.properties == {"city": "Paris"} and "age" in write.warnings


# --- HubSpot's answers -------------------------------------------------------------------------


def refusal(*names: str) -> UpsertResult:
    errors = [{"name": name, "error": "INVALID_OPTION", "message": "bad"} for name in names]
    return UpsertResult(ADA, error=HubSpotError(ErrorKind.PERMANENT, "bad", 400), property_errors=errors)


def test_refused_fields_are_dropped_and_the_contact_sent_again(messages: Messages) -> None:
    (write,) = plan_for(coalesce(messages(ContactUpdate(ADA, (), {"city": "x", "firstname": "A"})))).writes
    assert drop_refused_fields(write, refusal("city"))
    assert write.properties == {"firstname": "A"}
    assert write.problems == ["attribute city: HubSpot refused the value (INVALID_OPTION: bad)"]
    assert write.pending_attributes["city"].value == "x"
    assert write.refused_values == {"city": value_fingerprint("x")}
    assert not drop_refused_fields(write, refusal("email"))  # the contact itself is refused
    assert not drop_refused_fields(write, refusal("not_sent"))


def test_a_refusal_naming_no_property_is_the_whole_contacts(messages: Messages) -> None:
    (write,) = plan_for(coalesce(messages(ContactUpdate(ADA, (), {"city": "x", "firstname": "A"})))).writes
    nameless = refusal("city")
    nameless.property_errors.append({"name": None, "error": "REQUIRED", "message": "company is required"})
    assert not drop_refused_fields(write, nameless)
    assert write.properties == {"city": "x", "firstname": "A"} and write.refused_values == {}


def test_outcomes_of_success_refusal_and_transient_failure(messages: Messages) -> None:
    batch = coalesce(messages(ContactUpdate(ADA, (realized("gold", 100),), {"city": "Paris"})))
    (write,) = plan_for(batch).writes
    outcome, entry = outcome_of(write, UpsertResult(ADA, contact_id="7"), NOW_MS, NOW_MS)
    assert outcome is Outcome.SYNCED and entry is not None and entry.hubspot_id == "7"
    assert entry.written == {"city": "Paris", "aud_gold": "realized"}
    assert entry.audiences == {"gold": AppliedAudience("realized", 100, (NOW_MS + 1000, 0))}
    assert entry.updated_at_ms == NOW_MS
    transient = UpsertResult(ADA, error=HubSpotError(ErrorKind.RETRYABLE, "502"))
    assert outcome_of(write, transient, NOW_MS, NOW_MS) == (Outcome.RETRY, None)
    outcome, entry = outcome_of(write, refusal(), NOW_MS, NOW_MS)
    assert outcome is Outcome.FAILED and entry is not None and entry.rejected == write.fingerprint()
    assert entry.reason and "HubSpot rejected the contact" in entry.reason


# --- messages back to the queue ----------------------------------------------------------------


def message(message_id: str, group: str, receive_count: int = 1) -> InboundMessage:
    return InboundMessage(message_id, group, "{}", f"rh-{message_id}", receive_count)


def test_a_failed_message_takes_every_later_message_of_its_group() -> None:
    batch = [message("a1", "A"), message("b1", "B"), message("a2", "A"), message("b2", "B")]
    assert messages_to_return(batch, {"a1"}) == ["a1", "a2"]
    assert messages_to_return(batch, {"b2"}) == ["b2"]
    assert messages_to_return(batch, set()) == []


def test_retry_delays_grow_with_the_receive_count_up_to_a_cap() -> None:
    batch = [message("a", "A", 1), message("b", "B", 3), message("c", "C", 50)]
    schedule = retry_schedule(batch, ["a", "b", "c"], 10, None, 0.0)
    assert {delay: [m.message_id for m in group] for delay, group in schedule.items()} == {
        10: ["a"],
        40: ["b"],
        MAX_RETRY_DELAY_SECONDS: ["c"],
    }


def test_a_daily_pause_lasts_until_the_reset_within_sqs_bounds() -> None:
    batch = [message("a", "A", 9)]
    assert list(retry_schedule(batch, ["a"], 10, 1_000.0 + 3_600, 1_000.0)) == [3_600]
    assert list(retry_schedule(batch, ["a"], 10, 1_000.0 + 5, 1_000.0)) == [MIN_DAILY_PAUSE_SECONDS]
    assert list(retry_schedule(batch, ["a"], 10, 1_000.0 + 10**6, 1_000.0)) == [MAX_VISIBILITY_SECONDS]
    assert retry_schedule(batch, [], 10, None, 0.0) == {}


# --- order across batches, replays and redrives ------------------------------------------------


def written_by(plan: Any, sent_ms: int = NOW_MS) -> LedgerEntry:
    """The ledger after HubSpot confirmed the plan's single write."""
    (write,) = plan.writes
    outcome, entry = outcome_of(write, UpsertResult(write.email, contact_id="101"), sent_ms, sent_ms)
    assert outcome in (Outcome.SYNCED, Outcome.FAILED) and entry is not None
    return entry


def test_an_older_message_replayed_after_a_newer_one_never_rolls_attributes_back(messages: Messages) -> None:
    older = messages(ContactUpdate(ADA, (), {"city": "Paris"}), received_ms=NOW_MS)
    newer = messages(ContactUpdate(ADA, (), {"city": "Lyon"}), received_ms=NOW_MS + 5_000)
    ledger = {ADA: written_by(plan_for(coalesce(newer)))}
    replayed = plan_for(coalesce(older), ledger)
    assert replayed.writes == [] and replayed.outcomes == {ADA: Outcome.SKIPPED}
    # Within one batch too, whatever the delivery order: the later received value wins.
    assert coalesce(newer + older).contacts[ADA].attributes["city"][0] == "Lyon"


def test_a_value_asked_again_later_moves_the_applied_order_so_an_older_one_stays_out(
    messages: Messages,
) -> None:
    first = messages(ContactUpdate(ADA, (), {"city": "Lyon"}), received_ms=NOW_MS)
    middle = messages(ContactUpdate(ADA, (), {"city": "Paris"}), received_ms=NOW_MS + 1_000)
    last = messages(ContactUpdate(ADA, (), {"city": "Lyon"}), received_ms=NOW_MS + 2_000)
    ledger = {ADA: written_by(plan_for(coalesce(first)))}
    resent = plan_for(coalesce(last), ledger)  # unchanged: no write, but the newer order is kept
    assert resent.writes == []
    (record,) = resent.records
    assert record.attribute_order["city"] == (NOW_MS + 2_000, 0)
    assert plan_for(coalesce(middle), {ADA: record}).writes == []


def test_equal_timestamps_go_to_the_later_received_in_and_across_batches(messages: Messages) -> None:
    early = messages(ContactUpdate(ADA, (realized("gold", 100),)), received_ms=NOW_MS)
    late = messages(ContactUpdate(ADA, (exited("gold", 100),)), received_ms=NOW_MS + 1)
    in_batch = coalesce(late + early).contacts[ADA].audiences["gold"].change
    assert in_batch.status is AudienceStatus.EXITED
    ledger = {ADA: written_by(plan_for(coalesce(early)))}
    across = plan_for(coalesce(late), ledger)
    assert [w.properties for w in across.writes] == [{"aud_gold": "exited"}]
    ledger = {ADA: written_by(plan_for(coalesce(late)))}
    assert plan_for(coalesce(early), ledger).writes == []  # the earlier-received tie stays out


def test_an_audience_without_a_property_stays_pending_and_rides_every_later_update(
    messages: Messages,
) -> None:
    first = coalesce(messages(ContactUpdate(ADA, (realized("gold", 100),), {"city": "Paris"})))
    plan = plan_for(first, broken="gold")
    ledger = {ADA: written_by(plan)}
    assert ledger[ADA].status == "failed" and "gold" in ledger[ADA].pending_audiences
    # The operator raised the limit; a later update about something else still applies gold.
    later = coalesce(messages(ContactUpdate(ADA, (), {"firstname": "Ada"})))
    (write,) = plan_for(later, ledger).writes
    assert write.properties == {"firstname": "Ada", "aud_gold": "realized"}
    after = written_by(plan_for(later, ledger))
    assert after.pending_audiences == {} and after.status == "synced"
    assert after.audiences["gold"].status == "realized"


def test_a_replay_with_no_changes_applies_what_is_pending(messages: Messages) -> None:
    # A contact with nothing else to write is not created: only its pending change is recorded.
    first = coalesce(messages(ContactUpdate(ADA, (realized("gold", 100),))))
    (failed,) = plan_for(first, broken="gold").records
    assert failed.status == "failed" and failed.hubspot_id is None
    replay = coalesce(messages(ContactUpdate(ADA, source="replay")))
    (write,) = plan_for(replay, {ADA: failed}).writes
    assert write.properties == {"aud_gold": "realized"}
    # A newer change that arrived meanwhile wins over the pending one.
    newer = coalesce(messages(ContactUpdate(ADA, (exited("gold", 200),))))
    (write,) = plan_for(newer, {ADA: failed}).writes
    assert write.properties == {"aud_gold": "exited"}


def test_a_value_for_a_property_hubspot_lacks_is_kept_for_a_replay(messages: Messages) -> None:
    plan = plan_for(coalesce(messages(ContactUpdate(ADA, (), {"loyalty_tier": "gold", "city": "Paris"}))))
    entry = written_by(plan)
    assert entry.pending_attributes["loyalty_tier"].value == "gold"
    created = {**DEFINITIONS, "loyalty_tier": {"name": "loyalty_tier", "type": "string"}}
    replay = coalesce(messages(ContactUpdate(ADA, source="replay")))
    (write,) = plan_writes(replay, {ADA: entry}, {}, created, NOW_MS).writes
    assert write.properties == {"loyalty_tier": "gold"}


def test_an_ambiguous_outcome_never_counts_as_written(messages: Messages) -> None:
    old = coalesce(messages(ContactUpdate(ADA, (), {"city": "Paris"})))
    new = coalesce(messages(ContactUpdate(ADA, (), {"city": "Lyon"})))
    (write,) = plan_for(old).writes
    timeout = UpsertResult(ADA, error=HubSpotError(ErrorKind.RETRYABLE, "ReadTimeout", ambiguous=True))
    outcome, unsure = outcome_of(write, timeout, NOW_MS, NOW_MS)
    assert outcome is Outcome.RETRY and unsure is not None and unsure.unconfirmed_at_ms == NOW_MS
    # The newer write succeeds soon after; HubSpot may still apply the old one late.
    confirmed = written_by(plan_for(new, {ADA: unsure}), sent_ms=NOW_MS + 1_000)
    assert confirmed.unconfirmed_at_ms == NOW_MS
    resend = plan_for(new, {ADA: confirmed})
    assert [w.properties for w in resend.writes] == [{"city": "Lyon"}]  # sent, not skipped
    # A write confirmed once HubSpot can no longer apply the old one ends the doubt.
    settled = written_by(resend, sent_ms=NOW_MS + AMBIGUITY_SETTLE_MS)
    assert settled.unconfirmed_at_ms is None
    assert plan_for(new, {ADA: settled}).writes == []


# --- operator actions: replay, deleted audiences -------------------------------------------------


def refused(write: Any) -> LedgerEntry:
    """The ledger after HubSpot refused ``write`` for good."""
    error = HubSpotError(ErrorKind.PERMANENT, "Property values were not valid", category="VALIDATION_ERROR")
    outcome, entry = outcome_of(write, UpsertResult(write.email, error=error), NOW_MS, NOW_MS)
    assert outcome is Outcome.FAILED and entry is not None and entry.status == "failed"
    return entry


def test_a_replay_alone_sends_the_write_hubspot_refused_once_more(messages: Messages) -> None:
    batch = coalesce(messages(ContactUpdate(ADA, (realized("gold", 100),), {"city": "Paris"})))
    (write,) = plan_for(batch).writes
    ledger = {ADA: refused(write)}
    # Without a replay the same write stays refused and the contact failed.
    same = coalesce(messages(ContactUpdate(ADA, (realized("gold", 100),), {"city": "Paris"})))
    again = plan_for(same, ledger)
    assert again.writes == [] and again.records == []
    # The replay's batch holds only the operator's marker: the refused changes come from the ledger.
    replay = plan_for(coalesce(messages(ContactUpdate(ADA, source="replay"))), ledger)
    (replayed,) = replay.writes
    assert replayed.properties == {"city": "Paris", "aud_gold": "realized"}
    assert written_by(replay).status == "synced"


def test_a_newer_change_wins_over_a_refused_one_kept_for_a_replay(messages: Messages) -> None:
    (write,) = plan_for(coalesce(messages(ContactUpdate(ADA, (), {"city": "Paris"})))).writes
    ledger = {ADA: refused(write)}
    (newer,) = plan_for(coalesce(messages(ContactUpdate(ADA, (), {"city": "Lyon"}))), ledger).writes
    assert newer.properties == {"city": "Lyon"}


def test_a_replay_with_nothing_to_send_leaves_a_refused_contact_failed(messages: Messages) -> None:
    ledger = {ADA: LedgerEntry(ADA, "failed", hubspot_id="1", rejected="abc", reason="refused")}
    plan = plan_for(coalesce(messages(ContactUpdate(ADA, source="replay"))), ledger)
    assert plan.writes == [] and plan.records == []


def test_a_replay_never_applies_a_pending_change_older_than_the_applied_one(messages: Messages) -> None:
    ledger = {
        ADA: replace(
            synced(aud_gold="exited"),
            audiences={"gold": AppliedAudience("exited", 200, (NOW_MS + 5000, 0))},
            pending_audiences={"gold": PendingAudience("realized", 100, (NOW_MS + 1000, 0))},
        )
    }
    plan = plan_for(coalesce(messages(ContactUpdate(ADA, source="replay"))), ledger)
    assert plan.writes == []
    (record,) = plan.records
    assert record.audiences["gold"].status == "exited" and record.pending_audiences == {}


def test_changes_of_a_deleted_audience_are_not_written_but_kept_in_order(messages: Messages) -> None:
    batch = coalesce(messages(ContactUpdate(ADA, (realized("gold", 100), realized("vip", 100)))))
    audiences = {
        "gold": AudienceProperty("gold", "aud_gold", deleted=True),
        "vip": AudienceProperty("vip", "aud_vip"),
    }
    plan = plan_writes(batch, {}, audiences, DEFINITIONS, NOW_MS)
    (write,) = plan.writes
    assert write.properties == {"aud_vip": "realized"}
    assert write.warnings == {"audience gold": DELETED_AUDIENCE_WARNING}
    entry = written_by(plan)
    assert "gold" not in entry.audiences and entry.pending_audiences["gold"].status == "realized"
    assert entry.warnings == {"audience gold": DELETED_AUDIENCE_WARNING} and entry.status == "synced"
