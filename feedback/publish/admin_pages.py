"""Admin pages: users (invite with a one-time link, disable), the audit log, and the year's
privacy budget with the release plan's accuracy preview."""

from __future__ import annotations

import datetime as dt
import uuid

from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from feedback.budget import year_budget
from feedback.plans import plan_of
from feedback.publish.accounts import (
    ROLES,
    AccountError,
    create_user,
    disable_user,
    make_password_link,
)
from feedback.publish.guard import Context, staff_page
from feedback.publish.render import page
from feedback.shares import preview


@staff_page("admin")
async def users(ctx: Context) -> Response:
    programs = await ctx.conn.fetch(
        "SELECT id, slug, name FROM programs WHERE organisation_id = $1 ORDER BY name",
        ctx.staff.organisation_id,
    )
    link = error = None
    if ctx.request.method == "POST":
        chosen = [uuid.UUID(p) for p in ctx.fields("program") if _is_uuid(p)]
        known = {row["id"] for row in programs}
        try:
            if not set(chosen) <= known:
                raise AccountError("choose programs of this organisation")
            role = ctx.field("role")
            user_id = await create_user(
                ctx.conn,
                organisation_id=ctx.staff.organisation_id,
                email=ctx.field("email"),
                role=role,  # type: ignore[arg-type]  # checked by create_user
                display_name=ctx.field("name") or None,
                programs=chosen,
            )
        except AccountError as exc:
            error = str(exc)
        else:
            token = await make_password_link(
                ctx.conn, organisation_id=ctx.staff.organisation_id, user_id=user_id
            )
            link = str(ctx.request.url_for("set_password", token=token))
            await ctx.audit("user.create", ctx.field("email").lower(), role=role)
    rows = await ctx.conn.fetch(
        """
        SELECT u.id, u.email, u.display_name, u.role, u.disabled_at,
               u.password_hash IS NOT NULL AS active,
               array_remove(array_agg(p.name ORDER BY p.name), NULL) AS programs
          FROM users u
          LEFT JOIN user_programs up ON up.user_id = u.id
          LEFT JOIN programs p ON p.id = up.program_id
         WHERE u.organisation_id = $1
         GROUP BY u.id ORDER BY u.email
        """,
        ctx.staff.organisation_id,
    )
    return page(
        ctx.request,
        "users.html",
        status_code=400 if error else 200,
        users=rows,
        programs=programs,
        roles=ROLES,
        link=link,
        error=error,
    )


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


@staff_page("admin")
async def disable(ctx: Context) -> Response:
    user_id = ctx.id_in_path("user")
    if user_id == ctx.staff.id:
        raise HTTPException(400, "You cannot disable your own account.")
    try:
        email = await disable_user(
            ctx.conn, organisation_id=ctx.staff.organisation_id, user_id=user_id
        )
    except AccountError:
        raise HTTPException(404) from None
    await ctx.audit("user.disable", email)
    return RedirectResponse(ctx.request.url_for("users"), status_code=303)


@staff_page("admin")
async def audit(ctx: Context) -> Response:
    rows = await ctx.conn.fetch(
        """
        SELECT a.created_at, u.email, a.action, a.subject, a.details
          FROM audit_log a LEFT JOIN users u ON u.id = a.user_id
         WHERE a.organisation_id = $1
         ORDER BY a.id DESC LIMIT 500
        """,
        ctx.staff.organisation_id,
    )
    return page(ctx.request, "audit.html", entries=rows)


@staff_page("admin")
async def budget(ctx: Context) -> Response:
    try:
        year = int(ctx.request.query_params.get("year") or dt.datetime.now(dt.UTC).year)
        n = int(ctx.request.query_params.get("n") or 40)
    except ValueError:
        raise HTTPException(400, "year and n are whole numbers") from None
    if not (2000 <= year <= 2200 and 1 <= n <= 100_000):
        raise HTTPException(400, "year is 2000 to 2200, and n 1 to 100000")
    threshold = await ctx.conn.fetchval(
        "SELECT release_threshold FROM organisations WHERE id = $1", ctx.staff.organisation_id
    )
    lines = await plan_of(ctx.conn, ctx.staff.organisation_id, year)
    previews = [(line, preview(line.layout, float(line.epsilon), n, threshold)) for line in lines]
    return page(
        ctx.request,
        "budget.html",
        year=year,
        n=n,
        budget=await year_budget(ctx.conn, ctx.staff.organisation_id, year),
        previews=previews,
        threshold=threshold,
    )
