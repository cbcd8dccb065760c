"""Honest numbers (issue 22): what the released intervals cover, how wide they are, and what the
page's verdicts find, measured through the real release code (the worker's ``Tally`` of an
indices layout and ``release_indices``: OpenDP's discrete Laplace on the counts, sums and
squares, the split ``means.split`` chose, the interval ``means.interval``).

- population_coverage_min: the lowest coverage of the released 95% interval for the mean of a
  finite population of 2,000 people, among the groups shown, over three populations
  (symmetric, skewed, piled at 0 and 100) and samples of 20, 60 and 300 respondents drawn
  without replacement, 2,000 releases each, epsilon 1 for both indices. Baseline: the same for
  the noise-only interval pages showed before (benchmarks.noise_only, with the split it had).
- index_half_width_60: the mean 95% half-width of "Treated with rights" at 60 respondents,
  epsilon 1, for a population whose index values spread 20 points (standard deviation), over
  2,000 releases. Baseline: the noise-only interval's, in the same run.

Releases are spread over two processes (the machine's cores); each draws its own noise.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import random
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from benchmarks import noise_only
from feedback.aggregate.privacy import Noise, Tally, release_indices
from feedback.stats import means
from feedback.stats.cells import Layout
from feedback.surveys import load_survey

EPSILON = 1.0
RELEASES = 2000
PEOPLE = 2000
SIZES = (20, 60, 300)
COVERAGE_TARGET = 0.94
WIDTH_TARGET = 12.0
# What pages showed before: one count (sensitivity 1) at 0.28 of epsilon, the sums at 0.72.
OLD_COUNT, OLD_SUMS = 0.28, 0.72

Person = dict[str, int]


def population(shape: str, rng: random.Random) -> list[Person]:
    """2,000 people's answers to the "Treated with rights" items (1 to 5): ``symmetric``
    (each person's items around "agree", spread both ways), ``skewed`` (most strongly agree,
    a long tail of disagreement), ``piled`` (a third disagree strongly with everything, near
    half agree strongly with everything: piled at 0 and 100), ``spread20`` (the same answer to
    every item, index values of mean about 61 and standard deviation about 20 points)."""
    items = [q.id for q in load_survey().items_of("rights")]
    people = []
    for _ in range(PEOPLE):
        if shape == "symmetric":
            centre = rng.choice((2, 3, 3, 4, 4, 4, 5))
            answers = [min(5, max(1, centre + rng.choice((-1, 0, 0, 1)))) for _ in items]
        elif shape == "skewed":
            answers = rng.choices((1, 2, 3, 4, 5), (0.03, 0.04, 0.08, 0.3, 0.55), k=len(items))
        elif shape == "piled":
            pick = rng.random()
            if pick < 0.33:
                answers = [1] * len(items)
            elif pick < 0.8:
                answers = [5] * len(items)
            else:
                answers = rng.choices((1, 2, 3, 4, 5), k=len(items))
        else:
            answers = [rng.choices((2, 3, 4, 5), (0.1, 0.45, 0.35, 0.1))[0]] * len(items)
        people.append(dict(zip(items, answers, strict=True)))
    return people


def _truth(people: Sequence[Person]) -> tuple[float, float]:
    """The population's mean index value, and their standard deviation."""
    survey = load_survey()
    values = [means.contributions(survey, p)["rights"] for p in people]
    given = [v for v in values if v is not None]
    mean = sum(given) / len(given)
    sd = math.sqrt(sum((v - mean) ** 2 for v in given) / len(given))
    return means.MIDDLE + mean, sd


def _releases(shape: str, size: int, releases: int, seed: int) -> dict[str, float]:
    """Coverage and mean half-width, among shown groups, of the new and the old interval."""
    rng = random.Random(seed)  # noqa: S311 - synthetic answers
    people = population(shape, random.Random(shape))  # noqa: S311 - the same in each process
    truth, _ = _truth(people)
    survey = load_survey()
    layout = Layout.for_indices(survey)
    plan = means.split(EPSILON, indices=len(layout.indices), expected_n=size)
    old_count, old_sums = Noise(OLD_COUNT, 1), Noise(OLD_SUMS, 2 * means.BOUND)
    shown = covered = old_shown = old_covered = 0
    width = old_width = 0.0
    for _ in range(releases):
        tally = Tally(layout)
        for person in rng.sample(people, size):
            tally.add(person)
        found = release_indices(tally, plan, threshold=means.THRESHOLD)
        interval = found.interval(found.groups[0], "rights", threshold=means.THRESHOLD)
        if interval is not None:
            shown += 1
            covered += interval.low <= truth <= interval.high
            width += (interval.high - interval.low) / 2
        # The old mechanism on the same answers (everyone here answers every rights item, so
        # its one count is n and its sum the same): n, then the rights and recovery sums.
        n_all, _, _, rights_sum, recovery_sum = tally.counts[:5]
        [n] = old_count.add([n_all])
        old_sum, _ = old_sums.add([rights_sum, recovery_sum], signed=True)
        if n >= means.THRESHOLD:
            old = noise_only.interval(
                old_sum, n, sum_scale=old_sums.scale, count_scale=old_count.scale
            )
            old_shown += 1
            old_covered += old.low <= truth <= old.high
            old_width += (old.high - old.low) / 2
    return {
        "shown": shown,
        "covered": covered,
        "width": width,
        "old_shown": old_shown,
        "old_covered": old_covered,
        "old_width": old_width,
    }


def _in_two(shape: str, size: int, releases: int, seed: int) -> dict[str, float]:
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        halves = list(
            pool.map(
                _releases,
                [shape, shape],
                [size, size],
                [releases // 2, releases - releases // 2],
                [2 * seed, 2 * seed + 1],
            )
        )
    return {key: sum(h[key] for h in halves) for key in halves[0]}


def cells() -> dict[str, dict[str, float]]:
    """Every population and size: coverage and mean half-width of the interval released now
    and of the noise-only one, among the groups shown."""
    found: dict[str, dict[str, float]] = {}
    for shape in ("symmetric", "skewed", "piled"):
        for size in SIZES:
            run = _in_two(shape, size, RELEASES, seed=len(found))
            found[f"{shape} n={size}"] = {
                "coverage": run["covered"] / run["shown"],
                "old_coverage": run["old_covered"] / max(1, run["old_shown"]),
                "half_width": run["width"] / run["shown"],
                "old_half_width": run["old_width"] / max(1, run["old_shown"]),
                "shown": run["shown"],
            }
    return found


def coverage_figures() -> dict[str, Any]:
    found = cells()
    print(json.dumps({"population_coverage_min": found}, indent=1), file=sys.stderr)
    value = min(c["coverage"] for c in found.values())
    baseline = min(c["old_coverage"] for c in found.values())
    spread = _in_two("spread20", 60, RELEASES, seed=99)
    _, sd = _truth(population("spread20", random.Random("spread20")))  # noqa: S311
    width = spread["width"] / spread["shown"]
    old_width = spread["old_width"] / spread["old_shown"]
    print(
        json.dumps(
            {
                "index_half_width_60": {
                    "population_sd": round(sd, 1),
                    "coverage": spread["covered"] / spread["shown"],
                    "split": str(means.split(EPSILON, indices=2, expected_n=60)),
                }
            }
        ),
        file=sys.stderr,
    )
    return {
        "population_coverage_min": {
            "value": round(value, 4),
            "unit": "share of intervals holding the population's mean",
            "baseline": round(baseline, 4),
            "ratio": round(value / baseline, 4),
            "target": COVERAGE_TARGET,
        },
        "index_half_width_60": {
            "value": round(width, 2),
            "unit": "points",
            "baseline": round(old_width, 2),
            "ratio": round(width / old_width, 4),
            "target": WIDTH_TARGET,
        },
    }


if __name__ == "__main__":  # python -m benchmarks.coverage: the table in docs/privacy.md
    print(
        "| population | n | coverage | half-width | noise-only coverage | noise-only half-width |"
    )
    print("|---|---|---|---|---|---|")
    for name, cell in cells().items():
        shape, size = name.split(" n=")
        print(
            f"| {shape} | {size} | {cell['coverage']:.3f} | {cell['half_width']:.1f} | "
            f"{cell['old_coverage']:.3f} | {cell['old_half_width']:.1f} |"
        )
