"""Running the `feedback` command as a person would: a real process, its own environment."""

from __future__ import annotations

import os
import subprocess
import sys


def run_feedback(
    *args: str, database_url: str | None = None, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    extra = dict(env or {})
    if database_url is not None:
        extra["FEEDBACK_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "feedback", *args],
        input=stdin,
        env={**os.environ, **extra},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
