"""The survivor application: everything a survivor's phone talks to."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from feedback import web
from feedback.config import Settings
from feedback.db import Pool


def create_app(settings: Settings, *, pool: Pool | None = None) -> Starlette:
    routes = [Route("/healthz", web.healthz, name="healthz")]
    return web.create_web_app(settings, routes, lifespan=web.pool_lifespan(settings, pool))
