"""Admin pages for the organisation itself: its settings, its programs, and its keys (read
only: keys are made and rotated by the key holder with `feedback keys`, never here)."""

from __future__ import annotations

from starlette.responses import RedirectResponse, Response

from feedback.organisations import (
    SetupError,
    change_organisation,
    create_program,
    rename_program,
)
from feedback.publish.guard import Context, staff_page
from feedback.publish.render import page

# The form's fields, as feedback.organisations names the settings.
TEXT_SETTINGS = ("name", "sms_name", "sms_help", "sms_number")


SELECT_SETTINGS = (
    "SELECT name, sms_name, sms_help_text, sms_number, comments_enabled, epsilon_per_year "
    "FROM organisations WHERE id = $1"
)


@staff_page("admin")
async def organisation(ctx: Context) -> Response:
    error = notice = None
    settings = await ctx.conn.fetchrow(SELECT_SETTINGS, ctx.staff.organisation_id)
    if ctx.request.method == "POST":
        changes: dict[str, str | bool] = {key: ctx.field(key) for key in TEXT_SETTINGS}
        changes["comments"] = ctx.field("comments") == "on"
        try:
            async with ctx.conn.transaction():
                await change_organisation(ctx.conn, ctx.staff.organisation_id, changes)
                after = await ctx.conn.fetchrow(SELECT_SETTINGS, ctx.staff.organisation_id)
                before = dict(settings) if settings is not None else {}
                changed = {k: v for k, v in dict(after or {}).items() if before.get(k) != v}
                await ctx.audit("organisation.set", ",".join(sorted(changed)), **changed)
        except SetupError as exc:
            error = str(exc)
        else:
            settings, notice = after, "Saved."
    return page(
        ctx.request,
        "organisation.html",
        status_code=400 if error else 200,
        settings=settings,
        error=error,
        notice=notice,
    )


@staff_page("admin")
async def programs(ctx: Context) -> Response:
    error = None
    if ctx.request.method == "POST":
        try:
            async with ctx.conn.transaction():
                slug = ctx.field("slug")
                await create_program(ctx.conn, ctx.staff.organisation_id, slug, ctx.field("name"))
                await ctx.audit("program.create", slug)
        except SetupError as exc:
            error = str(exc)
        else:
            return RedirectResponse(ctx.request.url_for("programs"), status_code=303)
    return await _programs_page(ctx, error)


@staff_page("admin")
async def rename(ctx: Context) -> Response:
    slug = (await ctx.program()).slug  # a program of another organisation: 404, audited
    try:
        async with ctx.conn.transaction():
            await rename_program(ctx.conn, ctx.staff.organisation_id, slug, ctx.field("name"))
            await ctx.audit("program.rename", slug)
    except SetupError as exc:
        return await _programs_page(ctx, str(exc))
    return RedirectResponse(ctx.request.url_for("programs"), status_code=303)


async def _programs_page(ctx: Context, error: str | None) -> Response:
    rows = await ctx.conn.fetch(
        "SELECT slug, name, created_on FROM programs WHERE organisation_id = $1 ORDER BY name",
        ctx.staff.organisation_id,
    )
    return page(
        ctx.request, "programs.html", status_code=400 if error else 200, rows=rows, error=error
    )


@staff_page("admin")
async def keys(ctx: Context) -> Response:
    """Which keys exist: ids and dates only (the staff role can read no more of them)."""
    found = {
        kind: await ctx.conn.fetch(
            f"SELECT id, created_week, retired_week FROM {table} "  # table: one of two names
            "WHERE organisation_id = $1 ORDER BY created_week DESC, retired_week DESC NULLS FIRST",
            ctx.staff.organisation_id,
        )
        for kind, table in (("collection", "collection_keys"), ("signing", "signing_keys"))
    }
    return page(ctx.request, "keys.html", found=found)
