"""dashboard_p95_ms (issues 5 and 12): the program page of a program with five years of
monthly releases (the indices, and the questions overall, by gender and by time in program:
240 releases), served by `feedback serve --app staff` to a logged-in manager, one request at a
time, each for a period drawn at random. The pages were drawn when the releases were made (as
the worker does), so a request reads its stored page and never draws. p50 beside it; the
baseline is /staff/healthz (one database round trip) in the same run."""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from typing import Any

import httpx

from benchmarks.database import bench_database
from benchmarks.ingest import _free_port, _start
from feedback.db import connect
from feedback.publish import views
from feedback.publish.accounts import create_user
from tests import factories
from tests.publish.conftest import PASSWORD, add_release

REQUESTS = int(os.environ.get("BENCH_DASHBOARD_REQUESTS", "400"))
YEARS = range(2021, 2026)  # five whole years, all ended
TARGET_MS = 50


async def _seed(url: str) -> list[str]:
    conn = await connect(url, statement_timeout_ms=600_000)
    try:
        t = await factories.tenant(conn, "bench")
        await conn.execute("UPDATE organisations SET epsilon_per_year = 10")
        periods = [f"{year}-{month:02d}" for year in YEARS for month in range(1, 13)]
        for period in periods:
            for breakdown in (None, "gender", "time_in_program"):
                await add_release(conn, t, period, breakdown=breakdown, epsilon=0.2, draw=False)
            await add_release(conn, t, period, kind="indices", epsilon=0.2, draw=False)
        await views.draw_missing(conn)  # the worker's job after releases
        await create_user(
            conn,
            organisation_id=t.organisation_id,
            email="manager@bench.example",
            role="manager",
            programs=[t.program_id],
            password=PASSWORD,
        )
        return periods
    finally:
        await conn.close()


def _timed(client: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    response = client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{path}: {response.status_code}")
    return elapsed


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def dashboard_figures() -> dict[str, Any]:
    rng = random.Random(5)  # noqa: S311 - which period to ask for, not a secret
    with bench_database() as url:
        periods = asyncio.run(_seed(url))
        port = _free_port()
        env = {
            "FEEDBACK_DATABASE_URL": url,
            "FEEDBACK_PORT": str(port),
            "FEEDBACK_SESSION_SECRET": uuid.uuid4().hex * 2,
            "FEEDBACK_PHONE_HMAC_KEY": uuid.uuid4().hex * 2,
            "FEEDBACK_SMS_CODE_KEY": uuid.uuid4().hex * 2,
            "FEEDBACK_LOG_LEVEL": "WARNING",
        }
        server = _start([sys.executable, "-m", "feedback", "serve", "--app", "staff"], env, port)
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=30) as client:
                login = client.post(
                    "/staff/login",
                    data={"email": "manager@bench.example", "password": PASSWORD},
                )
                if login.status_code != 303:
                    raise RuntimeError(f"login failed: {login.status_code}")
                pages = [
                    _timed(client, f"/staff/p/shelter/?period={rng.choice(periods)}")
                    for _ in range(REQUESTS)
                ]
                health = [_timed(client, "/staff/healthz") for _ in range(REQUESTS)]
        finally:
            server.terminate()
            server.wait(timeout=30)
    p95, baseline = _p95(pages), _p95(health)
    return {
        "dashboard_p95_ms": {
            "value": round(p95, 1),
            "unit": "ms",
            "baseline": round(baseline, 1),
            "ratio": round(p95 / baseline, 1),
            "target": TARGET_MS,
            "p50_ms": round(statistics.median(pages), 1),
            "releases": len(periods) * 4,
            "requests": REQUESTS,
        }
    }
