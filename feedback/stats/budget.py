"""The yearly privacy budget: how much epsilon a survivor has lost this year, or will have once
the year's plan is carried out.

The privacy unit is one survivor. A survivor may be served by several programs of one
organisation, so by default every release of the organisation may cover the same person and
their losses add up (sequential composition across programs). An admin may declare groups of
programs that serve different people (``programs.privacy_group``, audited): a survivor is then
in at most one group, and the releases of different groups compose in parallel. A program in no
group may share survivors with any program, so its releases count against everyone.

The worst-off survivor's loss is therefore: the organisation-wide releases, plus every program
in no group, plus the largest sum over one group. The budget bounds that.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from feedback.db import Connection

ByProgram = Mapping[uuid.UUID | None, Decimal]  # None: the organisation-wide releases
EPSILON_PLACES = Decimal("0.000001")  # the ledger's precision: costs round up to it


def cost_of(epsilon: float | Decimal) -> Decimal:
    """A privacy loss as the ledger records it: rounded up to six places, never down."""
    return Decimal(epsilon).quantize(EPSILON_PLACES, rounding=ROUND_CEILING)


@dataclass(frozen=True, slots=True)
class Accounting:
    """Which programs are declared to serve different people: program -> its group (None:
    no group). How releases compose follows from it."""

    groups: Mapping[uuid.UUID, str | None]

    def worst(self, by_program: ByProgram) -> Decimal:
        """The loss of the worst-off survivor, given each program's (and the organisation-wide)
        total."""
        whole = by_program.get(None, Decimal(0))
        everyone = Decimal(0)
        per_group: dict[str, Decimal] = {}
        for program_id, loss in by_program.items():
            if program_id is None:
                continue
            group = self.groups.get(program_id)
            if group is None:
                everyone += loss
            else:
                per_group[group] = per_group.get(group, Decimal(0)) + loss
        return whole + everyone + max(per_group.values(), default=Decimal(0))

    @property
    def declared(self) -> dict[str, list[uuid.UUID]]:
        found: dict[str, list[uuid.UUID]] = {}
        for program_id, group in self.groups.items():
            if group is not None:
                found.setdefault(group, []).append(program_id)
        return found

    def describe(self, names: Mapping[uuid.UUID, str]) -> str:
        """The accounting in force, in one sentence for people (``names``: program slugs)."""
        declared = self.declared
        if not declared:
            return (
                "all programs may serve the same survivors: every release of the "
                "organisation counts against every survivor"
            )
        parts = [
            f"{group}: {', '.join(sorted(names.get(p, str(p)) for p in programs))}"
            for group, programs in sorted(declared.items())
        ]
        alone = sorted(names.get(p, str(p)) for p, g in self.groups.items() if g is None)
        text = "groups of programs declared to serve different people (" + "; ".join(parts) + ")"
        if alone:
            text += f"; {', '.join(alone)} in no group, so counted against every survivor"
        return text


async def accounting(conn: Connection, organisation_id: uuid.UUID) -> Accounting:
    rows = await conn.fetch(
        "SELECT id, privacy_group FROM programs WHERE organisation_id = $1", organisation_id
    )
    return Accounting({row["id"]: row["privacy_group"] for row in rows})


async def program_names(conn: Connection, organisation_id: uuid.UUID) -> dict[uuid.UUID, str]:
    rows = await conn.fetch(
        "SELECT id, slug FROM programs WHERE organisation_id = $1", organisation_id
    )
    return {row["id"]: row["slug"] for row in rows}


async def spent_by_program(
    conn: Connection, organisation_id: uuid.UUID, year: int
) -> dict[uuid.UUID | None, Decimal]:
    rows = await conn.fetch(
        """
        SELECT r.program_id, sum(l.epsilon) AS epsilon
          FROM privacy_ledger l JOIN releases r ON r.id = l.release_id
         WHERE l.organisation_id = $1 AND l.budget_year = $2
         GROUP BY r.program_id
        """,
        organisation_id,
        year,
    )
    return {row["program_id"]: row["epsilon"] for row in rows}


async def planned_by_program(
    conn: Connection, organisation_id: uuid.UUID, year: int
) -> dict[uuid.UUID | None, Decimal]:
    rows = await conn.fetch(
        """
        SELECT program_id,
               sum(epsilon * CASE granularity WHEN 'month' THEN 12 WHEN 'quarter' THEN 4
                                              WHEN 'half' THEN 2 ELSE 1 END) AS epsilon
          FROM release_plans
         WHERE organisation_id = $1 AND budget_year = $2
         GROUP BY program_id
        """,
        organisation_id,
        year,
    )
    return {row["program_id"]: row["epsilon"] for row in rows}


@dataclass(frozen=True, slots=True)
class Budget:
    year: int
    total: Decimal
    spent: Decimal  # by the releases made so far (worst-off survivor)
    planned: Decimal  # once every planned release is made (worst-off survivor)
    accounting: str  # how releases compose, in words

    @property
    def left(self) -> Decimal:
        """What is still free to plan."""
        return max(Decimal(0), self.total - max(self.spent, self.planned))

    @property
    def renews(self) -> dt.date:
        return dt.date(self.year + 1, 1, 1)


async def year_budget(conn: Connection, organisation_id: uuid.UUID, year: int) -> Budget:
    total = await conn.fetchval(
        "SELECT epsilon_per_year FROM organisations WHERE id = $1", organisation_id
    )
    rules = await accounting(conn, organisation_id)
    return Budget(
        year,
        total,
        rules.worst(await spent_by_program(conn, organisation_id, year)),
        rules.worst(await planned_by_program(conn, organisation_id, year)),
        rules.describe(await program_names(conn, organisation_id)),
    )


def plus(by_program: ByProgram, program_id: uuid.UUID | None, cost: Decimal) -> ByProgram:
    """``by_program`` with ``cost`` added to ``program_id``'s total."""
    after = dict(by_program)
    after[program_id] = after.get(program_id, Decimal(0)) + cost
    return after
