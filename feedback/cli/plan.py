"""`feedback plan`: the year's release plan and privacy budget, with an accuracy preview."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import click

from feedback.cli.common import find_program, organisation_option, pick_organisation, run
from feedback.cli.runtime import ready_pool
from feedback.config import Settings
from feedback.db import WORKER, Connection, Record
from feedback.errors import FeedbackError
from feedback.stats import advisor, means
from feedback.stats.budget import year_budget
from feedback.stats.cells import Layout, PrivacyError
from feedback.stats.periods import EVERY, GRANULARITIES, NAMES, Granularity
from feedback.stats.plans import (
    PlanError,
    PlanLine,
    add_advised,
    add_line,
    check_epsilon,
    declare_groups,
    parse_epsilon,
    plan_of,
    remove_line,
)
from feedback.stats.shares import preview, suppressed_chance
from feedback.surveys import INDICES, from_json

THIS_YEAR = dt.datetime.now(dt.UTC).year
N_HELP = "Respondents per group to preview the accuracy at (the program's usual number)."


def _epsilon(raw: str) -> Decimal:
    try:
        return parse_epsilon(raw)
    except PlanError:
        raise click.BadParameter(f"{raw!r} is not a number") from None


def describe_preview(layout: Layout, epsilon: Decimal, n: int, threshold: int) -> list[str]:
    shown = preview(layout, float(epsilon), n, threshold)
    lines = [
        f"  at {n} respondents per group: each count +/- {shown.cell_half_width:.1f} (95%); "
        f"a group of {n} is suppressed {shown.suppressed_chance:.0%} of the time (k {threshold})"
    ]
    for question, width in shown.share_half_width.items():
        lines.append(f"    {question}: share +/- {width * 100:.0f} points")
    return lines


def describe_indices_preview(
    layout: Layout, split: means.Split, n: int, threshold: int
) -> list[str]:
    hidden = suppressed_chance(split.scales.count, n, threshold)
    width = means.planned_half_width(split, n, threshold=threshold)
    names = ", ".join(INDICES[index] for index in layout.indices)
    squares = (
        f", {split.squares.normalize():f} to the sums of squares (for the spread)"
        if split.squares
        else " (no sums of squares: the spread is bounded)"
    )
    return [
        f"  at {n} respondents per group: {names}: each +/- {width:.1f} points (95%, sampling "
        f"and noise, for an index {means.PLANNED_OFFSET} points from the middle whose answers "
        f"spread {means.PLANNED_SD} points); a group of {n} is suppressed {hidden:.0%} of the "
        f"time (k {threshold})",
        f"  epsilon {split.count.normalize():f} to the counts of respondents, "
        f"{split.sums.normalize():f} to the sums{squares}",
    ]


@click.group()
def plan() -> None:
    """Declare what the year releases, and see what it will cost and how accurate it will be."""


@plan.command("show")
@organisation_option
@click.option("--year", type=int, default=THIS_YEAR, show_default=True)
@click.option(
    "--n", "respondents", type=click.IntRange(1), default=40, show_default=True, help=N_HELP
)
@run
async def show(settings: Settings, organisation: str | None, year: int, respondents: int) -> None:
    """The year's plan, its budget (spent, planned, left) and each line's accuracy preview."""
    async with ready_pool(settings, role=WORKER) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        budget = await year_budget(conn, org.id, year)
        lines = await plan_of(conn, org.id, year)
        threshold = await _threshold(conn, org.id)
    click.echo(
        f"{year} budget: epsilon {budget.total}; spent {budget.spent}, planned "
        f"{budget.planned}, left to plan {budget.left} (for the worst-off survivor; renews "
        f"{budget.renews})"
    )
    click.echo(f"accounting: {budget.accounting}")
    if not lines:
        click.echo("no releases planned: add one with `feedback plan add`")
    for line in lines:
        click.echo(f"{line.id}  {line.describe()}")
        for text in _line_preview(line, respondents, threshold):
            click.echo(text)


def _line_preview(line: PlanLine, respondents: int, threshold: int) -> list[str]:
    if line.split is not None and line.expected_n is not None:
        return describe_indices_preview(line.layout, line.split, line.expected_n, threshold)
    return describe_preview(line.layout, line.epsilon, respondents, threshold)


@plan.command("add")
@organisation_option
@click.option("--year", type=int, default=THIS_YEAR, show_default=True)
@click.option("--program", "-p", metavar="SLUG", help="One program (default: the organisation).")
@click.option(
    "--every",
    "granularity",
    type=click.Choice(GRANULARITIES),
    default="quarter",
    show_default=True,
)
@click.option("--survey", "survey_slug", default="rights-based", show_default=True)
@click.option(
    "--question",
    "-q",
    "questions",
    multiple=True,
    help="A question to release (repeat; default: all but demographics and the comment; "
    "naming the comment releases a noisy count of comments written, never their text).",
)
@click.option(
    "--indices",
    is_flag=True,
    help="Release the two indices (Treated with rights, Recovery) instead of questions; "
    "--n is then the respondents expected per group and period, for which epsilon is split.",
)
@click.option(
    "--breakdown",
    help="A single-choice question to break the tables down by (gender, age_band, "
    "exploitation, time_in_program...).",
)
@click.option("--epsilon", type=_epsilon, help="Per release (default: the organisation's).")
@click.option(
    "--n", "respondents", type=click.IntRange(1), default=40, show_default=True, help=N_HELP
)
@click.option("--dry-run", is_flag=True, help="Show the preview and the cost; store nothing.")
@click.option(
    "--accept-wide",
    is_flag=True,
    help="Plan the line even though its preview is wider than can be read (see the preview).",
)
@run
async def add(
    settings: Settings,
    organisation: str | None,
    year: int,
    program: str | None,
    granularity: Granularity,
    survey_slug: str,
    questions: tuple[str, ...],
    breakdown: str | None,
    indices: bool,
    epsilon: Decimal | None,
    respondents: int,
    dry_run: bool,
    accept_wide: bool,
) -> None:
    """Add a table to the year's plan, after showing how accurate it will be. A line whose
    preview is too wide to read is planned only with --accept-wide."""
    if indices and questions:
        raise PlanError("--indices releases the two indices: name no --question with it")
    async with ready_pool(settings, role=WORKER) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        survey_row = await _latest_survey(conn, org.id, survey_slug)
        survey = from_json(survey_row["definition"])
        chosen = (
            []
            if indices
            else list(questions)
            or [
                q.id
                for q in survey.questions
                if q.type != "comment" and not q.demographic and q.id != breakdown
            ]
        )
        try:
            if indices:
                layout = Layout.for_indices(survey, breakdown)
            else:
                layout = Layout.plan(survey, chosen, breakdown)
        except KeyError as exc:
            raise PlanError(f"{exc.args[0]!r} is not a question of {survey_slug}") from None
        except PrivacyError as exc:
            raise PlanError(str(exc)) from None
        program_id = None if program is None else await find_program(conn, org.id, program)
        if epsilon is None:
            epsilon = Decimal(
                await conn.fetchval(
                    "SELECT epsilon_per_release FROM organisations WHERE id = $1", org.id
                )
            )
        threshold = await _threshold(conn, org.id)
        check_epsilon(layout, epsilon)  # before the preview: none is computed for noise
        split = None
        if indices:
            split = means.split(epsilon, indices=len(layout.indices), expected_n=respondents)
            click.echo(f"{EVERY[granularity]} releases of the indices at epsilon {epsilon} each:")
            shown = describe_indices_preview(layout, split, respondents, threshold)
        else:
            click.echo(
                f"{EVERY[granularity]} releases of {', '.join(chosen)} at epsilon {epsilon} each:"
            )
            shown = describe_preview(layout, epsilon, respondents, threshold)
        for text in shown:
            click.echo(text)
        if dry_run:
            budget = await year_budget(conn, org.id, year)
            click.echo(f"(dry run: nothing stored; {budget.left} of the {year} budget is left)")
            return
        short = advisor.shortfall(layout, epsilon, respondents, split)
        if short is not None and not accept_wide:
            raise PlanError(
                f"not planned: {short}. Raise its epsilon, choose a longer period, or plan it "
                "anyway with --accept-wide (`feedback plan advise` suggests a plan)"
            )
        line = await add_line(
            conn,
            organisation_id=org.id,
            year=year,
            program_id=program_id,
            survey_id=survey_row["id"],
            granularity=granularity,
            questions=chosen,
            breakdown=breakdown,
            epsilon=epsilon,
            expected_n=respondents if indices else None,
        )
        budget = await year_budget(conn, org.id, year)
    click.echo(f"planned {line.id}: {line.describe()}")
    click.echo(f"{year}: planned {budget.planned} of {budget.total}; left to plan {budget.left}")


@plan.command("advise")
@organisation_option
@click.option("--year", type=int, default=THIS_YEAR, show_default=True)
@click.option("--program", "-p", metavar="SLUG", help="One program (default: the organisation).")
@click.option(
    "--respondents",
    type=click.IntRange(1, advisor.MOST_RESPONDENTS),
    required=True,
    help="How many people you expect to answer in a year (stated, never read from data).",
)
@click.option(
    "--budget",
    type=_epsilon,
    help="Epsilon for these lines over the year (default: what is left to plan).",
)
@click.option("--survey", "survey_slug", default="rights-based", show_default=True)
@click.option("--apply", is_flag=True, help="Add the advised lines to the year's plan.")
@run
async def advise(
    settings: Settings,
    organisation: str | None,
    year: int,
    program: str | None,
    respondents: int,
    budget: Decimal | None,
    survey_slug: str,
    apply: bool,
) -> None:
    """Advise which periods and tables to plan, and the split of epsilon, for the respondents
    you expect; say what the plan will be able to show."""
    async with ready_pool(settings, role=WORKER) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        survey_row = await _latest_survey(conn, org.id, survey_slug)
        program_id = None if program is None else await find_program(conn, org.id, program)
        if budget is None:
            budget = (await year_budget(conn, org.id, year)).left
        if budget < advisor.LEAST_BUDGET:
            raise PlanError(
                f"only {budget} of the {year} budget is left to plan, too little to show "
                "anything: pass --budget, or remove lines (`feedback plan show`)"
            )
        try:
            advice = advisor.advise(from_json(survey_row["definition"]), respondents, budget)
        except ValueError as exc:
            raise PlanError(str(exc)) from None
        click.echo(f"For about {respondents} respondents a year and epsilon {budget}:")
        for saying in advice.sayings():
            click.echo(f"  {saying}")
        for line in advice.lines:
            click.echo(
                f"  plan: {line.kind} every {NAMES[line.granularity]}, epsilon {line.epsilon} per "
                f"release ({line.cost} a year)"
            )
        if not apply:
            click.echo("(nothing planned: add --apply to plan these lines)")
            return
        planned = await add_advised(
            conn,
            advice,
            organisation_id=org.id,
            year=year,
            program_id=program_id,
            survey_id=survey_row["id"],
        )
        for added in planned:
            click.echo(f"planned {added.id}: {added.describe()}")


async def _latest_survey(conn: Connection, organisation_id: uuid.UUID, slug: str) -> Record:
    row = await conn.fetchrow(
        "SELECT id, definition FROM surveys WHERE organisation_id = $1 AND slug = $2 "
        "ORDER BY version DESC LIMIT 1",
        organisation_id,
        slug,
    )
    if row is None:
        raise FeedbackError(f"no survey {slug!r} in this organisation")
    return row


@plan.command("remove")
@organisation_option
@click.argument("line_id", type=click.UUID)
@run
async def remove(settings: Settings, organisation: str | None, line_id: uuid.UUID) -> None:
    """Remove a line none of whose releases has been made."""
    async with ready_pool(settings, role=WORKER) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        await remove_line(conn, org.id, line_id)
    click.echo(f"removed {line_id}")


@plan.command("budget")
@organisation_option
@click.option(
    "--per-year", type=_epsilon, required=True, help="Epsilon a survivor may lose a year."
)
@click.option("--per-release", type=_epsilon, help="Default epsilon of a new plan line.")
@run
async def budget_command(
    settings: Settings, organisation: str | None, per_year: Decimal, per_release: Decimal | None
) -> None:
    """Set the organisation's yearly privacy budget (0 to 10; 0 releases nothing)."""
    if not Decimal(0) <= per_year <= Decimal(10):
        raise FeedbackError(f"the yearly budget is from 0 (nothing released) to 10; got {per_year}")
    if per_release is not None and not Decimal(0) < per_release <= Decimal(10):
        raise FeedbackError(f"epsilon per release is more than 0 and at most 10; got {per_release}")
    async with ready_pool(settings, role=WORKER) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        await conn.execute(
            "UPDATE organisations SET epsilon_per_year = $2, "
            "epsilon_per_release = coalesce($3, epsilon_per_release) WHERE id = $1",
            org.id,
            per_year,
            per_release,
        )
        budget = await year_budget(conn, org.id, THIS_YEAR)
    click.echo(f"{org.slug}: epsilon {per_year} a year")
    if budget.planned > per_year or budget.spent > per_year:
        click.echo(
            f"note: {THIS_YEAR} has already planned {budget.planned} and spent {budget.spent}; "
            "releases beyond the new budget will be refused"
        )


@plan.command("groups")
@organisation_option
@click.option(
    "--group",
    "groups",
    multiple=True,
    metavar="NAME=SLUG,SLUG",
    help="A group of programs that serve people no program of another group serves (repeat).",
)
@click.option("--clear", is_flag=True, help="Declare no groups: every release counts for all.")
@run
async def groups_command(
    settings: Settings, organisation: str | None, groups: tuple[str, ...], clear: bool
) -> None:
    """Show, or declare, which programs serve different people. By default every release of
    the organisation counts against every survivor; programs declared in different groups
    count only against their own group's survivors (audited)."""
    declared: dict[str, list[str]] = {}
    for text in groups:
        name, _, slugs = text.partition("=")
        if not slugs:
            raise FeedbackError(f"--group {text!r}: write it as NAME=SLUG,SLUG")
        declared[name.strip()] = [s.strip() for s in slugs.split(",") if s.strip()]
    if declared and clear:
        raise FeedbackError("give --group or --clear, not both")
    async with ready_pool(settings, role=WORKER) as pool, pool.acquire() as conn:
        org = await pick_organisation(conn, organisation)
        if declared or clear:
            await declare_groups(conn, org.id, declared)
        budget = await year_budget(conn, org.id, THIS_YEAR)
    click.echo(f"{org.slug}: {budget.accounting}")
    if budget.spent > budget.total or budget.planned > budget.total:
        click.echo(
            f"note: counted this way, {THIS_YEAR} has spent {budget.spent} and planned "
            f"{budget.planned} of {budget.total}; releases beyond the budget will be refused"
        )


async def _threshold(conn: Connection, organisation_id: uuid.UUID) -> int:
    threshold: int = await conn.fetchval(
        "SELECT release_threshold FROM organisations WHERE id = $1", organisation_id
    )
    return threshold
