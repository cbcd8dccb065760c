"""A publication's files, built from releases only (issue 14): the summary a funder reads, the
same figures as JSON and CSV, each chart as SVG and PNG beside its table as CSV, and a release
card per release. The worker signs and stores them (``feedback.cli.publishing``): nothing here
holds or asks for a key, and nothing reads anything but releases, their surveys' definitions
and the ledger's running total.

The summary opens offline: its charts are inline SVG, its one stylesheet is allowed by hash in
a Content-Security-Policy that allows no request at all, and it names no other origin.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
import math
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import vl_convert
from markupsafe import Markup

import feedback
from feedback.bundles import WHOLE_ORGANISATION
from feedback.db import Connection
from feedback.errors import FeedbackError
from feedback.publish import charts, findings
from feedback.publish.render import standalone
from feedback.publish.reports import Release, outward, program_releases, report, rounded
from feedback.stats.budget import year_budget
from feedback.stats.cells import SUPPRESSED
from feedback.stats.periods import Period
from feedback.stats.shares import ALPHA, noise_bound
from feedback.surveys import INDICES

SUMMARY = "summary.html"
FIGURES = "figures.json"
FIGURES_CSV = "figures.csv"
FIGURES_FORMAT = "feedback-figures/1"
USE = "program reports for managers and signed publications for funders"
# An earlier period's charts that the latest period's page already shows over time.
TRENDS = frozenset({"indices-over-time", "answers", "respondents"})
UNITS = {
    "invitation": "one invitation (a single-use link or SMS code), which stands for one "
    "survivor in one period; an invitation yields at most one answer",
    "submission": "one submission: open (poster) links were offered, and one person may "
    "answer more than once, so the guarantee is per answer, not per person",
}
NOT_NOISED = (
    "the survey's questions, answer categories and which questions make each index",
    "the names of the programs, groups and periods",
    "the privacy parameters on this card (epsilon, noise scales, threshold)",
)


class NothingToPublish(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class Heading:
    organisation: str  # short name
    organisation_name: str
    series: str
    sequence: int
    period: Period
    issued: dt.date
    next_due: dt.date | None
    corrects: int | None = None
    why: str | None = None


WHOLE = WHOLE_ORGANISATION


@dataclass(frozen=True, slots=True)
class ProgramReleases:
    id: uuid.UUID | None  # None: the whole organisation's releases
    slug: str
    name: str
    releases: tuple[Release, ...]


@dataclass(frozen=True, slots=True)
class Gathered:
    """Everything a publication shows, read from the database; turned into files by ``files``
    (which reads nothing more)."""

    heading: Heading
    programs: tuple[ProgramReleases, ...]
    spent: Decimal  # the worst-off survivor's epsilon in the period's budget year, at issue
    composition: str

    def releases(self) -> Iterator[tuple[ProgramReleases, Release]]:
        for program in self.programs:
            for release in program.releases:
                yield program, release


def within(inner: Period, outer: Period) -> bool:
    return outer.start <= inner.start and inner.end <= outer.end


async def gather(
    conn: Connection,
    organisation_id: uuid.UUID,
    heading: Heading,
    program_ids: Sequence[uuid.UUID] | None,
) -> Gathered:
    """The releases of ``heading.period`` (and of the periods inside it) of the programs chosen;
    when every program is, the whole organisation's releases too. Refused when none of them
    has a release of that period."""
    rows = await conn.fetch(
        """
        SELECT id, slug, name FROM programs
         WHERE organisation_id = $1 AND ($2::uuid[] IS NULL OR id = ANY($2::uuid[]))
         ORDER BY name
        """,
        organisation_id,
        None if program_ids is None else list(program_ids),
    )
    scopes: list[tuple[uuid.UUID | None, str, str]] = [
        (row["id"], row["slug"], row["name"]) for row in rows
    ]
    if program_ids is None:
        scopes.append((None, WHOLE, f"{heading.organisation_name}, all programs"))
    programs = []
    for program_id, slug, name in scopes:
        releases = await program_releases(conn, organisation_id, program_id)
        chosen = tuple(r for r in releases if within(r.period, heading.period))
        if program_id is not None or chosen:
            programs.append(ProgramReleases(program_id, slug, name, chosen))
    if not any(p.releases for p in programs):
        raise NothingToPublish(
            f"no release of {heading.period} has been made for "
            + (", ".join(p.slug for p in programs) or "any program")
            + ": make it first (`feedback aggregate`), or the worker makes it when it holds "
            "the key passphrase"
        )
    budget = await year_budget(conn, organisation_id, heading.period.budget_year)
    return Gathered(heading, tuple(programs), budget.spent, budget.accounting)


# Files ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Section:
    program: ProgramReleases
    period: Period
    charts: tuple[charts.Chart, ...]
    findings: findings.Findings | None = None  # the verdicts its charts show


def sections(gathered: Gathered) -> list[Section]:
    """Each program's charts: each period's page whole where it is the latest of its kind
    (the last quarter, the year), and of earlier periods only what that page does not already
    show over time. Every verdict the publication shows is judged in one family (Holm's
    procedure over all of them), so that the chance of any false one stays at 5%."""
    pages = []
    for program in gathered.programs:
        periods = sorted({r.period for r in program.releases}, key=lambda p: (p.start, p.end))
        latest = {p.granularity: p for p in periods}  # sorted: the last of each kind
        for period in periods:
            page = report(program.releases, period)
            if page is not None:
                pages.append((program, period, page, latest[period.granularity] == period))
    families = findings.judged(
        [
            [c for c in findings.comparisons(page) if whole or c.chart not in TRENDS]
            for _, _, page, whole in pages
        ],
        findings.PUBLICATION,
    )
    found = []
    for (program, period, page, whole), verdicts in zip(pages, families, strict=True):
        drawn = charts.draw(page, verdicts)
        if not whole:
            drawn = [c for c in drawn if c.name not in TRENDS]
        if drawn:
            found.append(Section(program, period, tuple(drawn), verdicts))
    return found


def key_findings(drawn: Sequence[Section]) -> list[str]:
    """The publication's real differences and trends, in plain sentences, each the intervals
    support (the family's rule); or, when there is none, that none is."""
    said = []
    for section in drawn:
        if section.findings is None:
            continue
        for finding in section.findings.findings:
            if not finding.real:
                continue
            words = {
                "change": findings.change_words,
                "trend": findings.trend_words,
                "groups": findings.group_words,
            }[finding.comparison.kind](finding)
            by = f" by {finding.comparison.by}" if finding.comparison.by else ""
            said.append(f"{section.program.name}, {section.period}{by}: {words}.")
    return said


def chart_path(section: Section, chart: charts.Chart, suffix: str) -> str:
    return f"charts/{section.program.slug}/{section.period}-{chart.name}.{suffix}"


def files(gathered: Gathered) -> dict[str, bytes]:
    """Every file of the publication but its manifest and signature. CPU-bound (drawing):
    run it off the event loop."""
    drawn = sections(gathered)
    cards = [card(program, release, gathered) for program, release in gathered.releases()]
    out: dict[str, bytes] = {}
    for section in drawn:
        for chart in section.charts:
            out[chart_path(section, chart, "svg")] = chart.svg.encode()
            out[chart_path(section, chart, "png")] = vl_convert.svg_to_png(chart.svg, scale=2)
            out[chart_path(section, chart, "csv")] = _table_csv(chart)
    out[FIGURES] = _figures_json(gathered, drawn, cards)
    out[FIGURES_CSV] = _figures_csv(cards)
    out[SUMMARY] = summary(gathered, drawn, cards).encode()
    return out


def _table_csv(chart: charts.Chart) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(chart.columns)
    writer.writerows(row.cells for row in chart.rows)
    return buffer.getvalue().encode()


def _figures_json(
    gathered: Gathered, drawn: Sequence[Section], cards: Sequence[dict[str, Any]]
) -> bytes:
    heading = gathered.heading
    document = {
        "format": FIGURES_FORMAT,
        "organisation": heading.organisation,
        "organisation_name": heading.organisation_name,
        "series": heading.series,
        "sequence": heading.sequence,
        "period": str(heading.period),
        "issued": heading.issued.isoformat(),
        "programs": [
            {"slug": p.slug, "name": p.name, "released": bool(p.releases)}
            for p in gathered.programs
        ],
        "charts": [
            {
                "program": section.program.slug,
                "period": str(section.period),
                "name": chart.name,
                "title": chart.title,
                "columns": list(chart.columns),
                "rows": [list(row.cells) for row in chart.rows],
                "note": chart.note,
                "files": {s: chart_path(section, chart, s) for s in ("svg", "png", "csv")},
            }
            for section in drawn
            for chart in section.charts
        ],
        "verdicts": [
            {
                "program": section.program.slug,
                "period": str(section.period),
                "chart": f.comparison.chart,
                "kind": f.comparison.kind,
                "index": f.comparison.index,
                "first": f.comparison.first,
                "second": f.comparison.second,
                "verdict": f.verdict,
                "estimate": round(f.comparison.test.estimate, 1),
            }
            for section in drawn
            if section.findings is not None
            for f in section.findings.findings
        ],
        "verdict_rule": verdict_rule(drawn),
        "releases": list(cards),
    }
    return json.dumps(document, indent=1, sort_keys=True).encode() + b"\n"


def verdict_rule(drawn: Sequence[Section]) -> str:
    """How the publication's verdicts were judged, in one sentence."""
    size = next((s.findings.size for s in drawn if s.findings is not None), 0)
    return (
        f"{size} comparisons (each period against the one before, trends over a year's "
        "periods, and groups pairwise) judged together by Holm's procedure: the chance that "
        "any \u201chigher\u201d or \u201clower\u201d in this publication is wrong by chance is at "
        f"most {ALPHA * 100:g}%; every other comparison reads \u201ccan't tell\u201d."
    )


CSV_COLUMNS = ("release", "program", "period", "kind", "breakdown", "group", "figure")


def _figures_csv(cards: Sequence[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow((*CSV_COLUMNS, "value", "low_95", "high_95", "suppressed"))
    for c in cards:
        for f in c["figures"]:
            writer.writerow(
                (
                    c["release"],
                    c["program"],
                    c["period"],
                    c["kind"],
                    c["breakdown"] or "",
                    f["group"],
                    f["figure"],
                    "" if f["value"] is None else f["value"],
                    "" if f["low"] is None else f["low"],
                    "" if f["high"] is None else f["high"],
                    "yes" if f["suppressed"] else "",
                )
            )
    return buffer.getvalue().encode()


# Release cards --------------------------------------------------------------------------------


def card(program: ProgramReleases, release: Release, gathered: Gathered) -> dict[str, Any]:
    """What PRIVACY.md says is published beside every release, as data."""
    unit = release.metadata.get("privacy_unit", "invitation")
    epsilon = float(release.epsilon)
    return {
        "release": str(release.id),
        "published_by": gathered.heading.organisation_name,
        "use": USE,
        "program": program.slug,
        "program_name": program.name,
        "period": str(release.period),
        "kind": release.kind,
        "breakdown": release.breakdown,
        "made": release.created_on.isoformat(),
        "survey": {"slug": release.survey.slug, "version": release.survey.version},
        "privacy_unit": {
            "unit": unit,
            "means": UNITS.get(unit, unit),
            "contribution": contribution(release),
            "composition": release.metadata.get("composition", gathered.composition),
        },
        "epsilon": epsilon,
        "epsilon_spent_in_year": {
            "year": release.period.budget_year,
            "epsilon": float(gathered.spent),
            "as_of": gathered.heading.issued.isoformat(),
        },
        "mechanism": release.mechanism,
        "noise_scale": scales(release),
        "threshold": release.threshold,
        "suppressed_marker": SUPPRESSED,
        "interval": interval_covers(release),
        "figures": figures(release),
        "not_noised": list(NOT_NOISED),
        "code_version": feedback.__version__,
        "protection": protection(epsilon, unit),
        "cells": release.cells,
    }


def interval_covers(release: Release) -> str:
    """What each interval of the release covers: every interval read now covers sampling and
    the noise (a count of this release's respondents, the noise only)."""
    del release  # the same for every release: older ones are read the same way
    return (
        "95%, covering sampling (the respondents as a sample of the people the program serves) "
        "and the noise; not who chose to answer. A count of respondents covers the noise only."
    )


def contribution(release: Release) -> str:
    if release.kind == "indices":
        if "squares_scale" in release.cells:
            return (
                "adds 1 to the count of those who answered each index it answered, in one "
                "group, at most 50 points to each such index's sum (the mean of its answers on "
                "0 to 100, centred on 50) and at most 1,250 to its sum of squares (centred)"
            )
        return (
            "adds 1 to the count of respondents of one group, and at most 50 points to each "
            "index's sum (each answer's mean on 0 to 100, centred on 50)"
        )
    questions = len(release.questions)
    return (
        f"adds 1 to the count of respondents of one group and 1 to one answer category of "
        f"each of the {questions} questions (skipped is a category): at most {1 + questions} "
        "cells"
    )


def scales(release: Release) -> dict[str, float]:
    if release.kind == "indices":
        found = {
            "sums": float(release.cells["sum_scale"]),
            "count": float(release.cells["count_scale"]),
        }
        if release.cells.get("squares_scale") is not None:
            found["squares"] = float(release.cells["squares_scale"])
        return found
    return {"cells": float(release.noise_scale)}


def protection(epsilon: float, unit: str) -> str:
    who = "one person took part" if unit == "invitation" else "one answer was given"
    return (
        f"Whether or not {who} changes the chance of any result of this release by at most a "
        f"factor of {math.exp(epsilon):.2f} (e to the power epsilon, {epsilon:g})."
    )


def _figure(
    group: str, name: str, value: float | None, low: float | None, high: float | None, scale: int
) -> dict[str, Any]:
    """A figure to a tenth (of a point, or of a percent), its interval's ends rounded outward."""
    ends: tuple[float | None, float | None] = (None, None)
    if low is not None and high is not None:
        shown_low, shown_high = outward(low, high, 10 * scale)
        ends = (shown_low / 10, shown_high / 10)
    return {
        "group": group,
        "figure": name,
        "value": None if value is None else round(value * scale, 1),
        "low": ends[0],
        "high": ends[1],
        "suppressed": False,
    }


def figures(release: Release) -> list[dict[str, Any]]:
    """Each figure of a release with its 95% interval: respondents and the indices (0 to 100)
    or each question's headline share (in percent), per group; suppressed groups marked."""
    found = []
    count_scale = (
        float(release.cells["count_scale"])
        if release.kind == "indices"
        else float(release.noise_scale)
    )
    bound = noise_bound(count_scale, 1, ALPHA)
    for group in release.groups:
        name = group["group"]
        if group["n"] == SUPPRESSED:
            found.append(
                {
                    "group": name,
                    "figure": "respondents",
                    "value": None,
                    "low": None,
                    "high": None,
                    "suppressed": True,
                }
            )
            continue
        n = int(group["n"])
        found.append(_figure(name, "respondents", n, max(0, n - bound), n + bound, 1))
        if release.kind == "indices":
            for index in release.indices:
                value = release.index(index, name)
                found.append(_figure(name, INDICES[index], value.value, value.low, value.high, 1))
        else:
            for question in release.questions:
                if question.type == "comment":
                    continue
                share = release.share(question.id, name)
                found.append(_figure(name, question.id, share.value, share.low, share.high, 100))
    return found


# The summary ---------------------------------------------------------------------------------

STYLE = """
body{font:16px/1.5 "DejaVu Sans",system-ui,sans-serif;max-width:60rem;margin:2rem auto;
padding:0 1rem;color:#1a1a1a;background:#fff}
h1,h2,h3{line-height:1.25}header p{margin:.2rem 0}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.9rem}
th,td{border:1px solid #bbb;padding:.25rem .5rem;text-align:left;vertical-align:top}
tr.uncertain td{color:#666}figure{margin:1rem 0}figure svg{max-width:100%;height:auto}
.card{border:1px solid #bbb;padding:.5rem 1rem;margin:1rem 0}
.card dt{font-weight:bold}.card dd{margin:0 0 .4rem 1rem}
.correction{border-left:4px solid #b00;padding-left:1rem}
.note{color:#333;font-style:italic}
"""

_XMLNS = re.compile(r'\s+xmlns(:xlink)?="[^"]*"')


def inline_svg(svg: str) -> Markup:
    """An SVG for inline use in HTML: without its namespace declarations, which HTML does not
    need and which would be the only other origin's URL in the page."""
    head, _, rest = svg.partition(">")
    return Markup(_XMLNS.sub("", head) + ">" + rest)  # noqa: S704 - our own vl-convert SVG


def content_security_policy(style: str) -> str:
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    return f"default-src 'none'; style-src 'sha256-{digest}'; img-src data:; form-action 'none'"


def methodology(cards: Sequence[dict[str, Any]], drawn: Sequence[Section] = ()) -> list[str]:
    """What the figures can and cannot show, in sentences generated from the release cards
    and the verdicts."""
    epsilons = sorted({c["epsilon"] for c in cards})
    thresholds = sorted({c["threshold"] for c in cards})
    units = sorted({c["privacy_unit"]["unit"] for c in cards})
    spent = {c["epsilon_spent_in_year"]["year"]: c["epsilon_spent_in_year"] for c in cards}
    mechanisms = sorted({c["mechanism"].replace("_", " ") for c in cards})
    lines = [
        f"This publication holds {len(cards)} releases of "
        f"{len({c['program'] for c in cards})} programs. Every number in it was computed from "
        "survivors' answers by the organisation's worker, which added random noise "
        f"({', '.join(mechanisms)}) before anything was stored; nothing else was read.",
        "Epsilon per release: "
        + (
            f"{epsilons[0]:g}"
            if len(epsilons) == 1
            else f"from {epsilons[0]:g} to {epsilons[-1]:g}"
        )
        + ". Spent in the year by the worst-off survivor, when this was issued: "
        + "; ".join(f"{y}: {s['epsilon']:g}" for y, s in sorted(spent.items()))
        + ". The smaller, the stronger the protection.",
        "The privacy unit: " + "; ".join(UNITS.get(u, u) for u in units) + ".",
        "A group whose noisy count of respondents is below "
        + " or ".join(str(t) for t in thresholds)
        + " is suppressed (marked S) and never shown as zero.",
        "What the figures can show: the two indices (0 to 100) and each question's share "
        "agreeing, each with a 95% interval that covers sampling (the people who answered "
        "taken as a sample of the people the program serves) and the noise. Interval ends are "
        "rounded outward. A figure whose interval is wider than 30 points is marked too "
        "uncertain to read (an index) or not shown (a question's share).",
        "Each index is a mean over the people who answered at least one of its questions, each "
        "person's own mean of the questions they answered counting equally, however many that "
        "was; someone who answered none of an index's questions is not in it at all.",
        "Verdicts: a figure is called higher or lower than another (a period against the one "
        "before, or two groups) only from the interval of their difference, and a trend over a "
        "year's periods from the whole series; "
        + verdict_rule(drawn)
        + " Two intervals that do not overlap can still read \u201ccan't tell\u201d once every "
        "comparison is counted.",
        "Where the noise takes a share below 0% or above 100%, or an index below 0 or above "
        "100, it is shown at that end and marked \u201cheld at the end of the scale\u201d: that "
        "pulls a figure near 0 up and one near 100 down, so such a figure is biased toward the "
        "middle. A count the noise took below zero is shown as 0, which biases small counts "
        "upward. Every interval is computed from the noisy numbers before they are held, and "
        "is what to read.",
        "A period with no overall release of its own (a year released by its quarters) shows "
        "its respondents and indices added up from the releases of its parts, at no further "
        "cost in epsilon.",
        "What they cannot show: anything about one person; groups below the threshold; the "
        "error of who chose to answer, which the intervals do not cover (people who answered "
        "may differ from people who did not); comparisons across different survey versions "
        "whose questions differ.",
    ]
    if "submission" in units:
        lines.append(
            "Some releases include answers through open (poster) links: their guarantee is per "
            "answer, not per person."
        )
    return lines


def summary(gathered: Gathered, drawn: Sequence[Section], cards: Sequence[dict[str, Any]]) -> str:
    shown = [
        dataclasses.replace(
            section,
            charts=tuple(dataclasses.replace(c, svg=inline_svg(c.svg)) for c in section.charts),
        )
        for section in drawn
    ]
    return standalone(
        "publication.html",
        heading=gathered.heading,
        programs=gathered.programs,
        sections=shown,
        cards=cards,
        methodology=methodology(cards, drawn),
        key_findings=key_findings(drawn),
        rule=findings.RULE.format(scope=findings.PUBLICATION, percent=f"{ALPHA * 100:g}"),
        style=Markup(STYLE),  # noqa: S704 - a constant of this module
        csp=content_security_policy(STYLE),
        rounded=rounded,
        code_version=feedback.__version__,
    )
