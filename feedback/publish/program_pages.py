"""A program's invitations and its "you said, we did" notes (managers and admins)."""

from __future__ import annotations

import uuid

from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from feedback.offload import DRAWING
from feedback.publish.guard import Context, Program, staff_page
from feedback.publish.invitations import (
    MAX_BATCH,
    InvitationError,
    Medium,
    create_batch,
    qr_sheet_svg,
    survey_url,
)
from feedback.publish.render import page
from feedback.stats.periods import Period

MAX_NOTE = 1000


async def _batches(ctx: Context, program: Program) -> list[dict[str, object]]:
    """The program's single-use batches: what was issued and whether it was revoked, never how
    many were used (a batch may hold one link: its use would say that one person answered)."""
    rows = await ctx.conn.fetch(
        """
        SELECT id, medium, issued, created_on, expires_on, revoked_on
          FROM invitation_batches
         WHERE organisation_id = $1 AND program_id = $2 AND kind = 'single'
         ORDER BY created_on DESC, id
        """,
        ctx.staff.organisation_id,
        program.id,
    )
    return [dict(row) for row in rows]


@staff_page("admin", "manager")
async def invitations(ctx: Context) -> Response:
    program = await ctx.program()
    links: list[str] = []
    error = None
    if ctx.request.method == "POST":
        try:
            count = int(ctx.field("count") or "0")
        except ValueError:
            count = 0
        medium: Medium = "sms" if ctx.field("output") == "sms" else "link"
        try:
            batch = await create_batch(
                ctx.conn,
                program_id=program.id,
                count=count,
                medium=medium,
                sms_code_key=ctx.request.state.sms_code_key,
            )
        except InvitationError as exc:
            error = str(exc)
        else:
            await ctx.audit("invitations.batch", program.slug, count=count, batch=str(batch.id))
            base = ctx.request.state.settings.public_url
            links = [
                survey_url(base, token) if medium == "link" else token for token in batch.tokens
            ]
            if ctx.field("output") == "sheet":
                svg = await DRAWING.run(qr_sheet_svg, links, title=program.name)
                return Response(
                    svg,
                    media_type="image/svg+xml",
                    headers={
                        "content-disposition": (
                            f'attachment; filename="{program.slug}-invitations.svg"'
                        ),
                        "cache-control": "no-store",
                    },
                )
    return page(
        ctx.request,
        "invitations.html",
        status_code=400 if error else 200,
        program=program,
        batches=await _batches(ctx, program),
        links=links,
        error=error,
        max_batch=MAX_BATCH,
    )


@staff_page("admin", "manager")
async def revoke_batch(ctx: Context) -> Response:
    program = await ctx.program()
    batch_id = ctx.id_in_path("batch")
    issued = await ctx.conn.fetchval(
        """
        UPDATE invitation_batches SET revoked_on = coalesce(revoked_on, utc_today())
         WHERE organisation_id = $1 AND program_id = $2 AND id = $3 AND kind = 'single'
        RETURNING issued
        """,
        ctx.staff.organisation_id,
        program.id,
        batch_id,
    )
    if issued is None:
        raise HTTPException(404)
    await ctx.audit("invitations.revoke", program.slug, batch=str(batch_id), issued=issued)
    return RedirectResponse(
        ctx.request.url_for("invitations", program=program.slug), status_code=303
    )


@staff_page("admin", "manager")
async def notes(ctx: Context) -> Response:
    program = await ctx.program()
    error = None
    if ctx.request.method == "POST":
        texts = {
            language: ctx.field(f"text_{language}")
            for language in program.languages
            if ctx.field(f"text_{language}")
        }
        release_id = await _release_of(ctx, program, ctx.field("release"))
        if not texts:
            error = "Write the note in at least one language."
        elif any(len(text) > MAX_NOTE for text in texts.values()):
            error = f"A note is at most {MAX_NOTE} characters in each language."
        else:
            async with ctx.conn.transaction():
                note_id = await ctx.conn.fetchval(
                    "INSERT INTO notes (organisation_id, program_id, release_id, author_id) "
                    "VALUES ($1, $2, $3, $4) RETURNING id",
                    ctx.staff.organisation_id,
                    program.id,
                    release_id,
                    ctx.staff.id,
                )
                await ctx.conn.executemany(
                    "INSERT INTO note_texts (note_id, language, body) VALUES ($1, $2, $3)",
                    [(note_id, language, text) for language, text in texts.items()],
                )
            await ctx.audit("note.create", program.slug, note=str(note_id))
            return RedirectResponse(
                ctx.request.url_for("notes", program=program.slug), status_code=303
            )
    written = await ctx.conn.fetch(
        """
        SELECT n.id, n.created_on, n.withdrawn_on, r.granularity, r.period_start,
               (SELECT jsonb_object_agg(t.language, t.body) FROM note_texts t
                 WHERE t.note_id = n.id) AS texts
          FROM notes n LEFT JOIN releases r ON r.id = n.release_id
         WHERE n.organisation_id = $1 AND n.program_id = $2
         ORDER BY n.seq DESC
        """,
        ctx.staff.organisation_id,
        program.id,
    )
    releases = await ctx.conn.fetch(
        "SELECT id, granularity, period_start, breakdown FROM releases "
        "WHERE organisation_id = $1 AND program_id = $2 AND breakdown IS NULL "
        "AND kind = 'questions' "
        "ORDER BY period_start DESC",
        ctx.staff.organisation_id,
        program.id,
    )
    return page(
        ctx.request,
        "notes.html",
        status_code=400 if error else 200,
        program=program,
        notes=written,
        releases=releases,
        period=Period.of,
        error=error,
        max_note=MAX_NOTE,
    )


async def _release_of(ctx: Context, program: Program, raw: str) -> uuid.UUID | None:
    """The release a note answers, if one was chosen: it must be this program's."""
    if not raw:
        return None
    try:
        release_id = uuid.UUID(raw)
    except ValueError:
        raise HTTPException(400, "That release is not valid.") from None
    found: uuid.UUID | None = await ctx.conn.fetchval(
        "SELECT id FROM releases WHERE organisation_id = $1 AND program_id = $2 AND id = $3",
        ctx.staff.organisation_id,
        program.id,
        release_id,
    )
    if found is None:
        raise HTTPException(400, "That release is not one of this program's.")
    return found


@staff_page("admin", "manager")
async def withdraw_note(ctx: Context) -> Response:
    program = await ctx.program()
    note_id = ctx.id_in_path("note")
    withdrawn = await ctx.conn.fetchval(
        "UPDATE notes SET withdrawn_on = coalesce(withdrawn_on, utc_today()) "
        "WHERE organisation_id = $1 AND program_id = $2 AND id = $3 RETURNING id",
        ctx.staff.organisation_id,
        program.id,
        note_id,
    )
    if withdrawn is None:
        raise HTTPException(404)
    await ctx.audit("note.withdraw", program.slug, note=str(note_id))
    return RedirectResponse(ctx.request.url_for("notes", program=program.slug), status_code=303)
