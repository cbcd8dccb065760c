"""Admin pages: users (invite with a one-time link, disable) and the audit log. The budget and
the release plan are in feedback.publish.plan_pages."""

from __future__ import annotations

import uuid

from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from feedback.db import Record
from feedback.publish.accounts import (
    ROLES,
    AccountError,
    create_user,
    disable_user,
    make_password_link,
    unlock,
)
from feedback.publish.guard import Context, staff_page
from feedback.publish.render import page


@staff_page("admin")
async def users(ctx: Context) -> Response:
    link = error = None
    if ctx.request.method == "POST":
        programs = {row["id"] for row in await _programs(ctx)}
        chosen = [uuid.UUID(p) for p in ctx.fields("program") if _is_uuid(p)]
        try:
            if not set(chosen) <= programs:
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
    return await _users_page(ctx, link=link, error=error)


async def _programs(ctx: Context) -> list[Record]:
    return await ctx.conn.fetch(
        "SELECT id, slug, name FROM programs WHERE organisation_id = $1 ORDER BY name",
        ctx.staff.organisation_id,
    )


async def _users_page(
    ctx: Context,
    *,
    link: str | None = None,
    link_for: str | None = None,
    error: str | None = None,
    notice: str | None = None,
) -> Response:
    rows = await ctx.conn.fetch(
        """
        SELECT u.id, u.email, u.display_name, u.role, u.disabled_at,
               u.password_hash IS NOT NULL AS active,
               coalesce(u.next_try_at > now(), false) AS waiting,
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
        programs=await _programs(ctx),
        roles=ROLES,
        link=link,
        link_for=link_for,
        error=error,
        notice=notice,
    )


@staff_page("admin")
async def reset(ctx: Context) -> Response:
    """A one-time link with which an existing user chooses a new passphrase (shown once)."""
    user_id = ctx.id_in_path("user")
    email = await ctx.conn.fetchval(
        "SELECT email FROM users WHERE organisation_id = $1 AND id = $2 AND disabled_at IS NULL",
        ctx.staff.organisation_id,
        user_id,
    )
    if email is None:
        raise HTTPException(404)
    token = await make_password_link(
        ctx.conn, organisation_id=ctx.staff.organisation_id, user_id=user_id
    )
    await ctx.audit("user.reset_link", email)
    link = str(ctx.request.url_for("set_password", token=token))
    return await _users_page(ctx, link=link, link_for=email)


@staff_page("admin")
async def unlock_user(ctx: Context) -> Response:
    """Let an account that failed logins be tried again at once."""
    try:
        email = await unlock(
            ctx.conn, organisation_id=ctx.staff.organisation_id, user_id=ctx.id_in_path("user")
        )
    except AccountError:
        raise HTTPException(404) from None
    await ctx.audit("user.unlock", email)
    return await _users_page(ctx, notice=f"{email} can log in again now.")


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
    failures = await ctx.conn.fetch(
        """
        SELECT f.hour, u.email, f.attempts
          FROM login_failures f JOIN users u ON u.id = f.user_id
         WHERE f.organisation_id = $1
         ORDER BY f.hour DESC, u.email LIMIT 200
        """,
        ctx.staff.organisation_id,
    )
    rows = await ctx.conn.fetch(
        """
        SELECT a.created_at, u.email, a.action, a.subject, a.details
          FROM audit_log a LEFT JOIN users u ON u.id = a.user_id
         WHERE a.organisation_id = $1
         ORDER BY a.id DESC LIMIT 500
        """,
        ctx.staff.organisation_id,
    )
    return page(ctx.request, "audit.html", entries=rows, failures=failures)
