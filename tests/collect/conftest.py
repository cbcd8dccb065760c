from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from feedback.collect.app import create_app
from feedback.config import Settings
from feedback.db import Pool
from feedback.secretfiles import ServiceSecrets

SECRETS = ServiceSecrets(
    session=b"s" * 32, phone_hmac=b"p" * 32, sms_code_key=b"c" * 32, sms_auth_token=b"t" * 32
)


@pytest.fixture
async def survivor(survivor_pool: Pool, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The survivor app in-process, its lifespan run, on the test's own database, its
    connections in the survivor app's role."""
    settings = replace(Settings.from_env({}), database_url=database_url)
    app = create_app(settings, SECRETS, pool=survivor_pool)
    async with app.router.lifespan_context(app) as state:

        async def asgi(scope, receive, send):
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:8000"
        ) as client:
            yield client
