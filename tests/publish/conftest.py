"""A staff world: two organisations, users of each role, releases, and a logged-in client."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import httpx
import pytest

from feedback.aggregate.privacy import Counted, Tally
from feedback.aggregate.releases import Scope, make_release
from feedback.cli import build_web_app
from feedback.config import Settings
from feedback.db import Connection, Pool
from feedback.publish import views
from feedback.publish.accounts import create_user
from feedback.secretfiles import ServiceSecrets
from feedback.stats import means
from feedback.stats.cells import Layout
from feedback.stats.periods import Period
from feedback.surveys import FIRST_VERSION, Survey, load_survey
from tests import factories
from tests.asgi import client_for

PASSWORD = "lantern quietly orbit mossy teapot"
SECRETS = ServiceSecrets(
    session=b"s" * 32, phone_hmac=b"p" * 32, sms_code_key=b"c" * 32, sms_auth_token=b"t" * 32
)
SURVEY = load_survey(FIRST_VERSION)
TREATMENT = [q.id for q in SURVEY.questions if q.section == "treatment"]
OUTCOMES = ["safe_now", "housing", "income", "trust_help", "legal_help"]


@dataclass(frozen=True)
class World:
    org: factories.Tenant
    outreach: uuid.UUID
    other: factories.Tenant
    admin: str
    manager: str  # sees the shelter only
    viewer: str
    stranger: str  # the other organisation's admin


async def add_release(
    worker: Connection,
    t: factories.Tenant,
    period: str,
    *,
    program_id: uuid.UUID | None = None,
    breakdown: str | None = None,
    respondents: int = 60,
    epsilon: float = 2.0,
    threshold: int = 11,
    kind: str = "questions",
    draw: bool = True,
    survey: tuple[uuid.UUID, Survey] | None = None,  # another version than the tenant's
    whole_organisation: bool = False,  # a release of every program together
    answers: Callable[[int], Mapping[str, int | str]] | None = None,  # the i-th respondent's
) -> None:
    """A release of synthetic answers (or ``answers``') through the real release code; then,
    as the worker does after a release, the program's pages are drawn (unless ``draw`` is
    false)."""
    questions = OUTCOMES if breakdown == "time_in_program" else TREATMENT + OUTCOMES
    survey_id, definition = survey or (t.survey_id, SURVEY)
    if kind == "indices":
        layout = Layout.for_indices(definition, breakdown)
        split = means.split(epsilon, indices=len(layout.indices), expected_n=respondents or 1)
    else:
        layout, split = Layout.plan(SURVEY, questions, breakdown), None

    asked = {q.id for q in definition.questions}

    async def count() -> tuple[Counted, dict[str, Any]]:
        tally = Tally(layout)
        bands = ["under_3", "3_to_6", "6_to_12", "over_12"]
        for i in range(respondents):
            if answers is not None:
                tally.add(dict(answers(i)))
                continue
            given: dict[str, int | str] = {q: 5 - i % 3 for q in TREATMENT + OUTCOMES if q in asked}
            if breakdown == "gender":
                given["gender"] = "woman" if i % 4 else "man"
            if breakdown == "time_in_program":
                given["time_in_program"] = bands[i % 4]
            tally.add(given)
        return Counted(tally, respondents, 0), {"privacy_unit": "invitation"}

    program = None if whole_organisation else program_id or t.program_id
    scope = Scope(t.organisation_id, program, survey_id, Period.parse(period), breakdown, kind)
    await make_release(
        worker,
        scope,
        layout=layout,
        epsilon=Decimal(str(epsilon)),
        threshold=threshold,
        count=count,
        split=split,
    )
    if draw and program is not None:
        await views.draw_program(worker, t.organisation_id, program)


@pytest.fixture
async def world(conn: Connection, worker_conn: Connection) -> World:
    org = await factories.tenant(conn, "org")
    other = await factories.tenant(conn, "elsewhere")
    await conn.execute("UPDATE organisations SET epsilon_per_year = 10")
    outreach = await conn.fetchval(
        "INSERT INTO programs (organisation_id, slug, name) VALUES ($1, 'outreach', 'Outreach') "
        "RETURNING id",
        org.organisation_id,
    )
    for email, role, tenant, programs in (
        ("admin@org.example", "admin", org, []),
        ("manager@org.example", "manager", org, [org.program_id]),
        ("viewer@org.example", "viewer", org, [org.program_id]),
        ("admin@elsewhere.example", "admin", other, []),
    ):
        await create_user(
            conn,
            organisation_id=tenant.organisation_id,
            email=email,
            role=role,  # type: ignore[arg-type]
            programs=programs,
            password=PASSWORD,
        )
    await add_release(worker_conn, org, "2026-Q2")
    await add_release(  # few respondents: too uncertain to read, whatever the noise
        worker_conn, org, "2026-Q2", kind="indices", epsilon=0.5, respondents=20, threshold=1
    )
    await add_release(worker_conn, org, "2026-Q3", respondents=400)  # big enough to read
    await add_release(worker_conn, org, "2026-Q3", kind="indices", epsilon=0.5, respondents=400)
    await add_release(worker_conn, org, "2026-Q3", kind="indices", breakdown="gender", epsilon=0.5)
    await add_release(worker_conn, org, "2026-Q3", breakdown="gender")
    await add_release(worker_conn, org, "2026-Q3", breakdown="time_in_program")
    await add_release(worker_conn, other, "2026-Q3")
    return World(
        org,
        outreach,
        other,
        "admin@org.example",
        "manager@org.example",
        "viewer@org.example",
        "admin@elsewhere.example",
    )


def settings_for(database_url: str) -> Settings:
    return replace(Settings.from_env({}), database_url=database_url)


StaffClient = Callable[[str | None], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def staff_client(survivor_pool: Pool, staff_pool: Pool, database_url: str) -> StaffClient:
    """A client of the whole app (survivor at /, staff at /staff), logged in as ``email``;
    each app's connections in its own role."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def make(email: str | None) -> AsyncIterator[httpx.AsyncClient]:
        app = build_web_app(
            settings_for(database_url),
            SECRETS,
            survivor_pool=survivor_pool,
            staff_pool=staff_pool,
        )
        async with client_for(app, raise_app_exceptions=False) as client:
            if email is not None:
                response = await login(client, email)
                assert response.status_code == 303, response.text
            yield client

    return make


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/staff/login", data={"email": email, "password": password})


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "the page has no CSRF field"
    return found[1]


async def post_form(
    client: httpx.AsyncClient, page: str, action: str | None = None, **data: str
) -> httpx.Response:
    """Post a form the way a browser would: token from the page, from our own origin."""
    token = csrf_of((await client.get(page)).text)
    return await client.post(
        action or page, data={"csrf": token, **data}, headers={"sec-fetch-site": "same-origin"}
    )
