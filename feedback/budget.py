"""The yearly privacy budget: how much epsilon a survivor has lost this year, or will have once
the year's plan is carried out.

The privacy unit is one invitation, and each invitation (and so each submission) belongs to one
program. Releases of different programs therefore cover different survivors, and their losses
do not add up (parallel composition): a survivor's loss is the sum over the organisation-wide
releases and the releases of their own program. The budget bounds the worst case over programs.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from feedback.db import Connection

ByProgram = Mapping[uuid.UUID | None, Decimal]  # None: the organisation-wide releases
PERIODS_PER_YEAR = {"month": 12, "quarter": 4, "year": 1}


def worst_loss(by_program: ByProgram, program_id: uuid.UUID | None = None) -> Decimal:
    """The loss of a survivor of ``program_id`` (of the worst-off program when None)."""
    whole = by_program.get(None, Decimal(0))
    if program_id is not None:
        return whole + by_program.get(program_id, Decimal(0))
    return whole + max((v for k, v in by_program.items() if k is not None), default=Decimal(0))


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
               sum(epsilon * CASE granularity WHEN 'month' THEN 12
                                              WHEN 'quarter' THEN 4 ELSE 1 END) AS epsilon
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
    return Budget(
        year,
        total,
        worst_loss(await spent_by_program(conn, organisation_id, year)),
        worst_loss(await planned_by_program(conn, organisation_id, year)),
    )
