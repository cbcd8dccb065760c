"""Dashboard charts: Altair specs rendered to SVG on the server by vl-convert (offline, no
script in the page, so the strict CSP holds). Each chart comes with the rows of its data table
and CSV. Suppressed groups are drawn as a labelled "suppressed" mark, never as a zero bar.

Each kind of chart is defined once in Altair with a named dataset, compiled once to Vega
(vl-convert), and drawn per request by putting the rows into that dataset: Altair and the
Vega-Lite compiler are not on the request path, only Vega's renderer. Titles are in the page
(heading, caption, aria-label), not in the SVG, so that one template serves every period.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import altair as alt
import vl_convert

from feedback.publish.reports import Release, Report, Share, rounded
from feedback.surveys import Question

WIDTH = 520
ROWS = "rows"
SUPPRESSED_LABEL = "suppressed (fewer than the threshold)"


@dataclass(frozen=True, slots=True)
class Chart:
    name: str  # also the CSV's name
    title: str
    svg: str
    columns: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]


def _draw(template: str, rows: list[dict[str, Any]]) -> str:
    """SVG of a compiled template (Vega JSON) with ``rows`` as its data."""
    vega = json.loads(template)
    for dataset in vega["data"]:
        if dataset.get("name") == ROWS:
            dataset["values"] = rows
    return str(vl_convert.vega_to_svg(json.dumps(vega)))


def _compile(chart: Any) -> str:
    """An Altair chart over the named dataset ROWS, compiled to Vega JSON."""
    spec = chart.to_dict(validate=False)
    spec["datasets"] = {ROWS: []}
    return json.dumps(vl_convert.vegalite_to_vega(json.dumps(spec)))


def _rows() -> Any:
    return alt.Data(name=ROWS)  # type: ignore[no-untyped-call]  # Altair's generated API


def warm_up() -> None:
    """Start vl-convert's engine and compile the fixed templates, so that the first person
    to open a dashboard after a start does not wait for them (about half a second)."""
    _draw(_volume_template(), [{"period": "-", "n": 0, "label": ""}])
    _trend_template()
    _share_template("period")


def percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.0f}%"


def label(question: Question) -> str:
    """A question as charts and tables name it; reverse-scored ones say which way is good."""
    return f"{question.text} (lower is better)" if question.reverse else question.text


def _share_row(share: Share, series: str) -> dict[str, Any]:
    return {
        "question": label(share.question),
        "series": series,
        "share": share.value,
        "low": share.low,
        "high": share.high,
        "label": SUPPRESSED_LABEL if share.suppressed else percent(share.value),
        "suppressed": share.suppressed,
    }


@functools.lru_cache(maxsize=16)
def _share_template(series_title: str) -> str:
    """Horizontal bars of shares with their 95% intervals, one bar per series in each
    question; suppressed series get a text mark instead of a bar."""
    base = alt.Chart(_rows()).encode(
        y=alt.Y("question:N", title=None, sort=None, axis=alt.Axis(labelLimit=260)),
        yOffset=alt.YOffset("series:N", sort=None),
        color=alt.Color("series:N", title=series_title, sort=None),
    )
    scale = alt.Scale(domain=[0, 1])
    bars = (
        base.transform_filter("!datum.suppressed")
        .mark_bar()
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
        base.transform_filter("!datum.suppressed")
        .mark_rule(color="#222")
        .encode(x=alt.X("low:Q", scale=scale), x2="high:Q")
    )
    hidden = (
        base.transform_filter("datum.suppressed")
        .mark_text(align="left", dx=4, color="#444")
        .encode(x=alt.datum(0), text="label:N")
    )
    return _compile((bars + whiskers + hidden).properties(width=WIDTH))


def _share_chart(rows: list[dict[str, Any]], *, series_title: str) -> str:
    return _draw(_share_template(series_title), rows)


def scorecard(report: Report) -> Chart | None:
    """Share agreeing per treatment question, this period against the previous one."""
    if report.overall is None:
        return None
    now, before = report.overall, report.previous
    rows, table = [], []
    for question in now.questions:
        if question.section != "treatment" or question.type != "likert5":
            continue
        share = now.share(question.id)
        rows.append(_share_row(share, str(now.period)))
        previous = before.share(question.id) if before is not None else None
        if previous is not None:
            rows.append(_share_row(previous, str(before.period)))  # type: ignore[union-attr]
        table.append(
            (
                label(question),
                _cell(share),
                _interval(share),
                "" if previous is None else _cell(previous),
            )
        )
    title = f"How survivors were treated, {now.period}"
    return Chart(
        "scorecard",
        title,
        _share_chart(rows, series_title="period"),
        ("question", f"agree {now.period}", "95% interval", "previous period"),
        table,
    )


def grouped(release: Release, *, name: str, title: str, sections: Sequence[str]) -> Chart:
    """Share agreeing per question and group of a breakdown release (equity, time)."""
    rows, table = [], []
    groups = [g["group"] for g in release.groups]
    by = release.survey.question(release.breakdown) if release.breakdown else None
    names = {o.id: o.text for o in by.options} if by is not None else {}
    for question in release.questions:
        if question.section not in sections or question.type != "likert5":
            continue
        for group in groups:
            share = release.share(question.id, group)
            name = names.get(group, "not answered" if group == "skipped" else group)
            rows.append(_share_row(share, name))
            table.append((label(question), name, _cell(share), _interval(share)))
    return Chart(
        name,
        title,
        _share_chart(rows, series_title=by.text if by else "group"),
        ("question", "group", "agree", "95% interval"),
        table,
    )


def trend(report: Report) -> Chart | None:
    """Share agreeing over the periods, for the treatment questions."""
    if len(report.trend) < 2:
        return None
    rows, table = [], []
    for release in report.trend:
        for question in release.questions:
            if question.section != "treatment" or question.type != "likert5":
                continue
            share = release.share(question.id)
            if share.value is not None:
                rows.append(
                    {"period": str(release.period), "question": question.id, "share": share.value}
                )
            table.append((str(release.period), label(question), _cell(share), _interval(share)))
    title = "Share agreeing over time"
    return Chart(
        "trend",
        title,
        _draw(_trend_template(), rows),
        ("period", "question", "agree", "95% interval"),
        table,
    )


@functools.cache
def _trend_template() -> str:
    return _compile(
        alt.Chart(_rows())
        .mark_line(point=True)
        .encode(
            x=alt.X("period:O", title=None, sort=None),
            y=alt.Y(
                "share:Q",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%"),
                title="share agreeing",
            ),
            color=alt.Color("question:N", title="question"),
        )
        .properties(width=WIDTH)
    )


def volume(report: Report) -> Chart:
    """Respondents per period (noisy, to the nearest ten). No channel mix: releases do not
    carry one (it was an exact count)."""
    rows, table = [], []
    for release in report.trend:
        n = rounded(release.n())
        rows.append(
            {
                "period": str(release.period),
                "n": n or 0,
                "label": "suppressed" if n is None else str(n),
            }
        )
        table.append((str(release.period), "suppressed" if n is None else str(n)))
    title = "Respondents per period (to the nearest ten)"
    return Chart(
        "volume",
        title,
        _draw(_volume_template(), rows),
        ("period", "respondents"),
        table,
    )


@functools.cache
def _volume_template() -> str:
    base = alt.Chart(_rows()).encode(x=alt.X("period:O", title=None, sort=None))
    return _compile(
        (
            base.mark_bar().encode(y=alt.Y("n:Q", title="respondents"))
            + base.mark_text(dy=-6).encode(y="n:Q", text="label:N")
        ).properties(width=WIDTH, height=160)
    )


def _cell(share: Share) -> str:
    if share.suppressed:
        return "suppressed"
    return "no answers" if share.value is None else percent(share.value)


def _interval(share: Share) -> str:
    if share.low is None or share.high is None:
        return ""
    return f"{percent(share.low)} to {percent(share.high)}"
