"""The program page of a period, drawn once and stored (migrations/0020_release_views.sql).

Releases never change, so the charts and tables of a period's page are fixed by the releases
it reads: they are drawn once, by the worker after a release is made (``draw_missing``), and
stored under a hash of those releases' ids and of ``DRAWING_VERSION``. A request reads the
stored page and never draws; a page not drawn yet (the worker has not run since the release,
or the drawing code changed) says it is being prepared until the worker's next run. Only the
worker writes pages: the staff app serves their SVG as it is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

from feedback.db import Connection
from feedback.jobs import Job
from feedback.offload import DRAWING
from feedback.publish import charts
from feedback.publish.reports import Report, program_releases, report

DRAWING_VERSION = "7"  # raise when the charts change: every page is then drawn again


def view_key(found: Report) -> bytes:
    """What a page is stored under: the releases it reads, its period, the drawing code."""
    ids = sorted(str(r.id) for r in found.releases())
    text = "|".join([DRAWING_VERSION, str(found.period), *ids])
    return hashlib.sha256(text.encode()).digest()


async def stored(conn: Connection, found: Report) -> list[charts.Chart] | None:
    data = await conn.fetchval("SELECT charts FROM release_views WHERE key = $1", view_key(found))
    return None if data is None else [charts.Chart.from_json(c) for c in data]


async def draw_program(conn: Connection, organisation_id: uuid.UUID, program_id: uuid.UUID) -> int:
    """Draw and store every period's page of a program that is not stored yet; returns how
    many were drawn. The releases' cells are read only when one is missing."""
    light = await program_releases(conn, organisation_id, program_id, cells=False)
    periods = {r.period for r in light}
    keys = {p: view_key(found) for p in periods if (found := report(light, p)) is not None}
    have = {
        row["key"]
        for row in await conn.fetch(
            "SELECT key FROM release_views WHERE key = ANY($1::bytea[])", list(keys.values())
        )
    }
    missing = [p for p, key in keys.items() if key not in have]
    if not missing:
        return 0
    releases = await program_releases(conn, organisation_id, program_id)
    for period in missing:
        found = report(releases, period)
        if found is None:  # cannot be: the period has a release
            continue
        drawn = await DRAWING.run(charts.draw, found)
        await conn.execute(
            """
            INSERT INTO release_views (key, organisation_id, program_id, charts)
            VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING
            """,
            keys[period],
            organisation_id,
            program_id,
            [chart.to_json() for chart in drawn],
        )
    return len(missing)


async def draw_missing(conn: Connection) -> str:
    """Every program's pages not drawn yet (the worker's job, after releases are made)."""
    programs = await conn.fetch(
        "SELECT DISTINCT organisation_id, program_id FROM releases WHERE program_id IS NOT NULL"
    )
    drawn = 0
    for row in programs:
        drawn += await draw_program(conn, row["organisation_id"], row["program_id"])
    return f"drew {drawn} program pages"


JOB = Job("draw-program-pages", dt.timedelta(minutes=1), draw_missing)
