"""Making a release: noise drawn only once the budget is secured, stored with its ledger entry
in one transaction, under a lock on the organisation, so that no crash or race can publish a
release without spending its budget, or spend budget without a release. The budget is checked
for the worst-off survivor (see ``budget``), at READ COMMITTED whatever the database's default
isolation, so that the ledger read after the lock sees every release committed before it.

A release is refused for a period that has not ended: the week of receipt is the database's,
so once a period has ended no submission can arrive in it. Its rows are marked counted before
they are counted, so that a withdrawal meanwhile is refused rather than quietly counted.
Asking again for a released period returns the stored release: never fresh noise.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from feedback.aggregate.privacy import (
    MECHANISM,
    Counted,
    GroupRelease,
    IndicesRelease,
    Noise,
    Tally,
    indices_noise,
    release,
    release_indices,
)
from feedback.db import Connection
from feedback.errors import FeedbackError
from feedback.locks import MOVING_SUBMISSIONS
from feedback.stats import means
from feedback.stats.budget import (
    Accounting,
    accounting,
    cost_of,
    plus,
    program_names,
    spent_by_program,
)
from feedback.stats.cells import SUPPRESSED, Layout, PrivacyError
from feedback.stats.periods import Period

log = logging.getLogger(__name__)


class BudgetExceeded(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class Scope:
    organisation_id: uuid.UUID
    program_id: uuid.UUID | None  # None: the whole organisation
    survey_id: uuid.UUID
    period: Period
    breakdown: str | None = None
    kind: str = "questions"  # or "indices"


class PeriodNotEnded(FeedbackError):
    pass


Count = Callable[[], Awaitable[tuple[Counted, dict[str, Any]]]]
"""Opens and tallies a period's submissions; returns them with the metadata to publish."""


@dataclass(frozen=True, slots=True)
class StoredRelease:
    id: uuid.UUID
    epsilon: Decimal
    noise_scale: Decimal
    threshold: int
    cells: dict[str, Any]
    metadata: dict[str, Any]
    created: bool  # False when an earlier run had already made it
    # How many submissions did not open or were not valid envelopes: exact, so for the key
    # holder's terminal only, never stored. None for a release an earlier run made.
    quarantined: int | None = None


def cells_document(groups: list[GroupRelease], noise: Noise) -> dict[str, Any]:
    """The stored form: suppressed cells are the marker "S", never a number."""
    return {
        "groups": [
            {
                "group": g.group,
                "n": SUPPRESSED if g.n is None else g.n,
                "questions": {
                    q: {c: SUPPRESSED if v is None else v for c, v in cells.items()}
                    for q, cells in g.cells.items()
                },
            }
            for g in groups
        ],
        "half_width_95": noise.half_width(),
    }


# What a release's intervals cover, on its card and in its document.
COVERS = (
    "sampling and noise: the respondents are taken as a sample of the people the program "
    "serves; who chose not to answer is not covered"
)


def indices_document(found: IndicesRelease, plan: means.Split) -> dict[str, Any]:
    """The stored form of an indices release: per group and index, the noisy count of those
    who answered it, the noisy sum of their centred contributions and of their squares ("S"
    when suppressed), with the scales and the split that readers need for the intervals
    (post-processing: see feedback.stats.means). A group's "n" is the largest count it shows,
    what pages call its respondents."""
    scales = found.scales
    return {
        "groups": [
            {
                "group": g.group,
                "n": max((s.n for s in g.shown.values()), default=SUPPRESSED),
                "indices": {
                    index: (
                        {"n": shown.n, "sum": shown.sum, "squares": shown.squares}
                        if (shown := g.shown.get(index)) is not None
                        else SUPPRESSED
                    )
                    for index in found.indices
                },
            }
            for g in found.groups
        ],
        "count_scale": scales.count,
        "sum_scale": scales.sum,
        "squares_scale": None if math.isinf(scales.squares) else scales.squares,
        "split": {"count": str(plan.count), "sums": str(plan.sums), "squares": str(plan.squares)},
        "covers": COVERS,
    }


@dataclass(frozen=True, slots=True)
class _Mechanism:
    """What a release spends, the scale stored beside it, and how it draws its document."""

    cost: Decimal
    scale: float
    draw: Callable[[Tally, int], dict[str, Any]]


def _mechanism(
    scope: Scope, layout: Layout, epsilon: Decimal, split: means.Split | None
) -> _Mechanism:
    if bool(layout.indices) != (scope.kind == "indices"):
        raise PrivacyError(f"a {scope.kind} release cannot be made from this layout")
    if not layout.indices:
        noise = Noise(epsilon, layout.sensitivity)
        return _Mechanism(
            cost_of(noise.spent()),
            noise.scale,
            lambda tally, threshold: cells_document(
                release(tally, noise, threshold=threshold), noise
            ),
        )
    if split is None or split.total != epsilon:
        raise PrivacyError("an indices release needs its plan line's split of epsilon")
    parts = [noise for noise in indices_noise(split) if noise is not None]
    return _Mechanism(
        cost_of(sum((Decimal(noise.spent()) for noise in parts), Decimal(0))),
        parts[1].scale,
        lambda tally, threshold: indices_document(
            release_indices(tally, split, threshold=threshold), split
        ),
    )


async def _stored(conn: Connection, scope: Scope) -> StoredRelease | None:
    row = await conn.fetchrow(
        """
        SELECT id, epsilon, noise_scale, threshold, cells, metadata
          FROM releases
         WHERE organisation_id = $1 AND program_id IS NOT DISTINCT FROM $2 AND survey_id = $3
           AND granularity = $4 AND period_start = $5 AND breakdown IS NOT DISTINCT FROM $6
           AND kind = $7
        """,
        scope.organisation_id,
        scope.program_id,
        scope.survey_id,
        scope.period.granularity,
        scope.period.start,
        scope.breakdown,
        scope.kind,
    )
    return None if row is None else StoredRelease(**dict(row), created=False)


async def make_release(
    conn: Connection,
    scope: Scope,
    *,
    layout: Layout,
    epsilon: Decimal,
    threshold: int,
    count: Count,
    before_commit: Callable[[], Awaitable[None]] | None = None,
    split: means.Split | None = None,
) -> StoredRelease:
    """The release for ``scope``: the stored one if it exists, else a new one. ``count``
    opens and tallies the period's submissions (exact counts stay in memory) and returns
    metadata to publish beside the release (definitions only). An indices layout is noised
    as ``split`` divides ``epsilon`` (see feedback.stats.means).

    The period's submissions are marked counted before they are counted, so that a survivor
    who withdraws meanwhile is told the truth (the answers are in the release); when no
    release comes of it, the marks of rows no release covers are taken back."""
    existing = await _stored(conn, scope)
    if existing is not None:
        return existing
    await check_ended(conn, scope.period)
    mechanism = _mechanism(scope, layout, epsilon, split)
    cost = mechanism.cost
    async with conn.transaction(isolation="read_committed"):
        await _secure_budget(conn, scope, cost)  # a refused release marks nothing
        existing = await _stored(conn, scope)
        if existing is not None:
            return existing
        await _mark_counted(conn, scope)
    try:
        counted, metadata = await count()
        async with conn.transaction(isolation="read_committed"):
            rules = await _secure_budget(conn, scope, cost)
            existing = await _stored(conn, scope)  # another worker may have released meanwhile
            if existing is not None:
                return existing
            document = mechanism.draw(counted.tally, threshold)
            quarantined = counted.quarantined
            del counted  # the exact counts go no further
            composition = rules.describe(await program_names(conn, scope.organisation_id))
            release_id: uuid.UUID = await conn.fetchval(
                """
                INSERT INTO releases (organisation_id, program_id, survey_id, granularity,
                                      period_start, period_end, breakdown, mechanism, epsilon,
                                      noise_scale, threshold, cells, metadata, kind)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                RETURNING id
                """,
                scope.organisation_id,
                scope.program_id,
                scope.survey_id,
                scope.period.granularity,
                scope.period.start,
                scope.period.end,
                scope.breakdown,
                MECHANISM,
                cost,
                Decimal(mechanism.scale),
                threshold,
                document,
                {**metadata, "composition": composition},
                scope.kind,
            )
            await conn.execute(
                "INSERT INTO privacy_ledger (organisation_id, budget_year, release_id, epsilon) "
                "VALUES ($1, $2, $3, $4)",
                scope.organisation_id,
                scope.period.budget_year,
                release_id,
                cost,
            )
            if before_commit is not None:
                await before_commit()
    except Exception:
        await _unmark_uncounted(conn, scope)
        raise
    stored = await _stored(conn, scope)
    if stored is None:  # cannot happen: committed just above, and releases are immutable
        raise FeedbackError(f"release {release_id} vanished after it was stored")
    return dataclasses.replace(stored, created=True, quarantined=quarantined)


async def _secure_budget(conn: Connection, scope: Scope, cost: Decimal) -> Accounting:
    """Lock the organisation (until the caller's transaction ends) and refuse a cost the
    worst-off survivor's budget cannot bear; the accounting in force."""
    budget = await conn.fetchval(
        "SELECT epsilon_per_year FROM organisations WHERE id = $1 FOR UPDATE",
        scope.organisation_id,
    )
    year = scope.period.budget_year
    rules = await accounting(conn, scope.organisation_id)
    spent = await spent_by_program(conn, scope.organisation_id, year)
    if rules.worst(plus(spent, scope.program_id, cost)) > budget:
        left = max(budget - rules.worst(spent), Decimal(0))
        raise BudgetExceeded(
            f"this release would spend epsilon {cost} but only {left} of the {year} budget "
            f"of {budget} is left for the worst-off survivor; the budget renews on "
            f"{dt.date(year + 1, 1, 1)}. Nothing was released or spent."
        )
    return rules


async def check_ended(conn: Connection, period: Period) -> None:
    """Refuse a period whose last week has not ended, by the database's clock (the one that
    dates submissions)."""
    this_week: dt.date = await conn.fetchval("SELECT current_iso_week()")
    ends = period.weeks()[1]
    if this_week < ends:
        raise PeriodNotEnded(
            f"{period} has not ended: its last week ends on {ends - dt.timedelta(days=1)}, and "
            "answers can still arrive in it. Release it from then on; nothing was spent."
        )


async def _mark_counted(conn: Connection, scope: Scope) -> None:
    """Mark the period's submissions as counted (withdrawal then says so, and retention may
    delete them once the release is made). The period has ended, so no row can arrive in it;
    the lock waits for a mix that is moving rows, which would otherwise hide them."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", MOVING_SUBMISSIONS)
    first, last = scope.period.weeks()
    await conn.execute(
        """
        UPDATE submissions SET included_in_release = true
         WHERE organisation_id = $1 AND survey_id = $2
           AND ($3::uuid IS NULL OR program_id = $3)
           AND received_week >= $4 AND received_week < $5
        """,
        scope.organisation_id,
        scope.survey_id,
        scope.program_id,
        first,
        last,
    )


async def _unmark_uncounted(conn: Connection, scope: Scope) -> None:
    """Take back the marks of the period's rows that no release covers (this one was not
    made). Best effort: a run killed before it leaves marks that the next run uses."""
    first, last = scope.period.weeks()
    try:
        await conn.execute(
            """
            UPDATE submissions s SET included_in_release = false
             WHERE s.organisation_id = $1 AND s.survey_id = $2
               AND ($3::uuid IS NULL OR s.program_id = $3)
               AND s.received_week >= $4 AND s.received_week < $5 AND s.included_in_release
               AND NOT EXISTS (
                   SELECT 1 FROM releases r
                    WHERE r.organisation_id = s.organisation_id AND r.survey_id = s.survey_id
                      AND (r.program_id IS NULL OR r.program_id = s.program_id)
                      AND s.received_week >= r.period_start AND s.received_week < r.period_end)
            """,
            scope.organisation_id,
            scope.survey_id,
            scope.program_id,
            first,
            last,
        )
    except Exception:  # the original failure is what the caller needs to see
        log.exception("taking back the counted marks of %s failed", scope.period)
