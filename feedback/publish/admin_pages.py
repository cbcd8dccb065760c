"""Admin pages: users (invite with a one-time link, change their role and programs, disable,
enable again) and the audit log (filtered, and as CSV). The budget and the release plan are
in feedback.publish.plan_pages; the organisation's settings, programs and keys in
feedback.publish.settings_pages."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from feedback.db import Record
from feedback.publish.accounts import (
    ROLES,
    AccountError,
    change_access,
    create_user,
    disable_user,
    enable_user,
    make_password_link,
    unlock,
    waiting,
)
from feedback.publish.guard import Context, staff_page
from feedback.publish.render import page


@staff_page("admin")
async def users(ctx: Context) -> Response:
    link = error = None
    if ctx.request.method == "POST":
        programs = {row["id"] for row in await _programs(ctx)}
        chosen = list(dict.fromkeys(uuid.UUID(p) for p in ctx.fields("program") if _is_uuid(p)))
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
        SELECT u.id, u.email, u.display_name, u.role, u.disabled_on,
               u.password_hash IS NOT NULL AS active,
               u.next_try,
               array_remove(array_agg(p.name ORDER BY p.name), NULL) AS programs,
               array_remove(array_agg(p.id), NULL) AS program_ids
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
        users=[
            {**row, "waiting": waiting(ctx.request.state.login_waits, row["next_try"])}
            for row in rows
        ],
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
        "SELECT email FROM users WHERE organisation_id = $1 AND id = $2 AND disabled_on IS NULL",
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
async def enable(ctx: Context) -> Response:
    try:
        email = await enable_user(
            ctx.conn, organisation_id=ctx.staff.organisation_id, user_id=ctx.id_in_path("user")
        )
    except AccountError:
        raise HTTPException(404) from None
    await ctx.audit("user.enable", email)
    return await _users_page(ctx, notice=f"{email} can log in again with their passphrase.")


@staff_page("admin")
async def access(ctx: Context) -> Response:
    """Change an account's role and the programs it sees."""
    user_id = ctx.id_in_path("user")
    if user_id == ctx.staff.id:
        raise HTTPException(400, "You cannot change your own role: ask another admin.")
    programs = {row["id"] for row in await _programs(ctx)}
    chosen = list(dict.fromkeys(uuid.UUID(p) for p in ctx.fields("program") if _is_uuid(p)))
    role = ctx.field("role")
    try:
        if not set(chosen) <= programs:
            raise AccountError("choose programs of this organisation")
        email = await change_access(
            ctx.conn,
            organisation_id=ctx.staff.organisation_id,
            user_id=user_id,
            role=role,
            programs=chosen,
        )
    except AccountError as exc:
        return await _users_page(ctx, error=str(exc))
    await ctx.audit("user.access", email, role=role, programs=len(chosen))
    return await _users_page(ctx, notice=f"{email} is now {role}.")


@staff_page("admin")
async def audit(ctx: Context) -> Response:
    failures = await ctx.conn.fetch(
        """
        SELECT f.day, u.email, f.attempts
          FROM login_failures f JOIN users u ON u.id = f.user_id
         WHERE f.organisation_id = $1
         ORDER BY f.day DESC, u.email LIMIT 200
        """,
        ctx.staff.organisation_id,
    )
    chosen = _audit_filter(ctx)
    rows = await _audit_entries(ctx, chosen, limit=SHOWN)
    actions = await ctx.conn.fetch(
        "SELECT DISTINCT action FROM audit_log WHERE organisation_id = $1 ORDER BY action",
        ctx.staff.organisation_id,
    )
    return page(
        ctx.request,
        "audit.html",
        entries=rows,
        failures=failures,
        chosen=chosen,
        actions=[row["action"] for row in actions],
        query=urlencode({k: v for k, v in chosen.items() if v}),
        shown=SHOWN,
    )


SHOWN = 500  # entries on the page; the CSV has every entry the filter finds


def _audit_filter(ctx: Context) -> dict[str, str]:
    """who (part of an email), what (an action), since and until (dates, inclusive)."""
    params = ctx.request.query_params
    chosen = {name: params.get(name, "").strip() for name in ("who", "what", "since", "until")}
    for name in ("since", "until"):
        if chosen[name]:
            try:
                dt.date.fromisoformat(chosen[name])
            except ValueError:
                raise HTTPException(400, f"{name} is a date: YYYY-MM-DD") from None
    if len(chosen["who"]) > 200 or len(chosen["what"]) > 100:
        raise HTTPException(400, "who and what are short texts")
    return chosen


async def _audit_entries(
    ctx: Context, chosen: dict[str, str], *, limit: int | None
) -> list[Record]:
    return await ctx.conn.fetch(
        """
        SELECT a.created_on, u.email, a.action, a.subject, a.details
          FROM audit_log a LEFT JOIN users u ON u.id = a.user_id
         WHERE a.organisation_id = $1
           AND ($2 = '' OR strpos(u.email, lower($2)) > 0)
           AND ($3 = '' OR a.action = $3)
           AND ($4 = '' OR a.created_on >= $4::date)
           AND ($5 = '' OR a.created_on <= $5::date)
         ORDER BY a.id DESC
         LIMIT $6
        """,
        ctx.staff.organisation_id,
        chosen["who"],
        chosen["what"],
        chosen["since"],
        chosen["until"],
        limit,
    )


@staff_page("admin")
async def audit_csv(ctx: Context) -> Response:
    chosen = _audit_filter(ctx)
    rows = await _audit_entries(ctx, chosen, limit=None)
    await ctx.audit("audit.export", None, **{k: v for k, v in chosen.items() if v})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("day_utc", "who", "what", "on", "details"))
    for row in rows:
        writer.writerow(
            (
                row["created_on"].isoformat(),
                _cell(row["email"] or ""),
                row["action"],
                _cell(row["subject"] or ""),
                _cell(json.dumps(row["details"], sort_keys=True) if row["details"] else ""),
            )
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit-log.csv"'},
    )


def _cell(text: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
