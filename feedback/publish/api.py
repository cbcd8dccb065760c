"""The JSON API: the same release data as the dashboard, for organisations' own BI tools.
Authenticated by personal access tokens (``Authorization: Bearer ...``), kept hashed and
revocable; documented by the OpenAPI schema served at ``/api/openapi.json``."""

from __future__ import annotations

import functools
import hashlib
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.schemas import SchemaGenerator

from feedback.db import Connection
from feedback.offload import DRAWING
from feedback.publish.accounts import Staff, load_staff
from feedback.publish.audit import record
from feedback.publish.guard import Context, staff_page, visible_program
from feedback.publish.render import page
from feedback.publish.reports import Release, program_releases
from feedback.stats.periods import GRANULARITIES
from feedback.web import connection

TOKEN_PREFIX = "fbk_"  # noqa: S105 - a prefix, so that leaked tokens are recognisable
Api = Callable[[Request, Connection, Staff], Awaitable[Any]]


def _with_interval(**properties: object) -> dict[str, object]:
    """A figure of one group with its 95% interval: the Interval schema and ``properties``."""
    return {
        "allOf": [
            {"$ref": "#/components/schemas/Interval"},
            {"type": "object", "properties": properties},
        ]
    }


NULLABLE_NUMBER = {"type": "number", "nullable": True}
NOTE = (
    "Counts carry noise. Each interval (95%) covers sampling (the respondents taken as a sample "
    "of the people the program serves) and the noise, not who chose to answer (non-response). "
    "A share or mean the noise took beyond the end of its scale is held at the end, which "
    "biases it toward the middle; the interval is computed before. half_width_95 is one "
    "noisy cell's, for the noise only."
)
RELEASE_FIELDS = {
    "epsilon": {"type": "string", "example": "1.0"},
    "mechanism": {"type": "string", "enum": ["discrete_laplace"]},
    "noise_scale": {"type": "string"},
    "threshold": {"type": "integer"},
    "half_width_95": {
        "type": "integer",
        "description": "How far the noise moves one cell, 95% of the time (the noise only).",
    },
    "note": {"type": "string", "description": "What the intervals cover."},
    "groups": {
        "type": "array",
        "description": "Each group's noisy cells; \"S\" marks a suppressed group's.",
        "items": {"type": "object"},
    },
    "shares": {
        "type": "array",
        "items": _with_interval(question={"type": "string"}, share=NULLABLE_NUMBER),
    },
    "indices": {
        "type": "array",
        "items": _with_interval(index={"type": "string"}, mean=NULLABLE_NUMBER),
    },
    "metadata": {"type": "object"},
}
SCHEMAS = SchemaGenerator(
    {
        "openapi": "3.0.3",
        "info": {"title": "Feedback releases API", "version": "1"},
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "ReleaseSummary": {
                    "type": "object",
                    "required": ["id", "kind", "period", "granularity", "survey"],
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "kind": {"type": "string", "enum": ["questions", "indices"]},
                        "period": {"type": "string", "example": "2026-Q3"},
                        "granularity": {"type": "string", "enum": list(GRANULARITIES)},
                        "breakdown": {"type": "string", "nullable": True},
                        "survey": {"type": "string"},
                        "survey_version": {"type": "integer"},
                    },
                },
                "Interval": {
                    "type": "object",
                    "description": "A figure with its 95% interval, which covers sampling "
                    "(the respondents taken as a sample of the people the program serves) and "
                    "the noise, not who chose to answer; all null when the group is "
                    "suppressed or nobody answered. A share or mean the noise took beyond the "
                    "end of its scale is held at the end (biased toward the middle); the "
                    "interval is computed before.",
                    "properties": {
                        "group": {"type": "string"},
                        "low": NULLABLE_NUMBER,
                        "high": NULLABLE_NUMBER,
                        "suppressed": {"type": "boolean"},
                    },
                },
                "Release": {
                    "allOf": [
                        {"$ref": "#/components/schemas/ReleaseSummary"},
                        {"type": "object", "properties": RELEASE_FIELDS},
                    ]
                },
            },
        },
        "security": [{"token": []}],
    }
)


def hash_api_token(token: str) -> bytes:
    return hashlib.sha256(b"feedback.api-token.v1\0" + token.encode()).digest()


def _error(status: int, message: str) -> JSONResponse:
    headers = {"www-authenticate": "Bearer"} if status == 401 else {}
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def api(handler: Api) -> Callable[[Request], Awaitable[Response]]:
    """Token required; answers JSON; a program the token's user may not see is a 404."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX):
            return _error(401, "send a personal access token: Authorization: Bearer fbk_...")
        async with connection(request.state.staff_pool) as conn:
            user_id = await conn.fetchval(
                "SELECT user_id FROM api_tokens WHERE token_hash = $1 AND revoked_on IS NULL",
                hash_api_token(token.strip()),
            )
            staff = None if user_id is None else await load_staff(conn, user_id)
            if staff is None:
                return _error(401, "this token is not valid or has been revoked")
            try:
                return JSONResponse(await handler(request, conn, staff))
            except HTTPException as exc:
                if exc.status_code == 404:
                    await record(
                        conn,
                        organisation_id=staff.organisation_id,
                        user_id=staff.id,
                        action="access.denied",
                        subject=request.url.path,
                    )
                return _error(
                    exc.status_code, exc.detail if exc.status_code != 404 else "not found"
                )

    return endpoint


async def _program_id(conn: Connection, staff: Staff, slug: str) -> uuid.UUID:
    program = await visible_program(conn, staff, slug)
    if program is None:
        raise HTTPException(404)
    return program.id


@api
async def programs(request: Request, conn: Connection, staff: Staff) -> Any:
    """
    summary: The programs this token may read.
    responses:
      200:
        description: A list of programs.
        content:
          application/json:
            schema:
              type: array
              items:
                type: object
                properties:
                  slug: {type: string}
                  name: {type: string}
      401:
        description: No valid token.
    """
    rows = await conn.fetch(
        "SELECT id, slug, name FROM programs WHERE organisation_id = $1 ORDER BY slug",
        staff.organisation_id,
    )
    return [{"slug": r["slug"], "name": r["name"]} for r in rows if staff.sees(r["id"])]


def _summary(release: Release) -> dict[str, Any]:
    return {
        "id": str(release.id),
        "kind": release.kind,
        "period": str(release.period),
        "granularity": release.period.granularity,
        "breakdown": release.breakdown,
        "survey": release.survey.slug,
        "survey_version": release.survey.version,
    }


@api
async def releases(request: Request, conn: Connection, staff: Staff) -> Any:
    """
    summary: A program's releases, oldest period first.
    parameters:
      - {name: program, in: path, required: true, schema: {type: string}}
    responses:
      200:
        description: A list of releases.
        content:
          application/json:
            schema:
              type: array
              items: {$ref: "#/components/schemas/ReleaseSummary"}
      401:
        description: No valid token.
      404:
        description: No such program for this token.
    """
    program_id = await _program_id(conn, staff, request.path_params["program"])
    return [_summary(r) for r in await program_releases(conn, staff.organisation_id, program_id)]


def _indices(found: Release) -> list[dict[str, Any]]:
    """Each index of an indices release per group, with its 95% interval."""
    return [
        {
            "index": value.index,
            "group": value.group,
            "mean": value.value,
            "low": value.low,
            "high": value.high,
            "suppressed": value.suppressed,
        }
        for group in (g["group"] for g in found.groups)
        for value in (found.index(index, group) for index in found.indices)
    ]


@api
async def release(request: Request, conn: Connection, staff: Staff) -> Any:
    """
    summary: One release, its noisy cells ("S" marks a suppressed group) and its shares, or
      (an indices release) each index's mean on 0 to 100 per group with its 95% interval.
    parameters:
      - {name: program, in: path, required: true, schema: {type: string}}
      - {name: release, in: path, required: true, schema: {type: string, format: uuid}}
    responses:
      200:
        description: The release.
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Release"}
      401:
        description: No valid token.
      404:
        description: No such program or release for this token.
    """
    program_id = await _program_id(conn, staff, request.path_params["program"])
    try:
        wanted = uuid.UUID(request.path_params["release"])
    except ValueError:
        raise HTTPException(404) from None
    found = next(
        (
            r
            for r in await program_releases(conn, staff.organisation_id, program_id)
            if r.id == wanted
        ),
        None,
    )
    if found is None:
        raise HTTPException(404)
    await record(
        conn,
        organisation_id=staff.organisation_id,
        user_id=staff.id,
        action="release.export",
        subject=request.path_params["program"],
        details={"release": str(found.id), "via": "api"},
    )
    shares = []
    for question in found.questions:
        if question.type not in ("likert5", "yes_no"):
            continue
        for group in [None, *(g["group"] for g in found.groups if found.breakdown)]:
            share = found.share(question.id, group)
            shares.append(
                {
                    "question": question.id,
                    "group": group or "all",
                    "share": share.value,
                    "low": share.low,
                    "high": share.high,
                    "suppressed": share.suppressed,
                }
            )
    indices = await DRAWING.run(_indices, found)  # exact intervals: not on the event loop
    return {
        **_summary(found),
        "epsilon": str(found.epsilon),
        "mechanism": "discrete_laplace",
        "noise_scale": str(found.noise_scale),
        "threshold": found.threshold,
        "half_width_95": found.half_width,
        "note": NOTE,
        "groups": found.groups,
        "shares": shares,
        "indices": indices,
        "metadata": found.metadata,
    }


async def openapi(request: Request) -> Response:
    """The schema of the /api/v1 routes (only their docstrings are OpenAPI), with the prefix
    the staff app is mounted at as its server (the paths are the app's own)."""
    routes = [r for r in request.app.routes if getattr(r, "path", "").startswith("/api/v1/")]
    schema = SCHEMAS.get_schema(routes=routes)
    schema["servers"] = [{"url": request.scope.get("root_path") or "/"}]
    return JSONResponse(schema)


@staff_page()
async def tokens(ctx: Context) -> Response:
    made = None
    if ctx.request.method == "POST":
        name = ctx.field("name")[:100] or "API token"
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        await ctx.conn.execute(
            "INSERT INTO api_tokens (organisation_id, user_id, name, token_hash) "
            "VALUES ($1, $2, $3, $4)",
            ctx.staff.organisation_id,
            ctx.staff.id,
            name,
            hash_api_token(token),
        )
        await ctx.audit("api_token.create", name)
        made = token
    rows = await ctx.conn.fetch(
        "SELECT id, name, created_on, revoked_on FROM api_tokens WHERE user_id = $1 "
        "ORDER BY created_on DESC, name",
        ctx.staff.id,
    )
    return page(ctx.request, "tokens.html", tokens=rows, made=made)


@staff_page()
async def revoke_token(ctx: Context) -> Response:
    token_id = ctx.id_in_path("token")
    revoked = await ctx.conn.fetchval(
        "UPDATE api_tokens SET revoked_on = coalesce(revoked_on, utc_today()) "
        "WHERE id = $1 AND user_id = $2 RETURNING name",
        token_id,
        ctx.staff.id,
    )
    if revoked is None:
        raise HTTPException(404)
    await ctx.audit("api_token.revoke", revoked)
    return RedirectResponse(ctx.request.url_for("tokens"), status_code=303)
