"""Logging in and out, throttling, CSRF, invited users and disabling them."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time

import pytest

from feedback.db import Connection
from feedback.publish.accounts import (
    FREE_FAILURES,
    AccountError,
    claim,
    login_waits,
    make_password_link,
    release,
    use_password_link,
    wait_after,
)
from feedback.publish.sessions import Sessions, _unb64
from tests.publish.conftest import (
    PASSWORD,
    SECRETS,
    StaffClient,
    World,
    csrf_of,
    login,
    post_form,
)


async def test_login_sets_a_strict_cookie_and_logout_ends_the_session(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    async with staff_client(None) as client:
        assert (await client.get("/staff/")).status_code == 303  # to the login page
        response = await login(client, world.manager)
        assert response.status_code == 303
        cookie = response.headers["set-cookie"].lower()
        for attribute in ("httponly", "samesite=strict", "path=/staff", "max-age=28800"):
            assert attribute in cookie
        assert "secure" not in cookie  # local development over http
        home = await client.get("/staff/")
        assert home.status_code == 200
        assert "Shelter" in home.text
        assert "Outreach" not in home.text
        assert await conn.fetchval("SELECT count(*) FROM staff_sessions") == 1
        # The cookie value is random; only its hash is stored.
        value = client.cookies.get("staff_session")
        assert value is not None
        stored = await conn.fetchval("SELECT id_hash FROM staff_sessions")
        assert value.split(".")[0].encode() not in stored

        out = await post_form(client, "/staff/", "/staff/logout")
        assert out.status_code == 303
        assert await conn.fetchval("SELECT count(*) FROM staff_sessions") == 0
        client.cookies.set("staff_session", value, path="/staff")
        assert (await client.get("/staff/")).status_code == 303  # the old cookie is dead


async def test_a_wrong_login_says_the_same_whether_or_not_the_account_exists(
    world: World, staff_client: StaffClient
) -> None:
    async with staff_client(None) as client:
        timings = {}
        for email in (world.manager, "nobody@nowhere.example"):
            started = time.perf_counter()
            response = await login(client, email, "not the passphrase")
            timings[email] = time.perf_counter() - started
            assert response.status_code == 401
            assert "do not open an account" in response.text
        # Both cost one argon2id check (about 60 ms here), not an instant "no such user".
        assert min(timings.values()) > 0.02


WAITS = login_waits(SECRETS.session)


async def put_off(conn: Connection, email: str, *, seconds: int) -> None:
    """The account's next check, ``seconds`` from now."""
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    await conn.execute("UPDATE users SET next_try = $2 WHERE email = $1", email, WAITS.seal(moment))


async def test_failures_put_off_the_next_check_but_never_lock_the_owner_out(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    async with staff_client(None) as client:
        for _ in range(FREE_FAILURES):
            assert (await login(client, world.viewer, "wrong guess")).status_code == 401
        sealed = await conn.fetchval("SELECT next_try FROM users WHERE email = $1", world.viewer)
        waiting = WAITS.open(sealed) - dt.datetime.now(dt.UTC)  # type: ignore[operator]
        assert dt.timedelta(0) < waiting <= dt.timedelta(seconds=1)
        # During the wait, even the right passphrase is not checked: the same answer.
        assert (await login(client, world.viewer)).status_code == 401
        await put_off(conn, world.viewer, seconds=0)
        assert (await login(client, world.viewer)).status_code == 303  # never locked out
    assert (
        await conn.fetchval("SELECT failed_logins FROM users WHERE email = $1", world.viewer) == 0
    )
    # Counted per account and day, for the organisation's admins; no audit row per guess.
    counted = await conn.fetchrow(
        "SELECT organisation_id, attempts FROM login_failures WHERE user_id IS NOT NULL"
    )
    assert counted is not None
    assert (counted["organisation_id"], counted["attempts"]) == (
        world.org.organisation_id,
        FREE_FAILURES + 1,
    )
    assert not await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'login.failed'")


def test_the_wait_grows_to_a_minute_and_no_further() -> None:
    waits = [wait_after(n).total_seconds() for n in range(12)]
    assert waits[:FREE_FAILURES] == [0] * FREE_FAILURES
    assert waits[FREE_FAILURES : FREE_FAILURES + 4] == [1, 2, 4, 8]
    assert max(waits) == 60


async def test_the_owners_browser_gets_in_while_a_guesser_keeps_the_account_waiting(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    async with staff_client(None) as owner, staff_client(None) as guesser:
        assert (await login(owner, world.viewer)).status_code == 303
        assert owner.cookies.get("staff_device", path="/staff")
        assert await conn.fetchval("SELECT count(*) FROM staff_devices") == 1
        for _ in range(FREE_FAILURES + 1):
            await login(guesser, world.viewer, "wrong guess")
            await put_off(conn, world.viewer, seconds=0)
        await put_off(conn, world.viewer, seconds=60)
        # Elsewhere, even the right passphrase waits; from the owner's browser it gets in.
        assert (await login(guesser, world.viewer)).status_code == 401
        assert (await login(owner, world.viewer)).status_code == 303
        # A new known device replaces the spent one; the guesser was given none.
        assert await conn.fetchval("SELECT count(*) FROM staff_devices") == 1
        assert not guesser.cookies.get("staff_device", path="/staff")

        # The cookie is spent by a check, so a stolen one gives one guess, not many.
        await put_off(conn, world.viewer, seconds=60)
        assert (await login(owner, world.viewer, "a typo")).status_code == 401
        assert await conn.fetchval("SELECT count(*) FROM staff_devices") == 0
        await put_off(conn, world.viewer, seconds=60)
        assert (await login(owner, world.viewer)).status_code == 401  # waits like anyone
        # Forged or foreign cookies are nobody's device.
        owner.cookies.set("staff_device", "AAAA.AAAA", path="/staff")
        assert (await login(owner, world.viewer)).status_code == 401


async def test_a_known_device_is_for_its_own_account_only(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    async with staff_client(None) as browser:
        assert (await login(browser, world.manager)).status_code == 303
        await put_off(conn, world.viewer, seconds=60)
        assert (await login(browser, world.viewer)).status_code == 401
        assert await conn.fetchval("SELECT count(*) FROM staff_devices") == 1  # not spent
        # Nor does it take the address's limit off: 20 tries from here, then no more.
        tries = [(await login(browser, world.viewer, "guess")).status_code for _ in range(20)]
    assert tries[-1] == 429
    assert tries.count(401) == 18  # the manager's login and the try above were the others


async def test_a_forgotten_device_cookie_is_limited_like_anyone_and_cannot_lock_out_the_owner(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    async with staff_client(None) as browser:  # one app, so one set of limits

        def use(cookie: str | None) -> None:
            browser.cookies.clear()
            if cookie:
                browser.cookies.set("staff_device", cookie, path="/staff")

        assert (await login(browser, world.viewer)).status_code == 303
        stolen = browser.cookies.get("staff_device", path="/staff")
        await conn.execute("DELETE FROM staff_devices")  # an admin makes them forget it
        use(None)
        assert (await login(browser, world.viewer)).status_code == 303  # the owner
        owners = browser.cookies.get("staff_device", path="/staff")
        use(stolen)
        tries = [(await login(browser, world.viewer, "guess")).status_code for _ in range(21)]
        assert tries[-1] == 429  # the thief's address ran out...
        use(owners)
        assert (await login(browser, world.viewer)).status_code == 303  # ...not the owner's device


async def test_an_address_with_control_characters_is_a_failed_login(
    world: World, staff_client: StaffClient
) -> None:
    async with staff_client(None) as client:
        for email in ("\x00", world.viewer + "\x00", "a\nb@example.org"):
            refused = await login(client, email)
            assert refused.status_code == 401
            assert "do not open an account" in refused.text


async def test_parallel_guessers_get_one_check_at_a_time(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    async with staff_client(None) as client:
        answers = await asyncio.gather(
            *(login(client, world.viewer, f"guess {i}") for i in range(8))
        )
    assert [a.status_code for a in answers] == [401] * 8
    # Of eight at once, one claimed the account and was checked; the others found it claimed.
    assert (
        await conn.fetchval("SELECT failed_logins FROM users WHERE email = $1", world.viewer) == 1
    )


async def test_a_claim_whose_check_never_ran_is_given_back(world: World, conn: Connection) -> None:
    first = await claim(conn, WAITS, world.viewer)
    assert first.password_hash is not None
    assert (await claim(conn, WAITS, world.viewer)).password_hash is None  # no second check
    await release(conn, first)  # the server was too busy to check it
    assert (await claim(conn, WAITS, world.viewer)).password_hash == first.password_hash
    assert (
        await conn.fetchval("SELECT failed_logins FROM users WHERE email = $1", world.viewer) == 0
    )


async def test_a_new_set_password_link_ends_the_users_earlier_ones(
    world: World, conn: Connection
) -> None:
    row = await conn.fetchrow(
        "SELECT organisation_id, id FROM users WHERE email = $1", world.viewer
    )
    assert row is not None
    who = {"organisation_id": row["organisation_id"], "user_id": row["id"]}
    first = await make_password_link(conn, **who)
    second = await make_password_link(conn, **who)
    new_hash = "$argon2id$v=19$m=65536,t=2,p=1$stand-in"
    with pytest.raises(AccountError):
        await use_password_link(conn, first, new_hash)
    assert await use_password_link(conn, second, new_hash) == row["id"]


async def test_forms_need_the_session_token_and_our_origin(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    async with staff_client(world.manager) as client:
        page = "/staff/p/shelter/invitations"
        token = csrf_of((await client.get(page)).text)
        for data, headers in (
            ({"count": "2"}, {"sec-fetch-site": "same-origin"}),  # no token
            ({"count": "2", "csrf": "0" * 40}, {"sec-fetch-site": "same-origin"}),  # forged
            ({"count": "2", "csrf": token}, {"sec-fetch-site": "cross-site"}),
            ({"count": "2", "csrf": token}, {"origin": "https://evil.example"}),
        ):
            refused = await client.post(page, data=data, headers=headers)
            assert refused.status_code == 403
            assert "reload the page" in refused.text
        assert await conn.fetchval("SELECT count(*) FROM invitations") == 0
        made = await client.post(
            page, data={"count": "2", "csrf": token}, headers={"sec-fetch-site": "same-origin"}
        )
        assert made.status_code == 200
        assert await conn.fetchval("SELECT count(*) FROM invitations") == 2
        assert (
            await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'csrf.refused'") == 4
        )


async def test_an_admin_invites_a_user_who_sets_a_passphrase_then_is_disabled(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    async with staff_client(world.admin) as admin:
        made = await post_form(
            admin,
            "/staff/admin/users",
            email="new@org.example",
            role="viewer",
            program=str(world.outreach),
        )
        assert made.status_code == 200, made.text
        link = re.search(r"http://[^<\s]+/set-password/[A-Za-z0-9_-]+", made.text)
        assert link
        path = link[0].split("8000", 1)[1]
    async with staff_client(None) as fresh:
        weak = await fresh.post(path, data={"password": "password1", "again": "password1"})
        assert weak.status_code == 400
        chosen = await fresh.post(path, data={"password": PASSWORD, "again": PASSWORD})
        assert chosen.status_code == 303
        again = await fresh.post(path, data={"password": PASSWORD, "again": PASSWORD})
        assert again.status_code == 404  # a used link is no link: it changes nothing
        assert (await login(fresh, "new@org.example")).status_code == 303
        home = await fresh.get("/staff/")
        assert "Outreach" in home.text
        assert "Shelter" not in home.text
        user_id = await conn.fetchval("SELECT id FROM users WHERE email = 'new@org.example'")
        async with staff_client(world.admin) as admin:
            await post_form(admin, "/staff/admin/users", f"/staff/admin/users/{user_id}/disable")
        assert (await fresh.get("/staff/")).status_code == 303  # its session ended
        assert (await login(fresh, "new@org.example")).status_code == 401
    actions = {r["action"] for r in await conn.fetch("SELECT action FROM audit_log")}
    assert {"login", "user.create", "user.password_set", "user.disable"} <= actions


async def test_an_expired_session_goes_back_to_the_login_page(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    async with staff_client(world.manager) as client:
        assert (await client.get("/staff/p/shelter/")).status_code == 200
        value = client.cookies.get("staff_session")
        assert value is not None
        # Its expiry is in the signed cookie (no row dates the login): one that has passed
        # ends the session, and so does the row's day.
        sid = value.split(".")[0]
        sessions = Sessions(SECRETS.session, https=False, path="/staff")
        past = int(time.time()) - 1
        expired = f"{sid}.{past}.{value.split('.')[2]}"
        for cookie in (sessions._session_value(_unb64(sid), past), expired):
            client.cookies.set("staff_session", cookie, path="/staff")
            response = await client.get("/staff/p/shelter/")
            assert response.status_code == 303
            assert response.headers["location"].endswith("/staff/login?next=/staff/p/shelter/")
        client.cookies.set("staff_session", value, path="/staff")
        assert (await client.get("/staff/p/shelter/")).status_code == 200
        await conn.execute("UPDATE staff_sessions SET expires_on = utc_today() - 1")
        assert (await client.get("/staff/p/shelter/")).status_code == 303
        # A tampered cookie is not looked up at all.
        client.cookies.set("staff_session", value[:-2] + "AA", path="/staff")
        assert (await client.get("/staff/")).status_code == 303


async def test_an_admin_sees_failed_logins_lets_a_user_in_again_and_resets_a_passphrase(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    viewer = await conn.fetchval("SELECT id FROM users WHERE email = $1", world.viewer)
    async with staff_client(None) as client:
        for _ in range(FREE_FAILURES):
            await login(client, world.viewer, "wrong guess")
    async with staff_client(world.stranger) as stranger:  # another organisation's admin
        for action in ("unlock", "reset"):
            refused = await post_form(
                stranger, "/staff/admin/users", f"/staff/admin/users/{viewer}/{action}"
            )
            assert refused.status_code == 404
    async with staff_client(world.admin) as admin:
        audit = await admin.get("/staff/admin/audit")
        assert f"<td>{world.viewer}</td><td>{FREE_FAILURES}</td>" in audit.text
        users = await admin.get("/staff/admin/users")
        assert "waiting after failed logins" in users.text
        unlocked = await post_form(
            admin, "/staff/admin/users", f"/staff/admin/users/{viewer}/unlock"
        )
        assert f"{world.viewer} can log in again now." in unlocked.text
        reset = await post_form(admin, "/staff/admin/users", f"/staff/admin/users/{viewer}/reset")
        link = re.search(r"http://[^<\s]+/set-password/[A-Za-z0-9_-]+", reset.text)
        assert link
    async with staff_client(world.viewer) as before_reset:  # a session with the old passphrase
        assert (await before_reset.get("/staff/")).status_code == 200
        new = "marmot lantern quietly orbits teapot"
        async with staff_client(None) as fresh:
            path = link[0].split("8000", 1)[1]
            chosen = await fresh.post(path, data={"password": new, "again": new})
            assert chosen.status_code == 303
            assert (await login(fresh, world.viewer, new)).status_code == 303
        assert (await before_reset.get("/staff/")).status_code == 303  # ended by the reset
    actions = [r["action"] for r in await conn.fetch("SELECT action FROM audit_log")]
    assert {"user.unlock", "user.reset_link", "user.password_set"} <= set(actions)
