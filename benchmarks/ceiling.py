"""The bare ceiling for ingest: a Starlette endpoint that inserts the same submission row with
no checks at all (no token, no key, no validation, no page), on the same pool and server."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from feedback.db import SURVIVOR, create_pool

ORGANISATION = uuid.UUID(os.environ["BENCH_ORGANISATION"])
PROGRAM = uuid.UUID(os.environ["BENCH_PROGRAM"])
SURVEY = uuid.UUID(os.environ["BENCH_SURVEY"])
WEEK = dt.date.fromisoformat(os.environ["BENCH_WEEK"])


async def insert(request: Request) -> Response:
    form = await request.form()
    ciphertext = base64.b64decode(str(form["sealed"]))
    async with request.state.pool.acquire() as conn:
        await conn.execute(
            """
            INSERT INTO submissions (organisation_id, program_id, survey_id, channel,
                                     open_link, received_week, ciphertext, receipt_hash)
            VALUES ($1, $2, $3, 'web', false, $4, $5, $6)
            """,
            ORGANISATION,
            PROGRAM,
            SURVEY,
            WEEK,
            ciphertext,
            os.urandom(32),  # the survivor path stores a receipt hash in the same row
        )
    return PlainTextResponse("ok")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    async with create_pool(os.environ["FEEDBACK_DATABASE_URL"], role=SURVIVOR, max_size=10) as pool:
        yield {"pool": pool}


app = Starlette(routes=[Route("/s/{token}", insert, methods=["POST"])], lifespan=lifespan)
