"""Release plans: the releases a year holds, declared by the admin before any is made.

A plan line is one table (the organisation or one program, one survey version, the questions,
an optional breakdown) released for every month, quarter, half-year or year of the budget
year, each at the line's epsilon. Only planned releases are made: no ad-hoc filters or
overlapping windows (PRIVACY.md). A line is refused when the plan would spend more than the
yearly budget, and it can be removed only while none of its releases has been made.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from feedback.db import Connection, Record
from feedback.errors import FeedbackError
from feedback.stats import advisor, means
from feedback.stats.budget import (
    EPSILON_PLACES,
    Accounting,
    accounting,
    planned_by_program,
    plus,
    program_names,
    year_budget,
)
from feedback.stats.cells import Layout, PrivacyError
from feedback.stats.periods import EVERY, NAMES, PER_YEAR, Granularity, Period
from feedback.surveys import INDICES, Survey, from_json

Kind = Literal["questions", "indices"]


class PlanError(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class PlanLine:
    id: uuid.UUID
    organisation_id: uuid.UUID
    year: int
    program_id: uuid.UUID | None  # None: the whole organisation
    program: str | None  # its slug, for people
    survey_id: uuid.UUID
    survey: Survey
    granularity: Granularity
    questions: tuple[str, ...]
    breakdown: str | None
    epsilon: Decimal
    kind: Kind = "questions"
    expected_n: int | None = None  # an indices line: respondents expected per period

    @property
    def layout(self) -> Layout:
        if self.kind == "indices":
            return Layout.for_indices(self.survey, self.breakdown)
        return Layout.plan(self.survey, self.questions, self.breakdown)

    @property
    def split(self) -> means.Split | None:
        """How an indices line's epsilon is divided (None for a line of questions)."""
        if self.kind != "indices" or self.expected_n is None:
            return None
        indices = len(self.layout.indices)
        return means.split(float(self.epsilon), indices=indices, expected_n=self.expected_n)

    @property
    def cost(self) -> Decimal:
        """Epsilon over the year: one release per period."""
        return self.epsilon * PER_YEAR[self.granularity]

    def periods(self) -> list[Period]:
        step = 12 // PER_YEAR[self.granularity]
        return [
            Period.of(self.granularity, dt.date(self.year, month, 1))
            for month in range(1, 13, step)
        ]

    def due(self, today: dt.date) -> list[Period]:
        """The periods whose every week has ended by ``today``."""
        return [p for p in self.periods() if p.weeks()[1] <= today]

    def describe(self) -> str:
        scope = f"program {self.program}" if self.program else "whole organisation"
        by = f", by {self.breakdown}" if self.breakdown else ""
        what = ", ".join(self.questions)
        if self.kind == "indices":
            names = ", ".join(INDICES[index] for index in self.layout.indices)
            per = NAMES[self.granularity]
            what = f"indices ({names}), for about {self.expected_n} respondents a {per}"
        return (
            f"{self.year} {EVERY[self.granularity]}, {scope}, {self.survey.slug} "
            f"v{self.survey.version}: {what}{by}; epsilon {self.epsilon} "
            f"per release, {self.cost} a year"
        )


SELECT_LINES = """
    SELECT p.id, p.organisation_id, p.budget_year, p.program_id, pr.slug AS program,
           p.survey_id, s.definition, p.granularity, p.questions, p.breakdown, p.epsilon,
           p.kind, p.expected_n
      FROM release_plans p
      JOIN surveys s ON s.id = p.survey_id
      LEFT JOIN programs pr ON pr.id = p.program_id
"""


def _line(row: Record) -> PlanLine:
    return PlanLine(
        id=row["id"],
        organisation_id=row["organisation_id"],
        year=row["budget_year"],
        program_id=row["program_id"],
        program=row["program"],
        survey_id=row["survey_id"],
        survey=from_json(row["definition"]),
        granularity=row["granularity"],
        questions=tuple(row["questions"]),
        breakdown=row["breakdown"],
        epsilon=row["epsilon"],
        kind=row["kind"],
        expected_n=row["expected_n"],
    )


async def plan_of(conn: Connection, organisation_id: uuid.UUID, year: int) -> list[PlanLine]:
    rows = await conn.fetch(
        SELECT_LINES
        + " WHERE p.organisation_id = $1 AND p.budget_year = $2"
        + " ORDER BY pr.slug NULLS FIRST, p.granularity, p.breakdown NULLS FIRST",
        organisation_id,
        year,
    )
    return [_line(row) for row in rows]


def parse_epsilon(raw: str) -> Decimal:
    """An epsilon as typed: a finite decimal, else a PlanError saying so."""
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise PlanError(f"epsilon must be a number; got {raw!r}") from None
    if not value.is_finite():
        raise PlanError(f"epsilon must be a number; got {raw!r}")
    return value


MOST_SCALE = 2000  # the noise scale of a count beyond which a line of questions shows nothing


def check_epsilon(layout: Layout, epsilon: Decimal) -> None:
    """Refuse an epsilon per release that no one could read, before anything is computed
    with it: an indices release needs at least means.LEAST_EPSILON; a release of questions,
    a count's noise scale (its cells a respondent touches, over epsilon) of at most
    MOST_SCALE. Both keep every preview and interval cheap to compute."""
    if not Decimal(0) < epsilon <= Decimal(10):
        raise PlanError(f"epsilon per release must be more than 0 and at most 10; got {epsilon}")
    if epsilon != epsilon.quantize(EPSILON_PLACES):
        raise PlanError(f"epsilon per release has at most six decimal places; got {epsilon}")
    least = means.LEAST_EPSILON if layout.indices else Decimal(layout.sensitivity) / MOST_SCALE
    if epsilon < least:
        raise PlanError(
            f"epsilon per release must be at least {least.normalize():f} for this table; "
            f"got {epsilon}: with less, its figures would be noise"
        )


async def add_line(
    conn: Connection,
    *,
    organisation_id: uuid.UUID,
    year: int,
    program_id: uuid.UUID | None,
    survey_id: uuid.UUID,
    granularity: Granularity,
    questions: Sequence[str],
    breakdown: str | None,
    epsilon: Decimal,
    expected_n: int | None = None,
) -> PlanLine:
    """Add a line to the year's plan; refused (with what is left) if the plan would then
    spend more than the yearly budget for some survivor. A line with ``expected_n`` (the
    respondents expected per period) and no questions releases the indices."""
    kind: Kind = "indices" if expected_n is not None else "questions"
    if kind == "indices" and (questions or expected_n is None or expected_n < 1):
        raise PlanError(
            "an indices line names no questions and expects at least 1 respondent per period"
        )
    definition = await conn.fetchval(
        "SELECT definition FROM surveys WHERE organisation_id = $1 AND id = $2",
        organisation_id,
        survey_id,
    )
    if definition is None:
        raise PlanError("no such survey in this organisation")
    try:
        if kind == "indices":
            layout = Layout.for_indices(from_json(definition), breakdown)
        else:
            layout = Layout.plan(from_json(definition), questions, breakdown)
    except KeyError as exc:
        raise PlanError(f"{exc.args[0]!r} is not a question of this survey") from None
    except PrivacyError as exc:
        raise PlanError(str(exc)) from None
    check_epsilon(layout, epsilon)
    if layout.comment is not None and not await conn.fetchval(
        "SELECT comments_enabled FROM organisations WHERE id = $1", organisation_id
    ):
        raise PlanError(
            "comments are off for this organisation, so there are none to count: plan the "
            f"line without {layout.comment!r}"
        )
    cost = epsilon * PER_YEAR[granularity]
    async with conn.transaction(isolation="read_committed"):  # see aggregate.releases
        total = await conn.fetchval(
            "SELECT epsilon_per_year FROM organisations WHERE id = $1 FOR UPDATE", organisation_id
        )
        planned = await planned_by_program(conn, organisation_id, year)
        rules = await accounting(conn, organisation_id)
        if rules.worst(plus(planned, program_id, cost)) > total:
            left = max(Decimal(0), total - rules.worst(planned))
            raise PlanError(
                f"this line would spend epsilon {cost} in {year} ({epsilon} per release, "
                f"{PER_YEAR[granularity]} releases), but only {left} of the yearly "
                f"budget of {total} is left to plan for the worst-off survivor. Lower its "
                "epsilon, choose a coarser period, declare programs that serve different "
                "people (`feedback plan groups`), or raise the budget."
            )
        exists = await conn.fetchval(
            """
            SELECT EXISTS (SELECT 1 FROM release_plans
                            WHERE organisation_id = $1 AND budget_year = $2
                              AND program_id IS NOT DISTINCT FROM $3 AND survey_id = $4
                              AND granularity = $5 AND breakdown IS NOT DISTINCT FROM $6
                              AND kind = $7)
            """,
            organisation_id,
            year,
            program_id,
            survey_id,
            granularity,
            breakdown,
            kind,
        )
        if exists:
            raise PlanError("the plan already has this table for this year; remove that line first")
        line_id = await conn.fetchval(
            """
            INSERT INTO release_plans (organisation_id, budget_year, program_id, survey_id,
                                       granularity, questions, breakdown, epsilon, kind,
                                       expected_n)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            RETURNING id
            """,
            organisation_id,
            year,
            program_id,
            survey_id,
            granularity,
            list(questions),
            breakdown,
            epsilon,
            kind,
            expected_n,
        )
    return await line_by_id(conn, organisation_id, line_id)


async def add_advised(
    conn: Connection,
    advice: advisor.Advice,
    *,
    organisation_id: uuid.UUID,
    year: int,
    program_id: uuid.UUID | None,
    survey_id: uuid.UUID,
) -> list[PlanLine]:
    """Plan every line of the advisor's advice, or none: refused first when together they
    cost more than is left of the year's budget."""
    left = (await year_budget(conn, organisation_id, year)).left
    try:
        advisor.check_affordable(advice, left)
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    return [
        await add_line(
            conn,
            organisation_id=organisation_id,
            year=year,
            program_id=program_id,
            survey_id=survey_id,
            granularity=line.granularity,
            questions=line.questions,
            breakdown=None,
            epsilon=line.epsilon,
            expected_n=line.expected_n if line.kind == "indices" else None,
        )
        for line in advice.lines
    ]


async def line_by_id(conn: Connection, organisation_id: uuid.UUID, line_id: uuid.UUID) -> PlanLine:
    row = await conn.fetchrow(
        SELECT_LINES + " WHERE p.organisation_id = $1 AND p.id = $2", organisation_id, line_id
    )
    if row is None:
        raise PlanError(f"no plan line {line_id} in this organisation")
    return _line(row)


async def release_made(conn: Connection, line: PlanLine, period: Period) -> bool:
    made: bool = await conn.fetchval(
        """
        SELECT EXISTS (SELECT 1 FROM releases
                        WHERE organisation_id = $1 AND program_id IS NOT DISTINCT FROM $2
                          AND survey_id = $3 AND granularity = $4 AND period_start = $5
                          AND breakdown IS NOT DISTINCT FROM $6 AND kind = $7)
        """,
        line.organisation_id,
        line.program_id,
        line.survey_id,
        line.granularity,
        period.start,
        line.breakdown,
        line.kind,
    )
    return made


async def remove_line(conn: Connection, organisation_id: uuid.UUID, line_id: uuid.UUID) -> None:
    line = await line_by_id(conn, organisation_id, line_id)
    for period in line.periods():
        if await release_made(conn, line, period):
            raise PlanError(
                f"the release for {period} has been made from this line: the line stays, "
                "so that the budget it spent stays planned"
            )
    await conn.execute(
        "DELETE FROM release_plans WHERE organisation_id = $1 AND id = $2",
        organisation_id,
        line_id,
    )


GROUP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


async def declare_groups(
    conn: Connection, organisation_id: uuid.UUID, groups: Mapping[str, Sequence[str]]
) -> Accounting:
    """Declare which programs serve different people: ``groups`` maps a group name to the
    slugs of its programs; every other program is in no group. An empty mapping returns to
    the default (every release counts against every survivor). Audited; in force for every
    budget check from now on, for every year."""
    programs = await program_names(conn, organisation_id)
    by_slug = {slug: program_id for program_id, slug in programs.items()}
    chosen: dict[uuid.UUID, str] = {}
    for group, slugs in groups.items():
        if not GROUP_NAME.match(group):
            raise PlanError(f"{group!r} is not a group name: lower-case letters, digits, dashes")
        for slug in slugs:
            if slug not in by_slug:
                known = ", ".join(sorted(by_slug)) or "none"
                raise PlanError(f"no program {slug!r} in this organisation (known: {known})")
            if by_slug[slug] in chosen:
                raise PlanError(f"program {slug!r} is named in two groups: a program is in one")
            chosen[by_slug[slug]] = group
    async with conn.transaction(isolation="read_committed"):
        await conn.execute(
            "SELECT 1 FROM organisations WHERE id = $1 FOR UPDATE", organisation_id
        )  # as a release does: no budget check runs half under the old declaration
        await _refuse_moving_spent(conn, organisation_id, chosen, programs)
        await conn.execute(
            "UPDATE programs SET privacy_group = NULL WHERE organisation_id = $1", organisation_id
        )
        await conn.executemany(
            "UPDATE programs SET privacy_group = $2 WHERE id = $1", list(chosen.items())
        )
        rules = await accounting(conn, organisation_id)
        await conn.execute(
            "INSERT INTO audit_log (organisation_id, action, subject, details) "
            "VALUES ($1, 'privacy.groups', 'programs', $2)",
            organisation_id,
            {
                "groups": {g: sorted(s) for g, s in groups.items()},
                "accounting": rules.describe(programs),
            },
        )
    return rules


async def _refuse_moving_spent(
    conn: Connection,
    organisation_id: uuid.UUID,
    chosen: Mapping[uuid.UUID, str],
    names: Mapping[uuid.UUID, str],
) -> None:
    """A program whose releases of this year or last were counted in one group (or in none)
    cannot join another group: its spending would then stop counting for survivors it may
    have been about. It may always leave its group for none, which counts it against
    everyone."""
    rows = await conn.fetch(
        """
        SELECT p.id, p.privacy_group FROM programs p
         WHERE p.organisation_id = $1
           AND EXISTS (SELECT 1 FROM privacy_ledger l JOIN releases r ON r.id = l.release_id
                        WHERE r.program_id = p.id
                          AND l.budget_year >= extract(year FROM now())::int - 1)
        """,
        organisation_id,
    )
    for row in rows:
        new, old = chosen.get(row["id"]), row["privacy_group"]
        if new is not None and new != old:
            counted = f"in group {old!r}" if old else "in no group"
            raise PlanError(
                f"program {names[row['id']]!r} has releases counted {counted} this year or "
                f"last: it may leave its group for none, or join {new!r} once those years "
                "are over"
            )
