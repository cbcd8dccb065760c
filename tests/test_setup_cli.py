"""Setting up an installation from the command line alone: organisations, programs, surveys."""

from __future__ import annotations

from pathlib import Path

from feedback.db import Connection
from feedback.surveys import DEFAULT_SURVEY
from tests.aggregate.test_aggregate_cli import feedback, one_error


async def test_an_operator_sets_up_an_organisation_without_sql(
    conn: Connection, database_url: str
) -> None:
    empty = feedback(database_url, "organisations", "list")
    assert "no organisations yet" in empty.stdout
    made = feedback(database_url, "organisations", "create", "north", "--name", "North Aid")
    assert made.returncode == 0, made.stderr
    assert "feedback programs create" in made.stdout
    again = feedback(database_url, "organisations", "create", "north", "--name", "Other")
    assert "exists already" in one_error(again)
    bad = feedback(database_url, "organisations", "create", "North Aid", "--name", "x")
    assert "lower-case letters, digits and dashes" in one_error(bad)

    changed = feedback(
        database_url,
        "organisations", "set",
        "--name", "North Aid Network",
        "--sms-number", "+1 (555) 010-0000",
        "--sms-help", "Reply STOP to end. Call 555-0100 for help.",
        "--comments",
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    row = await conn.fetchrow(
        "SELECT name, sms_number, sms_help_text, comments_enabled FROM organisations"
    )
    assert row is not None
    assert tuple(row) == (
        "North Aid Network",
        "+15550100000",
        "Reply STOP to end. Call 555-0100 for help.",
        True,
    )
    for args, message in (
        (("--sms-number", "call me"), "is not a phone number"),
        (("--sms-name", "x" * 41), "1 to 40 characters"),
        ((), "say what to change"),
        (("--name", "Fine", "--sms-help", "y" * 141), "1 to 140 characters"),
        (("--sms-number", "call 555-0100 x12"), "is not a phone number"),
        (("--name", "North\tAid"), "control character"),
    ):
        refused = feedback(database_url, "organisations", "set", *args)
        assert message in one_error(refused), args
    assert await conn.fetchval("SELECT name FROM organisations") == "North Aid Network"
    cleared = feedback(database_url, "organisations", "set", "--sms-number", "")
    assert cleared.returncode == 0, cleared.stderr
    assert await conn.fetchval("SELECT sms_number FROM organisations") is None
    listed = feedback(database_url, "organisations", "list")
    assert "north: North Aid Network; 0 program(s); comments on" in listed.stdout

    program = feedback(database_url, "programs", "create", "shelter", "--name", "Shelter")
    assert program.returncode == 0, program.stderr
    twice = feedback(database_url, "programs", "create", "shelter", "--name", "Shelter")
    assert "exists already" in one_error(twice)
    renamed = feedback(database_url, "programs", "rename", "shelter", "--name", "Safe House")
    assert renamed.returncode == 0, renamed.stderr
    missing = feedback(database_url, "programs", "rename", "nowhere", "--name", "X")
    assert "no program 'nowhere'" in one_error(missing)
    assert "shelter: Safe House" in feedback(database_url, "programs", "list").stdout
    audited = await conn.fetch("SELECT action FROM audit_log ORDER BY id")
    assert [r["action"] for r in audited] == [
        "organisation.create",
        "organisation.set",
        "organisation.set",
        "program.create",
        "program.rename",
    ]


async def test_survey_definitions_are_versioned_and_never_changed(
    conn: Connection, database_url: str, tmp_path: Path
) -> None:
    feedback(database_url, "organisations", "create", "north", "--name", "North")
    text = DEFAULT_SURVEY.read_text(encoding="utf-8")
    survey = tmp_path / "survey.toml"
    survey.write_text(text)
    loaded = feedback(database_url, "surveys", "load", str(survey))
    assert loaded.returncode == 0, loaded.stderr
    assert "stored rights-based version 2 (13 questions)" in loaded.stdout
    same = feedback(database_url, "surveys", "load", str(survey))
    assert "is stored already: nothing changed" in same.stdout

    # New wording under the same version: the next version; the stored one stays as it was.
    survey.write_text(text.replace("Staff believed me.", "People here believed me.", 1))
    reworded = feedback(database_url, "surveys", "load", str(survey))
    assert reworded.returncode == 0, reworded.stderr
    assert "stored rights-based as version 3: version 2 holds the earlier wording" in (
        reworded.stdout
    )
    rows = await conn.fetch("SELECT version, definition FROM surveys ORDER BY version")
    assert [r["version"] for r in rows] == [2, 3]
    assert "Staff believed me." in str(rows[0]["definition"])
    twice = feedback(database_url, "surveys", "load", str(survey))
    assert "version 3 is stored already: nothing changed" in twice.stdout

    # A question id changed under a stored version: refused with its line; nothing stored.
    renamed = text.replace('id = "housing"', 'id = "home"', 1)
    survey.write_text(renamed)
    refused = one_error(feedback(database_url, "surveys", "load", str(survey)))
    line = next(n for n, row in enumerate(renamed.splitlines(), 1) if 'id = "home"' in row)
    assert f"line {line}: question 'home' is not in version 2" in refused
    assert "version = 4" in refused
    for bad, message in (
        (text.replace('slug = "rights-based"', 'slug = "rights-based\\n"', 1), "slug must be"),
        (text.replace("version = 2", "version = 3000000000", 1), "from 1 to 100000"),
    ):
        survey.write_text(bad)
        assert message in one_error(feedback(database_url, "surveys", "load", str(survey)))
    survey.write_text(text.replace("[[questions]]", "[[questions", 1))
    broken = one_error(feedback(database_url, "surveys", "load", str(survey)))
    assert str(survey) in broken
    assert "line" in broken
    assert await conn.fetchval("SELECT count(*) FROM surveys") == 2
    listed = feedback(database_url, "surveys", "list").stdout
    assert "rights-based v2:" in listed
    assert "rights-based v3:" in listed
