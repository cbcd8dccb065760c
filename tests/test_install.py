"""`make demo` installs only what the platform needs at run time."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEVELOPMENT_TOOLS = ("pytest", "mypy", "ruff", "playwright", "schemathesis", "twilio")


@pytest.mark.slow
def test_the_demo_s_environment_holds_no_development_tools(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.fail("git is needed to clone the checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    # The working tree's Makefile and lock, so that the test checks what is about to land.
    for name in ("Makefile", "pyproject.toml", "uv.lock"):
        shutil.copy(ROOT / name, clone / name)
    made = subprocess.run(
        ["make", "-C", str(clone), "install-run"], capture_output=True, text=True, check=False
    )
    assert made.returncode == 0, made.stderr
    [packages] = (clone / ".venv" / "lib").glob("python3*/site-packages")
    installed = {path.name.split("-")[0].lower() for path in packages.iterdir()}
    assert not installed & set(DEVELOPMENT_TOOLS)
    version = subprocess.run(
        [str(clone / ".venv" / "bin" / "feedback"), "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert version.returncode == 0
    assert "feedback" in version.stdout
