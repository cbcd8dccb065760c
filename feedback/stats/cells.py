"""The cells of a release: fixed by the survey and the release plan, never by the data.

A release is a fixed layout of integer cells: for each group (the whole program, or each answer
of one single-choice question), a respondent count ``n`` and, for each question, a count per
answer category plus ``skipped``. A five-point scale is released in three categories (agree,
neither, disagree): at the sizes programs have, seven noisy counts per question say nothing.
A comment question is released only as a count: ``written`` (a comment that is not blank) or
``skipped``; its text never leaves the worker. Each respondent adds exactly 1 to ``n`` and 1
cell per question, so one survivor changes at most ``1 + Q`` cells by 1. The aggregator counts
into this layout; the dashboard and the API read releases through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from feedback.envelope import WRITTEN as WRITTEN  # the comment question's one category
from feedback.errors import FeedbackError
from feedback.surveys import INDICES, PREFER_NOT, IndexName, Question, Survey

SKIPPED = "skipped"
SUPPRESSED = "S"


class PrivacyError(FeedbackError):
    pass


AGREE, NEITHER, DISAGREE = "agree", "neither", "disagree"
_SCALE_CELLS = {"1": DISAGREE, "2": DISAGREE, "3": NEITHER, "4": AGREE, "5": AGREE}


def categories(question: Question) -> tuple[str, ...]:
    """A question's cells, in a fixed order: its answer categories, then ``skipped``."""
    if question.type == "likert5":
        values: tuple[str, ...] = (AGREE, NEITHER, DISAGREE, PREFER_NOT)
    elif question.type == "comment":
        values = (WRITTEN,)
    else:
        values = tuple(str(v) for v in sorted(question.allowed(), key=str))
        if question.type == "single_choice":
            values = tuple(option.id for option in question.options)
    return (*values, SKIPPED)


def cell_of(question: Question, answer: object) -> str:
    """The category an allowed answer is counted in: 4 and 5 agree, 3 neither, 1 and 2
    disagree on a scale; any other answer is its own category."""
    text = str(answer)
    return _SCALE_CELLS.get(text, text) if question.type == "likert5" else text


@dataclass(frozen=True, slots=True)
class Layout:
    """Which cells a release has: fixed by the survey and the plan, never by the data."""

    survey: Survey = field(repr=False, compare=False)  # what every envelope is checked against
    questions: tuple[Question, ...]
    groups: tuple[str, ...]  # ("all",) or the breakdown question's categories
    breakdown: str | None = None
    # An indices release instead of questions: per group and index, the count of those who
    # answered it, the sum of their centred contributions and of their squares
    # (feedback.stats.means), noised as its plan splits epsilon.
    indices: tuple[IndexName, ...] = ()

    def __post_init__(self) -> None:
        if self.indices and self.questions:
            raise PrivacyError("a release has either questions or indices, not both")

    @classmethod
    def plan(
        cls, survey: Survey, question_ids: Sequence[str], breakdown: str | None = None
    ) -> Layout:
        if len(set(question_ids)) != len(question_ids):
            raise PrivacyError("each question is released once: a line names it twice")
        chosen = [survey.question(question_id) for question_id in question_ids]
        if breakdown is None:
            return cls(survey, tuple(chosen), ("all",))
        by = survey.question(breakdown)
        if by.type != "single_choice":
            # A demographic group (the equity view) or the time in program (outcomes over time).
            raise PrivacyError(f"{breakdown!r} is not a single-choice question to group by")
        if breakdown in question_ids:
            raise PrivacyError("the breakdown question is not also a released question")
        return cls(survey, tuple(chosen), categories(by), breakdown)

    @classmethod
    def for_indices(cls, survey: Survey, breakdown: str | None = None) -> Layout:
        """The indices the survey tags items with, by group."""
        tagged = tuple(index for index in INDICES if survey.items_of(index))
        if not tagged:
            raise PrivacyError(f"{survey.slug} v{survey.version} tags no item with an index")
        grouped = cls.plan(survey, [], breakdown)
        return cls(survey, (), grouped.groups, breakdown, tagged)

    def question_ids(self) -> list[str]:
        return [q.id for q in self.questions]

    @property
    def comment(self) -> str | None:
        """The comment question, when the release counts comments written."""
        return next((q.id for q in self.questions if q.type == "comment"), None)

    @property
    def sensitivity(self) -> int:
        """Cells one respondent touches: n, and one per question (in exactly one group)."""
        return 1 + len(self.questions)

    def cells_per_group(self) -> int:
        """n, then each question's categories, or each index's count, sum and squares."""
        return 1 + 3 * len(self.indices) + sum(len(categories(q)) for q in self.questions)

    def __len__(self) -> int:
        return len(self.groups) * self.cells_per_group()
