"""The manager's dashboard: the programs a user may see, and one program's releases as charts,
tables and CSV, read from the stored page of the period (feedback.publish.views): a request
never draws. It reads releases only."""

from __future__ import annotations

import csv
import io

from starlette.exceptions import HTTPException
from starlette.responses import Response

from feedback.publish import charts, findings, views
from feedback.publish.guard import Context, Program, staff_page
from feedback.publish.render import markup, page
from feedback.publish.reports import Report, program_releases, report
from feedback.stats.periods import BadPeriod, Period
from feedback.stats.shares import ALPHA
from feedback.surveys import INDICES


@staff_page()
async def home(ctx: Context) -> Response:
    rows = await ctx.conn.fetch(
        "SELECT id, slug, name FROM programs WHERE organisation_id = $1 ORDER BY name",
        ctx.staff.organisation_id,
    )
    programs = [row for row in rows if ctx.staff.sees(row["id"])]
    return page(ctx.request, "home.html", programs=programs)


async def _report(ctx: Context) -> tuple[Report | None, Program]:
    """The report of the period asked for, from the releases without their cells: enough
    to find the stored page."""
    program = await ctx.program()
    wanted = ctx.request.query_params.get("period")
    try:
        period = Period.parse(wanted) if wanted else None
    except BadPeriod as exc:
        raise HTTPException(400, str(exc)) from None
    releases = await program_releases(ctx.conn, ctx.staff.organisation_id, program.id, cells=False)
    found = report(releases, period)
    if (found is None and period is not None) or (found is not None and found.main is None):
        raise HTTPException(404, f"{program.name} has no release for {period}")
    return found, program


@staff_page()
async def program_page(ctx: Context) -> Response:
    found, program = await _report(ctx)
    drawn = None
    if found is not None:
        await ctx.audit("release.view", program.slug, period=str(found.period))
        drawn = await views.stored(ctx.conn, found)
    return page(
        ctx.request,
        "program.html",
        program=program.slug,
        name=program.name,
        report=found,
        drawn=drawn is not None,
        index_names=INDICES,
        uncertain=charts.UNCERTAIN,
        not_enough=charts.NOT_ENOUGH,
        clamped=charts.CLAMPED,
        rule=findings.RULE.format(scope=findings.PAGE, percent=f"{ALPHA * 100:g}"),
        charts=[(c, markup(c.svg)) for c in drawn or []],
    )


@staff_page()
async def chart_csv(ctx: Context) -> Response:
    found, program = await _report(ctx)
    wanted = ctx.request.path_params["chart"]
    drawn = await views.stored(ctx.conn, found) if found else None
    chart = next((c for c in drawn or [] if c.name == wanted), None)
    if chart is None or found is None:
        raise HTTPException(404)
    await ctx.audit("release.export", program.slug, chart=wanted, period=str(found.period))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(chart.columns)
    writer.writerows(row.cells for row in chart.rows)
    filename = f"{program.slug}-{wanted}-{found.period}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": f'attachment; filename="{filename}"',
            "cache-control": "no-store",
        },
    )
