"""The release mechanism: calibration, the DP guarantee measured, suppression on noisy counts,
and interval coverage on data with known true answers."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from feedback.aggregate.privacy import Noise, Tally, release, release_indices
from feedback.envelope import Envelope, InvalidEnvelope, answers_of
from feedback.stats import means
from feedback.stats.cells import Layout, PrivacyError, categories
from feedback.stats.shares import (
    headline,
    noise_bound,
    preview,
    share_interval,
    suppressed_chance,
)
from feedback.surveys import FIRST_VERSION, load_survey

SURVEY = load_survey(FIRST_VERSION)


def test_layout_comes_from_the_survey_not_the_data() -> None:
    layout = Layout.plan(SURVEY, ["believed", "time_in_program"])
    assert layout.groups == ("all",)
    assert layout.sensitivity == 3
    assert categories(SURVEY.question("believed")) == (
        "agree",
        "neither",
        "disagree",
        "prefer_not",
        "skipped",
    )
    assert len(layout) == 1 + 5 + 5
    by_gender = Layout.plan(SURVEY, ["believed"], breakdown="gender")
    assert by_gender.groups == ("woman", "man", "another", "skipped")
    assert by_gender.sensitivity == 2  # each survivor is in exactly one group
    with pytest.raises(PrivacyError, match="not a single-choice question"):
        Layout.plan(SURVEY, ["believed"], breakdown="housing")
    with pytest.raises(PrivacyError, match="names it twice"):
        Layout.plan(SURVEY, ["believed", "comment", "believed"])
    by_time = Layout.plan(SURVEY, ["safe_now", "housing"], breakdown="time_in_program")
    assert by_time.groups == ("under_3", "3_to_6", "6_to_12", "over_12", "skipped")


def test_each_respondent_touches_exactly_one_plus_q_cells() -> None:
    layout = Layout.plan(SURVEY, ["believed", "safe_now", "gender"])
    tally = Tally(layout)
    tally.add({"believed": 5, "gender": "woman"})
    tally.add({})
    assert sum(tally.counts) == 2 * layout.sensitivity
    offsets = categories(SURVEY.question("believed"))
    assert tally.counts[1 + offsets.index("agree")] == 1
    assert tally.counts[1 + offsets.index("skipped")] == 1


def test_a_comment_is_counted_as_written_and_its_text_is_dropped() -> None:
    layout = Layout.plan(SURVEY, ["believed", "comment"])
    assert layout.comment == "comment"
    assert layout.sensitivity == 3  # n, believed, and written or skipped
    assert categories(SURVEY.question("comment")) == ("written", "skipped")
    tally = Tally(layout)
    for comment in ("a marker text", "another", "", "   \n", None):
        padded = Envelope("rights-based", 1, "en", {"believed": 4}, comment=comment)
        answers = answers_of(padded.to_plaintext(), "rights-based", 1, layout.comment)
        assert "marker" not in str(answers)
        assert tally.add(answers)
    base = 1 + len(categories(SURVEY.question("believed")))
    assert tally.counts[base : base + 2] == [2, 3]  # two written; blank ones are not
    assert sum(tally.counts) == 5 * layout.sensitivity
    # Little noise, so that the group of 5 is not suppressed by chance.
    [group] = release(tally, Noise(50, layout.sensitivity), threshold=1)
    assert set(group.cells["comment"]) == {"written", "skipped"}
    assert all(isinstance(v, int) for v in group.cells["comment"].values())
    # Without the comment question in the layout, a comment is not an answer at all.
    plain = answers_of(
        Envelope("rights-based", 1, "en", {}, comment="x").to_plaintext(), "rights-based", 1
    )
    assert plain == {}
    # An envelope that puts the comment among the answers is not one our pages make.
    forged = Envelope("rights-based", 1, "en", {"comment": "written"}).to_plaintext()
    with pytest.raises(InvalidEnvelope):
        answers_of(forged, "rights-based", 1, "comment")


def test_a_breakdown_puts_each_respondent_in_exactly_one_group() -> None:
    layout = Layout.plan(SURVEY, ["believed", "safe_now"], breakdown="gender")
    tally = Tally(layout)
    for answers in ({"gender": "man", "believed": 2}, {"gender": "man"}, {"believed": 4}):
        assert tally.add(answers)
    size = layout.cells_per_group()
    man, skipped = layout.groups.index("man") * size, layout.groups.index("skipped") * size
    believed = categories(SURVEY.question("believed"))
    assert tally.counts[man] == 2
    assert tally.counts[man + 1 + believed.index("disagree")] == 1
    assert tally.counts[man + 1 + believed.index("skipped")] == 1
    assert tally.counts[skipped] == 1
    assert tally.counts[skipped + 1 + believed.index("agree")] == 1
    assert sum(tally.counts) == 3 * layout.sensitivity


@pytest.mark.parametrize(
    "answers",
    [
        {"believed": 6},
        {"believed": "5"},  # a text where the survey has a number
        {"believed": True},  # True == 1 in Python; not an answer
        {"believed": 1.0},
        {"believed": [1]},
        {"believed": None},
        {"not_a_question": 1},
        {"comment": "free text is given apart"},
        {"gender": "nobody"},
        {"believed": 5, "safe_now": 0},  # one bad answer spoils the envelope
    ],
)
def test_an_answer_the_survey_does_not_allow_counts_nothing(answers: dict[str, object]) -> None:
    tally = Tally(Layout.plan(SURVEY, ["believed", "safe_now"], breakdown="gender"))
    assert not tally.add(answers)
    assert not any(tally.counts)


def test_merged_tallies_equal_one_tally_of_everything() -> None:
    layout = Layout.plan(SURVEY, ["believed", "housing"], breakdown="time_in_program")
    rng = random.Random(3)  # noqa: S311 - synthetic answers
    everything, parts = Tally(layout), [Tally(layout) for _ in range(3)]
    for i in range(300):
        answers = {
            q.id: rng.choice(sorted(q.allowed(), key=str))
            for q in SURVEY.questions
            if q.type != "comment" and rng.random() < 0.8
        }
        assert everything.add(answers)
        assert parts[i % 3].add(answers)
    merged = Tally(layout)
    for part in parts:
        merged.merge(part.raw)
    assert merged.counts == everything.counts
    assert sum(merged.counts) == 300 * layout.sensitivity


def test_noise_is_calibrated_to_epsilon_by_opendp_s_own_accounting() -> None:
    for epsilon, sensitivity in ((1.0, 1), (0.5, 16), (2.0, 7)):
        noise = Noise(epsilon, sensitivity)
        assert noise.scale == sensitivity / epsilon
        assert noise.spent() == pytest.approx(epsilon)
    with pytest.raises(PrivacyError):
        Noise(0.0, 3)


def histogram(values: list[int]) -> Counter[int]:
    return Counter(values)


def assert_ratio_bounded(a: Counter[int], b: Counter[int], bound: float, draws: int) -> float:
    """Every outcome with enough draws: P_a / P_b <= bound, allowing 4 standard errors."""
    worst = 0.0
    for value in set(a) & set(b):
        if a[value] < 400 or b[value] < 400:
            continue
        ratio = a[value] / b[value]
        slack = 4 * math.sqrt(1 / a[value] + 1 / b[value])  # relative standard error of a ratio
        assert ratio <= bound * (1 + slack), (value, ratio, bound)
        worst = max(worst, ratio)
    return worst


def test_neighbouring_data_sets_differ_by_at_most_e_to_the_epsilon() -> None:
    epsilon, draws = 1.0, 400_000
    noise = Noise(epsilon, 1)
    with_one = histogram(noise.add([20] * draws))
    without = histogram(noise.add([21] * draws))
    bound = math.exp(epsilon)
    worst = max(
        assert_ratio_bounded(with_one, without, bound, draws),
        assert_ratio_bounded(without, with_one, bound, draws),
    )
    assert worst > 0.9 * bound  # and the bound is tight: the mechanism spends what it says


def test_the_guarantee_holds_for_a_respondent_touching_several_cells() -> None:
    # One survivor adds 1 to n and 1 to a cell of each of two questions: three cells.
    epsilon, draws = 1.0, 150_000
    noise = Noise(epsilon, 3)
    d1 = noise.add([15, 4, 9] * draws)
    d2 = noise.add([16, 5, 10] * draws)
    sums1 = histogram([sum(d1[i : i + 3]) for i in range(0, len(d1), 3)])
    sums2 = histogram([sum(d2[i : i + 3]) for i in range(0, len(d2), 3)])
    bound = math.exp(epsilon)
    assert_ratio_bounded(sums1, sums2, bound, draws)
    assert_ratio_bounded(sums2, sums1, bound, draws)


@pytest.mark.parametrize(("true_n", "shown"), [(0, 0.036), (11, 0.56), (20, 0.95)])
def test_groups_are_suppressed_on_their_noisy_count(true_n: int, shown: float) -> None:
    """PRIVACY.md's table for scale 4 and k = 11. A decision on the exact count would show
    n = 11 and n = 20 always and n = 0 never."""
    layout = Layout.plan(SURVEY, ["believed", "safe_now", "recommend"])
    noise = Noise(1.0, layout.sensitivity)  # sensitivity 4, so scale 4
    assert noise.scale == 4
    tally = Tally(layout)
    for _ in range(true_n):
        tally.add({"believed": 4})
    runs = 3000
    visible = 0
    for _ in range(runs):
        [group] = release(tally, noise, threshold=11)
        if group.suppressed:
            assert all(v is None for cells in group.cells.values() for v in cells.values())
        else:
            visible += 1
            assert group.n is not None
            assert group.n >= 11
    assert visible / runs == pytest.approx(shown, abs=0.04)  # about 4.4 standard errors at n = 11


def test_share_intervals_cover_the_populations_share_at_least_at_the_stated_rate() -> None:
    """60 respondents drawn afresh each time from people of whom 70% agree on the scale (some
    prefer not to say or skip): through the real tally and mechanism, the interval holds the
    people's share at least 95 times in 100, sampling and noise together."""
    rng = random.Random(7)  # noqa: S311 - a reproducible synthetic data set, not a secret
    layout = Layout.plan(SURVEY, ["believed"])
    people = [4] * 35 + [5] * 35 + [3] * 10 + [2] * 10 + [1] * 10 + ["prefer_not"] * 8
    agree_cells, rest_cells = headline(SURVEY.question("believed"))
    noise = Noise(1.0, layout.sensitivity)
    runs, covered, widths = 1000, 0, 0.0
    for _ in range(runs):
        tally = Tally(layout)
        for value in rng.choices([*people, None, None], k=60):
            tally.add({} if value is None else {"believed": value})
        [group] = release(tally, noise, threshold=1)
        cells = group.cells["believed"]
        agree = sum(cells[c] or 0 for c in agree_cells)
        rest = sum(cells[c] or 0 for c in rest_cells)
        share, interval = share_interval(
            agree, rest, cells_in_numerator=1, cells_in_rest=2, scale=noise.scale
        )
        assert share is None or interval.low <= share <= interval.high
        covered += interval.low <= 0.7 <= interval.high
        widths += interval.high - interval.low
    assert covered / runs >= 0.95 - 3 * math.sqrt(0.05 * 0.95 / runs)
    # Not by being uselessly wide: at n 60 and epsilon 1 the interval is a usable one.
    assert widths / runs / 2 < 0.3


@pytest.mark.parametrize(("scale", "cells"), [(2.0, 1), (3.0, 2), (5.0, 4)])
def test_the_bound_of_a_sum_of_noisy_cells_is_the_exact_quantile(scale: float, cells: int) -> None:
    noise = Noise(1.0 / scale, 1)  # scale = sensitivity / epsilon
    draws = 200_000
    vector = noise.add([0] * (cells * draws))
    sums = [sum(vector[i : i + cells]) for i in range(0, len(vector), cells)]
    alpha = 0.05
    t = noise_bound(scale, cells, alpha)
    beyond = sum(abs(x) > t for x in sums) / len(sums)
    just_inside = sum(abs(x) > t - 1 for x in sums) / len(sums)
    sampling = 3 * math.sqrt(alpha * (1 - alpha) / len(sums))
    assert beyond <= alpha + sampling  # covers
    assert just_inside > alpha - sampling  # and is the smallest that does
    if cells == 1:
        assert t == math.floor(noise.half_width(alpha))  # OpenDP's own accuracy, one cell


def test_preview_comes_from_the_plan_alone() -> None:
    layout = Layout.plan(SURVEY, ["believed", "safe_now", "housing"])
    few = preview(layout, 1.0, n=20, threshold=11)
    many = preview(layout, 1.0, n=400, threshold=11)
    generous = preview(layout, 4.0, n=20, threshold=11)
    assert set(few.share_half_width) == {"believed", "safe_now", "housing"}
    for question in few.share_half_width:
        assert many.share_half_width[question] < few.share_half_width[question]
        assert generous.share_half_width[question] < few.share_half_width[question]
    assert few.cell_half_width == math.floor(Noise(1.0, 4).half_width())  # OpenDP's
    # PRIVACY.md's table at scale 4 and k 11: a group of 11 is shown 56% of the time.
    assert suppressed_chance(4.0, 11, 11) == pytest.approx(1 - 0.562, abs=0.001)
    assert suppressed_chance(4.0, 0, 11) == pytest.approx(1 - 0.036, abs=0.001)
    assert suppressed_chance(4.0, 20, 11) == pytest.approx(0.046, abs=0.001)


RIGHTS = [q.id for q in SURVEY.items_of("rights")]
RECOVERY = [q.id for q in SURVEY.items_of("recovery")]


def respondent(rng: random.Random) -> dict[str, object]:
    """Answers to the index items, leaning to agreement (a mean of about 65), a few skipped."""
    return {
        item: rng.choice((1, 2, 3, 4, 4, 5, 5, 5))
        for item in RIGHTS + RECOVERY
        if rng.random() > 0.05
    }


def test_a_tally_of_indices_counts_those_who_answered_each_and_their_contributions() -> None:
    tally = Tally(Layout.for_indices(SURVEY, breakdown="gender"))
    assert tally.add({"believed": 5, "respected": 4, "safe_now": 1, "gender": "woman"})
    assert tally.add({"believed": 1, "gender": "man"})
    assert tally.add({"recommend": 5})  # no index item: in no index's cells
    assert not tally.add({"believed": 7})  # not an answer: counted nowhere
    counts = tally.counts
    size = tally.layout.cells_per_group()
    groups = {
        g: tuple(counts[size * i : size * (i + 1)]) for i, g in enumerate(tally.layout.groups)
    }
    # n; then counts (rights, recovery), sums, squares (centred on 1250)
    assert groups["woman"] == (1, 1, 1, 88 - 50, 0 - 50, 38 * 38 - 1250, 50 * 50 - 1250)
    assert groups["man"] == (1, 1, 0, -50, 0, 50 * 50 - 1250, 0)
    assert groups["skipped"] == (1, 0, 0, 0, 0, 0, 0)
    with pytest.raises(PrivacyError, match="release_indices"):
        release(tally, Noise(1.0, 1))
    with pytest.raises(PrivacyError, match="either questions or indices"):
        Layout(SURVEY, (SURVEY.question("believed"),), ("all",), None, ("rights",))


def test_indices_intervals_cover_the_populations_mean_where_noise_alone_would_not() -> None:
    """60 respondents drawn afresh from 2,000 people piled at both ends (a third disagree
    strongly with everything, near half agree strongly), epsilon 1 for both indices: over 400
    releases (OpenDP's noise, the real tally and mechanism) the intervals hold the people's
    mean about 95% of the time (at least 0.92 here: the interval of the noise alone held it
    about 7 times in 10 at this size) and are at most about +/-16 points wide. make bench
    measures it on more populations and sizes (population_coverage_min)."""
    rng = random.Random(12)  # noqa: S311 - synthetic answers
    plan = means.split(1.0, indices=2, expected_n=60)
    layout = Layout.for_indices(SURVEY)
    people = []
    for _ in range(2000):
        pick = rng.random()
        value = 1 if pick < 0.33 else 5 if pick < 0.8 else None
        people.append({item: value or rng.randint(1, 5) for item in RIGHTS})
    scored = [means.contributions(SURVEY, answers)["rights"] for answers in people]
    given = [c for c in scored if c is not None]
    mean = means.MIDDLE + sum(given) / len(given)
    covered, widths, runs = 0, [], 400
    for _ in range(runs):
        tally = Tally(layout)
        for answers in rng.sample(people, 60):
            tally.add(answers)
        found = release_indices(tally, plan, threshold=11)
        interval = found.interval(found.groups[0], "rights", threshold=11)
        assert interval is not None
        covered += interval.low <= mean <= interval.high
        widths.append((interval.high - interval.low) / 2)
    assert covered / runs >= 0.92
    assert sum(widths) / len(widths) <= 16


def test_indices_spend_what_the_plan_says_suppress_small_groups_and_refuse_bad_tallies() -> None:
    plan = means.split(0.8, indices=2, expected_n=100)
    tally = Tally(Layout.for_indices(SURVEY, breakdown="gender"))
    rng = random.Random(3)  # noqa: S311 - synthetic answers
    for _ in range(100):
        tally.add({**respondent(rng), "gender": "woman"})
    found = release_indices(tally, plan)
    d_count, d_sum, d_squares = means.sensitivities(2)
    spent = sum(
        Noise(part, sensitivity).spent()
        for part, sensitivity in (
            (plan.count, d_count),
            (plan.sums, d_sum),
            (plan.squares, d_squares),
        )
    )
    assert spent <= 0.8 + 1e-12
    assert found.scales.sum >= plan.scales.sum
    assert found.scales.count >= plan.scales.count
    assert found.scales.squares >= plan.scales.squares
    woman = found.groups[0]
    assert woman.group == "woman"
    assert found.mean(woman, "rights") is not None
    # An index whose noisy count is below the threshold shows no count, no sum and no mean.
    hidden = release_indices(tally, plan, threshold=10**6)
    assert all(g.suppressed and not g.shown for g in hidden.groups)
    assert all(hidden.interval(g, "rights", threshold=10**6) is None for g in hidden.groups)
    with pytest.raises(PrivacyError, match="for 1 indices; the layout has 2 indices"):
        release_indices(tally, means.split(0.8, indices=1, expected_n=100))
    with pytest.raises(PrivacyError, match="the layout has no indices"):
        release_indices(Tally(Layout.plan(SURVEY, ["believed"])), plan)
