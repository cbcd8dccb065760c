"""The manager's dashboard: the programs a user may see, and one program's releases as charts,
tables and CSV. It reads releases only."""

from __future__ import annotations

import csv
import io
import threading
import uuid

from starlette.exceptions import HTTPException
from starlette.responses import Response

from feedback.offload import DRAWING
from feedback.periods import BadPeriod, Period
from feedback.publish import charts
from feedback.publish.guard import Context, staff_page
from feedback.publish.render import markup, page
from feedback.publish.reports import Report, program_releases, report


@staff_page()
async def home(ctx: Context) -> Response:
    rows = await ctx.conn.fetch(
        "SELECT id, slug, name FROM programs WHERE organisation_id = $1 ORDER BY name",
        ctx.staff.organisation_id,
    )
    programs = [row for row in rows if ctx.staff.sees(row["id"])]
    return page(ctx.request, "home.html", programs=programs)


async def _report(ctx: Context) -> tuple[Report | None, str]:
    program = await ctx.program()
    wanted = ctx.request.query_params.get("period")
    try:
        period = Period.parse(wanted) if wanted else None
    except BadPeriod as exc:
        raise HTTPException(400, str(exc)) from None
    releases = await program_releases(ctx.conn, ctx.staff.organisation_id, program.id)
    found = report(releases, period)
    if period is not None and (found is None or found.overall is None):
        raise HTTPException(404, f"{program.name} has no release for {period}")
    return found, program.name


def _charts(found: Report) -> list[charts.Chart]:
    """The report's charts; releases never change, so they are kept by the releases' ids."""
    key = tuple(
        r.id
        for r in (found.overall, found.previous, *found.trend, *found.equity, found.by_time)
        if r is not None
    )
    with _CHARTS_LOCK:  # drawing runs in threads
        cached = _CHARTS.get(key)
    if cached is None:
        cached = _draw(found)
        with _CHARTS_LOCK:
            if len(_CHARTS) >= 256:
                _CHARTS.pop(next(iter(_CHARTS)))
            _CHARTS[key] = cached
    return cached


_CHARTS: dict[tuple[uuid.UUID, ...], list[charts.Chart]] = {}
_CHARTS_LOCK = threading.Lock()


async def _charts_off_loop(found: Report) -> list[charts.Chart]:
    """Drawing takes tens of milliseconds when not cached: not on the event loop."""
    return await DRAWING.run(_charts, found)


def _draw(found: Report) -> list[charts.Chart]:
    made: list[charts.Chart | None] = [charts.scorecard(found), charts.trend(found)]
    if found.by_time is not None:
        made.append(
            charts.grouped(
                found.by_time,
                name="time-in-program",
                title=f"Outcomes by time in program, {found.period}",
                sections=("outcomes",),
            )
        )
    for release in found.equity:
        by = release.survey.question(release.breakdown or "")
        made.append(
            charts.grouped(
                release,
                name=f"equity-{release.breakdown}",
                title=f"Treatment by {by.text.lower()}, {found.period}",
                sections=("treatment", "outcomes"),
            )
        )
    made.append(charts.volume(found))
    return [chart for chart in made if chart is not None]


@staff_page()
async def program_page(ctx: Context) -> Response:
    found, name = await _report(ctx)
    program = ctx.request.path_params["program"]
    if found is not None:
        await ctx.audit("release.view", program, period=str(found.period))
    return page(
        ctx.request,
        "program.html",
        program=program,
        name=name,
        report=found,
        charts=[(c, markup(c.svg)) for c in await _charts_off_loop(found)] if found else [],
    )


@staff_page()
async def chart_csv(ctx: Context) -> Response:
    found, _ = await _report(ctx)
    wanted = ctx.request.path_params["chart"]
    drawn = await _charts_off_loop(found) if found else []
    chart = next((c for c in drawn if c.name == wanted), None)
    if chart is None:
        raise HTTPException(404)
    await ctx.audit(
        "release.export",
        ctx.request.path_params["program"],
        chart=wanted,
        period=str(found.period) if found else None,
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(chart.columns)
    writer.writerows(chart.rows)
    filename = f"{ctx.request.path_params['program']}-{wanted}-{found.period if found else ''}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": f'attachment; filename="{filename}"',
            "cache-control": "no-store",
        },
    )
