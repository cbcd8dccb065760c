"""`feedback comments`: only the key holder reads comments, shuffled and undated, and only in
sets of at least the release threshold; with comments off there are none to read."""

from __future__ import annotations

from pathlib import Path

import orjson

from feedback.aggregate.privacy import DEFAULT_THRESHOLD
from feedback.db import WORKER, Connection, Record, connect
from feedback.envelope import Envelope
from feedback.publish import views
from tests import factories
from tests.aggregate.test_aggregate_cli import feedback, keys_from_the_cli, one_error, seal_in


async def commented(conn: Connection, t: factories.Tenant, key: Record, texts: list[str]) -> None:
    for text in texts:
        await seal_in(
            conn, t, key, Envelope("rights-based", 1, "en", {"believed": 4}, comment=text)
        )


async def test_comments_reach_only_the_key_holder_shuffled_in_sets_of_the_threshold(
    conn: Connection, database_url: str, tmp_path: Path
) -> None:
    t = await factories.tenant(conn)
    secret, key = await keys_from_the_cli(conn, database_url, tmp_path)
    read = ("comments", "--period", "2026-Q3", "--passphrase-file", str(secret))

    off = one_error(feedback(database_url, *read))
    assert "comments are off" in off

    await conn.execute("UPDATE organisations SET comments_enabled = true")
    few = [f"marker comment {i}" for i in range(DEFAULT_THRESHOLD - 1)]
    await commented(conn, t, key, few)
    await commented(conn, t, key, ["", "   "])  # blank: no comment
    refused = feedback(database_url, *read)
    assert f"fewer than {DEFAULT_THRESHOLD} comments" in one_error(refused)
    assert "marker" not in refused.stdout + refused.stderr

    more = [f"marker comment {i}" for i in range(DEFAULT_THRESHOLD - 1, 2 * DEFAULT_THRESHOLD)]
    await commented(conn, t, key, more)
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

    # A release counts them, noisily, where the plan names the comment question; the
    # manager's page says about how many wrote one. Their text goes nowhere.
    assert feedback(database_url, "plan", "budget", "--per-year", "10").returncode == 0
    planned = feedback(
        database_url,
        "plan", "add", "--year", "2026", "-p", "shelter", "-q", "believed", "-q", "comment",
        "--epsilon", "2.5", "--accept-wide",
    )  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    made = feedback(
        database_url, "aggregate", "--period", "2026-Q3", "--passphrase-file", str(secret)
    )
    assert made.returncode == 0, made.stderr
    cells = orjson.loads(await conn.fetchval("SELECT cells::text FROM releases"))
    [group] = cells["groups"]
    written = group["questions"]["comment"]
    assert set(written) == {"written", "skipped"}
    # 2 x threshold comments and two blank ones; the noise's scale is 3 / 2.5, so it is
    # beyond 20 once in about 17 million releases.
    assert abs(written["written"] - 2 * DEFAULT_THRESHOLD) <= 20
    worker = await connect(database_url, role=WORKER)
    try:
        await views.draw_program(worker, t.organisation_id, t.program_id)
    finally:
        await worker.close()
    # A line may count comments alone; while one does, comments cannot be turned off.
    alone = feedback(
        database_url,
        "plan", "add", "--year", "2027", "-p", "shelter", "-q", "comment", "--epsilon", "0.5",
    )  # fmt: skip
    assert alone.returncode == 0, alone.stderr
    off = one_error(feedback(database_url, "organisations", "set", "--no-comments"))
    assert "counts comments written: remove it first" in off
    assert await conn.fetchval("SELECT comments_enabled FROM organisations")
    page = await conn.fetchval("SELECT charts::text FROM release_views")
    assert "wrote a comment (a noisy count" in page
    for stored in ("SELECT cells::text FROM releases", "SELECT charts::text FROM release_views"):
        assert "marker" not in await conn.fetchval(stored)
