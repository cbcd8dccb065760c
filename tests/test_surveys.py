"""Survey definitions: checked on load, with errors that name the line to fix."""

from __future__ import annotations

import pytest

from feedback.surveys import (
    DEFAULT_SURVEY,
    SurveyDefinitionError,
    from_json,
    parse_definition,
)

TEXT = DEFAULT_SURVEY.read_text()


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_the_default_survey_loads() -> None:
    survey = parse_definition(TEXT, "rights-based.toml")
    assert survey.question("gender").options[0].id == "woman"


@pytest.mark.parametrize("reserved", ["skipped", "prefer_not", "all"])
def test_a_reserved_option_id_is_refused_with_its_line(reserved: str) -> None:
    """An option called "skipped" would vanish into the skipped cell of every release."""
    text = TEXT.replace('{ id = "another"', f'{{ id = "{reserved}"')
    with pytest.raises(SurveyDefinitionError) as refused:
        parse_definition(text, "mine.toml")
    line = line_of(text, f'id = "{reserved}"')
    assert str(refused.value).startswith(f"mine.toml, line {line}: ")
    assert "reserved" in str(refused.value)


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        ('{ id = "another"', '{ id = "man"', '{ id = "man"', "used twice"),
        ('type = "likert5"\ntext = "Staff', 'type = "likert7"\ntext = "Staff', "likert7", "type"),
        ("version = 2", "version = 0", "version = 0", "version must be"),
        ('index = "rights"', 'index = "wellbeing"', "wellbeing", "index must be one of"),
    ],
)
def test_mistakes_name_their_line(old: str, new: str, needle: str, message: str) -> None:
    text = TEXT.replace(old, new, 1)
    with pytest.raises(SurveyDefinitionError, match=message) as refused:
        parse_definition(text, "mine.toml")
    assert f"line {line_of(text, needle)}:" in str(refused.value)


def test_items_join_their_index_by_tag_and_the_tag_is_stored() -> None:
    survey = parse_definition(TEXT, "rights-based.toml")
    assert [q.id for q in survey.items_of("rights")] == [
        "believed",
        "respected",
        "needs_asked",
        "own_decisions",
    ]
    assert {q.id for q in survey.items_of("recovery")} == {
        "safe_now",
        "trust_help",
        "housing",
        "income",
    }
    # An organisation's own item joins by its tag; the stored definition keeps it.
    heard = '[[questions]]\nid = "heard"\ntype = "likert5"\nindex = "rights"\ntext = "I was heard."'
    own = f"{TEXT}\n{heard}\n"
    mine = parse_definition(own, "mine.toml")
    assert mine.items_of("rights")[-1].id == "heard"
    assert from_json(mine.to_json()).items_of("rights") == mine.items_of("rights")
    # A definition stored before tags existed has none.
    document = mine.to_json()
    for question in document["questions"]:
        question.pop("index", None)
    assert from_json(document).items_of("rights") == ()


def test_only_likert_items_join_an_index() -> None:
    text = TEXT.replace('id = "gender"\n', 'id = "gender"\nindex = "recovery"\n', 1)
    with pytest.raises(SurveyDefinitionError, match="only likert5 questions join an index"):
        parse_definition(text, "mine.toml")


def test_the_default_bank_is_the_twelve_items_of_design_section_7() -> None:
    survey = parse_definition(TEXT, "rights-based.toml")
    answerable = [q for q in survey.questions if q.type != "comment"]
    assert len(answerable) == 12
    assert [q.id for q in survey.items_of("rights")] == [
        "believed",
        "respected",
        "needs_asked",
        "own_decisions",
    ]
    assert {q.id for q in survey.items_of("recovery")} == {
        "safe_now",
        "trust_help",
        "housing",
        "income",
    }
    about_you = [q.id for q in answerable if q.section == "about_you"]
    assert about_you == ["time_in_program", "gender", "age_band", "exploitation"]
    assert set(survey.sms_questions) <= {q.id for q in answerable if q.index}
