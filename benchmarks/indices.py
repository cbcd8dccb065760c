"""index_half_width_60 (issue 12): the 95% half-width, in points on 0 to 100, of the "Treated
with rights" index for a program of 60 respondents in a year, epsilon 1 spent on the year's
release of both indices, averaged over 2,000 releases of synthetic answers through the release
code (``release_indices``: OpenDP's discrete Laplace on the count and the sums, the budget split
``means.split`` chose, the interval ``means.interval``). The coverage of those intervals is
printed beside it. The baseline is what a manager read before: the half-width of one question's
agree share in the full seven-category release of the default survey, at the same size and
epsilon (the plan's accuracy preview)."""

from __future__ import annotations

import json
import random
import sys
from typing import Any

from feedback import means
from feedback.aggregate.privacy import DEFAULT_THRESHOLD, release_indices
from feedback.cells import Layout
from feedback.shares import preview
from feedback.surveys import load_survey

RESPONDENTS = 60
EPSILON = 1.0
RELEASES = 2000
TARGET = 8.0
# Synthetic answers: agreement leaning high, as feedback surveys find (mean index about 65).
LIKERT_WEIGHTS = (0.1, 0.1, 0.15, 0.3, 0.35)
ITEMS_PER_INDEX = 4


def _synthetic_sums(rng: random.Random) -> tuple[dict[str, int], float]:
    """Both indices' sums of centred contributions for one program-year, and the exact mean of
    "rights" on 0 to 100."""
    sums = {"rights": 0, "recovery": 0}
    for _ in range(RESPONDENTS):
        for index in sums:
            answers = rng.choices(range(1, 6), LIKERT_WEIGHTS, k=ITEMS_PER_INDEX)
            points = [means.item_points(a) for a in answers if rng.random() > 0.05]  # some skip
            sums[index] += means.contribution(points)
    return sums, means.MIDDLE + sums["rights"] / RESPONDENTS


def index_figures() -> dict[str, Any]:
    rng = random.Random(2026)  # noqa: S311 - synthetic answers
    plan = means.split(EPSILON, indices=2, expected_n=RESPONDENTS)
    widths, covered = [], 0
    for _ in range(RELEASES):
        sums, exact = _synthetic_sums(rng)
        found = release_indices(RESPONDENTS, sums, plan).interval("rights")
        widths.append((found.high - found.low) / 2)
        covered += found.low <= exact <= found.high
    survey = load_survey()
    likert = [q.id for q in survey.questions if q.type == "likert5"]
    before = preview(Layout.plan(survey, likert), EPSILON, RESPONDENTS, DEFAULT_THRESHOLD)
    baseline = before.share_half_width[likert[0]] * 100
    value = sum(widths) / len(widths)
    print(
        json.dumps({"index_half_width_60": {"coverage": covered / RELEASES, "split": str(plan)}}),
        file=sys.stderr,
    )
    return {
        "index_half_width_60": {
            "value": round(value, 2),
            "unit": "points",
            "baseline": round(baseline, 2),
            "ratio": round(value / baseline, 4),
            "target": TARGET,
        }
    }
