"""The staff application: what managers, admins and funders use."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from feedback import web
from feedback.config import Settings
from feedback.db import STAFF, Pool
from feedback.limits import RateLimiter
from feedback.offload import Busy
from feedback.publish import (
    admin_pages,
    api,
    auth_pages,
    charts,
    dashboard,
    plan_pages,
    program_pages,
    publication_pages,
    settings_pages,
)
from feedback.publish.accounts import login_waits
from feedback.publish.render import STATIC, page
from feedback.publish.sessions import Sessions

STAFF_PREFIX = "/staff"
TITLES = {400: "Not valid", 403: "Not allowed", 404: "Not found", 405: "Not allowed"}


def routes() -> list[Route | Mount]:
    return [
        Route("/healthz", web.healthz("staff_pool"), name="staff_healthz"),
        Route("/login", auth_pages.login, methods=["GET", "POST"], name="login"),
        Route("/logout", auth_pages.logout, methods=["POST"], name="logout"),
        Route(
            "/set-password/{token}",
            auth_pages.set_password,
            methods=["GET", "POST"],
            name="set_password",
        ),
        Route("/", dashboard.home, name="home"),
        Route("/p/{program}/", dashboard.program_page, name="program"),
        Route("/p/{program}/{chart}.csv", dashboard.chart_csv, name="chart_csv"),
        Route(
            "/p/{program}/invitations",
            program_pages.invitations,
            methods=["GET", "POST"],
            name="invitations",
        ),
        Route(
            "/p/{program}/invitations/{batch}/revoke",
            program_pages.revoke_batch,
            methods=["POST"],
            name="revoke_batch",
        ),
        Route("/p/{program}/notes", program_pages.notes, methods=["GET", "POST"], name="notes"),
        Route(
            "/p/{program}/notes/{note}/withdraw",
            program_pages.withdraw_note,
            methods=["POST"],
            name="withdraw_note",
        ),
        Route("/admin/users", admin_pages.users, methods=["GET", "POST"], name="users"),
        Route(
            "/admin/users/{user}/disable",
            admin_pages.disable,
            methods=["POST"],
            name="disable_user",
        ),
        Route("/admin/users/{user}/reset", admin_pages.reset, methods=["POST"], name="reset_user"),
        Route(
            "/admin/users/{user}/unlock",
            admin_pages.unlock_user,
            methods=["POST"],
            name="unlock_user",
        ),
        Route("/admin/audit", admin_pages.audit, name="audit"),
        Route("/admin/audit.csv", admin_pages.audit_csv, name="audit_csv"),
        Route(
            "/admin/users/{user}/enable",
            admin_pages.enable,
            methods=["POST"],
            name="enable_user",
        ),
        Route(
            "/admin/users/{user}/access",
            admin_pages.access,
            methods=["POST"],
            name="user_access",
        ),
        Route(
            "/admin/organisation",
            settings_pages.organisation,
            methods=["GET", "POST"],
            name="organisation",
        ),
        Route("/admin/programs", settings_pages.programs, methods=["GET", "POST"], name="programs"),
        Route(
            "/admin/programs/{program}/rename",
            settings_pages.rename,
            methods=["POST"],
            name="rename_program",
        ),
        Route("/admin/keys", settings_pages.keys, name="keys"),
        Route("/admin/budget", plan_pages.budget, name="budget"),
        Route("/admin/budget/advise", plan_pages.advise, methods=["POST"], name="plan_advise"),
        Route("/admin/budget/lines", plan_pages.add, methods=["POST"], name="plan_add"),
        Route(
            "/admin/budget/lines/{line}/remove",
            plan_pages.remove,
            methods=["POST"],
            name="plan_remove",
        ),
        Route(
            "/admin/publications",
            publication_pages.publications,
            methods=["GET", "POST"],
            name="publications",
        ),
        Route(
            "/admin/publications/{publication}.tar.gz",
            publication_pages.publication_bundle,
            name="publication_bundle",
        ),
        Route("/admin/funders", publication_pages.funders, methods=["GET", "POST"], name="funders"),
        Route(
            "/admin/funders/{funder}/revoke",
            publication_pages.revoke,
            methods=["POST"],
            name="revoke_funder",
        ),
        Route("/funder/{token}/", publication_pages.funder_archive, name="funder_archive"),
        Route(
            "/funder/{token}/{publication}.tar.gz",
            publication_pages.funder_bundle,
            name="funder_bundle",
        ),
        Route(
            "/funder/{token}/{publication}/{path:path}",
            publication_pages.funder_file,
            name="funder_file",
        ),
        Route("/tokens", api.tokens, methods=["GET", "POST"], name="tokens"),
        Route("/tokens/{token}/revoke", api.revoke_token, methods=["POST"], name="revoke_token"),
        Route("/api/openapi.json", api.openapi, name="openapi", include_in_schema=False),
        Route("/api/v1/programs", api.programs, name="api_programs"),
        Route("/api/v1/programs/{program}/releases", api.releases, name="api_releases"),
        Route("/api/v1/programs/{program}/releases/{release}", api.release, name="api_release"),
        Mount("/static", app=StaticFiles(directory=STATIC), name="staff_static"),
    ]


async def http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) and status != 404 else None
    return page(
        request,
        "message.html",
        status_code=status,
        title=TITLES.get(status, "Something went wrong"),
        message=detail or "There is nothing here, or it is not yours to see.",
    )


async def unavailable(request: Request, exc: Exception) -> Response:
    """The database is away, or too much costly work is waiting: 503, and when to try again."""
    response = page(
        request,
        "message.html",
        status_code=503,
        title="Busy",
        message="The service is busy or cannot reach its database. Please try again in a minute.",
    )
    response.headers["retry-after"] = str(web.RETRY_AFTER_S)
    return response


def create_app(
    settings: Settings,
    session_secret: bytes,
    sms_code_key: bytes,
    *,
    pool: Pool | None = None,
    prefix: str = "",
) -> Starlette:
    """The staff app; ``prefix`` is where it is mounted (its cookie is scoped to it). It holds
    the key that SMS codes are hashed under, never the one that keys phone numbers."""
    sessions = Sessions(
        session_secret, https=settings.public_url.startswith("https:"), path=prefix or "/"
    )
    database = web.pool_lifespan(
        settings,
        pool,
        STAFF,
        "staff_pool",
        {"SESSION_SECRET": session_secret, "SMS_CODE_KEY": sms_code_key},
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with database(app) as state:
            await asyncio.to_thread(charts.warm_up)
            yield {
                **state,
                "sessions": sessions,
                "login_waits": login_waits(session_secret),
                "sms_code_key": sms_code_key,
                # login attempts per client (behind trusted proxies, the real client's)
                "login_limiter": RateLimiter(limit=20, window=600),
                "funder_limiter": RateLimiter(
                    limit=publication_pages.LINK_REQUESTS_PER_MINUTE, window=60
                ),
            }

    return web.create_web_app(
        settings,
        routes(),
        lifespan=lifespan,
        exception_handlers={
            HTTPException: http_error,
            Busy: unavailable,
            **dict.fromkeys(web.DATABASE_GONE, unavailable),
        },
    )
