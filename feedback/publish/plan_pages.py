"""The admin's budget page: the year's budget, the plan advisor, and plan lines added (after
their accuracy preview), and removed, on the web. A line whose preview is too wide to read is
planned only when the admin confirms it. The budget itself is set with the CLI."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from feedback.offload import DRAWING
from feedback.publish import charts
from feedback.publish.guard import Context, staff_page
from feedback.publish.render import page
from feedback.stats import advisor, means
from feedback.stats.budget import year_budget
from feedback.stats.cells import Layout, PrivacyError
from feedback.stats.periods import GRANULARITIES, NAMES
from feedback.stats.plans import (
    PlanError,
    PlanLine,
    add_advised,
    add_line,
    check_epsilon,
    parse_epsilon,
    plan_of,
    remove_line,
)
from feedback.stats.shares import Preview, preview
from feedback.surveys import INDICES, Survey, from_json


@dataclass(frozen=True, slots=True)
class Shown:
    """A plan line's preview, as the page shows it."""

    line: PlanLine
    n: int
    index_half_width: float | None  # an indices line
    shares: Preview | None  # a line of questions


def _shown(line: PlanLine, n: int, threshold: int) -> Shown:
    if line.split is not None and line.expected_n is not None:
        width = means.planned_half_width(line.split, line.expected_n)
        return Shown(line, line.expected_n, width, None)
    return Shown(line, n, None, preview(line.layout, float(line.epsilon), n, threshold))


def _year_and_n(ctx: Context) -> tuple[int, int]:
    source = ctx.form if ctx.request.method == "POST" else ctx.request.query_params
    try:
        year = int(str(source.get("year") or dt.datetime.now(dt.UTC).year))
        n = int(str(source.get("n") or 40))
    except ValueError:
        raise HTTPException(400, "year and n are whole numbers") from None
    if not (2000 <= year <= 2200 and 1 <= n <= 100_000):
        raise HTTPException(400, "year is 2000 to 2200, and n 1 to 100000")
    return year, n


@staff_page("admin")
async def budget(ctx: Context) -> Response:
    year, n = _year_and_n(ctx)
    return await _page(ctx, year, n)


async def _page(
    ctx: Context,
    year: int,
    n: int,
    *,
    status_code: int = 200,
    error: str | None = None,
    advice: advisor.Advice | None = None,
    pending: dict[str, str] | None = None,
    shortfall: str | None = None,
) -> Response:
    org = ctx.staff.organisation_id
    threshold = await ctx.conn.fetchval(
        "SELECT release_threshold FROM organisations WHERE id = $1", org
    )
    lines = await plan_of(ctx.conn, org, year)
    shown = await DRAWING.run(lambda: [_shown(line, n, threshold) for line in lines])
    programs = await ctx.conn.fetch(
        "SELECT slug, name FROM programs WHERE organisation_id = $1 ORDER BY name", org
    )
    return page(
        ctx.request,
        "budget.html",
        status_code=status_code,
        year=year,
        n=n,
        budget=await year_budget(ctx.conn, org, year),
        shown=shown,
        threshold=threshold,
        programs=programs,
        every=NAMES,
        breakdowns=charts.BY,
        error=error,
        advice=advice,
        pending=pending or {},
        shortfall=shortfall,
        index_goal=advisor.INDEX_GOAL,
        detail_goal=advisor.DETAIL_GOAL,
    )


async def _survey(ctx: Context) -> tuple[uuid.UUID, Survey]:
    row = await ctx.conn.fetchrow(
        "SELECT id, definition FROM surveys WHERE organisation_id = $1 "
        "ORDER BY (slug = 'rights-based') DESC, version DESC LIMIT 1",
        ctx.staff.organisation_id,
    )
    if row is None:
        raise PlanError("this organisation has no survey to plan releases of")
    return row["id"], from_json(row["definition"])


async def _program_id(ctx: Context, slug: str) -> uuid.UUID | None:
    if not slug:
        return None
    found: uuid.UUID | None = await ctx.conn.fetchval(
        "SELECT id FROM programs WHERE organisation_id = $1 AND slug = $2",
        ctx.staff.organisation_id,
        slug,
    )
    if found is None:
        raise PlanError(f"no program {slug!r} in this organisation")
    return found


@staff_page("admin")
async def advise(ctx: Context) -> Response:
    """The advisor's plan for a program (or the organisation); with ``apply``, planned."""
    year, n = _year_and_n(ctx)
    try:
        respondents = int(ctx.field("respondents") or "0")  # ValueError: a 400 below
        program_id = await _program_id(ctx, ctx.field("program"))
        survey_id, survey = await _survey(ctx)
        left = (await year_budget(ctx.conn, ctx.staff.organisation_id, year)).left
        budget = parse_epsilon(ctx.field("budget")) if ctx.field("budget") else left
        if not 1 <= respondents <= advisor.MOST_RESPONDENTS:
            raise PlanError(
                "say how many people you expect to answer in a year "
                f"(1 to {advisor.MOST_RESPONDENTS:,})"
            )
        try:
            advice = await DRAWING.run(advisor.advise, survey, respondents, budget)
        except ValueError as exc:
            raise PlanError(str(exc)) from None
        if ctx.field("apply") == "yes":
            for added in await add_advised(
                ctx.conn,
                advice,
                organisation_id=ctx.staff.organisation_id,
                year=year,
                program_id=program_id,
                survey_id=survey_id,
            ):
                await ctx.audit("plan.add", added.program or "organisation", line=added.describe())
            return RedirectResponse(f"{ctx.request.url_for('budget')}?year={year}", 303)
    except (PlanError, ValueError) as exc:
        return await _page(ctx, year, n, status_code=400, error=str(exc))
    pending = {"program": ctx.field("program"), "respondents": str(respondents)}
    pending["budget"] = str(budget)
    return await _page(ctx, year, n, advice=advice, pending=pending)


@staff_page("admin")
async def add(ctx: Context) -> Response:
    """Preview a line; add it when asked, and when its preview is too wide only if confirmed."""
    year, n = _year_and_n(ctx)
    pending = {name: ctx.field(name) for name in ("program", "kind", "every", "breakdown")}
    pending["epsilon"] = ctx.field("epsilon")
    try:
        program_id = await _program_id(ctx, pending["program"])
        survey_id, survey = await _survey(ctx)
        every = next((g for g in GRANULARITIES if g == pending["every"]), None)
        if every is None:
            raise PlanError("choose a month, a quarter, a half-year or a year")
        breakdown = pending["breakdown"] or None
        if breakdown is not None and breakdown not in charts.BY:
            raise PlanError("choose a breakdown from the list")
        epsilon = parse_epsilon(pending["epsilon"])
        indices = pending["kind"] == "indices"
        try:
            if indices:
                layout = Layout.for_indices(survey, breakdown)
                questions: tuple[str, ...] = ()
            else:  # the items of the indices, as the advisor plans them
                questions = tuple(q.id for i in INDICES for q in survey.items_of(i))
                layout = Layout.plan(survey, questions, breakdown)
        except PrivacyError as exc:
            raise PlanError(str(exc)) from None
        check_epsilon(layout, epsilon)  # before any preview: no one reads noise, or waits
        split = (
            await DRAWING.run(means.split, epsilon, indices=len(layout.indices), expected_n=n)
            if indices
            else None
        )
        short = await DRAWING.run(advisor.shortfall, layout, epsilon, n, split)
        if ctx.field("step") != "add" or (short and ctx.field("confirm") != "yes"):
            return await _page(
                ctx,
                year,
                n,
                status_code=200 if ctx.field("step") != "add" else 400,
                pending=pending,
                shortfall=short or "",
                error=None if ctx.field("step") != "add" else "Confirm the line to plan it.",
            )
        line = await add_line(
            ctx.conn,
            organisation_id=ctx.staff.organisation_id,
            year=year,
            program_id=program_id,
            survey_id=survey_id,
            granularity=every,
            questions=questions,
            breakdown=breakdown,
            epsilon=epsilon,
            expected_n=n if indices else None,
        )
    except (PlanError, PrivacyError, ValueError) as exc:
        return await _page(ctx, year, n, status_code=400, error=str(exc), pending=pending)
    await ctx.audit("plan.add", line.program or "organisation", line=line.describe())
    return RedirectResponse(f"{ctx.request.url_for('budget')}?year={year}", 303)


@staff_page("admin")
async def remove(ctx: Context) -> Response:
    line_id = ctx.id_in_path("line")
    year, n = _year_and_n(ctx)
    try:
        await remove_line(ctx.conn, ctx.staff.organisation_id, line_id)
    except PlanError as exc:
        if str(exc).startswith("no plan line"):
            raise HTTPException(404) from None
        return await _page(ctx, year, n, status_code=400, error=str(exc))
    await ctx.audit("plan.remove", str(line_id))
    return RedirectResponse(f"{ctx.request.url_for('budget')}?year={year}", 303)
