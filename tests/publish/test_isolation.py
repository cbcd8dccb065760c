"""Tenant isolation: every staff and API route, enumerated from the app itself, answers 404 to
a user of another organisation or of another program, and audits it. A new route must be
listed here or the enumeration test fails."""

from __future__ import annotations

import re
import uuid

import httpx
from starlette.routing import Route

from feedback.db import Connection
from feedback.publish.app import routes
from tests.publish.conftest import StaffClient, World, csrf_of, post_form

# Routes with no program in them, and who may use them.
OPEN = {"staff_healthz", "login", "set_password", "openapi"}
ANY_STAFF = {"home", "logout", "tokens", "revoke_token"}
ADMIN_ONLY = {
    *("users", "disable_user", "reset_user", "unlock_user", "audit"),
    *("budget", "plan_advise", "plan_add", "plan_remove"),
    *("audit_csv", "enable_user", "user_access", "organisation", "programs", "keys"),
    *("publications", "publication_bundle", "funders", "revoke_funder"),
}
# Opened by a funder's private link alone (tests/publish/test_funders.py).
FUNDER_LINK = {"funder_archive", "funder_bundle", "funder_file"}
API = {"api_programs", "api_releases", "api_release"}
EXAMPLE = {
    "chart": "answers",
    "batch": str(uuid.uuid4()),
    "note": str(uuid.uuid4()),
    "line": str(uuid.uuid4()),
}


def staff_routes() -> list[Route]:
    return [r for r in routes() if isinstance(r, Route)]


def test_every_route_is_classified() -> None:
    for route in staff_routes():
        has_program = "{program}" in route.path
        assert route.name in OPEN | ANY_STAFF | ADMIN_ONLY | API | FUNDER_LINK or has_program, (
            f"route {route.name} ({route.path}) is new: say here who may use it, and make sure "
            "it checks the program or the role"
        )


def _url(route: Route, program: str) -> str:
    path = route.path
    for name in re.findall(r"{(\w+)}", path):
        path = path.replace(
            "{" + name + "}", program if name == "program" else EXAMPLE.get(name, str(uuid.uuid4()))
        )
    return "/staff" + path


async def _call(client: httpx.AsyncClient, route: Route, url: str, csrf: str) -> httpx.Response:
    if "GET" in (route.methods or set()):
        return await client.get(url)
    return await client.post(url, data={"csrf": csrf}, headers={"sec-fetch-site": "same-origin"})


async def test_programs_of_others_are_404_on_every_route(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    program_routes = [r for r in staff_routes() if "{program}" in r.path and r.name not in API]
    assert len(program_routes) >= 6
    # The other organisation's admin, on this organisation's program (slugs are looked up
    # in the user's own organisation; "outreach" exists only here); the manager of the
    # shelter, on the outreach program of their own organisation.
    for email, program in ((world.stranger, "outreach"), (world.manager, "outreach")):
        async with staff_client(email) as client:
            csrf = csrf_of((await client.get("/staff/tokens")).text)
            for route in program_routes:
                response = await _call(client, route, _url(route, program), csrf)
                assert response.status_code == 404, (email, route.path, response.status_code)
                assert "Shelter" not in response.text
                assert "Outreach" not in response.text
    denied = await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'access.denied'")
    assert denied == 2 * len(program_routes)
    # And the shelter's own manager is let in on the same routes' pages.
    async with staff_client(world.manager) as client:
        assert (await client.get("/staff/p/shelter/")).status_code == 200
        assert (await client.get("/staff/p/shelter/invitations")).status_code == 200


async def test_admin_pages_are_404_to_managers_and_viewers(
    world: World, staff_client: StaffClient
) -> None:
    admin_routes = [r for r in staff_routes() if r.name in ADMIN_ONLY]
    for email in (world.manager, world.viewer):
        async with staff_client(email) as client:
            csrf = csrf_of((await client.get("/staff/tokens")).text)
            for route in admin_routes:
                response = await _call(client, route, _url(route, "shelter"), csrf)
                assert response.status_code == 404, (email, route.path)
    async with staff_client(world.viewer) as client:  # viewers read, never write
        assert (await client.get("/staff/p/shelter/")).status_code == 200
        assert (await client.get("/staff/p/shelter/invitations")).status_code == 404


async def test_api_routes_are_404_for_other_organisations_and_programs(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    release_id = await conn.fetchval(
        "SELECT id FROM releases WHERE organisation_id = $1 LIMIT 1", world.org.organisation_id
    )
    tokens = {}
    for email in (world.stranger, world.manager):
        async with staff_client(email) as client:
            made = await post_form(client, "/staff/tokens", name="bi")
            found = re.search(r"fbk_[A-Za-z0-9_-]+", made.text)
            assert found
            tokens[email] = found[0]
    async with staff_client(None) as client:
        for email, program in ((world.stranger, "outreach"), (world.manager, "outreach")):
            headers = {"authorization": f"Bearer {tokens[email]}"}
            for path in (
                f"/staff/api/v1/programs/{program}/releases",
                f"/staff/api/v1/programs/{program}/releases/{release_id}",
            ):
                response = await client.get(path, headers=headers)
                assert response.status_code == 404, (email, path)
            listed = await client.get("/staff/api/v1/programs", headers=headers)
            assert program not in {p["slug"] for p in listed.json()}
        # Their own "shelter" exists; this organisation's release is still not theirs.
        stranger = {"authorization": f"Bearer {tokens[world.stranger]}"}
        path = f"/staff/api/v1/programs/shelter/releases/{release_id}"
        assert (await client.get(path, headers=stranger)).status_code == 404
