"""Publications on the staff app: the admins' history of every series, "publish now" (a request
the worker takes: this app cannot sign), funders and their links; and a funder's archive,
opened by its private link alone. Every access through a funder's link is audited; a revoked
link is a 404, audited too."""

from __future__ import annotations

import datetime as dt
import uuid

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from feedback.db import Connection
from feedback.publish.audit import record
from feedback.publish.funders import (
    Funder,
    FunderError,
    add_funder,
    funder_by_link,
    funders_of,
    publications_of,
    revoke_funder,
    visible_publications,
)
from feedback.publish.guard import Context, staff_page
from feedback.publish.publications import SUMMARY
from feedback.publish.render import page
from feedback.schedules import ScheduleError, schedule_of, schedules_of
from feedback.stats.periods import BadPeriod, Period
from feedback.web import connection


@staff_page("admin")
async def publications(ctx: Context) -> Response:
    error = None
    org = ctx.staff.organisation_id
    if ctx.request.method == "POST":
        try:
            schedule = await schedule_of(ctx.conn, org, ctx.field("series"))
            period = Period.parse(ctx.field("period"))
            if (
                period.granularity != schedule.granularity
                or period.end > dt.datetime.now(dt.UTC).date()
            ):
                raise BadPeriod(
                    f"{period} is not an ended {schedule.granularity} of {schedule.series}"
                )
        except (ScheduleError, BadPeriod) as exc:
            error = str(exc)
        else:
            async with ctx.conn.transaction():
                await ctx.conn.execute(
                    "INSERT INTO publication_requests "
                    "(organisation_id, series, period, requested_by) VALUES ($1, $2, $3, $4)",
                    org,
                    schedule.series,
                    str(period),
                    ctx.staff.id,
                )
                await ctx.audit("publication.request", f"{schedule.series} {period}")
            return RedirectResponse(ctx.request.url_for("publications"), status_code=303)
    today = dt.datetime.now(dt.UTC).date()
    schedules = await schedules_of(ctx.conn, org)
    requests = await ctx.conn.fetch(
        """
        SELECT r.series, r.period, r.requested_on, r.settled_on, r.outcome, u.email
          FROM publication_requests r LEFT JOIN users u ON u.id = r.requested_by
         WHERE r.organisation_id = $1
         ORDER BY r.seq DESC LIMIT 20
        """,
        org,
    )
    return page(
        ctx.request,
        "publications.html",
        status_code=400 if error else 200,
        error=error,
        schedules=[(s, s.latest_due(today)) for s in schedules],
        published=await publications_of(ctx.conn, org),
        requests=requests,
    )


@staff_page("admin")
async def publication_bundle(ctx: Context) -> Response:
    publication_id = ctx.id_in_path("publication")
    row = await ctx.conn.fetchrow(
        "SELECT series, sequence, archive FROM publications WHERE organisation_id = $1 AND id = $2",
        ctx.staff.organisation_id,
        publication_id,
    )
    if row is None:
        raise HTTPException(404)
    await ctx.audit("publication.download", f"{row['series']} {row['sequence']}")
    return _bundle(row["series"], row["sequence"], row["archive"])


def _bundle(series: str, sequence: int, archive: bytes) -> Response:
    return Response(
        archive,
        media_type="application/gzip",
        headers={"content-disposition": f'attachment; filename="{series}-{sequence}.tar.gz"'},
    )


@staff_page("admin")
async def funders(ctx: Context) -> Response:
    error = link = None
    org = ctx.staff.organisation_id
    if ctx.request.method == "POST":
        chosen = []
        for value in ctx.fields("program"):
            try:
                chosen.append(uuid.UUID(value))
            except ValueError:
                error = "choose the programs from the list"
        try:
            if error:
                raise FunderError(error)
            funder_id, token = await add_funder(
                ctx.conn, org, ctx.field("name"), ctx.field("email") or None, chosen
            )
        except FunderError as exc:
            error = str(exc)
        else:
            await ctx.audit("funder.add", str(funder_id), name=ctx.field("name"))
            link = str(ctx.request.url_for("funder_archive", token=token))
    programs = await ctx.conn.fetch(
        "SELECT id, name FROM programs WHERE organisation_id = $1 ORDER BY name", org
    )
    return page(
        ctx.request,
        "funders.html",
        status_code=400 if error else 200,
        error=error,
        link=link,
        funders=await funders_of(ctx.conn, org),
        programs=programs,
    )


@staff_page("admin")
async def revoke(ctx: Context) -> Response:
    funder_id = ctx.id_in_path("funder")
    if not await revoke_funder(ctx.conn, ctx.staff.organisation_id, funder_id):
        raise HTTPException(404)
    await ctx.audit("funder.revoke", str(funder_id))
    return RedirectResponse(ctx.request.url_for("funders"), status_code=303)


# A funder's link ------------------------------------------------------------------------------

# Every file is served sandboxed; only the summary and the pictures open in the browser, and
# everything else (a network summary's member bundles, say, which their members wrote) is a
# download. The summary may keep its own stylesheet, whatever version drew it.
SANDBOX = "sandbox; default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
SUMMARY_POLICY = SANDBOX + "; style-src 'unsafe-inline'; img-src data:"
LINK_REQUESTS_PER_MINUTE = 120
SUBJECT_LENGTH = 200


async def _funder(conn: Connection, request: Request) -> Funder:
    """The funder of the link in the URL; a 404 for a link that is unknown or revoked (the
    first use of a revoked link each day is audited), a 429 past the link's rate."""
    funder = await funder_by_link(conn, request.path_params["token"])
    if funder is None:
        raise HTTPException(404)
    if funder.revoked_on is not None:
        await conn.execute(
            """
            INSERT INTO audit_log (organisation_id, action, subject, details)
            SELECT $1, 'funder.refused', $2, $3
             WHERE NOT EXISTS (
                 SELECT 1 FROM audit_log
                  WHERE organisation_id = $1 AND action = 'funder.refused' AND subject = $2
                    AND created_on = utc_today())
            """,
            funder.organisation_id,
            str(funder.id),
            {"name": funder.name},
        )
        raise HTTPException(404)
    if not request.state.funder_limiter.allow(str(funder.id)):
        raise HTTPException(429, "Too many requests through this link: try again in a minute.")
    return funder


async def _viewed(conn: Connection, funder: Funder, what: str) -> None:
    await record(
        conn,
        organisation_id=funder.organisation_id,
        user_id=None,
        action="funder.view",
        subject=what[:SUBJECT_LENGTH],
        details={"funder": str(funder.id), "name": funder.name},
    )


async def _visible(conn: Connection, funder: Funder, request: Request) -> uuid.UUID:
    try:
        publication_id = uuid.UUID(request.path_params["publication"])
    except ValueError:
        raise HTTPException(404) from None
    if publication_id not in {p.id for p in await visible_publications(conn, funder)}:
        raise HTTPException(404)
    return publication_id


async def funder_archive(request: Request) -> Response:
    async with connection(request.state.staff_pool) as conn:
        funder = await _funder(conn, request)
        await _viewed(conn, funder, "archive")
        listed = await visible_publications(conn, funder)
        name = await conn.fetchval(
            "SELECT name FROM organisations WHERE id = $1", funder.organisation_id
        )
    # The keys that signed what the funder sees (after a rotation, older ones are retired).
    keys = {
        p.key.hex_id: (p.key.file(f"signing key {p.key.hex_id}"), p.key_retired) for p in listed
    }
    return page(
        request,
        "funder_archive.html",
        funder=funder,
        organisation=name,
        publications=listed,
        keys=keys,
        token=request.path_params["token"],
    )


async def funder_file(request: Request) -> Response:
    path = request.path_params["path"]
    async with connection(request.state.staff_pool) as conn:
        funder = await _funder(conn, request)
        publication_id = await _visible(conn, funder, request)
        data = await conn.fetchval(
            "SELECT data FROM publication_files WHERE publication_id = $1 AND path = $2",
            publication_id,
            path,
        )
        if data is None:
            raise HTTPException(404)
        await _viewed(conn, funder, f"{publication_id}/{path}")
    return _file(path, data)


def _file(path: str, data: bytes) -> Response:
    if path == SUMMARY:  # the top-level one only: a member's, inside a network's, downloads
        policy = {"content-security-policy": SUMMARY_POLICY}
        return Response(data, media_type="text/html; charset=utf-8", headers=policy)
    if path.endswith(".png"):
        return Response(data, media_type="image/png", headers={"content-security-policy": SANDBOX})
    name = path.rsplit("/", 1)[-1].replace('"', "")
    return Response(
        data,
        media_type="application/octet-stream",
        headers={
            "content-security-policy": SANDBOX,
            "content-disposition": f'attachment; filename="{name}"',
        },
    )


async def funder_bundle(request: Request) -> Response:
    async with connection(request.state.staff_pool) as conn:
        funder = await _funder(conn, request)
        publication_id = await _visible(conn, funder, request)
        row = await conn.fetchrow(
            "SELECT series, sequence, archive FROM publications WHERE id = $1", publication_id
        )
        if row is None:
            raise HTTPException(404)
        await _viewed(conn, funder, f"{publication_id}.tar.gz")
    return _bundle(row["series"], row["sequence"], row["archive"])
