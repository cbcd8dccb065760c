from __future__ import annotations

import subprocess
from pathlib import Path

from feedback.db import Connection
from feedback.tokens import hash_sms_code, hash_token
from tests import factories
from tests.cli import run_feedback

CODE_KEY = "c" * 40


def feedback(
    database_url: str, *args: str, key: str = CODE_KEY
) -> subprocess.CompletedProcess[str]:
    return run_feedback(
        "invitations", *args, database_url=database_url, env={"FEEDBACK_SMS_CODE_KEY": key}
    )


async def test_batch_prints_links_stores_hashes_and_writes_a_qr_sheet(
    conn: Connection, database_url: str, tmp_path: Path
) -> None:
    await factories.tenant(conn)
    sheet = tmp_path / "sheet.svg"
    result = feedback(database_url, "batch", "-p", "shelter", "-n", "5", "--sheet", str(sheet))
    assert result.returncode == 0, result.stderr
    urls = result.stdout.split()
    assert len(urls) == 5
    tokens = [url.rsplit("/", 1)[1] for url in urls]
    stored = {r["token_hash"] for r in await conn.fetch("SELECT token_hash FROM invitations")}
    assert stored == {hash_token(t) for t in tokens}
    assert not any(t.encode() in h for t in tokens for h in stored)  # only hashes are kept
    svg = sheet.read_text()
    assert svg.startswith("<svg")
    assert svg.count("<path") == 5
    assert all(url in svg for url in urls)
    assert (sheet.stat().st_mode & 0o077) == 0
    again = feedback(database_url, "batch", "-p", "shelter", "--sheet", str(sheet))
    assert again.returncode == 1
    assert "already exists" in again.stderr


async def test_open_link_and_unknown_program(conn: Connection, database_url: str) -> None:
    await factories.tenant(conn)
    opened = feedback(database_url, "open-link", "-p", "shelter")
    assert opened.returncode == 0
    kind = await conn.fetchval(
        "SELECT b.kind FROM invitations i JOIN invitation_batches b ON b.id = i.batch_id"
    )
    assert kind == "open"
    unknown = feedback(database_url, "batch", "-p", "nowhere")
    assert unknown.returncode == 1
    assert "no program 'nowhere'" in unknown.stderr


async def test_sms_start_codes(conn: Connection, database_url: str, tmp_path: Path) -> None:
    await factories.tenant(conn)
    made = feedback(database_url, "batch", "-p", "shelter", "-n", "3", "--sms")
    assert made.returncode == 0, made.stderr
    codes = made.stdout.split()
    assert len(codes) == 3
    assert all(code.isdigit() and len(code) == 10 for code in codes)
    rows = await conn.fetch(
        "SELECT kind, medium, token_hash FROM invitations i "
        "JOIN invitation_batches b ON b.id = i.batch_id"
    )
    assert {(r["kind"], r["medium"]) for r in rows} == {("single", "sms")}
    # Keyed with a secret that is not in the database: ten digits are too few to hash bare
    # (a copy of the database would give up every unused code in seconds).
    key = CODE_KEY.encode()
    assert {r["token_hash"] for r in rows} == {hash_sms_code(key, c) for c in codes}
    assert not {r["token_hash"] for r in rows} & {hash_token(c) for c in codes}
    wide = feedback(database_url, "open-link", "-p", "shelter", "--sms")
    assert wide.returncode == 0
    assert wide.stdout.strip().isdigit()
    assert await conn.fetchval("SELECT count(*) FROM invitation_batches WHERE kind = 'open'") == 1
    # Made with another key, codes would never be found by the survivor app: refused.
    other = feedback(database_url, "batch", "-p", "shelter", "--sms", key="d" * 40)
    assert other.returncode == 1
    assert "FEEDBACK_SMS_CODE_KEY is not the one this database was set up with" in other.stderr
    assert await conn.fetchval("SELECT count(*) FROM invitations") == 4
    sheet = feedback(
        database_url, "batch", "-p", "shelter", "--sms", "--sheet", str(tmp_path / "x")
    )
    assert sheet.returncode == 1
    assert "SMS codes are texted, not scanned" in sheet.stderr
