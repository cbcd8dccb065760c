"""Helpers for tests that drive Debian's Chromium through Playwright (no browser download)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from playwright.sync_api import Browser, sync_playwright

from feedback.db import Connection, connect, with_database
from tests.conftest import copy_database
from tests.live import ROOT, LiveServer

T = TypeVar("T")

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("FEEDBACK_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def run_async(coroutine: Any) -> Any:
    """Run a coroutine to its end from synchronous test code. Sync Playwright keeps an event
    loop running on this thread, so it runs on a thread of its own."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


def run_with_connection(database_url: str, work: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``work(conn, *args)`` on a connection of its own, from synchronous test code."""

    async def go() -> T:
        conn = await connect(database_url)
        try:
            return await work(conn, *args)
        finally:
            await conn.close()

    result: T = run_async(go())
    return result


@contextlib.contextmanager
def live_site(
    admin_url: str,
    template_database: str,
    log_dir: Path,
    seed: Callable[[Connection], Awaitable[T]],
    **env: str,
) -> Iterator[tuple[LiveServer, str, T]]:
    """A database of its own (from the migrated template), seeded, with `feedback serve` on
    it: (server, database URL, what ``seed`` returned). Both go away afterwards."""
    name = f"feedback_live_{uuid.uuid4().hex[:10]}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    async def copy() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await copy_database(conn, name, template_database)
        finally:
            await conn.close()

    run_async(copy())
    url = with_database(admin_url, name)
    try:
        seeded = run_with_connection(url, seed)
        server = LiveServer(url, log_dir / "server.log", **env)
        try:
            yield server, url, seeded
        finally:
            server.stop()
    finally:
        run_async(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
