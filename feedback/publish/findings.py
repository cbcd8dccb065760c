"""The verdicts a page shows, judged as one family, and the words that say them.

A page (or a publication, which holds several) shows three kinds of verdict on the indices,
each read from released numbers only (post-processing; feedback.stats.verdicts):

- ``change``: the page's period against the period just before, each index;
- ``trend``: whether each index rose or fell over a year's periods ending at the page's
  period (at least three: four quarters, twelve months), judged over the series, not from
  neighbours;
- ``groups``: each pair of the groups a breakdown release names (not "not answered"), each
  index.

Only figures shown and readable (their interval as shown within READABLE points) are compared;
a trend reads every period shown in its run. All the verdicts a reader sees together are
judged in one call of Holm's procedure, so that the chance that any "higher" or "lower" among
them is wrong by chance is at most 5%; every other comparison reads "can't tell". The words
are built here from the verdicts, never written by hand beside a figure.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from feedback.publish.reports import (
    BY,
    Overall,
    Release,
    Report,
)
from feedback.stats.periods import NAMES, PER_YEAR, Granularity
from feedback.stats.shares import ALPHA
from feedback.stats.verdicts import Difference, Test, Trend, Verdict, judge
from feedback.surveys import INDICES, IndexName

OVER_TIME = "indices-over-time"
Kind = Literal["change", "trend", "groups"]
# How the family's rule is said, wherever a verdict is shown.
RULE = (
    "the chance that any \u201chigher\u201d or \u201clower\u201d {scope} is wrong by chance "
    "is at most {percent}%"
)
PAGE, PUBLICATION = "on this page", "in this publication"  # a family's scope, in words


def by_name(breakdown: str) -> str:
    return BY.get(breakdown, breakdown.replace("_", " "))


def by_group_chart(release: Release) -> str:
    """The name of the chart of an indices breakdown release (and of its CSV)."""
    return f"indices-by-{by_name(release.breakdown or '').replace(' ', '-')}"


def group_names(release: Release) -> dict[str, str]:
    """A release's groups in plain words."""
    if release.breakdown is None:
        return {"all": "everyone"}
    by = release.survey.question(release.breakdown)
    names = {o.id: o.text for o in by.options}
    names["skipped"] = "not answered"
    return names


@dataclass(frozen=True, slots=True)
class Comparison:
    """One verdict a page shows: what it compares, on which chart, and its test."""

    chart: str  # the name of the chart that shows it
    kind: Kind
    index: IndexName
    first: str  # the page's period, or a group's name
    second: str  # the period before; for a trend, the run's first period; another group
    test: Test
    periods: int = 0  # a trend's number of periods
    granularity: Granularity = "quarter"  # a trend's kind of period
    by: str = ""  # the groups' breakdown, in words


@dataclass(frozen=True, slots=True)
class Finding:
    comparison: Comparison
    verdict: Verdict

    @property
    def real(self) -> bool:
        return self.verdict != "can't tell"

    @property
    def size(self) -> float:
        """How far apart, in points (a trend: points per period), rounded for words."""
        return abs(self.comparison.test.estimate)


@dataclass(frozen=True, slots=True)
class Findings:
    """One page's verdicts, of a family of ``size`` comparisons judged together (the page's,
    or a publication's) in one ``scope``."""

    findings: tuple[Finding, ...]
    size: int
    scope: str = PAGE
    alpha: float = ALPHA

    def of_chart(self, chart: str) -> list[Finding]:
        return [f for f in self.findings if f.comparison.chart == chart]

    def rule(self) -> str:
        """The family's rule in plain words."""
        return RULE.format(scope=self.scope, percent=f"{self.alpha * 100:g}")


def comparisons(report: Report, charts: Collection[str] | None = None) -> list[Comparison]:
    """Every verdict the page of ``report`` shows (only those of the charts named, if given),
    in the page's order: over time (changes, then trends), then by group."""
    found = _over_time(report)
    for release in report.indices_groups:
        found += _groups(release)
    return [c for c in found if charts is None or c.chart in charts]


def judged(families: Sequence[Sequence[Comparison]], scope: str) -> list[Findings]:
    """Several pages' comparisons judged as one family (a publication), returned per page."""
    flat = [c for family in families for c in family]
    verdicts = iter(judge([c.test for c in flat]))
    return [
        Findings(tuple(Finding(c, next(verdicts)) for c in family), len(flat), scope)
        for family in families
    ]


def of_report(report: Report) -> Findings:
    """The verdicts of one page, judged as its own family."""
    return judged([comparisons(report)], PAGE)[0]


def _over_time(report: Report) -> list[Comparison]:
    series = list(report.indices_trend)
    if not series or series[-1].period != report.period:
        return []
    now = series[-1]
    found: list[Comparison] = []
    before = series[-2] if len(series) > 1 else None
    if before is not None and before.period.end == now.period.start:
        for index in now.indices:
            if index not in before.indices:
                continue
            a, b = now.released(index), before.released(index)
            if (
                a is None
                or b is None
                or not (now.index(index).readable and before.index(index).readable)
            ):
                continue
            found.append(
                Comparison(
                    OVER_TIME,
                    "change",
                    index,
                    str(now.period),
                    str(before.period),
                    Difference(a[0], b[0], a[1], b[1]),
                )
            )
    for index in now.indices:
        run = _run(series, index)
        if len(run) >= 3:
            found.append(
                Comparison(
                    OVER_TIME,
                    "trend",
                    index,
                    str(run[-1].period),
                    str(run[0].period),
                    Trend([cells for r in run if (cells := r.released(index)) is not None]),
                    len(run),
                    run[-1].period.granularity,
                )
            )
    return found


def _run(series: Sequence[Overall], index: IndexName) -> list[Overall]:
    """The consecutive periods ending with the last of ``series`` that show ``index``, at
    most a year's worth."""
    run: list[Overall] = []
    for found in reversed(series):
        if found.released(index) is None or (run and found.period.end != run[0].period.start):
            break
        run.insert(0, found)
    return run[-PER_YEAR[series[-1].period.granularity] :]


def _groups(release: Release) -> list[Comparison]:
    names = group_names(release)
    chart = by_group_chart(release)
    options = [g["group"] for g in release.groups if g["group"] != "skipped"]
    found = []
    for index in release.indices:
        shown = [g for g in options if release.index(index, g).readable]
        for a, b in itertools.combinations(shown, 2):
            first, second = release.released(index, a), release.released(index, b)
            if first is None or second is None:  # cannot be: shown
                continue
            found.append(
                Comparison(
                    chart,
                    "groups",
                    index,
                    names.get(a, a),
                    names.get(b, b),
                    Difference(first[0], second[0], first[1], second[1]),
                    by=by_name(release.breakdown or ""),
                )
            )
    return found


# Words -----------------------------------------------------------------------------------------


def about(points: float) -> str:
    whole = round(points)
    return "less than 1 point" if whole < 1 else "1 point" if whole == 1 else f"{whole} points"


def change_words(finding: Finding) -> str:
    c = finding.comparison
    name = INDICES[c.index]
    if not finding.real:
        return f"{name}: can't tell whether it changed since {c.second}"
    return f"{name}: {finding.verdict} than in {c.second}, by about {about(finding.size)}"


def trend_words(finding: Finding) -> str:
    c = finding.comparison
    name, period = INDICES[c.index], NAMES[c.granularity]
    span = f"over the {c.periods} {period}s {c.second} to {c.first}"
    if not finding.real:
        return f"{name}: can't tell whether it rose or fell {span}"
    went = "rose" if finding.verdict == "higher" else "fell"
    return f"{name}: {went} {span}, by about {about(finding.size)} a {period}"


def group_words(finding: Finding) -> str:
    c = finding.comparison
    return (
        f"{INDICES[c.index]}: \u201c{c.first}\u201d {finding.verdict} than \u201c{c.second}\u201d"
        f", by about {about(finding.size)}"
    )


def over_time_note(findings: Findings) -> str:
    """What the chart over time says, in words: the change since the period before and the
    trend, each index, and the family's rule."""
    here = findings.of_chart(OVER_TIME)
    changes = [change_words(f) for f in here if f.comparison.kind == "change"]
    trends = [trend_words(f) for f in here if f.comparison.kind == "trend"]
    parts = []
    if changes:
        parts.append("Against the period before: " + "; ".join(changes) + ".")
    if trends:
        parts.append("Trend: " + "; ".join(trends) + ".")
    if not parts:
        return ""
    parts.append(
        "Earlier periods are each judged against the one before on their own page. "
        + family_sentence(findings)
    )
    return " ".join(parts)


def groups_note(findings: Findings, chart: str) -> str:
    """Which differences between the groups of a chart are real, in words."""
    here = findings.of_chart(chart)
    real = [group_words(f) for f in here if f.real]
    if real:
        said = (
            "Real differences between groups: "
            + "; ".join(real)
            + ". Every other pair of groups: can't tell."
        )
    elif here:
        said = (
            "No difference between these groups is real: for every pair, can't tell. Intervals "
            "that do not overlap can still be a difference that chance explains, once every "
            f"comparison {findings.scope} is counted."
        )
    else:
        said = "No two groups are readable enough here to compare."
    return (
        said
        + " Groups are compared only where both are shown and readable; \u201cnot answered\u201d "
        "is not compared. " + family_sentence(findings)
    )


def family_sentence(findings: Findings) -> str:
    """The family's rule, said once per chart that shows a verdict."""
    if findings.size == 1:
        return f"This is the one comparison {findings.scope}: {findings.rule()}."
    return (
        f"The {findings.size} comparisons {findings.scope} are judged together (Holm's "
        f"rule): {findings.rule()}."
    )
