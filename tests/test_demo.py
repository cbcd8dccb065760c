"""`feedback demo` as a newcomer runs it: a real process, a real port, a real database."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest

from feedback.passwords import verify_password_sync
from tests.cli import run_feedback
from tests.live import Demo

pytestmark = pytest.mark.slow


@pytest.fixture
def demo_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def check_running_demo(demo: Demo, facts: dict[str, str]) -> None:
    health = httpx.get(f"http://127.0.0.1:{demo.port}/healthz", timeout=5)
    assert health.status_code == 200
    assert health.json()["database"] == "ok"
    assert "server" not in health.headers
    assert facts["base_url"] == f"http://127.0.0.1:{demo.port}"
    assert facts["manager_email"] == "manager@demo.example"
    assert len(facts["manager_password"]) >= 12
    assert (demo.data_dir / "demo.json").stat().st_mode & 0o077 == 0
    assert base64.b64decode(facts["collection_public_key"], validate=True).__len__() == 32
    for name in ("survey_link", "open_link"):
        assert facts[name].startswith(f"http://127.0.0.1:{demo.port}/s/")
        page = httpx.get(facts[name], timeout=5)
        assert page.status_code == 200
        assert facts["collection_public_key"] in page.text
    assert facts["survey_link"] != facts["open_link"]
    with httpx.Client(base_url=facts["staff_url"], timeout=30) as staff:
        login = staff.post(
            "/login", data={"email": facts["manager_email"], "password": facts["manager_password"]}
        )
        assert login.status_code == 303
        program = staff.get("/p/shelter/")  # the demo's releases, drawn
        assert program.status_code == 200
        assert program.text.count("<svg") >= 2  # the indices over seven quarters, respondents
        assert "2026-Q3" in program.text
        check_readable(program.text)
        # Every verdict of a page judged together, and a trend over the last four quarters.
        assert "comparisons on this page are judged together (Holm" in program.text
        assert "over the 4 quarters 2025-Q4 to 2026-Q3" in program.text
        year = staff.get("/p/shelter/?period=2025")  # the yearly indices by group
        assert year.text.count("<svg") >= 4
        assert "Treated with rights and Recovery by gender, 2025" in year.text
        # Released by quarters and by group, the year shows its respondents and overall
        # indices like any period, added up from its quarters.
        assert re.search(r"<td>2025</td><td>\d+</td></tr>", year.text)
        assert re.search(
            r"<td>2025</td><td>Treated with rights</td><td>\d+</td><td>\d+ to \d+</td>", year.text
        )
        assert "2025 is added up from the releases of 2025-Q1, 2025-Q2, 2025-Q3, 2025-Q4" in (
            year.text
        )
        assert "2025-H2" in year.text  # named as a period that has the questions' detail
        check_readable(year.text)
        half = staff.get("/p/shelter/?period=2025-H2")  # the advisor's half-yearly detail
        assert "Each question: share agreeing, 2025-H2" in half.text
        check_readable(half.text)
        small = staff.get("/p/drop-in/")  # about 60 respondents in 2025
        assert small.status_code == 200
        assert re.search(
            r"<td>2025</td><td>Treated with rights</td><td>\d+</td><td>\d+ to \d+</td>",
            small.text,
        )
        assert "Not enough answers to show this yet" in small.text
        check_readable(small.text)
    check_sms_simulator(demo, facts)
    check_publication(demo, facts)


def check_publication(demo: Demo, facts: dict[str, str]) -> None:
    """The demo's signed yearly publication verifies with the key demo.json gives, with our
    check and with the reference minisign."""
    bundle = Path(facts["publication_bundle"])
    assert (bundle / "summary.html").is_file()
    key_file = demo.data_dir / "demo-signing.pub"
    key_file.write_text(facts["signing_public_key"])
    checked = run_feedback("verify", str(bundle), "--key", str(key_file))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "demo, series yearly, publication 1" in checked.stdout
    done = subprocess.run(
        ["minisign", "-V", "-p", str(key_file), "-m", str(bundle / "manifest.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    network = Path(facts["network_bundle"])
    stated = json.loads((network / "network.json").read_text())
    members = stated["members"]
    assert [m["member"] for m in members] == ["demo", "north-refuge", "south-haven"]
    # The indices are the network's (three members have them); the demo's quarters of its
    # large programs stand for 2025, once each; the questions only the demo released.
    figures = stated["figures"]
    assert {name: f["members"] for name, f in figures["indices"].items()} == {
        "rights": 3,
        "recovery": 3,
    }
    assert figures["shares"] == {}
    assert set(figures["too_few_members"]["shares"].values()) == {1}
    pooled = {(c["program"], c["kind"]): c for c in figures["pooled"]["demo"]}
    assert pooled["shelter", "indices"]["granularity"] == "quarter"
    assert pooled["shelter", "indices"]["covers_the_period"]
    network_key = demo.data_dir / "coalition-signing.pub"
    network_key.write_text(facts["network_public_key"])
    # It recomputes the summary from the three member publications inside.
    checked = run_feedback("verify", str(network), "--key", str(network_key))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def check_readable(html: str) -> None:
    """No share drawn whose 95% interval is wider than 30 points: those say "not enough
    answers to show this yet" instead."""
    for low, high in re.findall(r"<td>(\d+)% to (\d+)%</td>", html):
        assert int(high) - int(low) <= 30, (low, high)


def check_sms_simulator(demo: Demo, facts: dict[str, str]) -> None:
    """`feedback sms-sim` finds the demo's webhook and token in demo.json and plays a phone."""
    assert facts["sms_webhook_url"] == f"http://127.0.0.1:{demo.port}/sms/twilio"
    assert len(facts["sms_auth_token"]) >= 32
    assert facts["sms_start_code"].isdigit()
    answers = ["-m", facts["sms_start_code"], "-m", "1"]  # the code, then English
    for answer in ("5", "4", "0", "3", "2", "1"):
        answers += ["-m", answer]
    played = subprocess.run(
        [sys.executable, "-m", "feedback", "sms-sim", *answers, "-m", "NEWS"],
        env={**os.environ, "FEEDBACK_DATA_DIR": str(demo.data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert played.returncode == 0, played.stderr
    replies = [line for line in played.stdout.splitlines() if line.startswith("< ")]
    assert len(replies) == 9
    assert replies[0] == "< Reply with a number: 1 English 2 Español"  # two languages
    assert replies[1].startswith("< 1/6 ")
    assert replies[-2].startswith("< Thank you")
    assert replies[-1].startswith("< ")  # NEWS: the latest note, or that there is none


def test_demo_with_embedded_postgres(demo_dir: Path) -> None:
    demo = Demo(demo_dir, {"FEEDBACK_DATABASE_URL": ""})
    try:
        facts = demo.wait_until_serving()
        check_running_demo(demo, facts)
        pgdata = demo_dir / "postgres"
        assert (pgdata / "postmaster.pid").exists()
    finally:
        stdout = demo.stop(signal.SIGTERM)
    assert demo.process.returncode == 0, demo.log.read_text()
    assert str(demo_dir / "demo.json") in stdout
    assert facts["manager_password"] in stdout
    lines = stdout.splitlines()
    assert any(line.strip() == facts["survey_link"] for line in lines)  # each on its own line
    assert any(line.strip() == facts["open_link"] for line in lines)
    assert not (pgdata / "postmaster.pid").exists()  # the embedded server was stopped
    assert "Traceback" not in demo.log.read_text()


async def test_demo_with_a_database_url(demo_dir: Path, database_url: str) -> None:
    demo = Demo(demo_dir, {"FEEDBACK_DATABASE_URL": database_url})
    try:
        facts = demo.wait_until_serving()
        check_running_demo(demo, facts)
        conn = await asyncpg.connect(database_url)
        try:  # each surface on connections of its own role (the names say which)
            surfaces = await conn.fetch(
                "SELECT DISTINCT application_name FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name LIKE 'feedback:%'"
            )
        finally:
            await conn.close()
        assert {r["application_name"] for r in surfaces} >= {
            "feedback:survivor",
            "feedback:staff",
            "feedback:worker",
        }
    finally:
        stdout = demo.stop(signal.SIGINT)
    assert demo.process.returncode == 0, demo.log.read_text()
    assert f"http://127.0.0.1:{demo.port}/staff" in stdout
    assert not (demo_dir / "postgres").exists()
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval(
            "SELECT password_hash FROM users WHERE email = $1", facts["manager_email"]
        )
        demo = await conn.fetchval("SELECT id FROM organisations WHERE slug = 'demo'")
        programs = await conn.fetchval(
            "SELECT count(*) FROM programs WHERE organisation_id = $1", demo
        )
        surveys = await conn.fetchval(
            "SELECT count(*) FROM surveys WHERE organisation_id = $1", demo
        )
        ran = await conn.fetchval("SELECT count(*) FROM job_runs")
        retention = await conn.fetchval(
            "SELECT count(*) FROM job_runs WHERE job = 'delete-released-ciphertexts'"
        )
        releases = await conn.fetchval(
            "SELECT count(*) FROM releases WHERE organisation_id = $1", demo
        )
        spent = await conn.fetchval(
            "SELECT count(*) FROM releases r JOIN privacy_ledger l ON l.release_id = r.id "
            "WHERE r.organisation_id = $1",
            demo,
        )
    finally:
        await conn.close()
    assert verify_password_sync(stored, facts["manager_password"])
    assert programs == 3
    assert surveys == 1
    assert ran >= 1  # the worker's jobs ran inside the demo process
    # 2025: each large program's 4 quarterly indices, 2 half-yearly releases of the questions,
    # yearly indices by gender and by time in program, and the small program's yearly indices;
    # 2026: the large programs' indices of the three quarters that have ended and the
    # questions of the first half.
    assert releases == spent == 2 * (4 + 2 + 2) + 1 + 2 * (3 + 1)
    assert retention >= 1  # and released ciphertexts past their grace period go
