"""The admin's pages for the organisation: settings, programs, keys (read only), users' role
and programs, enabling a disabled user again, and the audit log filtered and as CSV."""

from __future__ import annotations

import csv
import io

from feedback.db import Connection
from tests.publish.conftest import StaffClient, World, login, post_form


async def test_an_admin_keeps_the_organisation_s_settings_and_programs(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    async with staff_client(world.admin) as admin:
        saved = await post_form(
            admin,
            "/staff/admin/organisation",
            name="Org Aid",
            sms_number="+1 555 010 0000",
            sms_name="Org",
            sms_help="Reply STOP to end.",
            comments="on",
        )
        assert saved.status_code == 200, saved.text
        assert "Saved." in saved.text
        row = await conn.fetchrow(
            "SELECT name, sms_number, sms_name, sms_help_text, comments_enabled "
            "FROM organisations WHERE id = $1",
            world.org.organisation_id,
        )
        assert row is not None
        assert tuple(row) == ("Org Aid", "+15550100000", "Org", "Reply STOP to end.", True)
        refused = await post_form(
            admin, "/staff/admin/organisation", name="Org Aid", sms_number="call me"
        )
        assert refused.status_code == 400
        assert "is not a phone number" in refused.text
        assert await conn.fetchval(
            "SELECT comments_enabled FROM organisations WHERE id = $1", world.org.organisation_id
        )  # one bad value: nothing changed

        made = await post_form(admin, "/staff/admin/programs", slug="street", name="Street Team")
        assert made.status_code == 303, made.text
        twice = await post_form(admin, "/staff/admin/programs", slug="street", name="Again")
        assert "exists already" in twice.text
        renamed = await post_form(
            admin, "/staff/admin/programs", "/staff/admin/programs/street/rename", name="Outreach 2"
        )
        assert renamed.status_code == 303
        names = await conn.fetch(
            "SELECT name FROM programs WHERE organisation_id = $1 AND slug = 'street'",
            world.org.organisation_id,
        )
        assert [r["name"] for r in names] == ["Outreach 2"]

        keys = await admin.get("/staff/admin/keys")
        assert str(world.org.key_id) in keys.text
        assert "current" in keys.text
        assert "wrapped" not in keys.text
    async with staff_client(world.manager) as manager:
        assert (await manager.get("/staff/admin/organisation")).status_code == 404
        assert (await manager.get("/staff/admin/keys")).status_code == 404
    async with staff_client(world.stranger) as stranger:  # another organisation's admin
        other = await stranger.get("/staff/admin/programs")
        assert "Outreach 2" not in other.text
        gone = await post_form(
            stranger, "/staff/admin/programs", "/staff/admin/programs/street/rename", name="X"
        )
        assert gone.status_code == 404
    actions = [r["action"] for r in await conn.fetch("SELECT action FROM audit_log")]
    assert {"organisation.set", "program.create", "program.rename"} <= set(actions)
    said = await conn.fetchval("SELECT subject FROM audit_log WHERE action = 'organisation.set'")
    assert said == "comments_enabled,name,sms_help_text,sms_name,sms_number"  # what changed


async def test_an_admin_changes_a_user_s_access_and_enables_them_again(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    viewer = await conn.fetchval("SELECT id FROM users WHERE email = $1", world.viewer)
    async with staff_client(world.viewer) as before:
        assert (await before.get("/staff/p/shelter/")).status_code == 200
        async with staff_client(world.admin) as admin:
            changed = await post_form(
                admin,
                "/staff/admin/users",
                f"/staff/admin/users/{viewer}/access",
                role="manager",
                program=str(world.outreach),
            )
            assert f"{world.viewer} is now manager." in changed.text
            own = await conn.fetchval("SELECT id FROM users WHERE email = $1", world.admin)
            mine = await post_form(
                admin, "/staff/admin/users", f"/staff/admin/users/{own}/access", role="viewer"
            )
            assert mine.status_code == 400
        assert (await before.get("/staff/")).status_code == 303  # the old rights ended
    async with staff_client(world.viewer) as after:
        assert (await after.get("/staff/p/shelter/")).status_code == 404
        assert (await after.get("/staff/p/outreach/")).status_code == 200
    async with staff_client(world.admin) as admin:
        await post_form(admin, "/staff/admin/users", f"/staff/admin/users/{viewer}/disable")
        async with staff_client(None) as fresh:
            assert (await login(fresh, world.viewer)).status_code == 401
        enabled = await post_form(
            admin, "/staff/admin/users", f"/staff/admin/users/{viewer}/enable"
        )
        assert "can log in again with their passphrase" in enabled.text
        async with staff_client(None) as fresh:
            assert (await login(fresh, world.viewer)).status_code == 303

        # The audit log, filtered by who and what, and the same as CSV.
        shown = await admin.get(
            "/staff/admin/audit", params={"who": "admin@org", "what": "user.enable"}
        )
        assert "<td>user.enable</td>" in shown.text
        assert "<td>user.access</td>" not in shown.text
        exported = await admin.get(
            "/staff/admin/audit.csv", params={"what": "user.access", "since": "2000-01-01"}
        )
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [(r["who"], r["what"], r["on"]) for r in rows] == [
            (world.admin, "user.access", world.viewer)
        ]
        bad = await admin.get("/staff/admin/audit", params={"since": "last week"})
        assert bad.status_code == 400
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'audit.export'") == 1
