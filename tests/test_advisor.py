"""The plan advisor: from the respondents expected and the budget, the plan that shows the
most that can be read, within the budget, and what it will be able to show."""

from __future__ import annotations

from decimal import Decimal

import pytest

from feedback.stats import advisor, means
from feedback.stats.cells import Layout
from feedback.surveys import load_survey

SURVEY = load_survey()
ITEMS = [q.id for index in ("rights", "recovery") for q in SURVEY.items_of(index)]


def test_a_small_program_gets_the_indices_once_a_year_and_no_question_detail() -> None:
    advice = advisor.advise(SURVEY, 60, Decimal(1))
    [line] = advice.lines
    assert (line.kind, line.granularity, line.epsilon) == ("indices", "year", Decimal(1))
    assert line.half_width <= advisor.INDEX_GOAL
    said = " ".join(advice.sayings())
    assert "once a year, each within about \u00b111 points" in said  # sampling and noise
    assert "a difference of 24 points between two periods will usually be seen" in said
    assert "Each question's share on its own: not enough to show" in said


def test_a_larger_program_gets_quarterly_indices_and_yearly_detail_within_the_budget() -> None:
    advice = advisor.advise(SURVEY, 300, Decimal(4))
    index, detail = advice.lines
    assert (index.kind, index.granularity, index.expected_n) == ("indices", "quarter", 75)
    assert (detail.kind, detail.granularity, detail.expected_n) == ("questions", "year", 300)
    assert detail.questions == tuple(ITEMS)
    assert index.cost + detail.cost <= 4
    assert index.cost + detail.cost > Decimal("3.99")  # the budget is used, not left over
    assert index.half_width <= advisor.INDEX_GOAL
    assert detail.half_width <= advisor.DETAIL_GOAL
    # The previews the advice states are the plan's own.
    plan = means.split(index.epsilon, indices=2, expected_n=75)
    assert index.half_width == means.planned_half_width(plan, 75)
    assert detail.half_width == advisor.detail_half_width(SURVEY, ITEMS, detail.epsilon, 300)
    assert "Each question's share agreeing once a year" in " ".join(advice.sayings())


def test_a_program_between_the_two_gets_half_yearly_indices() -> None:
    """Too few for quarters to be read, enough that a year is longer than needed."""
    advice = advisor.advise(SURVEY, 500, Decimal(1))
    index, detail = advice.lines
    assert (index.kind, index.granularity, index.expected_n) == ("indices", "half", 250)
    assert (detail.kind, detail.granularity) == ("questions", "year")
    assert index.cost + detail.cost <= 1
    assert index.half_width <= advisor.INDEX_GOAL
    said = " ".join(advice.sayings())
    assert "every half-year, each within about" in said
    assert "at about 250 respondents a half-year" in said


def test_too_few_respondents_for_any_goal_is_said_and_pooling_suggested() -> None:
    advice = advisor.advise(SURVEY, 40, Decimal("0.5"))
    assert not advice.meets_goal
    assert [line.granularity for line in advice.lines] == ["year"]
    assert "pooling with other programs" in " ".join(advice.sayings())


@pytest.mark.parametrize(("respondents", "budget"), [(0, "1"), (60, "0"), (60, "0.01"), (60, "11")])
def test_bad_input_is_refused(respondents: int, budget: str) -> None:
    with pytest.raises(ValueError, match=r"respondent|budget"):
        advisor.advise(SURVEY, respondents, Decimal(budget))


def test_a_line_whose_preview_is_too_wide_says_why() -> None:
    questions = Layout.plan(SURVEY, ITEMS)
    assert advisor.shortfall(questions, Decimal(1), 300, None) is None
    wide = advisor.shortfall(questions, Decimal(1), 60, None)
    assert wide is not None
    assert "not enough answers to show this yet" in wide
    indices = Layout.for_indices(SURVEY)
    split = means.split(Decimal("0.2"), indices=2, expected_n=60)
    found = advisor.shortfall(indices, Decimal("0.2"), 60, split)
    assert found is not None
    assert "each index would be within about" in found
    assert (
        advisor.shortfall(indices, Decimal(1), 60, means.split(1, indices=2, expected_n=60)) is None
    )


def test_advice_is_planned_whole_or_not_at_all() -> None:
    advice = advisor.advise(SURVEY, 300, Decimal(4))
    advisor.check_affordable(advice, Decimal(4))
    with pytest.raises(ValueError, match="but only 3 is left to plan"):
        advisor.check_affordable(advice, Decimal(3))


def test_at_any_size_the_plan_stays_cheap_to_read_and_says_nothing_absurd() -> None:
    for respondents, budget in ((1, "10"), (60, "0.05"), (1_000_000, "4")):
        advice = advisor.advise(SURVEY, respondents, Decimal(budget))
        for line in advice.lines:
            if line.kind == "indices":
                assert line.epsilon >= means.LEAST_EPSILON
                assert means.split(line.epsilon, indices=2, expected_n=1).count >= Decimal("0.02")
        said = " ".join(advice.sayings())
        assert "1 respondents" not in said
        assert "±0 points" not in said
        if not advice.meets_goal:
            assert "too uncertain to read" in said
            assert "will usually be visible" not in said
