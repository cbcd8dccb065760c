"""A page's verdicts, judged as one family and said in words; the yearly view added up from
its quarters; interval ends rounded outward; figures the noise took beyond their scale said
so. Releases here are written out by hand (the stored form, without noise), so that every
p-value is known: no database, no noise."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal
from typing import Any

from feedback.publish import charts, findings
from feedback.publish.reports import Pooled, Release, outward, readable, report
from feedback.stats import means
from feedback.stats.periods import Period
from feedback.stats.verdicts import Difference, judge
from feedback.surveys import load_survey

SURVEY = load_survey()  # the default survey: gender and time in program, both indices
SCALES = means.split(1.0, indices=2, expected_n=300).scales
Cell = tuple[float, int] | None  # an index's mean and count in a group; None: suppressed


def cell(mean: float, n: int = 300, spread: float = 20) -> dict[str, int]:
    """An index's stored cells for ``n`` answers around ``mean`` (0 to 100), without noise."""
    c = mean - means.MIDDLE
    square = c * c + spread * spread - means.HALF_SQUARE
    return {"n": n, "sum": round(c * n), "squares": round(square * n)}


def release(
    period: str, groups: dict[str, dict[str, Cell]], breakdown: str | None = None
) -> Release:
    """An indices release as stored: per group, each index's cells or "S"."""
    stored: list[dict[str, Any]] = []
    for group, indices in groups.items():
        shown = {i: "S" if c is None else cell(c[0], c[1]) for i, c in indices.items()}
        counts = [v["n"] for v in shown.values() if isinstance(v, dict)]
        stored.append({"group": group, "n": max(counts, default="S"), "indices": shown})
    cells = {
        "groups": stored,
        "count_scale": SCALES.count,
        "sum_scale": SCALES.sum,
        "squares_scale": SCALES.squares,
    }
    return Release(
        uuid.uuid4(), "indices", Period.parse(period), breakdown, Decimal(1), Decimal(0), 11,
        cells, {}, SURVEY, dt.date(2026, 1, 1), tuple(g["n"] for g in stored),
    )  # fmt: skip


def overall(period: str, rights: float, recovery: float, n: int = 300) -> Release:
    return release(period, {"all": {"rights": (rights, n), "recovery": (recovery, n)}})


def by_gender(period: str, rights: dict[str, float]) -> Release:
    return release(
        period,
        {g: {"rights": (m, 150), "recovery": (60, 150)} for g, m in rights.items()},
        "gender",
    )


def test_every_verdict_a_page_shows_is_judged_in_one_family() -> None:
    """Four quarters and the last one's groups: two changes against the quarter before, two
    trends and six pairs of groups, judged together. A pair that one test alone would call
    (p about 0.01) reads "can't tell" among ten; the change of 10 points stands."""
    quarters = [overall(f"2025-Q{q}", 60, 70 if q == 4 else 60) for q in range(1, 5)]
    groups = by_gender("2025-Q4", {"woman": 60, "man": 70, "another": 60})
    page = report([*quarters, groups], Period.parse("2025-Q4"))
    assert page is not None
    found = findings.of_report(page)
    kinds = [f.comparison.kind for f in found.findings]
    assert kinds == ["change"] * 2 + ["trend"] * 2 + ["groups"] * 6
    assert found.size == 10
    assert [f.verdict for f in found.findings] == judge([f.comparison.test for f in found.findings])
    verdicts = {(f.comparison.kind, f.comparison.index, f.comparison.first, f.comparison.second):
                f.verdict for f in found.findings}  # fmt: skip
    assert verdicts["change", "recovery", "2025-Q4", "2025-Q3"] == "higher"
    assert verdicts["change", "rights", "2025-Q4", "2025-Q3"] == "can't tell"
    alone = Difference(means.Noisy(**cell(70, 150)), means.Noisy(**cell(60, 150)), SCALES, SCALES)
    assert 0.005 < alone.p_value() < 0.05
    assert judge([alone]) == ["higher"]
    assert verdicts["groups", "rights", "Woman", "Man"] == "can't tell"  # not on this page
    # In words, on the charts that show them, under the page's rule.
    drawn = {c.name: c for c in charts.draw(page, found)}
    over_time, gender = drawn["indices-over-time"], drawn["indices-by-gender"]
    assert "Recovery: higher than in 2025-Q3, by about 10 points" in over_time.note
    assert "Treated with rights: can't tell whether it changed since 2025-Q3" in over_time.note
    assert "No difference between these groups is real: for every pair, can't tell" in (gender.note)
    rule = "the chance that any \u201chigher\u201d or \u201clower\u201d on this page is wrong by "
    for chart in (over_time, gender):
        assert "The 10 comparisons on this page are judged together (Holm's rule)" in chart.note
        assert rule + "chance is at most 5%" in chart.note
    # The table says the verdict of the page's period only; earlier ones are on their pages.
    column = {(r.cells[0], r.cells[1]): r.cells[4] for r in over_time.rows}
    assert column["2025-Q4", "Recovery"] == "higher"
    assert column["2025-Q3", "Recovery"] == ""
    assert {r.cells[4] for r in gender.rows if r.cells[0] != "not answered"} == {"none"}
    # The reference line at 50, labelled, on both charts of the indices.
    for chart in (over_time, gender):
        assert "neither agree nor disagree" in chart.svg


def test_a_trend_over_the_year_is_called_where_no_neighbour_is() -> None:
    """Rising 3 points a quarter: no quarter differs clearly from the one before, the year's
    series does; the words say over which periods, and by how much."""
    quarters = [overall(f"2025-Q{q}", 60, 54 + 3 * q) for q in range(1, 5)]
    page = report(quarters, Period.parse("2025-Q4"))
    assert page is not None
    found = findings.of_report(page)
    said = {(f.comparison.kind, f.comparison.index): f for f in found.findings}
    assert said["change", "recovery"].verdict == "can't tell"
    assert said["trend", "recovery"].verdict == "higher"
    assert findings.trend_words(said["trend", "recovery"]) == (
        "Recovery: rose over the 4 quarters 2025-Q1 to 2025-Q4, by about 3 points a quarter"
    )
    assert findings.trend_words(said["trend", "rights"]) == (
        "Treated with rights: can't tell whether it rose or fell over the 4 quarters 2025-Q1 "
        "to 2025-Q4"
    )
    # A quarter missing breaks the series: no trend over fewer than three periods.
    gap = report([quarters[0], quarters[2], quarters[3]], Period.parse("2025-Q4"))
    assert gap is not None
    assert [f.comparison.kind for f in findings.of_report(gap).findings] == ["change"] * 2


def test_the_yearly_view_adds_up_its_quarters_or_else_its_groups() -> None:
    """A year released by quarters, with its indices by gender: its page shows respondents and
    overall indices like a quarter's, added up from the quarters (no more epsilon), and says
    so. Without all four quarters, from the groups of the breakdown, naming those left out."""
    quarters = [overall(f"2025-Q{q}", 60, 70, n=250) for q in range(1, 5)]
    groups = release(
        "2025",
        {
            "woman": {"rights": (60, 500), "recovery": (70, 500)},
            "man": {"rights": (60, 400), "recovery": (70, 400)},
            "another": {"rights": None, "recovery": None},  # suppressed
            "skipped": {"rights": (60, 100), "recovery": (70, 100)},
        },
        "gender",
    )
    page = report([*quarters, groups], Period.parse("2025"))
    assert page is not None
    year = page.indices_overall
    assert isinstance(year, Pooled)
    assert year.by is None
    assert year.n() == 1000
    assert {r.id for r in page.releases()} == {r.id for r in [*quarters, groups]}
    value, one = year.index("rights"), quarters[0].index("rights")
    assert value.value == 60
    assert value.low is not None and value.high is not None  # noqa: PT018
    assert one.low is not None and one.high is not None  # noqa: PT018
    assert value.low < 60 < value.high
    assert value.high - value.low < one.high - one.low  # four quarters: narrower than one
    drawn = {c.name: c for c in charts.draw(page)}
    assert [r.cells for r in drawn["respondents"].rows] == [("2025", "1000")]
    rows = [r.cells[:2] for r in drawn["indices-over-time"].rows]
    assert rows == [("2025", "Treated with rights"), ("2025", "Recovery")]
    assert "2025 is added up from the releases of 2025-Q1, 2025-Q2, 2025-Q3, 2025-Q4" in (
        drawn["indices-over-time"].note
    )
    # Without the first quarter: the groups of the breakdown, and who is left out.
    partial = report([*quarters[1:], groups], Period.parse("2025"))
    assert partial is not None
    assert isinstance(partial.indices_overall, Pooled)
    assert partial.indices_overall.by == "gender"
    assert partial.indices_overall.n() == 1000
    note = charts.draw(partial)[0].note
    assert "2025 is added up from its groups by gender, leaving out \u201cAnother way\u201d" in note


def test_shown_interval_ends_never_sit_inside_the_interval() -> None:
    assert outward(61.96, 70.01) == (61, 71)
    assert outward(62.0, 70.0) == (62, 70)
    assert outward(0.2951, 0.4049, 100) == (29, 41)
    assert outward(0.29, 0.41, 100) == (28, 41)  # the float 0.29 is a little below 0.29
    assert readable(40.0, 70.0)
    assert not readable(40.0, 70.01)  # shown as 40 to 71: wider than 30 points
    quarters = [overall(f"2025-Q{q}", 61.3 + q, 70.7, n=200 + q) for q in range(1, 5)]
    page = report(quarters, Period.parse("2025-Q4"))
    assert page is not None
    table = charts.draw(page)[0]
    for row, (found, index) in zip(
        table.rows, [(q, i) for q in quarters for i in q.indices], strict=True
    ):
        value = found.index(index)
        low, high = (int(end) for end in row.cells[3].split(" to "))
        assert value.low is not None and value.high is not None  # noqa: PT018
        assert low <= value.low and value.high <= high, (row, value)  # noqa: PT018


def test_a_figure_the_noise_took_beyond_its_scale_says_it_is_held_at_the_end() -> None:
    """A noisy sum beyond what its count allows: the mean is shown at 100, marked, and the
    note says which way that biases it."""
    stored = overall("2025-Q1", 60, 70)
    stored.cells["groups"][0]["indices"]["recovery"] = {"n": 40, "sum": 2100, "squares": 50_000}
    page = report([stored], Period.parse("2025-Q1"))
    assert page is not None
    table = charts.draw(page)[0]
    recovery = next(r for r in table.rows if r.cells[1] == "Recovery")
    assert recovery.cells[2].startswith("100 (held at the end of the scale)")
    assert re.search(r"pulls a figure near 0 up and one near 100\s+down", table.note)
