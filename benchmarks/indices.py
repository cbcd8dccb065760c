"""share_half_width_300 (issue 12): a question's agree share under the default plan. (The
indices' figures are in benchmarks.coverage.)"""

from __future__ import annotations

import json
import random
import sys
from decimal import Decimal
from typing import Any

from feedback.aggregate.privacy import DEFAULT_THRESHOLD, Noise, Tally, release
from feedback.stats import advisor
from feedback.stats.cells import AGREE, DISAGREE, NEITHER, Layout
from feedback.stats.shares import preview, share_interval
from feedback.surveys import FIRST_VERSION, load_survey

EPSILON = 1.0
RELEASES = 2000
# Synthetic answers: agreement leaning high, as feedback surveys find (a mean of about 65),
# with one item in twenty skipped.
LIKERT_WEIGHTS = (0.1, 0.1, 0.15, 0.3, 0.35)


SHARE_RESPONDENTS = 300
SHARE_TARGET = 15.0


def share_figures() -> dict[str, Any]:
    """share_half_width_300 (issue 12): the 95% half-width, in points, of one question's
    agree share at 300 respondents a year under the default plan (what ``feedback plan
    advise`` recommends for 300 respondents and the default budget of 4: the questions in
    three categories once a year, beside quarterly indices), averaged over 2,000 releases of
    synthetic answers through the release code (``Tally``, OpenDP's discrete Laplace in
    ``release``, ``share_interval``, which covers sampling and noise since issue 22). The
    baseline is the same share in a release of every
    scale question of the survey (14) at the same size and the organisation's default epsilon
    per release (1), as plans were made before the advisor."""
    rng = random.Random(300)  # noqa: S311 - synthetic answers
    survey = load_survey()
    advice = advisor.advise(survey, SHARE_RESPONDENTS, Decimal(4))
    [detail] = [line for line in advice.lines if line.kind == "questions"]
    layout = Layout.plan(survey, detail.questions)
    noise = Noise(detail.epsilon, layout.sensitivity)
    question = detail.questions[0]
    widths, covered = [], 0
    for _ in range(RELEASES):
        tally = Tally(layout)
        for _ in range(SHARE_RESPONDENTS):
            answers = rng.choices(range(1, 6), LIKERT_WEIGHTS, k=len(detail.questions))
            tally.add(
                {
                    q: a
                    for q, a in zip(detail.questions, answers, strict=True)
                    if rng.random() > 0.05
                }
            )
        exact = _agree_share(tally.counts[1:4])
        [group] = release(tally, noise, threshold=0)
        cells = group.cells[question]
        _, interval = share_interval(
            cells[AGREE] or 0,
            (cells[NEITHER] or 0) + (cells[DISAGREE] or 0),
            cells_in_numerator=1,
            cells_in_rest=2,
            scale=noise.scale,
        )
        widths.append((interval.high - interval.low) / 2 * 100)
        covered += interval.low <= exact <= interval.high
    first = load_survey(FIRST_VERSION)  # as plans were made before: all 14 scale questions
    likert = [q.id for q in first.questions if q.type == "likert5"]
    before = preview(Layout.plan(first, likert), 1.0, SHARE_RESPONDENTS, DEFAULT_THRESHOLD)
    baseline = before.share_half_width[question] * 100
    value = sum(widths) / len(widths)
    print(
        json.dumps({"share_half_width_300": {"coverage": covered / RELEASES, "plan": str(detail)}}),
        file=sys.stderr,
    )
    return {
        "share_half_width_300": {
            "value": round(value, 2),
            "unit": "points",
            "baseline": round(baseline, 2),
            "ratio": round(value / baseline, 4),
            "target": SHARE_TARGET,
        }
    }


def _agree_share(counts: list[int]) -> float:
    agree, neither, disagree = counts
    return agree / (agree + neither + disagree)
