"""Every staff page goes through ``staff_page``: a session is required (else the login page),
a POST needs the session's CSRF token and our own origin, a role may be required, and a
program in the URL must be one the user may see. Anything else is a 404, never a 403, so that
nobody learns which programs exist elsewhere; those 404s are audited."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from feedback.db import Connection
from feedback.publish.accounts import Role, Staff
from feedback.publish.audit import record
from feedback.publish.sessions import Session, Sessions, csrf_ok, same_origin
from feedback.web import connection

MAX_FIELDS = 200  # the users page posts a box per program
Handler = Callable[["Context"], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Program:
    id: uuid.UUID
    slug: str
    name: str
    languages: tuple[str, ...]


async def visible_program(conn: Connection, staff: Staff, slug: str) -> Program | None:
    """The program of that slug in the user's own organisation, if the user may see it."""
    row = await conn.fetchrow(
        "SELECT id, slug, name, languages FROM programs WHERE organisation_id = $1 AND slug = $2",
        staff.organisation_id,
        slug,
    )
    if row is None or not staff.sees(row["id"]):
        return None
    return Program(row["id"], row["slug"], row["name"], tuple(row["languages"]))


@dataclass(frozen=True, slots=True)
class Context:
    request: Request
    conn: Connection
    session: Session
    form: FormData

    def field(self, name: str) -> str:
        """A posted text field, stripped; empty when absent."""
        value = self.form.get(name)
        return value.strip() if isinstance(value, str) else ""

    def fields(self, name: str) -> list[str]:
        return [v for v in self.form.getlist(name) if isinstance(v, str)]

    def id_in_path(self, name: str) -> uuid.UUID:
        """An id in the URL; anything that is not one is a 404, like an id of nothing."""
        try:
            return uuid.UUID(self.request.path_params[name])
        except ValueError:
            raise HTTPException(404) from None

    @property
    def staff(self) -> Staff:
        return self.session.staff

    async def audit(self, action: str, subject: str | None = None, **details: object) -> None:
        await record(
            self.conn,
            organisation_id=self.staff.organisation_id,
            user_id=self.staff.id,
            action=action,
            subject=subject,
            details=details,
        )

    async def program(self) -> Program:
        """The program named in the URL, if this user may see it; else 404 (audited)."""
        program = await visible_program(self.conn, self.staff, self.request.path_params["program"])
        if program is None:
            await self.audit("access.denied", self.request.url.path)
            raise HTTPException(404)
        return program


def _posted_by_us(request: Request, session: Session, form: FormData) -> bool:
    """From our own origin, with the session's CSRF token."""
    return same_origin(request, request.state.settings.public_url) and csrf_ok(
        session, form.get("csrf")
    )


def staff_page(*roles: Role) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a handler; ``roles`` (default: any) may use it, others get a 404 (audited)."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            sessions: Sessions = request.state.sessions
            # The body first (bounded in size and time), and only then a connection: a client
            # that sends its body slowly holds nobody's connection.
            form = FormData()
            if request.method == "POST":
                form = await request.form(max_files=0, max_fields=MAX_FIELDS)
            async with connection(request.state.staff_pool) as conn:
                session = await sessions.load(conn, request)
                if session is None:
                    back = quote(request.url.path)
                    return RedirectResponse(
                        f"{request.url_for('login')}?next={back}", status_code=303
                    )
                request.state.session = session
                if request.method == "POST" and not _posted_by_us(request, session, form):
                    await record(
                        conn,
                        organisation_id=session.staff.organisation_id,
                        user_id=session.staff.id,
                        action="csrf.refused",
                        subject=request.url.path,
                    )
                    raise HTTPException(403, "This form has expired: reload the page.")
                context = Context(request, conn, session, form)
                if roles and session.staff.role not in roles:
                    await context.audit("access.denied", request.url.path)
                    raise HTTPException(404)
                return await handler(context)

        return endpoint

    return wrap
