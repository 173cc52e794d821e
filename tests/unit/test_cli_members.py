"""The CLI's reading of member files and their grouping into native-format profiles and batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hubspot_activation_cli.members import MemberFileError, batches, detect_format, read_members


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_columns_become_email_membership_and_attributes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "members.csv",
        "\ufeffEmail, audience_id ,audience_name,Status,timestamp,firstName,city\n"
        "ada@example.com,gold,Gold members,realized,2026-11-20T10:00:00Z,Ada,\n",
    )
    (member,) = read_members(path, "csv")
    assert member.email == "ada@example.com"
    assert (member.audience_id, member.audience_name, member.status) == ("gold", "Gold members", "realized")
    assert member.timestamp == "2026-11-20T10:00:00Z"
    # Attribute names keep their case (the API maps firstName); an empty cell changes nothing.
    assert member.attributes == {"firstName": "Ada"}
    assert member.line == 2


def test_csv_without_an_email_column_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "members.csv", "mail,status\nada@example.com,realized\n")
    with pytest.raises(MemberFileError, match="no email column"):
        list(read_members(path, "csv"))


def test_csv_row_with_more_cells_than_columns_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "members.csv", "email,status\na@example.com,realized\nb@example.com,exited,x\n")
    with pytest.raises(MemberFileError, match=r"members.csv:3: 3 cells for 2 columns"):
        list(read_members(path, "csv"))


def test_csv_skips_blank_lines_and_keeps_quoted_commas(tmp_path: Path) -> None:
    path = write(tmp_path, "members.csv", 'email,company\n\na@example.com,"Acme, Inc."\n,\n')
    (member,) = read_members(path, "csv")
    assert member.attributes == {"company": "Acme, Inc."}


def test_jsonl_keys_and_values_are_kept_as_written(tmp_path: Path) -> None:
    lines = [
        {"email": "ada@example.com", "audience_id": "gold", "status": "exited", "score": 7, "vip": True},
        {"email": "bob@example.com", "lastname": ""},
    ]
    path = write(tmp_path, "members.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n\n")
    ada, bob = read_members(path, "jsonl")
    assert (ada.audience_id, ada.status) == ("gold", "exited")
    assert ada.attributes == {"score": 7, "vip": True}
    assert bob.attributes == {"lastname": ""}  # an explicit "" clears the value in HubSpot


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"email": "a@example.com"}\n{not json}\n', r"members.jsonl:2: not JSON"),
        ('["a@example.com"]\n', r"members.jsonl:1: each line must be a JSON object"),
        ('{"mail": "a@example.com"}\n', r"members.jsonl:1: no email key"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "members.jsonl", text)
    with pytest.raises(MemberFileError, match=message):
        list(read_members(path, "jsonl"))


def test_format_comes_from_the_extension_or_the_flag(tmp_path: Path) -> None:
    assert detect_format(Path("a.CSV")) == "csv"
    assert detect_format(Path("a.ndjson")) == "jsonl"
    assert detect_format(Path("a.txt"), "jsonl") == "jsonl"
    with pytest.raises(MemberFileError, match="--format"):
        detect_format(Path("a.txt"))
    with pytest.raises(MemberFileError, match="No such file"):
        list(read_members(tmp_path / "missing.csv", "csv"))


def test_rows_of_one_email_in_a_batch_become_one_profile(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "members.csv",
        "email,audience_id,audience_name,status,firstname,city\n"
        "Ada@Example.com,gold,Gold,realized,Ada,Paris\n"
        "bob@example.com,gold,Gold,realized,Bob,\n"
        " ada@example.com ,silver,Silver,realized,,London\n"
        "ada@example.com,gold,,exited,,\n",
    )
    (batch,) = batches(read_members(path, "csv"), size=10)
    assert batch.rows == 4
    ada, bob = batch.profiles
    assert ada == {
        "email": "Ada@Example.com",
        "attributes": {"firstname": "Ada", "city": "London"},
        # The later row wins the status; the name given earlier is kept.
        "audiences": {
            "gold": {"status": "exited", "name": "Gold"},
            "silver": {"status": "realized", "name": "Silver"},
        },
    }
    assert bob["audiences"] == {"gold": {"status": "realized", "name": "Gold"}}


def test_batches_hold_at_most_size_profiles_and_regroup_per_batch(tmp_path: Path) -> None:
    emails = ["a", "b", "a", "c", "d", "c", "e", "a"]
    path = write(tmp_path, "members.csv", "email\n" + "".join(f"{e}@example.com\n" for e in emails))
    sent = list(batches(read_members(path, "csv"), size=2))
    assert [[p["email"][0] for p in batch.profiles] for batch in sent] == [["a", "b"], ["c", "d"], ["e", "a"]]
    assert [batch.rows for batch in sent] == [3, 3, 2]


def test_rows_without_an_email_are_never_merged(tmp_path: Path) -> None:
    path = write(tmp_path, "members.csv", "email,city\n,Paris\n,London\nnot-an-email,Rome\n")
    (batch,) = batches(read_members(path, "csv"), size=10)
    assert [profile["attributes"]["city"] for profile in batch.profiles] == ["Paris", "London", "Rome"]


def test_a_status_without_an_audience_id_is_passed_on_for_the_api_to_report(tmp_path: Path) -> None:
    path = write(tmp_path, "members.csv", "email,audience_id,status\na@example.com,,realized\n")
    (batch,) = batches(read_members(path, "csv"), size=10)
    assert batch.profiles[0]["audiences"] == {"": {"status": "realized"}}


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        list(batches([], size=0))
