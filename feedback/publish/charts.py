"""The program page's charts and tables, from releases only.

The page leads with the two indices over time, each with its 95% interval (sampling and
noise) and, for the page's period, a verdict against the period before and a trend over the
year's periods; then the indices by group, with which differences between groups are real;
then each question's share agreeing. Every verdict of a page is judged in one family
(feedback.publish.findings), and each chart says its verdicts in words in its note.

Intervals are drawn as bars, with a reference line at 50 ("neither agree nor disagree") on
the indices' charts; their ends are shown rounded outward (``reports.outward``). A figure
whose interval, as shown, is wider than ``READABLE`` points is too uncertain to read: an
index is drawn greyed and labelled so, a question's share is not drawn at all ("not enough
answers to show this yet"). Suppressed groups are labelled as such, never drawn as zero. A
figure the noise took beyond the end of its scale is shown at the end and says so.

Charts are Altair specs rendered to SVG by vl-convert (offline, no script in the page, so the
strict CSP holds). Each kind is defined once with a named dataset and compiled once to Vega;
drawing puts the rows into that dataset. Drawing happens when releases are made (see
``feedback.publish.views``), never while a request waits. Titles are in the page (heading,
caption, aria-label), not in the SVG.
"""

from __future__ import annotations

import functools
import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import altair as alt
import vl_convert

from feedback.publish import findings as verdicts
from feedback.publish.findings import (
    OVER_TIME,
    Findings,
    by_group_chart,
    by_name,
    group_names,
)
from feedback.publish.reports import (
    BY,
    IndexValue,
    Overall,
    Pooled,
    Release,
    Report,
    Share,
    outward,
    readable,
    rounded,
)
from feedback.stats import means
from feedback.surveys import INDICES, Question

__all__ = ["BY", "READABLE", "Chart", "Row", "by_name", "draw", "warm_up"]

WIDTH = 460
ROWS = "rows"
READABLE = 0.30  # an interval wider than 30 points is too uncertain to read (reports.READABLE)
SUPPRESSED_LABEL = "suppressed (fewer than the threshold)"
NOT_ENOUGH = "not enough answers to show this yet"
UNCERTAIN = "too uncertain to read"
CLAMPED = "held at the end of the scale"
NEITHER = "50: neither agree nor disagree"
DESCRIPTION = "Chart; the table below it holds the same numbers."
# Who an index's figure is the mean of: those who answered at least one of its questions.
ANSWERED = "answered it (noisy, to the nearest ten)"


@dataclass(frozen=True, slots=True)
class Row:
    cells: tuple[str, ...]
    uncertain: bool = False  # greyed on the page


@dataclass(frozen=True, slots=True)
class Chart:
    name: str  # the table's name, and its CSV's
    title: str
    svg: str  # "" when drawn without pictures (the tables alone)
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    note: str = ""  # what the reader needs to read it: its verdicts, why figures are withheld

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "svg": self.svg,
            "columns": list(self.columns),
            "rows": [[list(r.cells), r.uncertain] for r in self.rows],
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Chart:
        return cls(
            data["name"],
            data["title"],
            data["svg"],
            tuple(data["columns"]),
            tuple(Row(tuple(cells), uncertain) for cells, uncertain in data["rows"]),
            data["note"],
        )


def _draw(template: str, rows: list[dict[str, Any]]) -> str:
    """SVG of a compiled template (Vega JSON) with ``rows`` as its data."""
    vega = json.loads(template)
    for dataset in vega["data"]:
        if dataset.get("name") == ROWS:
            dataset["values"] = rows
    return str(vl_convert.vega_to_svg(json.dumps(vega)))


def _compile(chart: Any) -> str:
    """An Altair chart over the named dataset ROWS, compiled to Vega JSON; its SVG says
    (for screen readers) that the table beside it holds the same numbers."""
    # The page labels the chart as one image (its table has the numbers): no mark is read out
    # on its own, and an empty layer is no unlabelled "graphics-symbol".
    spec = chart.properties(description=DESCRIPTION).configure_mark(aria=False)
    spec = spec.to_dict(validate=False)
    spec["datasets"] = {ROWS: []}
    return json.dumps(vl_convert.vegalite_to_vega(json.dumps(spec)))


def _rows() -> Any:
    return alt.Data(name=ROWS)  # type: ignore[no-untyped-call]  # Altair's generated API


def warm_up() -> None:
    """Start vl-convert's engine and compile the fixed templates."""
    _draw(_volume_template(), [{"period": "-", "n": 0, "label": ""}])
    _index_time_template()
    _index_group_template()
    _share_template("period")


def percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.0f}%"


def points(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def label(question: Question) -> str:
    """A question as charts and tables name it; reverse-scored ones say which way is good."""
    return f"{question.text} (lower is better)" if question.reverse else question.text


def _wrapped(text: str) -> str:
    """An axis label broken into lines (the template splits it), never cut."""
    return "\n".join(textwrap.wrap(text, 38)) or text


def _clamped_note(any_clamped: bool, what: str) -> str:
    if not any_clamped:
        return ""
    return (
        f"Where a figure says \u201c{CLAMPED}\u201d, the noise took {what} beyond the end of "
        "its scale and it is shown at the end: that pulls a figure near 0 up and one near 100 "
        "down. Its interval, computed before, is what to read."
    )


# --- indices ------------------------------------------------------------------------------


def _index_cells(value: IndexValue) -> tuple[str, str]:
    """The mean and the interval as a table shows them (the ends rounded outward)."""
    if value.suppressed:
        return "suppressed", ""
    if value.value is None or value.low is None or value.high is None:
        return "no answers", ""
    low, high = outward(value.low, value.high)
    mean = points(value.value)
    if not value.readable:
        mean += f" ({UNCERTAIN})"
    if value.clamped:
        mean += f" ({CLAMPED})"
    return mean, f"{low} to {high}"


def _index_row(value: IndexValue, x: str) -> dict[str, Any]:
    return {
        "x": x,
        "index": value.name,
        "mean": value.value,
        "low": value.low,
        "high": value.high,
        "uncertain": not value.readable,
    }


def _answered(released: tuple[means.Noisy, means.Scales] | None) -> str:
    """How many answered at least one of an index's questions: its noisy count, to the
    nearest ten, as respondents are shown."""
    return "" if released is None else str(rounded(released[0].n))


def _pooled_note(series: Sequence[Overall]) -> str:
    """How the figures of periods with no overall release of their own were added up."""
    said = []
    for found in series:
        if not isinstance(found, Pooled):
            continue
        if found.by is None:
            parts = ", ".join(str(p.period) for p in found.parts)
            said.append(f"{found.period} is added up from the releases of {parts}")
            continue
        release = found.parts[0]
        names = group_names(release)
        left = sorted({g for i in found.indices for g in found.left_out(i)})
        said.append(
            f"{found.period} is added up from its groups by {by_name(found.by)}"
            + (
                ", leaving out "
                + ", ".join(f"\u201c{names.get(g, g)}\u201d" for g in left)
                + " (suppressed, or too few to add up)"
                if left
                else ""
            )
        )
    if not said:
        return ""
    return (
        "; ".join(said)
        + ": no release of its own, the same respondents' released numbers added up (no "
        "more of the budget), with an interval for the noise of every part."
    )


def indices_over_time(report: Report, found: Findings) -> Chart | None:
    """Each index per period, with its interval; the page's period against the one before,
    and the trend over the year's periods, in the last column and in words."""
    if not report.indices_trend:
        return None
    here = found.of_chart(OVER_TIME)
    changes = {f.comparison.index: f for f in here if f.comparison.kind == "change"}
    rows, table, clamped = [], [], False
    for position, overall in enumerate(report.indices_trend):
        before = report.indices_trend[position - 1] if position else None
        for index in overall.indices:
            value = overall.index(index)
            if value.value is not None:
                rows.append(_index_row(value, str(overall.period)))
            mean, interval = _index_cells(value)
            clamped |= value.clamped
            verdict = ""
            if overall.period == report.period:
                if index in changes:
                    verdict = changes[index].verdict
                elif before is None or before.period.end != overall.period.start:
                    verdict = "no release of the period before"
                else:
                    verdict = f"can't tell ({UNCERTAIN})"
            table.append(
                Row(
                    (
                        str(overall.period),
                        value.name,
                        mean,
                        interval,
                        verdict,
                        _answered(overall.released(index)),
                    ),
                    value.value is not None and not value.readable,
                )
            )
    notes = (
        verdicts.over_time_note(found),
        _pooled_note(report.indices_trend),
        _clamped_note(clamped, "a mean"),
    )
    return Chart(
        OVER_TIME,
        "Treated with rights and Recovery over time",
        _draw(_index_time_template(), rows),
        (
            "period",
            "index",
            "mean (0 to 100)",
            "95% interval",
            "against the period before",
            ANSWERED,
        ),
        tuple(table),
        " ".join(note for note in notes if note),
    )


def indices_by_group(release: Release, found: Findings) -> Chart:
    """Each index per group of a breakdown (gender, time in program...), and which
    differences between groups are real."""
    names = group_names(release)
    name = by_group_chart(release)
    real: dict[tuple[str, str], list[str]] = {}
    for f in found.of_chart(name):
        if f.real:
            c, other = f.comparison, "lower" if f.verdict == "higher" else "higher"
            real.setdefault((c.index, c.first), []).append(f"{f.verdict} than {c.second}")
            real.setdefault((c.index, c.second), []).append(f"{other} than {c.first}")
    rows, table, clamped = [], [], False
    for group in (g["group"] for g in release.groups):
        for index in release.indices:
            value = release.index(index, group)
            shown = names.get(group, group)
            if value.value is not None:
                rows.append(_index_row(value, shown))
            mean, interval = _index_cells(value)
            clamped |= value.clamped
            said = "; ".join(real.get((index, shown), [])) or (
                "" if not value.readable else "not compared" if group == "skipped" else "none"
            )
            table.append(
                Row(
                    (
                        shown,
                        value.name,
                        mean,
                        interval,
                        said,
                        _answered(release.released(index, group)),
                    ),
                    value.value is not None and not value.readable,
                )
            )
    by = by_name(release.breakdown or "")
    notes = (verdicts.groups_note(found, name), _clamped_note(clamped, "a mean"))
    return Chart(
        name,
        f"Treated with rights and Recovery by {by}, {release.period}",
        _draw(_index_group_template(), rows),
        (by, "index", "mean (0 to 100)", "95% interval", "real differences", ANSWERED),
        tuple(table),
        " ".join(note for note in notes if note),
    )


def _index_encoding() -> dict[str, Any]:
    return {
        "color": alt.Color(
            "index:N", title="index", sort=list(INDICES.values()), scale=alt.Scale(scheme="dark2")
        ),
        "stroke": alt.Stroke(
            "index:N", sort=list(INDICES.values()), scale=alt.Scale(scheme="dark2"), legend=None
        ),
        "opacity": alt.condition("datum.uncertain", alt.value(0.25), alt.value(1.0)),
    }


def _neither(axis: str) -> Any:
    """The reference line at 50 ("neither agree nor disagree"), labelled outside the plot
    (beside it, or above it), where no bar can hide the words."""
    data = alt.Data(values=[{"at": 50, "label": NEITHER}])  # type: ignore[no-untyped-call]
    scale = alt.Scale(domain=[0, 100])
    base = alt.Chart(data)
    rule = base.mark_rule(color="#555", strokeDash=[5, 3], strokeWidth=1.5)
    if axis == "y":
        at = alt.Y("at:Q", scale=scale)
        words = base.mark_text(
            align="left", baseline="middle", dx=6, color="#333", lineBreak=": "
        ).encode(y=at, x=alt.value(WIDTH), text="label:N")
        return rule.encode(y=at) + words
    at_x = alt.X("at:Q", scale=scale)
    words = base.mark_text(align="center", baseline="bottom", color="#333").encode(
        x=at_x, y=alt.value(-6), text="label:N"
    )
    return rule.encode(x=at_x) + words


# A mark for the estimate: a short line across the interval's bar (vertical charts) or down
# it (horizontal ones), centred on the bar as a tick is not when bars are offset.
ACROSS, DOWN = "M-1,0H1", "M0,-1V1"


@functools.cache
def _index_time_template() -> str:
    """Per period and index: the interval as a bar, the estimate as a line across it."""
    scale = alt.Scale(domain=[0, 100])
    base = alt.Chart(_rows()).encode(
        x=alt.X("x:O", title=None, sort=None, axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("index:N", sort=list(INDICES.values())),
        **_index_encoding(),
    )
    bars = base.mark_bar(fillOpacity=0.3, strokeWidth=1).encode(
        y=alt.Y("low:Q", scale=scale, title="mean, 0 to 100 (bar: its 95% interval)"),
        y2="high:Q",
    )
    means = base.mark_point(shape=ACROSS, size=300, strokeWidth=3, filled=False).encode(
        y=alt.Y("mean:Q", scale=scale)
    )
    return _compile((_neither("y") + bars + means).properties(width=WIDTH, height=240))


@functools.cache
def _index_group_template() -> str:
    scale = alt.Scale(domain=[0, 100])
    base = alt.Chart(_rows()).encode(
        y=alt.Y("x:N", title=None, sort=None),
        yOffset=alt.YOffset("index:N", sort=list(INDICES.values())),
        **_index_encoding(),
    )
    bars = base.mark_bar(fillOpacity=0.3, strokeWidth=1).encode(
        x=alt.X("low:Q", scale=scale, title="mean, 0 to 100 (bar: its 95% interval)"),
        x2="high:Q",
    )
    means = base.mark_point(shape=DOWN, size=200, strokeWidth=3, filled=False).encode(
        x=alt.X("mean:Q", scale=scale)
    )
    return _compile((_neither("x") + bars + means).properties(width=WIDTH))


# --- questions ----------------------------------------------------------------------------


def _readable(share: Share) -> bool:
    return share.value is not None and readable(share.low, share.high, 100)


def _share_row(share: Share, series: str) -> dict[str, Any]:
    shown = _readable(share)
    return {
        "question": _wrapped(label(share.question)),
        "series": series,
        "share": share.value if shown else None,
        "low": share.low if shown else None,
        "high": share.high if shown else None,
        "label": "" if shown else (SUPPRESSED_LABEL if share.suppressed else NOT_ENOUGH),
        "shown": shown,
    }


def _share_cells(share: Share) -> tuple[str, str]:
    if share.suppressed:
        return "suppressed", ""
    if share.value is None:
        return "no answers", ""
    if not _readable(share) or share.low is None or share.high is None:
        return NOT_ENOUGH, ""
    low, high = outward(share.low, share.high, 100)
    value = percent(share.value) + (f" ({CLAMPED})" if share.clamped else "")
    return value, f"{low}% to {high}%"


@functools.lru_cache(maxsize=16)
def _share_template(series_title: str) -> str:
    """Horizontal bars of shares with two-sided 95% intervals, one bar per series in each
    question; a share too uncertain to read, or suppressed, is a text mark instead."""
    base = alt.Chart(_rows()).encode(
        y=alt.Y(
            "question:N",
            title=None,
            sort=None,
            axis=alt.Axis(labelLimit=0, labelExpr="split(datum.label, '\\n')"),
        ),
        yOffset=alt.YOffset("series:N", sort=None),
        color=alt.Color("series:N", title=series_title, sort=None),
    )
    scale = alt.Scale(domain=[0, 1])
    bars = (
        base.transform_filter("datum.shown")
        .mark_bar(opacity=0.6)
        .encode(
            x=alt.X(
                "share:Q",
                title="share agreeing (95% interval)",
                scale=scale,
                axis=alt.Axis(format="%"),
            ),
        )
    )
    whiskers = (
        base.transform_filter("datum.shown")
        .mark_rule(color="#222", strokeWidth=2)
        .encode(x=alt.X("low:Q", scale=scale), x2="high:Q")
    )
    hidden = (
        base.transform_filter("!datum.shown")
        .mark_text(align="left", dx=4, color="#444")
        .encode(x=alt.datum(0), text="label:N")
    )
    return _compile((bars + whiskers + hidden).properties(width=WIDTH - 120))


def _withheld_note(shares: Sequence[Share], pooled: bool) -> str:
    if all(_readable(s) or s.suppressed or s.value is None for s in shares):
        return ""
    return (
        f"Where a share says \u201c{NOT_ENOUGH}\u201d, its 95% interval would be wider than "
        f"{READABLE * 100:.0f} points: with this many answers, sampling and the noise that "
        "protects them are larger than any difference the share could show."
        + (" The indices above pool several questions and need fewer answers." if pooled else "")
    )


def answers(report: Report) -> Chart | None:
    """Each question's share agreeing, this period against the previous one."""
    if report.overall is None:
        return None
    now, before = report.overall, report.previous
    rows, table, shares = [], [], []
    for question in now.questions:
        if question.type != "likert5":
            continue
        share = now.share(question.id)
        rows.append(_share_row(share, str(now.period)))
        previous = before.share(question.id) if before is not None else None
        if previous is not None:
            rows.append(_share_row(previous, str(before.period)))  # type: ignore[union-attr]
        shares.append(share)
        value, interval = _share_cells(share)
        table.append(
            Row(
                (
                    label(question),
                    value,
                    interval,
                    "" if previous is None else _share_cells(previous)[0],
                ),
                uncertain=not _readable(share),
            )
        )
    notes = (
        _withheld_note(shares, pooled=bool(report.indices_trend)),
        _clamped_note(any(s.clamped and _readable(s) for s in shares), "a share"),
        _comments_note(now),
    )
    return Chart(
        "answers",
        f"Each question: share agreeing, {now.period}",
        _draw(_share_template("period"), rows),
        ("question", f"agree {now.period}", "95% interval", "period before"),
        tuple(table),
        " ".join(note for note in notes if note),
    )


def _comments_note(release: Release) -> str:
    written = release.comments()
    if written is None:
        return ""
    people = "1 person" if written.value == 1 else f"{written.value} people"
    held = (
        " The noise took it below 0, so it is shown as 0, which says more than were written."
        if written.clamped
        else ""
    )
    return (
        f"About {people} wrote a comment (a noisy count of this period's answers; 95% "
        f"interval, for the noise, {written.low} to {written.high}).{held} Comments are read "
        "only by the key holder, in batches and in no order, and never shown here."
    )


def grouped(release: Release, *, sections: Sequence[str], pooled: bool) -> Chart:
    """Share agreeing per question and group of a breakdown release (equity, time)."""
    names = group_names(release)
    rows, table, shares = [], [], []
    for question in release.questions:
        if question.section not in sections or question.type != "likert5":
            continue
        for group in (g["group"] for g in release.groups):
            share = release.share(question.id, group)
            name = names.get(group, group)
            rows.append(_share_row(share, name))
            shares.append(share)
            value, interval = _share_cells(share)
            table.append(Row((label(question), name, value, interval), not _readable(share)))
    by = by_name(release.breakdown or "")
    what = "Outcomes" if sections == ("outcomes",) else "Treatment and outcomes"
    return Chart(
        f"{what.lower().replace(' ', '-')}-by-{by.replace(' ', '-')}",
        f"{what} by {by}, {release.period}",
        _draw(_share_template(by), rows),
        ("question", by, "agree", "95% interval"),
        tuple(table),
        " ".join(
            note
            for note in (
                _withheld_note(shares, pooled),
                _clamped_note(any(s.clamped and _readable(s) for s in shares), "a share"),
            )
            if note
        ),
    )


# --- respondents --------------------------------------------------------------------------


def volume(report: Report) -> Chart | None:
    """Respondents per period (noisy, to the nearest ten), from the overall indices (released
    or added up) where there are some, else from the questions' releases."""
    trend: Sequence[Overall | Release] = report.indices_trend or tuple(report.trend)
    rows, table = [], []
    for found in trend:
        n = rounded(found.n())
        rows.append(
            {
                "period": str(found.period),
                "n": n or 0,
                "label": "suppressed" if n is None else str(n),
            }
        )
        table.append(Row((str(found.period), "suppressed" if n is None else str(n))))
    if not rows:
        return None
    return Chart(
        "respondents",
        "Respondents per period (noisy, to the nearest ten)",
        _draw(_volume_template(), rows),
        ("period", "respondents"),
        tuple(table),
    )


@functools.cache
def _volume_template() -> str:
    base = alt.Chart(_rows()).encode(
        x=alt.X("period:O", title=None, sort=None, axis=alt.Axis(labelAngle=0))
    )
    return _compile(
        (
            base.mark_bar().encode(y=alt.Y("n:Q", title="respondents"))
            + base.mark_text(dy=-6).encode(y="n:Q", text="label:N")
        ).properties(width=WIDTH, height=160)
    )


def draw(report: Report, found: Findings | None = None) -> list[Chart]:
    """Every chart and table of a report's page, in the page's order, with the verdicts
    ``found`` (by default the page's own family, judged here)."""
    if found is None:
        found = verdicts.of_report(report)
    made: list[Chart | None] = [indices_over_time(report, found)]
    made += [indices_by_group(r, found) for r in report.indices_groups]
    made.append(answers(report))
    pooled = bool(report.indices_trend)
    if report.by_time is not None:
        made.append(grouped(report.by_time, sections=("outcomes",), pooled=pooled))
    made += [grouped(r, sections=("treatment", "outcomes"), pooled=pooled) for r in report.equity]
    made.append(volume(report))
    return [chart for chart in made if chart is not None]
