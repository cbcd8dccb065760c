"""`feedback comments`: only the key holder reads comments, shuffled and undated, and only in
sets of at least the release threshold; with comments off there are none to read."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from feedback.aggregate.privacy import DEFAULT_THRESHOLD
from feedback.db import Connection
from feedback.envelope import Envelope
from feedback.sealing import load_public_key, seal
from tests import factories
from tests.aggregate.test_aggregate_cli import PASSPHRASE, feedback, one_error

WEEK = dt.date(2026, 8, 3)  # in 2026-Q3, which has ended


async def commented(
    conn: Connection, t: factories.Tenant, public_key: bytes, texts: list[str]
) -> None:
    key_id = await conn.fetchval("SELECT id FROM collection_keys")
    for text in texts:
        envelope = Envelope("rights-based", 1, "en", {"believed": 4}, comment=text)
        await factories.submission(
            conn,
            t,
            key_id=key_id,
            week=WEEK,
            ciphertext=seal(load_public_key(public_key), envelope.to_plaintext()),
        )


async def test_comments_reach_only_the_key_holder_shuffled_in_sets_of_the_threshold(
    conn: Connection, database_url: str, tmp_path: Path
) -> None:
    t = await factories.tenant(conn)
    await conn.execute("DELETE FROM collection_keys")
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    assert (
        feedback(database_url, "keys", "create", "--passphrase-file", str(secret)).returncode == 0
    )
    public_key = await conn.fetchval("SELECT public_key FROM collection_keys")
    read = ("comments", "--period", "2026-Q3", "--passphrase-file", str(secret))

    off = one_error(feedback(database_url, *read))
    assert "comments are off" in off

    await conn.execute("UPDATE organisations SET comments_enabled = true")
    few = [f"marker comment {i}" for i in range(DEFAULT_THRESHOLD - 1)]
    await commented(conn, t, public_key, few)
    await commented(conn, t, public_key, ["", "   "])  # blank: no comment
    refused = feedback(database_url, *read)
    assert f"fewer than {DEFAULT_THRESHOLD} comments" in one_error(refused)
    assert "marker" not in refused.stdout + refused.stderr

    more = [f"marker comment {i}" for i in range(DEFAULT_THRESHOLD - 1, 2 * DEFAULT_THRESHOLD)]
    await commented(conn, t, public_key, more)
    shown = feedback(database_url, *read)
    assert shown.returncode == 0, shown.stderr
    printed = [line[2:] for line in shown.stdout.splitlines() if line.startswith("- ")]
    assert sorted(printed) == sorted(few + more)  # each once, nothing else
    assert printed != few + more  # not in the order they arrived
    assert "2026-08" not in shown.stdout  # undated
    audited = await conn.fetch(
        "SELECT subject, details FROM audit_log WHERE action = 'comments.read'"
    )
    assert [row["subject"] for row in audited] == ["2026-Q3"]
    assert "marker" not in str(audited[0]["details"])

    running = feedback(
        database_url, "comments", "--period", "2026", "--passphrase-file", str(secret)
    )
    assert "has not ended" in one_error(running)
    # Releases never carry them.
    assert not await conn.fetchval(
        "SELECT count(*) FROM releases WHERE cells::text LIKE '%marker%'"
    )
