"""Logging in and out, and choosing a passphrase from a one-time link."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from feedback.offload import KNOWN_DEVICES, PASSWORDS, STRENGTH, Busy
from feedback.passwords import hash_password
from feedback.publish.accounts import (
    AccountError,
    check,
    check_new_password,
    claim,
    known_device,
    link_user,
    load_staff,
    release,
    remember_device,
    settle,
)
from feedback.publish.accounts import use_password_link as spend_link
from feedback.publish.audit import record
from feedback.publish.guard import Context, staff_page
from feedback.publish.render import page
from feedback.publish.sessions import Sessions, same_origin
from feedback.web import client_address, connection, warn_if_proxied_untrusted

LOGIN_FAILED = (
    "That email and passphrase do not open an account. Check both and try again; after a few "
    "tries, wait a minute between them."
)
TOO_MANY = "Too many logins were tried from here just now. Please wait a few minutes."


def _next(request: Request, wanted: str) -> str:
    """Where to go after logging in: a path of the staff app, never another site."""
    home = str(request.url_for("home"))
    root = request.scope.get("root_path", "") + "/"
    if wanted.startswith(root) and not wanted.startswith("//") and "\\" not in wanted:
        return wanted
    return home


def _email(form: FormData) -> str:
    """The address typed, as accounts store it; one with control characters names none."""
    email = str(form.get("email") or "").strip().lower()[:254]
    return "" if any(c < " " or c == "\x7f" for c in email) else email


async def login(request: Request) -> Response:
    """Read the form, claim the account's next check, check the passphrase holding no
    connection (argon2id in its bounded lane), then record the outcome. A browser that
    logged into the account before (its known-device cookie) is limited on its own and
    checked in a lane of its own: floods and guessers from elsewhere do not keep it out."""
    wanted = request.query_params.get("next", "")
    if request.method == "GET":
        return page(request, "login.html", error=None, email="", next=wanted)
    if not same_origin(request, request.state.settings.public_url):
        raise HTTPException(403, "This form has expired: reload the page.")
    warn_if_proxied_untrusted(request)
    form = await request.form(max_files=0, max_fields=8)
    email = _email(form)
    password = str(form.get("password") or "")[:1024]
    wanted = str(form.get("next") or "")
    sessions: Sessions = request.state.sessions
    pool = request.state.staff_pool
    device = sessions.device(request, email) if email else None
    if device is not None:  # signed for this account once; is it still one of its devices?
        async with connection(pool) as conn:
            device = device if await known_device(conn, email, device) else None
    # Before counting or claiming anything: a refused check must cost the owner nothing.
    (KNOWN_DEVICES if device else PASSWORDS).refuse_if_full()
    # Known devices are limited per account, so that no one account's devices can fill
    # their lane; everyone else per client address.
    client = ("known device of", email) if device else (client_address(request),)
    if not request.state.login_limiter.allow(*client):
        return page(
            request, "login.html", status_code=429, error=TOO_MANY, email=email, next=wanted
        )
    async with connection(pool) as conn:
        candidate = await claim(conn, request.state.login_waits, email, device)
    try:
        right = await check(candidate, password)
    except Busy:
        async with connection(pool) as conn:
            await release(conn, candidate)
        raise
    async with connection(pool) as conn:
        await settle(conn, request.state.login_waits, candidate, right=right)
        staff = await load_staff(conn, candidate.user_id) if right and candidate.user_id else None
        if staff is None:
            return page(
                request, "login.html", status_code=401, error=LOGIN_FAILED, email=email, next=wanted
            )
        response = RedirectResponse(_next(request, wanted), status_code=303)
        await sessions.start(conn, staff, response)
        await remember_device(conn, candidate, sessions.know_device(response, email))
        await record(conn, organisation_id=staff.organisation_id, user_id=staff.id, action="login")
    return response


@staff_page()
async def logout(ctx: Context) -> Response:
    response = RedirectResponse(ctx.request.url_for("login"), status_code=303)
    await ctx.request.state.sessions.end(ctx.conn, ctx.session, response)
    await ctx.audit("logout")
    return response


LINK_NOT_VALID = "This link has been used or has expired: ask an admin for a new one."


async def set_password(request: Request) -> Response:
    """Choose a passphrase from a one-time link. The link is checked before anything costly;
    the passphrase's strength (zxcvbn) and its hash (argon2id) are worked out in their bounded
    lanes, holding no connection."""
    token = request.path_params["token"]
    form = FormData()
    if request.method == "POST":
        if not same_origin(request, request.state.settings.public_url):
            raise HTTPException(403, "This form has expired: reload the page.")
        form = await request.form(max_files=0, max_fields=8)
        STRENGTH.refuse_if_full()
    pool = request.state.staff_pool
    async with connection(pool) as conn:
        email = await link_user(conn, token)
    if email is None:
        return page(
            request, "message.html", status_code=404, title="Link not valid", message=LINK_NOT_VALID
        )
    if request.method == "GET":
        return page(request, "set_password.html", email=email, error=None)
    password = str(form.get("password") or "")[:1024]
    try:
        if password != str(form.get("again") or ""):
            raise AccountError("The two passphrases differ.")
        await check_new_password(password)
        password_hash = await hash_password(password)
        async with connection(pool) as conn:
            user_id = await spend_link(conn, token, password_hash)
            staff = await load_staff(conn, user_id)
            if staff is not None:
                await record(
                    conn,
                    organisation_id=staff.organisation_id,
                    user_id=staff.id,
                    action="user.password_set",
                )
    except AccountError as exc:
        return page(request, "set_password.html", status_code=400, email=email, error=str(exc))
    return RedirectResponse(request.url_for("login"), status_code=303)
