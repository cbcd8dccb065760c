"""The program page's charts and tables, from releases only.

The page leads with the two indices over time, each with its 95% interval and a verdict against
the previous period, then the indices by group, then each question's share agreeing. A figure
whose interval is wider than ``READABLE`` is too uncertain to read: an index is drawn greyed
and labelled so, a question's share is not drawn at all ("not enough answers to show this
yet"). Suppressed groups are labelled as such, never drawn as zero.

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

from feedback.publish.reports import (
    IndexValue,
    Release,
    Report,
    Share,
    change,
    rounded,
)
from feedback.surveys import INDICES, IndexName, Question

WIDTH = 460
ROWS = "rows"
READABLE = 0.30  # an interval wider than 30 points is too uncertain to read
SUPPRESSED_LABEL = "suppressed (fewer than the threshold)"
NOT_ENOUGH = "not enough answers to show this yet"
UNCERTAIN = "too uncertain to read"
DESCRIPTION = "Chart; the table below it holds the same numbers."
# Breakdowns in plain words, for headings and legends ("Treatment by gender").
BY = {
    "gender": "gender",
    "age_band": "age",
    "exploitation": "kind of exploitation",
    "time_in_program": "time in program",
}


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
    note: str = ""  # what the reader needs to read it (why some figures are not shown)

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


def by_name(breakdown: str) -> str:
    return BY.get(breakdown, breakdown.replace("_", " "))


def _wrapped(text: str) -> str:
    """An axis label broken into lines (the template splits it), never cut."""
    return "\n".join(textwrap.wrap(text, 38)) or text


def _group_names(release: Release) -> dict[str, str]:
    if release.breakdown is None:
        return {"all": "everyone"}
    by = release.survey.question(release.breakdown)
    names = {o.id: o.text for o in by.options}
    names["skipped"] = "not answered"
    return names


# --- indices ------------------------------------------------------------------------------


def _index_cells(value: IndexValue) -> tuple[str, str]:
    if value.suppressed:
        return "suppressed", ""
    if value.value is None:
        return "no answers", ""
    return points(value.value), f"{points(value.low)} to {points(value.high)}"


def _too_wide(low: float | None, high: float | None, scale: float) -> bool:
    return low is None or high is None or high - low > READABLE * scale


def _index_row(value: IndexValue, x: str) -> dict[str, Any]:
    return {
        "x": x,
        "index": value.name,
        "mean": value.value,
        "low": value.low,
        "high": value.high,
        "uncertain": _too_wide(value.low, value.high, 100),
    }


def indices_over_time(report: Report) -> Chart | None:
    """Each index per period, with its interval and whether it moved since the period
    before."""
    if not report.indices_trend:
        return None
    rows, table = [], []
    before: Release | None = None
    for release in report.indices_trend:
        for index in release.indices:
            value = release.index(index)
            if value.value is not None:
                rows.append(_index_row(value, str(release.period)))
            mean, interval = _index_cells(value)
            moved = _moved(release, before, index)
            uncertain = value.value is not None and _too_wide(value.low, value.high, 100)
            table.append(
                Row(
                    (
                        str(release.period),
                        value.name,
                        mean + (f" ({UNCERTAIN})" if uncertain else ""),
                        interval,
                        moved,
                    ),
                    uncertain,
                )
            )
        before = release
    return Chart(
        "indices-over-time",
        "Treated with rights and Recovery over time",
        _draw(_index_time_template(), rows),
        ("period", "index", "mean (0 to 100)", "95% interval", "against the period before"),
        tuple(table),
    )


def _moved(release: Release, before: Release | None, index: IndexName) -> str:
    """The verdict against the period just before; none for the first period shown."""
    if before is None:
        return ""
    if before.period.end != release.period.start or index not in before.indices:
        return "no release of the period before"
    return change(release, before, index)


def indices_by_group(release: Release) -> Chart:
    """Each index per group of a breakdown (gender, time in program...)."""
    names = _group_names(release)
    rows, table = [], []
    for group in (g["group"] for g in release.groups):
        for index in release.indices:
            value = release.index(index, group)
            name = names.get(group, group)
            if value.value is not None:
                rows.append(_index_row(value, name))
            mean, interval = _index_cells(value)
            uncertain = value.value is not None and _too_wide(value.low, value.high, 100)
            table.append(
                Row(
                    (name, value.name, mean + (f" ({UNCERTAIN})" if uncertain else ""), interval),
                    uncertain,
                )
            )
    by = by_name(release.breakdown or "")
    return Chart(
        f"indices-by-{by.replace(' ', '-')}",
        f"Treated with rights and Recovery by {by}, {release.period}",
        _draw(_index_group_template(), rows),
        (by, "index", "mean (0 to 100)", "95% interval"),
        tuple(table),
    )


def _index_encoding() -> dict[str, Any]:
    return {
        "color": alt.Color(
            "index:N", title="index", sort=list(INDICES.values()), scale=alt.Scale(scheme="dark2")
        ),
        "opacity": alt.condition("datum.uncertain", alt.value(0.3), alt.value(1.0)),
    }


@functools.cache
def _index_time_template() -> str:
    scale = alt.Scale(domain=[0, 100])
    base = alt.Chart(_rows()).encode(
        x=alt.X("x:O", title=None, sort=None, axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("index:N", sort=list(INDICES.values())),
        **_index_encoding(),
    )
    dots = base.mark_point(filled=True, size=60).encode(
        y=alt.Y("mean:Q", scale=scale, title="mean, 0 to 100 (95% interval)")
    )
    whiskers = base.mark_rule(strokeWidth=2).encode(y=alt.Y("low:Q", scale=scale), y2="high:Q")
    return _compile((whiskers + dots).properties(width=WIDTH, height=220))


@functools.cache
def _index_group_template() -> str:
    scale = alt.Scale(domain=[0, 100])
    base = alt.Chart(_rows()).encode(
        y=alt.Y("x:N", title=None, sort=None),
        yOffset=alt.YOffset("index:N", sort=list(INDICES.values())),
        **_index_encoding(),
    )
    dots = base.mark_point(filled=True, size=60).encode(
        x=alt.X("mean:Q", scale=scale, title="mean, 0 to 100 (95% interval)")
    )
    whiskers = base.mark_rule(strokeWidth=2).encode(x=alt.X("low:Q", scale=scale), x2="high:Q")
    return _compile((whiskers + dots).properties(width=WIDTH))


# --- questions ----------------------------------------------------------------------------


def _readable(share: Share) -> bool:
    return share.value is not None and not _too_wide(share.low, share.high, 1)


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
    if not _readable(share):
        return NOT_ENOUGH, ""
    return percent(share.value), f"{percent(share.low)} to {percent(share.high)}"


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
        f"{READABLE * 100:.0f} points: with this many answers the noise that protects them is "
        "larger than any difference the share could show."
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
    notes = (_withheld_note(shares, pooled=bool(report.indices_trend)), _comments_note(now))
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
    return (
        f"About {people} wrote a comment (a noisy count, read as 0 where the noise took it "
        f"below; 95% interval {written.low} to {written.high}). Comments are read only by "
        "the key holder, in batches and in no order, and never shown here."
    )


def grouped(release: Release, *, sections: Sequence[str], pooled: bool) -> Chart:
    """Share agreeing per question and group of a breakdown release (equity, time)."""
    names = _group_names(release)
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
        _withheld_note(shares, pooled),
    )


# --- respondents --------------------------------------------------------------------------


def volume(report: Report) -> Chart:
    """Respondents per period (noisy, to the nearest ten), from the indices releases where
    there are some."""
    trend = report.indices_trend or tuple(report.trend)
    rows, table = [], []
    for release in trend:
        n = rounded(release.n())
        rows.append(
            {
                "period": str(release.period),
                "n": n or 0,
                "label": "suppressed" if n is None else str(n),
            }
        )
        table.append(Row((str(release.period), "suppressed" if n is None else str(n))))
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


def draw(report: Report) -> list[Chart]:
    """Every chart and table of a report's page, in the page's order."""
    made: list[Chart | None] = [indices_over_time(report)]
    made += [indices_by_group(r) for r in report.indices_groups]
    made.append(answers(report))
    pooled = bool(report.indices_trend)
    if report.by_time is not None:
        made.append(grouped(report.by_time, sections=("outcomes",), pooled=pooled))
    made += [grouped(r, sections=("treatment", "outcomes"), pooled=pooled) for r in report.equity]
    made.append(volume(report))
    return [chart for chart in made if chart is not None]
