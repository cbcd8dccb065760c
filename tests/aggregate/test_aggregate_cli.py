"""`feedback aggregate` end to end: keys made by the CLI, answers sealed to them, a release."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from pathlib import Path

from feedback.db import Connection, Record
from feedback.envelope import Envelope
from feedback.sealing import load_public_key, seal
from tests import factories
from tests.cli import run_feedback

PASSPHRASE = "lantern quietly orbit mossy teapot"
WEEK = dt.date(2026, 8, 3)  # in 2026-Q3, which has ended


def feedback(database_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return run_feedback(
        *args,
        database_url=database_url,
        stdin=stdin,
        env={"FEEDBACK_INSECURE_TEST_KDF": "true"},
    )


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one `error:` line a refused command prints (and that it exited 1)."""
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return errors[0]


async def keys_from_the_cli(
    conn: Connection, database_url: str, tmp_path: Path
) -> tuple[Path, Record]:
    """The organisation's keys made by `feedback keys create`, not the factories': the
    passphrase file and the collection key's row (id, public key)."""
    await conn.execute("DELETE FROM collection_keys")
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    assert (
        feedback(database_url, "keys", "create", "--passphrase-file", str(secret)).returncode == 0
    )
    key = await conn.fetchrow("SELECT id, public_key FROM collection_keys")
    assert key is not None
    return secret, key


async def seal_in(
    conn: Connection, t: factories.Tenant, key: Record, envelope: Envelope, week: dt.date = WEEK
) -> None:
    """Store ``envelope`` as a submission of ``week``, sealed to ``key``."""
    await factories.submission(
        conn,
        t,
        week=week,
        ciphertext=seal(load_public_key(key["public_key"]), envelope.to_plaintext()),
    )


async def sealed_rows(conn: Connection, t: factories.Tenant, public_key: bytes, count: int) -> None:
    for i in range(count):
        envelope = Envelope("rights-based", 1, "en", {"believed": 1 + i % 5, "safe_now": 4})
        await factories.submission(
            conn,
            t,
            week=dt.date(2026, 8, 3),
            ciphertext=seal(load_public_key(public_key), envelope.to_plaintext()),
        )


async def test_aggregate_makes_one_release_then_returns_it(
    conn: Connection, database_url: str, tmp_path: Path
) -> None:
    t = await factories.tenant(conn)
    await conn.execute("DELETE FROM collection_keys")  # the CLI makes the real keys
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase at all\n")
    for path in (secret, wrong):
        path.chmod(0o600)
    assert (
        feedback(database_url, "keys", "create", "--passphrase-file", str(secret)).returncode == 0
    )
    public_key = await conn.fetchval("SELECT public_key FROM collection_keys")
    for i in range(40):
        envelope = Envelope("rights-based", 1, "en", {"believed": 1 + i % 5, "safe_now": 4})
        await factories.submission(
            conn,
            t,
            week=dt.date(2026, 8, 3),
            ciphertext=seal(load_public_key(public_key), envelope.to_plaintext()),
        )

    unplanned = feedback(
        database_url, "aggregate", "--period", "2026-Q3", "--passphrase-file", str(secret)
    )
    assert unplanned.returncode == 1
    assert "the 2026 plan holds no quarterly release" in unplanned.stderr
    planned = feedback(
        database_url,
        "plan",
        "add",
        "--year",
        "2026",
        "-q",
        "believed",
        "-q",
        "safe_now",
        "--accept-wide",
    )
    assert planned.returncode == 0, planned.stderr
    assert "believed: share +/-" in planned.stdout  # the accuracy preview comes first

    refused = feedback(
        database_url, "aggregate", "--period", "2026-Q3", "--passphrase-file", str(wrong)
    )
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].startswith("error: wrong passphrase")
    assert await conn.fetchval("SELECT count(*) FROM releases") == 0

    made = feedback(
        database_url, "aggregate", "--period", "2026-Q3", "--passphrase-file", str(secret)
    )
    assert made.returncode == 0, made.stderr
    assert "(made)" in made.stdout
    assert "set aside (did not open, or not a valid envelope): 0" in made.stdout
    again = feedback(
        database_url, "aggregate", "--period", "2026-Q3", "--passphrase-file", str(secret)
    )
    assert "already made; nothing was spent" in again.stdout
    assert await conn.fetchval("SELECT count(*) FROM privacy_ledger") == 1
    assert await conn.fetchval("SELECT bool_and(included_in_release) FROM submissions")

    exposed = tmp_path / "exposed"
    exposed.write_text(PASSPHRASE + "\n")
    exposed.chmod(0o644)
    loose = feedback(
        database_url, "aggregate", "--period", "2026-Q3", "--passphrase-file", str(exposed)
    )
    assert loose.returncode == 1
    assert "readable by others" in loose.stderr

    bad = feedback(
        database_url, "aggregate", "--period", "last quarter", "--passphrase-file", str(secret)
    )
    assert bad.returncode == 1
    assert "write 2026-07, 2026-Q3, 2026-H2 or 2026" in bad.stderr


async def test_plan_commands_show_the_budget_and_refuse_bad_values(
    conn: Connection, database_url: str
) -> None:
    await factories.tenant(conn)
    too_much = feedback(database_url, "plan", "budget", "--per-year", "11")
    assert too_much.returncode == 1
    assert "from 0 (nothing released) to 10; got 11" in too_much.stderr
    assert feedback(database_url, "plan", "budget", "--per-year", "nan").returncode == 2
    preview = feedback(
        database_url, "plan", "add", "--year", "2026", "--breakdown", "gender", "--dry-run"
    )
    assert preview.returncode == 0, preview.stderr
    assert "a group of 40 is suppressed" in preview.stdout
    assert "dry run: nothing stored" in preview.stdout
    assert await conn.fetchval("SELECT count(*) FROM release_plans") == 0

    assert feedback(database_url, "plan", "budget", "--per-year", "0").returncode == 0
    refused = feedback(database_url, "plan", "add", "--year", "2026", "--accept-wide")
    assert refused.returncode == 1
    assert "only 0 of the yearly budget of 0 is left" in refused.stderr
    shown = feedback(database_url, "plan", "show", "--year", "2026")
    assert "2026 budget: epsilon 0; spent 0, planned 0" in shown.stdout
    assert "no releases planned" in shown.stdout


async def test_the_advisor_plans_what_can_be_read_and_a_wide_line_needs_confirming(
    conn: Connection, database_url: str
) -> None:
    t = await factories.tenant(conn)  # default budget: 4 a year
    wide = feedback(database_url, "plan", "add", "--year", "2026", "-q", "believed", "--n", "20")
    assert "not planned: at 20 respondents per group the share of 'believed'" in one_error(wide)
    assert "--accept-wide" in wide.stderr
    assert await conn.fetchval("SELECT count(*) FROM release_plans") == 0

    advised = feedback(
        database_url, "plan", "advise", "--year", "2026", "-p", "shelter", "--respondents", "300"
    )
    assert advised.returncode == 0, advised.stderr
    assert "Treated with rights and Recovery every quarter" in advised.stdout
    assert "Each question's share agreeing once a year" in advised.stdout
    assert "nothing planned: add --apply" in advised.stdout
    assert await conn.fetchval("SELECT count(*) FROM release_plans") == 0
    applied = feedback(
        database_url,
        *("plan", "advise", "--year", "2026", "-p", "shelter", "--respondents", "300", "--apply"),
    )
    assert applied.returncode == 0, applied.stderr
    lines = await conn.fetch(
        "SELECT kind, granularity, epsilon, expected_n, program_id FROM release_plans ORDER BY kind"
    )
    assert [(r["kind"], r["granularity"]) for r in lines] == [
        ("indices", "quarter"),
        ("questions", "year"),
    ]
    assert lines[0]["expected_n"] == 75
    assert all(r["program_id"] == t.program_id for r in lines)
    assert sum(r["epsilon"] * (4 if r["granularity"] == "quarter" else 1) for r in lines) <= 4
    nothing_left = feedback(
        database_url, "plan", "advise", "--year", "2026", "--respondents", "300"
    )
    assert "of the 2026 budget is left to plan, too little" in one_error(nothing_left)


async def test_aggregate_refuses_running_periods_wrong_key_files_and_missing_keys(
    conn: Connection, database_url: str, tmp_path: Path
) -> None:
    t = await factories.tenant(conn)
    await conn.execute("DELETE FROM collection_keys")
    await conn.execute("UPDATE organisations SET epsilon_per_year = 10")
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text(PASSPHRASE + "\n")
    second.write_text("another quite different passphrase altogether\n")
    for path in (first, second):
        path.chmod(0o600)
    assert feedback(database_url, "keys", "create", "--passphrase-file", str(first)).returncode == 0
    old = await conn.fetchrow("SELECT id, public_key FROM collection_keys")
    assert old is not None
    await sealed_rows(conn, t, old["public_key"], 5)
    rotated = feedback(database_url, "keys", "rotate", "--passphrase-file", str(second))
    assert rotated.returncode == 0, rotated.stderr
    new = await conn.fetchrow(
        "SELECT id, public_key FROM collection_keys WHERE retired_week IS NULL"
    )
    assert new is not None
    await sealed_rows(conn, t, new["public_key"], 3)
    # As if the old key had been made in June and rotated in August (keys keep weeks only).
    await conn.execute(
        "UPDATE collection_keys SET created_week = '2026-06-01' WHERE id = $1", old["id"]
    )
    await conn.execute(
        "UPDATE collection_keys SET created_week = '2026-08-03' WHERE id = $1", new["id"]
    )
    assert (
        feedback(
            database_url, "plan", "add", "--year", "2026", "-q", "believed", "--accept-wide"
        ).returncode
        == 0
    )

    yearly = feedback(
        database_url,
        "plan",
        "add",
        "--year",
        "2026",
        "--every",
        "year",
        "-q",
        "safe_now",
        "--accept-wide",
    )
    assert yearly.returncode == 0, yearly.stderr
    running = one_error(
        feedback(database_url, "aggregate", "--period", "2026", "--passphrase-file", str(first))
    )
    assert "2026 has not ended" in running

    # The passphrase opens the old key only: Q3 needs the new one too (it took answers then),
    # and the key holder hears how many answers of Q3 came in its weeks.
    partly = feedback(
        database_url, "aggregate", "--period", "2026-Q3", "--passphrase-file", str(first)
    )
    assert partly.returncode == 1, partly.stderr
    assert f"not unlocked: {new['id']}" in partly.stdout
    assert "8 submissions of it arrived in weeks when those keys took answers" in partly.stdout

    exported = feedback(
        database_url,
        "keys",
        "export",
        "--out",
        str(tmp_path / "old.json"),
        "--key-id",
        str(old["id"]),
        "--passphrase-file",
        str(first),
    )
    assert exported.returncode == 0, exported.stderr
    forged = tmp_path / "forged.json"
    document = json.loads((tmp_path / "old.json").read_text())
    document["key_id"] = str(new["id"])  # the old private key under the new key's id
    forged.write_text(json.dumps(document))
    wrong_file = one_error(
        feedback(database_url, "aggregate", "--period", "2026-Q3", "--key-file", str(forged))
    )
    assert "does not match the public key stored" in wrong_file
    only_old = feedback(
        database_url, "aggregate", "--period", "2026-Q3", "--key-file", str(tmp_path / "old.json")
    )
    assert only_old.returncode == 1, only_old.stderr
    assert f"not unlocked: {new['id']}" in only_old.stdout
    assert await conn.fetchval("SELECT count(*) FROM releases") == 0
    assert await conn.fetchval("SELECT count(*) FROM privacy_ledger") == 0


async def test_an_indices_line_is_previewed_planned_and_released_within_its_epsilon(
    conn: Connection, database_url: str, tmp_path: Path
) -> None:
    t = await factories.tenant(conn)
    secret, key = await keys_from_the_cli(conn, database_url, tmp_path)
    for i in range(40):
        answers = {"believed": 4 + i % 2, "own_decisions": 3, "safe_now": 2 + i % 3}
        await seal_in(conn, t, key, Envelope("rights-based", 1, "en", answers))

    mixed = feedback(database_url, "plan", "add", "--indices", "-q", "believed")
    assert "name no --question" in one_error(mixed)
    planned = feedback(
        database_url, "plan", "add", "--year", "2026", "--indices", "--n", "60", "--epsilon", "1"
    )
    assert planned.returncode == 0, planned.stderr
    assert "Treated with rights, Recovery: each +/- 11.5 points (95%, sampling and noise" in (
        planned.stdout
    )
    assert "epsilon 0.31 to the counts of respondents, 0.59 to the sums, 0.1 to the sums of" in (
        planned.stdout
    )
    assert "indices (Treated with rights, Recovery), for about 60 respondents" in planned.stdout

    made = feedback(
        database_url, "aggregate", "--period", "2026-Q3", "--passphrase-file", str(secret)
    )
    assert made.returncode == 0, made.stderr
    assert re.search(
        r"all: Treated with rights [0-9.]+ \(95%, sampling and noise: [0-9.]+ to [0-9.]+\)",
        made.stdout,
    )
    release = await conn.fetchrow("SELECT kind, epsilon, cells FROM releases")
    assert release is not None
    assert release["kind"] == "indices"
    assert 0 < release["epsilon"] <= 1  # the three parts, never more than the line's epsilon
    assert await conn.fetchval("SELECT sum(epsilon) FROM privacy_ledger") == release["epsilon"]
    [group] = release["cells"]["groups"]
    assert group["group"] == "all"
    assert set(group["indices"]) == {"rights", "recovery"}
    assert all(cells != "S" for cells in group["indices"].values())  # 40 respondents: shown
