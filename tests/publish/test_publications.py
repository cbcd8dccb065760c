"""Signed publications (issue 14): made by the worker's schedule once however often it runs,
built from releases only, checked by `feedback verify` and by the reference minisign, and
chained across a series."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import re
import shutil
import subprocess
from decimal import Decimal
from html import unescape
from pathlib import Path

import pytest
from playwright.sync_api import FloatRect

from feedback.aggregate.keys import create_collection_key
from feedback.aggregate.signing import create_signing_key
from feedback.bundles import MANIFEST, SIGNATURE, check, remember
from feedback.cli.publications import export
from feedback.cli.publishing import KEY_FILE, publications_job, publish
from feedback.db import WORKER, Connection, Pool, connect
from feedback.envelope import Envelope
from feedback.jobs import run_now, run_once
from feedback.minisign import PublicKey
from feedback.publish import publications
from feedback.publish.reports import program_releases
from feedback.schedules import add_schedule, schedule_of
from feedback.sealing import load_public_key, seal
from feedback.stats.periods import Period
from feedback.stats.plans import add_line
from feedback.wrapping import INSECURE_TEST
from tests import factories
from tests.browser import ARTIFACTS, AXE, WCAG_21_AA, chromium
from tests.publish.conftest import World, add_release

PASSPHRASE = "correct horse battery staple lantern"
TODAY = dt.datetime.now(dt.UTC).date()


@pytest.fixture
async def signed(world: World, worker_conn: Connection, tmp_path: Path) -> Path:
    """The world's organisation with a signing key, a quarterly series and a passphrase file
    the worker reads; returns the passphrase folder."""
    await create_signing_key(
        worker_conn,
        organisation_id=world.org.organisation_id,
        passphrase=PASSPHRASE,
        cost=INSECURE_TEST,
    )
    await add_schedule(worker_conn, world.org.organisation_id, "quarterly", "quarter", 5, None)
    folder = tmp_path / "passphrases"
    folder.mkdir()
    (folder / "org").write_text(PASSPHRASE + "\n")
    (folder / "org").chmod(0o600)
    return folder


async def exported(conn: Connection, sequence: int, target: Path) -> Path:
    packed = await conn.fetchval(
        "SELECT archive FROM publications WHERE series = 'quarterly' AND sequence = $1", sequence
    )
    return export(packed, target)


async def published_q3(conn: Connection, world: World, tmp_path: Path) -> Path:
    """The world's 2026-Q3 publication, as exported for a funder."""
    schedule = await schedule_of(conn, world.org.organisation_id, "quarterly")
    await publish(conn, schedule, Period.parse("2026-Q3"), passphrase=PASSPHRASE, issued=TODAY)
    return await exported(conn, 1, tmp_path / "bundle")


async def public_key(conn: Connection, world: World) -> PublicKey:
    key = await conn.fetchval(
        "SELECT public_key FROM signing_keys WHERE organisation_id = $1",
        world.org.organisation_id,
    )
    return PublicKey.of(key)


async def test_a_scheduled_publication_is_made_once_however_often_the_job_runs(
    world: World, signed: Path, worker_pool: Pool, database_url: str, conn: Connection
) -> None:
    job = publications_job(signed, database_url)
    assert await run_once(worker_pool, job)
    assert await run_once(worker_pool, job)  # again: the period is published already
    await run_now(worker_pool, job)  # run by hand: publishes nothing new
    rows = await conn.fetch("SELECT series, sequence, period, next_due FROM publications")
    schedule = await schedule_of(conn, world.org.organisation_id, "quarterly")
    due = schedule.latest_due(TODAY)
    assert [(r["series"], r["sequence"], r["period"]) for r in rows] == [("quarterly", 1, str(due))]
    assert rows[0]["next_due"] == schedule.next_due(due)


async def test_two_workers_publishing_at_once_make_one_publication(
    world: World, signed: Path, database_url: str, conn: Connection
) -> None:
    schedule = await schedule_of(conn, world.org.organisation_id, "quarterly")

    async def one() -> bool:
        worker = await connect(database_url, role=WORKER)
        try:
            made = await publish(
                worker, schedule, Period.parse("2026-Q3"), passphrase=PASSPHRASE, issued=TODAY
            )
            return made.created
        finally:
            await worker.close()

    assert sorted(await asyncio.gather(one(), one())) == [False, True]
    assert await conn.fetchval("SELECT count(*) FROM publications") == 1


async def test_a_publication_and_its_correction_verify_and_chain(
    world: World, signed: Path, worker_conn: Connection, tmp_path: Path
) -> None:
    schedule = await schedule_of(worker_conn, world.org.organisation_id, "quarterly")
    q3 = Period.parse("2026-Q3")
    await publish(worker_conn, schedule, q3, passphrase=PASSPHRASE, issued=TODAY)
    fixed = await publish(
        worker_conn,
        schedule,
        q3,
        passphrase=PASSPHRASE,
        issued=TODAY,
        corrects=1,
        why="the outreach program was left out",
    )
    assert (fixed.sequence, fixed.created) == (2, True)
    # A late publication of an earlier period promises the date after the latest one.
    await publish(
        worker_conn, schedule, Period.parse("2026-Q2"), passphrase=PASSPHRASE, issued=TODAY
    )
    dues = await worker_conn.fetch("SELECT next_due FROM publications ORDER BY sequence")
    assert {r["next_due"] for r in dues} == {schedule.next_due(q3)}
    key = await public_key(worker_conn, world)
    state = tmp_path / "state"
    for sequence in (1, 2):
        bundle = await exported(worker_conn, sequence, tmp_path / f"q-{sequence}")
        report = check(bundle, key)
        remember(state, report, TODAY)
        assert report.ok, report.problems
        assert report.manifest is not None
        assert report.manifest.sequence == sequence
    assert report.manifest is not None
    assert report.manifest.corrects == 1
    assert report.manifest.why == "the outreach program was left out"
    # The same publication as a .tar.gz, as a funder may receive it.
    packed = await exported(worker_conn, 2, tmp_path / "q-2.tar.gz")
    assert check(packed, key).ok


async def test_verify_names_the_file_when_any_byte_of_any_file_changes(
    world: World, signed: Path, worker_conn: Connection, tmp_path: Path
) -> None:
    bundle = await published_q3(worker_conn, world, tmp_path)
    key = await public_key(worker_conn, world)
    paths = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert {MANIFEST, SIGNATURE, publications.SUMMARY, publications.FIGURES} <= set(paths)
    assert any(p.endswith(".png") for p in paths)
    assert any(p.endswith(".svg") for p in paths)
    for path in paths:
        target = bundle / path
        original = target.read_bytes()
        flipped = bytearray(original)
        at = len(flipped) // 2
        flipped[at] = flipped[at] ^ 0x01
        target.write_bytes(bytes(flipped))
        try:
            report = check(bundle, key)
        finally:
            target.write_bytes(original)
        assert not report.ok, path
        named = MANIFEST if path in (MANIFEST, SIGNATURE) else path
        assert any(p.startswith(named) for p in report.problems), (path, report.problems)
    assert check(bundle, key).ok


async def test_the_reference_minisign_verifies_the_manifest(
    world: World, signed: Path, worker_conn: Connection, tmp_path: Path
) -> None:
    bundle = await published_q3(worker_conn, world, tmp_path)
    key_file = tmp_path / "org.pub"
    key = await public_key(worker_conn, world)
    key_file.write_text(key.file("org signing key"))
    assert PublicKey.parse((bundle / KEY_FILE).read_text()) == key
    done = subprocess.run(  # noqa: ASYNC221 - the test waits for it anyway
        [
            shutil.which("minisign") or "minisign",
            "-V",
            "-p",
            str(key_file),
            "-m",
            str(bundle / MANIFEST),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "series=quarterly sequence=1 previous=none" in done.stdout


async def test_the_summary_opens_offline_and_its_figures_come_from_the_releases(
    world: World, signed: Path, worker_conn: Connection, tmp_path: Path
) -> None:
    await add_release(
        worker_conn,
        world.org,
        "2026-Q3",
        kind="indices",
        epsilon=0.5,
        whole_organisation=True,
        draw=False,
    )
    bundle = await published_q3(worker_conn, world, tmp_path)
    html = (bundle / publications.SUMMARY).read_text()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert csp is not None
    policy = unescape(csp[1])
    assert policy.startswith("default-src 'none';")
    assert "connect-src" not in policy
    assert "script-src" not in policy
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]", html), "no URL of another origin"
    assert "<script" not in html
    figures = json.loads((bundle / publications.FIGURES).read_text())
    assert html.count("<svg") == len(figures["charts"]) > 0
    # Each release of the period is carded, and a card's figures are the release's own.
    releases = [
        r
        for r in await program_releases(
            worker_conn, world.org.organisation_id, world.org.program_id
        )
        if r.period == Period.parse("2026-Q3")
    ]
    cards = {c["release"]: c for c in figures["releases"]}
    whole = await program_releases(worker_conn, world.org.organisation_id, None)
    assert len(whole) == 1  # the whole organisation's, shown beside the programs'
    assert set(cards) == {str(r.id) for r in [*releases, *whole]}
    assert cards[str(whole[0].id)]["program"] == publications.WHOLE
    assert any(c["program"] == publications.WHOLE for c in figures["charts"])
    indices = next(r for r in releases if r.kind == "indices" and r.breakdown is None)
    card = cards[str(indices.id)]
    for field in (
        "published_by", "use", "period", "privacy_unit", "epsilon", "epsilon_spent_in_year",
        "mechanism", "noise_scale", "threshold", "figures", "not_noised", "code_version",
        "protection",
    ):  # fmt: skip
        assert card[field], field
    value = indices.index("rights")
    assert value.value is not None
    assert value.low is not None
    assert value.high is not None
    shown = next(f for f in card["figures"] if f["figure"] == "Treated with rights")
    assert (shown["value"], shown["low"], shown["high"]) == (
        round(value.value, 1), math.floor(value.low * 10) / 10, math.ceil(value.high * 10) / 10
    )  # fmt: skip  # to a tenth, the ends outward
    assert card["epsilon"] == float(indices.epsilon)
    assert f"{2.718281828 ** float(indices.epsilon):.2f}" in card["protection"]
    assert "Methodology" in html
    assert "cannot show" in html
    # One family of verdicts for the whole publication, said in its words and in figures.json.
    assert "Key findings" in html
    assert "in this publication is wrong by chance is at most 5%" in html
    assert "covers sampling" in html
    assert "not in it at all" in html  # who answered none of an index's questions
    assert "held at the end of the scale" in html  # where clamping biases a figure
    assert "judged together by Holm" in figures["verdict_rule"]
    assert {v["verdict"] for v in figures["verdicts"]} <= {"higher", "lower", "can't tell"}


async def test_a_due_publication_the_worker_cannot_sign_is_recorded_not_made(
    world: World, signed: Path, worker_pool: Pool, database_url: str, conn: Connection
) -> None:
    (signed / "org").unlink()
    await run_now(worker_pool, publications_job(signed, database_url))
    assert await conn.fetchval("SELECT count(*) FROM publications") == 0
    outcome = await conn.fetchval("SELECT outcome FROM publication_requests")
    assert "no passphrase file" in outcome


async def test_a_correction_must_say_why_and_name_a_publication_of_the_period(
    world: World, signed: Path, worker_conn: Connection
) -> None:
    schedule = await schedule_of(worker_conn, world.org.organisation_id, "quarterly")
    q3 = Period.parse("2026-Q3")
    await publish(worker_conn, schedule, q3, passphrase=PASSPHRASE, issued=TODAY)
    with pytest.raises(Exception, match="say why"):
        await publish(
            worker_conn, schedule, q3, passphrase=PASSPHRASE, issued=TODAY, corrects=1, why=" "
        )
    with pytest.raises(Exception, match="is of 2026-Q3, not 2026-Q2"):
        await publish(
            worker_conn, schedule, Period.parse("2026-Q2"), passphrase=PASSPHRASE, issued=TODAY,
            corrects=1, why="x",
        )  # fmt: skip
    assert await worker_conn.fetchval("SELECT count(*) FROM publications") == 1


def open_offline(summary: Path, screenshot: Path) -> tuple[list[str], list[FloatRect]]:
    """The summary opened from disk in Chromium with the network off: every request it made
    (beyond the file itself) and each chart's drawn size."""
    requests: list[str] = []
    with chromium() as browser:
        context = browser.new_context(offline=True)
        page = context.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: requests.append(f"console {m.type}: {m.text}"))
        page.goto(summary.as_uri())
        page.wait_for_load_state("load")
        boxes = [
            box
            for svg in page.query_selector_all("div.chart > svg")
            if (box := svg.bounding_box()) is not None
        ]
        page.screenshot(path=str(screenshot), full_page=True)
        context.close()
        # And axe-core finds nothing against WCAG 2.1 AA (injected: the page allows no script).
        checking = browser.new_context(offline=True, bypass_csp=True)
        page = checking.new_page()
        page.goto(summary.as_uri())
        page.add_script_tag(path=str(AXE))
        result = page.evaluate(
            "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})",
            WCAG_21_AA,
        )
        violations = [(v["id"], v["help"], len(v["nodes"])) for v in result["violations"]]
        assert violations == [], violations
        checking.close()
    return [r for r in requests if r != summary.as_uri()], boxes


@pytest.mark.slow
async def test_the_summary_renders_every_chart_offline_in_chromium(
    world: World, signed: Path, worker_conn: Connection, tmp_path: Path
) -> None:
    bundle = await published_q3(worker_conn, world, tmp_path)
    charts = json.loads((bundle / publications.FIGURES).read_text())["charts"]
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "publication-summary.png"
    requests, boxes = await asyncio.to_thread(
        open_offline, bundle / publications.SUMMARY, screenshot
    )
    assert requests == []  # no request, and no console message (a CSP violation would log)
    assert len(boxes) == len(charts) > 0
    assert all(box["width"] > 200 and box["height"] > 100 for box in boxes), boxes
    assert screenshot.stat().st_size > 10_000


async def test_a_due_publication_makes_its_missing_planned_releases_first(
    conn: Connection, worker_pool: Pool, database_url: str, tmp_path: Path
) -> None:
    t = await factories.tenant(conn)
    key_id = await create_collection_key(
        conn,
        organisation_id=t.organisation_id,
        passphrase=PASSPHRASE,
        retire_current=True,
        cost=INSECURE_TEST,
    )
    await create_signing_key(
        conn, organisation_id=t.organisation_id, passphrase=PASSPHRASE, cost=INSECURE_TEST
    )
    public_key = load_public_key(
        await conn.fetchval("SELECT public_key FROM collection_keys WHERE id = $1", key_id)
    )
    for i in range(40):
        envelope = Envelope("rights-based", 1, "en", {"believed": 1 + i % 5, "safe_now": 5})
        await factories.submission(
            conn,
            t,
            week=dt.date(2026, 8, 3),
            ciphertext=seal(public_key, envelope.to_plaintext()),
        )
    await add_line(
        conn,
        organisation_id=t.organisation_id,
        year=2026,
        program_id=t.program_id,
        survey_id=t.survey_id,
        granularity="quarter",
        questions=("believed", "safe_now"),
        breakdown=None,
        epsilon=Decimal(1),
    )
    await add_schedule(conn, t.organisation_id, "quarterly", "quarter", 5, None)
    passphrases = tmp_path / "passphrases"
    passphrases.mkdir()
    (passphrases / "org").write_text(PASSPHRASE + "\n")
    (passphrases / "org").chmod(0o600)
    assert await conn.fetchval("SELECT count(*) FROM releases") == 0
    await run_now(worker_pool, publications_job(passphrases, database_url))
    # The quarter due (2026-Q3 on 5 October) was released first, then published from it.
    q3 = await conn.fetchval("SELECT id FROM releases WHERE period_start = '2026-07-01'")
    assert q3 is not None
    figures = json.loads(
        await conn.fetchval(
            "SELECT data FROM publication_files f JOIN publications p ON p.id = f.publication_id "
            "WHERE p.period = '2026-Q3' AND f.path = $1",
            publications.FIGURES,
        )
    )
    assert [c["release"] for c in figures["releases"]] == [str(q3)]
