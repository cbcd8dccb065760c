"""Funders (issue 14): an admin adds a funder and the programs it may see; its private link
opens its archive (every access audited) until it is revoked (then 404, audited); the staff
dashboard shows the publication history and lets an admin publish now, which the worker
does."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
import httpx
import pytest

from feedback.aggregate.signing import create_signing_key
from feedback.bundles import BundleError
from feedback.cli.publishing import publications_job, publish, shown_reason
from feedback.db import STAFF, Connection, Pool, connect
from feedback.jobs import run_now
from feedback.minisign import PublicKey
from feedback.publish.funders import hash_link
from feedback.publish.publication_pages import SUMMARY_POLICY
from feedback.publish.publications import NothingToPublish
from feedback.schedules import schedule_of
from feedback.stats.periods import Period
from feedback.wrapping import INSECURE_TEST
from tests.cli import run_feedback
from tests.publish.conftest import StaffClient, World, csrf_of
from tests.publish.test_publications import PASSPHRASE, TODAY, signed

__all__ = ["signed"]  # the fixture


async def submit(
    client: httpx.AsyncClient, url: str, data: dict[str, str | list[str]]
) -> httpx.Response:
    """Post a form as a browser would: the token from the page, from our own origin."""
    token = csrf_of((await client.get("/staff/admin/funders")).text)
    return await client.post(
        url, data={"csrf": token, **data}, headers={"sec-fetch-site": "same-origin"}
    )


async def add(client: httpx.AsyncClient, name: str, *programs: str) -> str:
    page = await client.get("/staff/admin/funders")
    ids = {
        label: value
        for value, label in re.findall(r'value="([0-9a-f-]{36})"> ([^<]+)</label>', page.text)
    }
    response = await submit(
        client,
        "/staff/admin/funders",
        {"name": name, "program": [ids[p] for p in programs]},
    )
    assert response.status_code == 200, response.text
    found = re.search(r"<code>(http[^<]+/funder/[^<]+/)</code>", response.text)
    assert found is not None
    return found[1].split("/staff", 1)[1]


async def test_a_funder_link_opens_the_archive_of_what_it_may_see_until_revoked(
    world: World,
    signed: Path,
    staff_client: StaffClient,
    worker_conn: Connection,
    conn: Connection,
    database_url: str,
) -> None:
    schedule = await schedule_of(worker_conn, world.org.organisation_id, "quarterly")
    await publish(
        worker_conn, schedule, Period.parse("2026-Q3"), passphrase=PASSPHRASE, issued=TODAY
    )
    async with staff_client(world.admin) as admin:
        both = await add(admin, "Both Foundation", "Shelter", "Outreach")
        shelter_only = await add(admin, "Shelter Trust", "Shelter")
    token = both.split("/")[2]
    stored = await conn.fetchval(
        "SELECT link_token_hash FROM funders WHERE name = 'Both Foundation'"
    )
    assert stored == hash_link(token)  # only the hash is kept
    assert token.encode() not in b"".join(
        r["link_token_hash"] for r in await conn.fetch("SELECT link_token_hash FROM funders")
    )
    async with staff_client(None) as funder:
        archive = await funder.get("/staff" + both)
        assert archive.status_code == 200
        assert "2026-Q3" in archive.text
        assert "untrusted comment" in archive.text  # the public key, to save
        summary_link = re.search(r'href="[^"]*(/funder/[^"]+/summary\.html)"', archive.text)
        bundle_link = re.search(r'href="[^"]*(/funder/[^"]+\.tar\.gz)"', archive.text)
        assert summary_link is not None
        assert bundle_link is not None
        summary = await funder.get("/staff" + summary_link[1])
        assert summary.status_code == 200
        assert summary.headers["content-security-policy"] == SUMMARY_POLICY
        assert summary.text.count("<svg") > 0
        bundle = await funder.get("/staff" + bundle_link[1])
        assert bundle.headers["content-type"] == "application/gzip"
        # Anything but the summary and its pictures downloads, sandboxed: a file another
        # organisation wrote (a network's member bundles) never runs on this origin.
        svg = summary_link[1].replace("summary.html", "figures.json")
        served = await funder.get("/staff" + svg)
        assert served.headers["content-disposition"].startswith("attachment")
        assert served.headers["content-security-policy"].startswith("sandbox;")
        # The publication shows both programs: a funder of the shelter alone does not see it.
        other = await funder.get("/staff" + shelter_only)
        assert "Nothing published for you yet" in other.text
        hidden = summary_link[1].replace(both, shelter_only)
        assert (await funder.get("/staff" + hidden)).status_code == 404
    viewed = await conn.fetch(
        "SELECT action, subject FROM audit_log WHERE action LIKE 'funder.%' ORDER BY id"
    )
    assert [r["action"] for r in viewed].count("funder.view") >= 4
    async with staff_client(world.admin) as admin:
        page = await admin.get("/staff/admin/funders")
        revoke = re.search(r'action="[^"]*(/admin/funders/[0-9a-f-]+/revoke)"', page.text)
        assert revoke is not None
        both_id = await conn.fetchval("SELECT id FROM funders WHERE name = 'Both Foundation'")
        await submit(admin, f"/staff/admin/funders/{both_id}/revoke", {})
    async with staff_client(None) as funder:
        assert (await funder.get("/staff" + both)).status_code == 404
        assert (await funder.get("/staff" + summary_link[1])).status_code == 404
        unknown = "/staff/funder/" + "A" * 22 + "/"
        assert (await funder.get(unknown)).status_code == 404
    # Audited once a day per revoked link, so that a leaked one cannot flood the log.
    refused = await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'funder.refused'")
    assert refused == 1
    # And a revoked link stays revoked, even for the staff role's own SQL.
    staff = await connect(database_url, role=STAFF)
    try:
        with pytest.raises(asyncpg.CheckViolationError, match="stays revoked"):
            await staff.execute("UPDATE funders SET revoked_on = NULL")
    finally:
        await staff.close()


async def test_funder_links_of_another_organisation_or_wrong_input_change_nothing(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    async with staff_client(world.stranger) as stranger:
        mine = await conn.fetchval(
            "SELECT id FROM programs WHERE organisation_id = $1", world.org.organisation_id
        )
        response = await submit(
            stranger, "/staff/admin/funders", {"name": "Sneaky", "program": [str(mine)]}
        )
        assert response.status_code == 400
        assert "is not one of this organisation" in response.text
    async with staff_client(world.admin) as admin:
        response = await submit(admin, "/staff/admin/funders", {"name": "No programs"})
        assert response.status_code == 400
        assert "choose at least one program" in response.text
        other = await conn.fetchval(
            "SELECT id FROM funders WHERE organisation_id = $1", world.other.organisation_id
        )
        assert other is None
    assert await conn.fetchval("SELECT count(*) FROM funders") == 0


async def test_an_admin_publishes_now_and_the_worker_does_it(
    world: World,
    signed: Path,
    staff_client: StaffClient,
    worker_pool: Pool,
    database_url: str,
    conn: Connection,
) -> None:
    async with staff_client(world.admin) as admin:
        page = await admin.get("/staff/admin/publications")
        assert "Series quarterly: quarterly on the 5th" in page.text
        wrong = await submit(
            admin, "/staff/admin/publications", {"series": "quarterly", "period": "2026"}
        )
        assert wrong.status_code == 400
        assert "not an ended quarter" in wrong.text
        asked = await submit(
            admin, "/staff/admin/publications", {"series": "quarterly", "period": "2026-Q2"}
        )
        assert asked.status_code == 303
        assert "waiting for the worker" in (await admin.get("/staff/admin/publications")).text
    await run_now(worker_pool, publications_job(signed, database_url))
    periods = {r["period"] for r in await conn.fetch("SELECT period FROM publications")}
    assert "2026-Q2" in periods
    async with staff_client(world.admin) as admin:
        page = await admin.get("/staff/admin/publications")
        assert "publication " in page.text
        link = re.search(r'href="[^"]*(/admin/publications/[0-9a-f-]+\.tar\.gz)"', page.text)
        assert link is not None
        bundle = await admin.get("/staff" + link[1])
        assert bundle.status_code == 200
        assert bundle.content[:2] == b"\x1f\x8b"  # gzip
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action IN "
            "('publication.request', 'publication.download')"
        )
        == 2
    )


async def test_the_worker_settles_every_request_and_publishes_no_unended_period(
    world: World, signed: Path, worker_pool: Pool, database_url: str, conn: Connection
) -> None:
    staff = await connect(database_url, role=STAFF)
    try:
        for period in ("2026-Q4", "2026", "2026-Q2"):  # not ended; not a quarter; fine
            await staff.execute(
                "INSERT INTO publication_requests (organisation_id, series, period) "
                "VALUES ($1, 'quarterly', $2)",
                world.org.organisation_id,
                period,
            )
        for garbage in ("garbage", "0000", "9999-Q4"):
            with pytest.raises(asyncpg.CheckViolationError):
                await staff.execute(
                    "INSERT INTO publication_requests (organisation_id, series, period) "
                    "VALUES ($1, 'quarterly', $2)",
                    world.org.organisation_id,
                    garbage,
                )
    finally:
        await staff.close()
    await run_now(worker_pool, publications_job(signed, database_url))
    outcomes = {
        r["period"]: r["outcome"]
        for r in await conn.fetch(
            "SELECT period, outcome FROM publication_requests WHERE requested_by IS NULL "
            "AND settled_on IS NOT NULL"
        )
    }
    assert "has not ended" in outcomes["2026-Q4"]
    assert "is not a period of the series" in outcomes["2026"]
    assert outcomes["2026-Q2"].startswith("publication ")
    periods = {r["period"] for r in await conn.fetch("SELECT period FROM publications")}
    assert periods == {"2026-Q2", "2026-Q3"}  # the request's, and the schedule's own


def test_why_a_publication_was_not_made_counts_no_survivors() -> None:
    leaky = BundleError("37 submissions of 2026-Q3 were set aside")  # a message it never shows
    assert "37" not in shown_reason(leaky)
    assert "BundleError" in shown_reason(leaky)
    plain = NothingToPublish("no release of 2026-Q3 has been made for shelter")
    assert shown_reason(plain) == str(plain)


async def test_funders_from_the_command_line(
    world: World, staff_client: StaffClient, database_url: str, conn: Connection
) -> None:
    made = run_feedback(
        "funders", "add", "Trust", "-o", "org", "-p", "shelter", database_url=database_url
    )
    assert made.returncode == 0, made.stderr
    link = re.search(r"/staff(/funder/[A-Za-z0-9_-]{22}/)", made.stdout)
    assert link is not None
    async with staff_client(None) as funder:
        assert (await funder.get("/staff" + link[1])).status_code == 200
    listed = run_feedback("funders", "list", "-o", "org", database_url=database_url)
    assert "Trust  (Shelter)  link active" in listed.stdout
    funder_id = listed.stdout.split()[0]
    wrong = run_feedback(
        "funders", "add", "X", "-o", "org", "-p", "nowhere", database_url=database_url
    )
    assert wrong.returncode == 1
    assert "no program 'nowhere'" in wrong.stderr
    revoked = run_feedback("funders", "revoke", "-o", "org", funder_id, database_url=database_url)
    assert revoked.returncode == 0, revoked.stderr
    async with staff_client(None) as funder:
        assert (await funder.get("/staff" + link[1])).status_code == 404
    actions = [r["action"] for r in await conn.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert [a for a in actions if a.startswith("funder.")][:3] == [
        "funder.add",
        "funder.view",
        "funder.revoke",
    ]


async def test_after_a_key_rotation_the_archive_names_the_key_of_each_publication(
    world: World, signed: Path, staff_client: StaffClient, worker_conn: Connection
) -> None:
    schedule = await schedule_of(worker_conn, world.org.organisation_id, "quarterly")
    q2, q3 = Period.parse("2026-Q2"), Period.parse("2026-Q3")
    await publish(worker_conn, schedule, q2, passphrase=PASSPHRASE, issued=TODAY)
    await create_signing_key(
        worker_conn,
        organisation_id=world.org.organisation_id,
        passphrase=PASSPHRASE,
        retire_current=True,
        cost=INSECURE_TEST,
    )
    await publish(worker_conn, schedule, q3, passphrase=PASSPHRASE, issued=TODAY)
    keys = [
        PublicKey.of(r["public_key"]).hex_id
        for r in await worker_conn.fetch(
            "SELECT public_key FROM signing_keys ORDER BY retired_week NULLS LAST"
        )
    ]
    async with staff_client(world.admin) as admin:
        link = await add(admin, "Both Foundation", "Shelter", "Outreach")
    async with staff_client(None) as funder:
        archive = (await funder.get("/staff" + link)).text
    assert f"Key {keys[0]} (retired: it signed earlier publications)" in archive
    assert f"Key {keys[1]}</p>" in archive
    rows = re.findall(r"<td>(2026-Q\d)</td>.*?<td>([0-9A-F]{16})</td>", archive)
    assert dict(rows) == {"2026-Q2": keys[0], "2026-Q3": keys[1]}
