"""ingest_sealed_submissions: browser-sealed posts per second against `feedback serve
--app survivor`, beside the bare ceiling (benchmarks/ceiling.py) measured in the same run."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from benchmarks.database import bench_database
from feedback.db import connect
from feedback.envelope import Envelope
from feedback.publish.invitations import create_batch
from feedback.sealing import seal
from feedback.weeks import current_week
from tests import factories

HERE = Path(__file__).resolve().parent
THREADS = 2
CONNECTIONS = 32
WARMUP_S = 2
MEASURE_S = 4
ROUNDS = 3
TOKENS = 150_000
TARGET_RATIO = 0.70


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(command: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{command} did not start")


def _wrk(port: int, seconds: int, env: dict[str, str], offset: int) -> tuple[float, int, int]:
    """(requests per second, requests, non-2xx responses) for one wrk run."""
    result = subprocess.run(
        [
            "wrk",
            f"-t{THREADS}",
            f"-c{CONNECTIONS}",
            f"-d{seconds}s",
            "-s",
            str(HERE / "wrk_tokens.lua"),
            f"http://127.0.0.1:{port}",
        ],
        env={**os.environ, **env, "BENCH_THREADS": str(THREADS), "BENCH_OFFSET": str(offset)},
        capture_output=True,
        text=True,
        check=True,
    )
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", result.stdout).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", result.stdout).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    return rate, total, int(errors.group(1)) if errors else 0


async def _seed(url: str, tokens_path: Path, body_path: Path) -> dict[str, str]:
    conn = await connect(url)
    try:
        keyed = await factories.keyed_tenant(conn, "bench")
        batch_tokens: list[str] = []
        while len(batch_tokens) < TOKENS:
            batch = await create_batch(conn, program_id=keyed.tenant.program_id, count=1000)
            batch_tokens.extend(batch.tokens)
    finally:
        await conn.close()
    tokens_path.write_text("\n".join(batch_tokens) + "\n")
    sealed = seal(
        keyed.private_key.public_key,
        Envelope("rights-based", 1, "en", {"believed": 5, "safe_now": 4}).to_plaintext(),
    )
    body_path.write_text(
        urlencode({"sealed": base64.b64encode(sealed).decode(), "key_id": str(keyed.tenant.key_id)})
    )
    t = keyed.tenant
    return {
        "BENCH_ORGANISATION": str(t.organisation_id),
        "BENCH_PROGRAM": str(t.program_id),
        "BENCH_SURVEY": str(t.survey_id),
        "BENCH_WEEK": current_week().isoformat(),
    }


async def _count(url: str, sql: str) -> int:
    conn = await connect(url)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


def _medians(servers: dict[str, tuple[list[str], dict[str, str]]]) -> dict[str, float]:
    """Requests per second of each server: both started, both warmed, then measured in
    alternating rounds, so that drift in this machine's speed touches both alike."""
    ports = {name: _free_port() for name in servers}
    processes = {
        name: _start(
            [*command, *(["--port", str(ports[name])] if "uvicorn" in command else [])],
            {**env, "FEEDBACK_PORT": str(ports[name])},
            ports[name],
        )
        for name, (command, env) in servers.items()
    }
    offset = 0
    rates: dict[str, list[float]] = {name: [] for name in servers}
    try:
        for round_number in range(ROUNDS + 1):
            for name, (_, env) in servers.items():
                seconds = WARMUP_S if round_number == 0 else MEASURE_S
                rate, total, errors = _wrk(ports[name], seconds, env, offset=offset)
                # requests still in flight at the end used tokens too: skip past them
                offset += total + 4 * CONNECTIONS
                if errors:
                    raise RuntimeError(f"{errors} requests failed against {name}")
                if round_number:
                    rates[name].append(rate)
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(timeout=30)
    return {name: statistics.median(values) for name, values in rates.items()}


def ingest_sealed_submissions() -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("make bench needs wrk: apt-get install wrk")
    with bench_database() as url, tempfile.TemporaryDirectory() as tmp:
        tokens_path, body_path = Path(tmp) / "tokens", Path(tmp) / "body"
        ids = asyncio.run(_seed(url, tokens_path, body_path))
        env = {
            **ids,
            "FEEDBACK_DATABASE_URL": url,
            "FEEDBACK_SESSION_SECRET": uuid.uuid4().hex * 2,
            "FEEDBACK_PHONE_HMAC_KEY": uuid.uuid4().hex * 2,
            "FEEDBACK_SMS_CODE_KEY": uuid.uuid4().hex * 2,
            "BENCH_TOKENS": str(tokens_path),
            "BENCH_BODY": str(body_path),
        }
        uvicorn = [
            sys.executable,
            "-m",
            "uvicorn",
            "benchmarks.ceiling:app",
            "--no-access-log",
            "--no-server-header",
            "--log-level",
            "warning",
        ]
        survivor = [sys.executable, "-m", "feedback", "serve", "--app", "survivor"]
        rates = _medians({"ceiling": (uvicorn, env), "survivor": (survivor, env)})
        ceiling, served = rates["ceiling"], rates["survivor"]
        stored = asyncio.run(_count(url, "SELECT count(*) FROM submissions WHERE channel = 'web'"))
        left = asyncio.run(_count(url, "SELECT count(*) FROM invitations"))  # spent: deleted
    if left == 0:
        raise RuntimeError("tokens ran out: raise TOKENS")
    return {
        "ingest_sealed_submissions": {
            "value": round(served, 1),
            "unit": "submissions/s",
            "baseline": round(ceiling, 1),
            "ratio": round(served / ceiling, 3),
            "target": TARGET_RATIO,
            "stored": stored,
        }
    }
