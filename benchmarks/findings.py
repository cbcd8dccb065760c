"""Honest verdicts (issue 22): how often program pages call a difference that is not there, and
how often they see one that is, through the real release code (the worker's ``Tally`` and
``release_indices``, stored as ``indices_document`` stores them) and the page's own verdict
logic (``reports.report`` builds the page, ``findings.of_report`` judges every verdict it
shows as one family).

- false_findings_null: an organisation with no differences at all (3 programs, 4 quarters,
  each quarter released overall and by gender, 3 groups, epsilon 1 each; every respondent's
  answers drawn from the same law whatever their program, quarter or gender): the share of
  program pages (one per program and quarter) that show any "higher" or "lower". Baseline:
  the same pages read as they were before (the noise-only interval of the same releases made
  with the old split: a change called where the two periods' intervals at 97.5% do not meet,
  as pages did, and groups read as different where their 95% intervals do not meet, as the
  issue's reader did; no family).
- detect_10_points_300: groups of 300 whose means of Treated with rights differ by 10 points
  (a population spread of about 20 points), on the page of the last of 4 quarters (its
  change, trends and group pairs judged together): the share of such pairs the page calls
  different, the right way round. Baseline: the noise-only reading of the same releases.

Simulations are spread over two processes (the machine's cores); each draws its own noise.
"""

from __future__ import annotations

import datetime as dt
import itertools
import multiprocessing
import random
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from typing import Any

from benchmarks import noise_only
from feedback.aggregate.privacy import Noise, Tally, release_indices
from feedback.aggregate.releases import indices_document
from feedback.publish import findings, reports
from feedback.stats import means
from feedback.stats.cells import Layout
from feedback.stats.periods import Period
from feedback.stats.shares import ALPHA, Interval
from feedback.surveys import PREFER_NOT, Survey, load_survey

EPSILON = 1.0
QUARTERS = ("2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4")
PROGRAMS = 3
PER_QUARTER = 150  # each program's respondents in a quarter: about 50 per gender
ORGANISATIONS = 100  # 1,200 pages
PAIRS_OF_300 = 300  # pages, each with two pairs 10 points apart: 600 pairs
GROUP = 300
GENDERS = ("woman", "man", "another")
NULL_TARGET = 0.05
POWER_TARGET = 0.8
# What pages showed before: one count at 0.28 of epsilon, the sums at 0.72 (benchmarks.coverage).
OLD_COUNT, OLD_SUMS = 0.28, 0.72

Person = dict[str, int | str]


def typical(rng: random.Random, survey: Survey, gender: str) -> Person:
    """Anyone's answers, the same law for everyone: the demo's, without its effects (mostly
    agreeing, some skips and "prefer not to say")."""
    answers: Person = {}
    for question in survey.questions:
        if question.type == "comment" or rng.random() < 0.06:
            continue
        if question.id == "gender":
            answers["gender"] = gender
        elif question.type == "single_choice":
            answers[question.id] = rng.choice(question.options).id
        elif rng.random() < 0.03:
            answers[question.id] = PREFER_NOT
        else:
            answers[question.id] = min(5, max(1, round(rng.gauss(3.6, 1.0))))
    return answers


# Treated with rights, every item the same answer (2 to 5): index values 25 to 100 of mean
# 61.25 and spread 20.1 points, and, 10 points higher, of mean 71.25 (spread 21.3).
BASE, HIGHER = (0.1, 0.45, 0.35, 0.1), (0.05, 0.3, 0.4, 0.25)


def spread(rng: random.Random, survey: Survey, gender: str, weights: Sequence[float]) -> Person:
    answers = typical(rng, survey, gender)
    rights = rng.choices((2, 3, 4, 5), weights)[0]
    answers.update({q.id: rights for q in survey.items_of("rights")})
    return answers


def _release(
    survey: Survey, people: Sequence[Person], breakdown: str | None, period: str, rng_id: int
) -> tuple[reports.Release, Tally]:
    """A release of ``people``'s indices as the worker makes and stores it, read back as the
    page reads it."""
    layout = Layout.for_indices(survey, breakdown)
    tally = Tally(layout)
    for person in people:
        tally.add(person)
    plan = means.split(EPSILON, indices=len(layout.indices), expected_n=len(people))
    found = release_indices(tally, plan, threshold=means.THRESHOLD)
    release = reports.Release(
        id=uuid.UUID(int=rng_id),
        kind="indices",
        period=Period.parse(period),
        breakdown=breakdown,
        epsilon=Decimal(str(EPSILON)),
        noise_scale=Decimal(str(found.scales.sum)),
        threshold=means.THRESHOLD,
        cells=indices_document(found, plan),
        metadata={},
        survey=survey,
        created_on=dt.date(2026, 1, 15),
    )
    return release, tally


def _program(
    rng: random.Random, survey: Survey, quarters: Sequence[Callable[[], list[Person]]]
) -> tuple[list[reports.Release], list[tuple[str, Tally]]]:
    """A program's releases, overall and by gender, of each quarter's respondents."""
    releases, tallies = [], []
    for period, draw in zip(QUARTERS, quarters, strict=False):
        people = draw()
        for breakdown in (None, "gender"):
            release, tally = _release(survey, people, breakdown, period, rng.getrandbits(64))
            releases.append(release)
            tallies.append((period, tally))
    return releases, tallies


def page_findings(releases: Sequence[reports.Release], period: str) -> findings.Findings:
    report = reports.report(releases, Period.parse(period))
    if report is None:
        raise ValueError(f"no page of {period}: no release")
    return findings.of_report(report)


# The pages as they were: the noise-only interval of releases made with the old split. --------


Old = dict[tuple[str, str, float], Interval | None]


def _old_intervals(tally: Tally) -> Old:
    """Each group's and index's noise-only intervals at 95% and 97.5% (pages showed the one,
    and judged a change by the other) of one release made the old way: one count per group
    (every respondent in it), the centred sums."""
    layout = tally.layout
    size, k = layout.cells_per_group(), len(layout.indices)
    count = Noise(OLD_COUNT, 1)
    sums = Noise(OLD_SUMS, means.BOUND * k)
    found: Old = {}
    for g, group in enumerate(layout.groups):
        block = tally.counts[g * size : (g + 1) * size]
        [n] = count.add([block[0]])
        noisy = sums.add(list(block[1 + k : 1 + 2 * k]), signed=True)
        for (index, total), alpha in itertools.product(
            zip(layout.indices, noisy, strict=True), (ALPHA, ALPHA / 2)
        ):
            found[group, index, alpha] = (
                noise_only.interval(
                    total, n, sum_scale=sums.scale, count_scale=count.scale, alpha=alpha
                )
                if n >= means.THRESHOLD
                else None
            )
    return found


def _apart(a: Interval | None, b: Interval | None) -> int:
    """+1 where a's interval lies above b's, -1 below, 0 where they meet or one is missing."""
    if a is None or b is None:
        return 0
    return 1 if a.low > b.high else -1 if a.high < b.low else 0


# Simulations ---------------------------------------------------------------------------------


def _null(organisations: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)  # noqa: S311 - synthetic answers
    survey = load_survey()
    pages = false = old_false = 0
    for _ in range(organisations * PROGRAMS):

        def draw() -> list[Person]:
            return [typical(rng, survey, rng.choice(GENDERS)) for _ in range(PER_QUARTER)]

        releases, tallies = _program(rng, survey, [draw] * len(QUARTERS))
        old = [_old_intervals(t) for _, t in tallies]
        for q, period in enumerate(QUARTERS):
            pages += 1
            false += any(f.real for f in page_findings(releases, period).findings)
            old_false += _old_page_says(old, q)
    return {"pages": pages, "false": false, "old_false": old_false}


def _old_page_says(old: Sequence[Old], q: int) -> bool:
    """Whether the old page of quarter ``q`` showed or invited any difference: a change
    against the period before in any period shown (intervals at 97.5%), or groups whose
    95% intervals do not meet."""
    overall, by_gender = old[0::2], old[1::2]
    indices = ("rights", "recovery")
    changed = any(
        _apart(overall[now]["all", index, ALPHA / 2], overall[now - 1]["all", index, ALPHA / 2])
        for now in range(1, q + 1)
        for index in indices
    )
    return changed or any(
        _apart(by_gender[q][a, index, ALPHA], by_gender[q][b, index, ALPHA])
        for index in indices
        for a, b in itertools.combinations(GENDERS, 2)
    )


def _power(pages: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)  # noqa: S311 - synthetic answers
    survey = load_survey()
    pairs = called = old_called = 0
    for _ in range(pages):

        def draw() -> list[Person]:
            return [
                spread(rng, survey, gender, BASE if gender == "woman" else HIGHER)
                for gender in GENDERS
                for _ in range(GROUP)
            ]

        releases, tallies = _program(rng, survey, [draw] * len(QUARTERS))
        said = page_findings(releases, QUARTERS[-1])
        # Woman against man and against another: 10 points apart (man and another are not).
        for finding in said.findings:
            c = finding.comparison
            if c.kind != "groups" or c.index != "rights" or "Woman" not in (c.first, c.second):
                continue
            pairs += 1
            lower = "lower" if c.first == "Woman" else "higher"
            called += finding.verdict == lower
        old = _old_intervals(tallies[-1][1])
        for other in ("man", "another"):
            old_called += _apart(old["woman", "rights", ALPHA], old[other, "rights", ALPHA]) == -1
    return {"pairs": pairs, "called": called, "old_called": old_called}


def _in_two(work: Callable[[int, int], dict[str, int]], total: int, seed: int) -> dict[str, int]:
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        halves = list(pool.map(work, [total // 2, total - total // 2], [2 * seed, 2 * seed + 1]))
    return {key: sum(h[key] for h in halves) for key in halves[0]}


def findings_figures() -> dict[str, Any]:
    null = _in_two(_null, ORGANISATIONS, seed=1)
    power = _in_two(_power, PAIRS_OF_300, seed=2)
    false, old_false = null["false"] / null["pages"], null["old_false"] / null["pages"]
    called, old_called = power["called"] / power["pairs"], power["old_called"] / power["pairs"]
    return {
        "false_findings_null": {
            "value": round(false, 4),
            "unit": "share of pages showing any higher or lower, where nothing differs",
            "baseline": round(old_false, 4),
            "ratio": round(false / old_false, 4) if old_false else None,
            "target": NULL_TARGET,
        },
        "detect_10_points_300": {
            "value": round(called, 4),
            "unit": "share of pairs of groups of 300, 10 points apart, called different",
            "baseline": round(old_called, 4),
            "ratio": round(called / old_called, 4) if old_called else None,
            "target": POWER_TARGET,
        },
    }


if __name__ == "__main__":  # python -m benchmarks.findings
    import json

    print(json.dumps(findings_figures(), indent=1))
    print(f"alpha {ALPHA}")
