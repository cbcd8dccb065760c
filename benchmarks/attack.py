"""survivor_p99_under_attack_ms: a survivor's survey page, p99 of requests paced at a steady
rate, while a login flood (each post from a new address), slow-body clients on a staff POST and
worst-case passphrases posted to valid links all run from another process; beside the same
page idle, measured first in the same run against the same server.

guesses_per_minute_parallel: passphrases actually checked against one account's hash in a
minute by eight guessers at once, each guess from a new address; its baseline is the login
attempts the server answered them in that minute."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.database import bench_database
from feedback.db import connect
from tests.attackers import (
    TARGET_EMAIL,
    Latencies,
    Targets,
    checked_guesses,
    guessers,
    paced_latencies,
    seed_targets,
)
from tests.live import LiveServer

IDLE_S = 15
RAMP_S = 3
ATTACK_S = 15
GUESSING_S = 60
LINKS = 60
TARGET_RATIO = 3.0
TARGET_GUESSES = 10


async def _seed(url: str) -> Targets:
    conn = await connect(url)
    try:
        return await seed_targets(conn, LINKS)
    finally:
        await conn.close()


async def _checked_guesses(url: str) -> int:
    conn = await connect(url)
    try:
        return await checked_guesses(conn)
    finally:
        await conn.close()


def _under_attack(server: LiveServer, page: str, links: list[str], tmp: Path) -> Latencies:
    links_path = tmp / "links"
    links_path.write_text("\n".join(links))
    attack = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.attackers",
            server.base_url,
            "--seconds",
            str(RAMP_S + ATTACK_S + 1),
            "--links",
            str(links_path),
        ],
        stdout=subprocess.PIPE,
    )
    try:

        async def measure() -> Latencies:
            await asyncio.sleep(RAMP_S)
            return await paced_latencies(page, ATTACK_S)

        measured = asyncio.run(measure())
        answers, _ = attack.communicate(timeout=120)
    finally:
        attack.kill()
    if attack.returncode != 0:
        raise RuntimeError("the attacking process failed")
    print(json.dumps({"attack": json.loads(answers)}), file=sys.stderr)
    return measured


def _figures(idle: Latencies, attacked: Latencies, guesses: int, attempts: int) -> dict[str, Any]:
    if idle.failed:
        raise RuntimeError(f"{idle.failed} idle survivor requests failed")
    p99_idle, p99_attacked = idle.percentile(99), attacked.percentile(99)
    per_minute = 60 / GUESSING_S
    return {
        "survivor_p99_under_attack_ms": {
            "value": round(p99_attacked, 1),
            "unit": "ms",
            "baseline": round(p99_idle, 1),
            "ratio": round(p99_attacked / p99_idle, 3),
            "target": TARGET_RATIO,
            "failed_under_attack": attacked.failed,
        },
        "guesses_per_minute_parallel": {
            "value": round(guesses * per_minute, 1),
            "unit": "guesses/min",
            "baseline": round(attempts * per_minute, 1),
            "ratio": round(guesses / attempts, 4),
            "target": TARGET_GUESSES,
        },
    }


def attack_figures() -> dict[str, Any]:
    with bench_database() as url, tempfile.TemporaryDirectory() as tmp:
        targets = asyncio.run(_seed(url))
        server = LiveServer(
            url,
            Path(tmp) / "server.log",
            FEEDBACK_TRUSTED_PROXIES="127.0.0.1/32",
            FEEDBACK_LOG_LEVEL="WARNING",
        )
        try:
            page = f"{server.base_url}/s/{targets.survey_token}"
            asyncio.run(paced_latencies(page, 2))  # warm up
            idle = asyncio.run(paced_latencies(page, IDLE_S))
            attacked = _under_attack(server, page, targets.password_links, Path(tmp))
            answered = asyncio.run(guessers(server.base_url, TARGET_EMAIL, GUESSING_S))
            guesses = asyncio.run(_checked_guesses(url))
        finally:
            server.stop()
    print(json.dumps({"guessers": answered}), file=sys.stderr)
    return _figures(idle, attacked, guesses, sum(answered.values()))
