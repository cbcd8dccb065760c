"""Survey definitions: checked on load, with errors that name the line to fix."""

from __future__ import annotations

import pytest

from feedback.surveys import DEFAULT_SURVEY, SurveyDefinitionError, parse_definition

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
        ("version = 1", "version = 0", "version = 0", "version must be"),
    ],
)
def test_mistakes_name_their_line(old: str, new: str, needle: str, message: str) -> None:
    text = TEXT.replace(old, new, 1)
    with pytest.raises(SurveyDefinitionError, match=message) as refused:
        parse_definition(text, "mine.toml")
    assert f"line {line_of(text, needle)}:" in str(refused.value)
