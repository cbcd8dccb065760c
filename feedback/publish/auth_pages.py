"""Logging in and out, and choosing a passphrase from a one-time link."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from feedback.publish.accounts import AccountError, authenticate, link_user, load_staff
from feedback.publish.accounts import use_password_link as spend_link
from feedback.publish.audit import record
from feedback.publish.guard import Context, staff_page
from feedback.publish.render import page
from feedback.publish.sessions import Sessions, same_origin

LOGIN_FAILED = "That email and passphrase do not open an account. Check both and try again."


def _next(request: Request, wanted: str) -> str:
    """Where to go after logging in: a path of the staff app, never another site."""
    home = str(request.url_for("home"))
    root = request.scope.get("root_path", "") + "/"
    if wanted.startswith(root) and not wanted.startswith("//") and "\\" not in wanted:
        return wanted
    return home


async def login(request: Request) -> Response:
    wanted = request.query_params.get("next", "")
    if request.method == "GET":
        return page(request, "login.html", error=None, email="", next=wanted)
    if not same_origin(request, request.state.settings.public_url):
        raise HTTPException(403, "This form has expired: reload the page.")
    form = await request.form()
    email = str(form.get("email") or "").strip().lower()[:254]
    password = str(form.get("password") or "")[:1024]
    wanted = str(form.get("next") or "")
    sessions: Sessions = request.state.sessions
    async with request.state.staff_pool.acquire() as conn:
        user_id = await authenticate(conn, email, password)
        staff = None if user_id is None else await load_staff(conn, user_id)
        if staff is None:
            await record(conn, organisation_id=None, user_id=None, action="login.failed")
            return page(
                request, "login.html", status_code=401, error=LOGIN_FAILED, email=email, next=wanted
            )
        response = RedirectResponse(_next(request, wanted), status_code=303)
        await sessions.start(conn, staff, response)
        await record(conn, organisation_id=staff.organisation_id, user_id=staff.id, action="login")
    return response


@staff_page()
async def logout(ctx: Context) -> Response:
    response = RedirectResponse(ctx.request.url_for("login"), status_code=303)
    await ctx.request.state.sessions.end(ctx.conn, ctx.session, response)
    await ctx.audit("logout")
    return response


async def set_password(request: Request) -> Response:
    token = request.path_params["token"]
    async with request.state.staff_pool.acquire() as conn:
        if request.method == "GET":
            email = await link_user(conn, token)
            if email is None:
                return page(
                    request,
                    "message.html",
                    status_code=404,
                    title="Link not valid",
                    message="This link has been used or has expired: ask an admin for a new one.",
                )
            return page(request, "set_password.html", email=email, error=None)
        if not same_origin(request, request.state.settings.public_url):
            raise HTTPException(403, "This form has expired: reload the page.")
        form = await request.form()
        password = str(form.get("password") or "")[:1024]
        if password != str(form.get("again") or ""):
            email = await link_user(conn, token)
            return page(
                request,
                "set_password.html",
                status_code=400,
                email=email or "",
                error="The two passphrases differ.",
            )
        try:
            user_id = await spend_link(conn, token, password)
        except AccountError as exc:
            email = await link_user(conn, token)
            return page(
                request, "set_password.html", status_code=400, email=email or "", error=str(exc)
            )
        staff = await load_staff(conn, user_id)
        if staff is not None:
            await record(
                conn,
                organisation_id=staff.organisation_id,
                user_id=staff.id,
                action="user.password_set",
            )
    return RedirectResponse(request.url_for("login"), status_code=303)
