"""Making the releases that a year's plan holds: those of one period, now (`feedback aggregate`),
or every one whose period has ended (the worker's job, for organisations whose key passphrase
the worker has been given).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from feedback.aggregate.keys import UnlockedKey, unlock_all
from feedback.aggregate.releases import BudgetExceeded, Scope, StoredRelease, make_release
from feedback.aggregate.unseal import KeysMissing, Progress, counter
from feedback.db import WORKER, Connection, connect
from feedback.errors import FeedbackError
from feedback.jobs import Job
from feedback.secretfiles import read_passphrase_file
from feedback.stats.periods import EVERY, Period
from feedback.stats.plans import PlanError, PlanLine, plan_of, release_made

log = logging.getLogger(__name__)

Work = Sequence[tuple[PlanLine, Period]]


@dataclass(frozen=True, slots=True)
class Made:
    line: PlanLine
    period: Period
    release: StoredRelease | None
    refused: str | None = None  # why, when the budget or a key not unlocked refused it
    scope: Scope | None = None
    missing: KeysMissing | None = None  # the keys it needed that were not unlocked


async def of_period(
    conn: Connection, organisation_id: uuid.UUID, period: Period, program: str | None = None
) -> list[tuple[PlanLine, Period]]:
    """The planned releases of ``period`` (of one program's lines only, when given)."""
    lines = await plan_of(conn, organisation_id, period.budget_year)
    chosen = [
        (line, period)
        for line in lines
        if line.granularity == period.granularity and (program is None or line.program == program)
    ]
    if not chosen:
        held = "; ".join(line.describe() for line in lines) or "nothing"
        raise PlanError(
            f"the {period.budget_year} plan holds no {EVERY[period.granularity]} release"
            + (f" for program {program}" if program else "")
            + f" (it holds: {held}). Add one with `feedback plan add`."
        )
    return chosen


async def due(
    conn: Connection, organisation_id: uuid.UUID, today: dt.date
) -> list[tuple[PlanLine, Period]]:
    """Planned releases (this year's and last year's) whose period has ended and that have
    not been made, oldest first."""
    work = []
    for year in (today.year - 1, today.year):
        for line in await plan_of(conn, organisation_id, year):
            for period in line.due(today):
                if not await release_made(conn, line, period):
                    work.append((line, period))
    return sorted(work, key=lambda item: item[1].start)


async def make_planned(
    conn: Connection,
    work: Work,
    *,
    keys: dict[uuid.UUID, UnlockedKey],
    database_url: str | None,
    progress: Callable[[PlanLine, Period], Progress | None] | None = None,
) -> list[Made]:
    """Make each release (or find it already made). One refused by the budget, or for a key
    that was not unlocked, does not stop the others: it is reported, and nothing of it was
    spent."""
    results = []
    for line, period in work:
        threshold = await conn.fetchval(
            "SELECT release_threshold FROM organisations WHERE id = $1", line.organisation_id
        )
        scope = Scope(
            line.organisation_id,
            line.program_id,
            line.survey_id,
            period,
            line.breakdown,
            line.kind,
        )
        layout = line.layout
        count = counter(
            conn,
            scope,
            layout=layout,
            keys=keys,
            database_url=database_url,
            progress=progress(line, period) if progress else None,
        )
        try:
            made = await make_release(
                conn,
                scope,
                layout=layout,
                epsilon=line.epsilon,
                threshold=threshold,
                count=count,
                split=line.split,
            )
        except BudgetExceeded as exc:
            results.append(Made(line, period, None, str(exc), scope))
            continue
        except KeysMissing as exc:
            results.append(Made(line, period, None, str(exc), scope, exc))
            continue
        results.append(Made(line, period, made, scope=scope))
    return results


def scheduled_releases_job(passphrase_dir: Path, database_url: str) -> Job:
    """The worker's job: for each organisation with a passphrase file in ``passphrase_dir``,
    unlock its keys (only when something is due) and make the releases that are due."""

    async def make_due_releases(claim: Connection) -> str:
        del claim  # the run's claim; releases commit one by one on a connection of their own
        today = dt.datetime.now(dt.UTC).date()
        outcomes = []
        conn = await connect(database_url, role=WORKER, statement_timeout_ms=0)
        try:
            for org_id, slug in await conn.fetch("SELECT id, slug FROM organisations"):
                work = await due(conn, org_id, today)
                if work:
                    outcomes.append(await _release_due(conn, slug, org_id, work))
        finally:
            await conn.close()
        return "; ".join(outcomes) or "nothing due"

    async def _release_due(conn: Connection, slug: str, org_id: uuid.UUID, work: Work) -> str:
        path = passphrase_dir / slug
        if not path.exists():
            return f"{slug}: {len(work)} due, but no passphrase file {path}"
        try:
            keys = await unlock_all(conn, org_id, read_passphrase_file(path))
            made = await make_planned(conn, work, keys=keys, database_url=database_url)
        except FeedbackError as exc:
            log.warning("releases of %s refused: %s", slug, exc)
            return f"{slug}: refused ({type(exc).__name__})"
        del keys
        refused = [m for m in made if m.refused]
        for item in refused:
            log.warning("release %s of %s refused: %s", item.period, slug, item.refused)
        return f"{slug}: {len(made) - len(refused)} made, {len(refused)} refused"

    return Job("make-scheduled-releases", dt.timedelta(hours=1), make_due_releases)
