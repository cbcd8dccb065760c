"""Every number about survivors that staff, the API or a release row can show comes from the
noised vector (its sensitivity counted in the ledger) or from a definition (survey, plan,
thresholds): listed field by field for release rows, API responses and CSV columns, and shown
for every staff page by changing the survivors' data after the release and finding every page,
CSV and response unchanged to the byte."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from feedback.aggregate.keys import UnlockedKey
from feedback.aggregate.privacy import Noise
from feedback.aggregate.scheduled import make_planned, of_period
from feedback.db import Connection
from feedback.envelope import Envelope
from feedback.publish import publications, views
from feedback.publish.accounts import create_user
from feedback.publish.invitations import create_batch, create_open_link
from feedback.sealing import seal
from feedback.stats.periods import Period
from feedback.stats.plans import add_line
from feedback.surveys import FIRST_VERSION, load_survey
from tests import factories
from tests.publish.conftest import PASSWORD, StaffClient, csrf_of

SURVEY = load_survey(FIRST_VERSION)
Q3 = dt.date(2026, 8, 3)
ADMIN = "admin@numbers.example"

# Every numeric field of a stored release, and where its value comes from.
RELEASE_FIELDS = {
    r"cells\.groups\[\]\.n": "noised vector",
    r"cells\.groups\[\]\.questions\.\w+\.\w+": "noised vector",
    r"cells\.half_width_95": "definition: the noise scale's 95% bound",
    r"epsilon": "definition: the plan line",
    r"noise_scale": "definition: sensitivity (from the plan) over epsilon",
    r"threshold": "definition: the organisation's k",
}
# Every numeric field of the API's release document, and where its value comes from.
API_FIELDS = {
    r"groups\[\]\.n": "noised vector",
    r"groups\[\]\.questions\.\w+\.\w+": "noised vector",
    r"shares\[\]\.(share|low|high)": "post-processing of the noised vector",
    r"indices\[\]\.(mean|low|high)": "post-processing of the noised vector",
    r"half_width_95": "definition: the noise scale's 95% bound",
    r"threshold": "definition: the organisation's k",
    r"survey_version": "definition: the survey",
}
# The columns of every chart's CSV (values: post-processing of noised counts, or labels).
CSV_COLUMNS = {
    "indices-over-time": (
        "period",
        "index",
        "mean (0 to 100)",
        "95% interval",
        "against the period before",
        "answered it (noisy, to the nearest ten)",  # noisy counts, rounding noise
    ),
    "indices-by-gender": (
        "gender",
        "index",
        "mean (0 to 100)",
        "95% interval",
        "real differences",  # verdicts: post-processing of the noised vector
        "answered it (noisy, to the nearest ten)",
    ),
    "answers": ("question", "agree 2026-Q3", "95% interval", "period before"),
    "outcomes-by-time-in-program": ("question", "time in program", "agree", "95% interval"),
    "treatment-and-outcomes-by-gender": ("question", "gender", "agree", "95% interval"),
    "respondents": ("period", "respondents"),  # noisy n to the nearest ten: rounding noise
}


def numbers(document: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every number in a JSON document; list items as ``[]``."""
    if isinstance(document, bool):
        return
    if isinstance(document, int | float | Decimal):
        yield path, document
    elif isinstance(document, dict):
        for key, value in document.items():
            yield from numbers(value, f"{path}.{key}" if path else str(key))
    elif isinstance(document, list):
        for value in document:
            yield from numbers(value, f"{path}[]")


def unlisted(document: Any, fields: dict[str, str]) -> list[str]:
    return [
        path
        for path, _ in numbers(document)
        if not any(re.fullmatch(pattern, path) for pattern in fields)
    ]


async def seed_answers(
    conn: Connection, keyed: factories.KeyedTenant, count: int, **extra: Any
) -> None:
    t = keyed.tenant
    for i in range(count):
        answers: dict[str, int | str] = {
            "believed": 1 + i % 5,
            "safe_now": 1 + i % 4,
            "gender": ["woman", "man"][i % 2],
        }
        envelope = Envelope("rights-based", 1, "en", answers)
        await conn.execute(
            """
            INSERT INTO submissions (organisation_id, program_id, survey_id, channel,
                                     received_week, ciphertext)
            VALUES ($1, $2, $3, $4, $5, $6)
            """,
            t.organisation_id,
            t.program_id,
            t.survey_id,
            extra.get("channel", "web"),
            extra.get("week", Q3),
            seal(keyed.private_key.public_key, envelope.to_plaintext()),
        )


async def release_q3(
    conn: Connection, worker_conn: Connection, keyed: factories.KeyedTenant
) -> None:
    t = keyed.tenant
    await conn.execute(
        "UPDATE organisations SET epsilon_per_year = 10 WHERE id = $1", t.organisation_id
    )
    for breakdown in (None, "gender"):
        await add_line(
            worker_conn,
            organisation_id=t.organisation_id,
            year=2026,
            program_id=t.program_id,
            survey_id=t.survey_id,
            granularity="quarter",
            questions=["believed", "safe_now"],
            breakdown=breakdown,
            epsilon=Decimal("1"),
        )
    work = await of_period(worker_conn, t.organisation_id, Period.parse("2026-Q3"))
    keys = {t.key_id: UnlockedKey(t.key_id, keyed.private_key)}
    for made in await make_planned(worker_conn, work, keys=keys, database_url=None):
        assert made.release is not None
        assert made.release.created
    await views.draw_missing(worker_conn)  # as the worker does after a release


async def test_a_release_row_holds_only_noised_numbers_and_definitions(
    conn: Connection, worker_conn: Connection
) -> None:
    twins = [await factories.keyed_tenant(conn, slug) for slug in ("first", "second")]
    for keyed in twins:
        await seed_answers(conn, keyed, 80)
        await release_q3(conn, worker_conn, keyed)
    rows = await conn.fetch("SELECT * FROM releases ORDER BY organisation_id, breakdown")
    assert len(rows) == 4
    for row in rows:
        document = {
            "cells": row["cells"],
            "metadata": row["metadata"],
            "epsilon": row["epsilon"],
            "noise_scale": row["noise_scale"],
            "threshold": row["threshold"],
        }
        assert unlisted(document, RELEASE_FIELDS) == []
        assert set(row["metadata"]) <= {"privacy_unit", "note", "composition"}
        noise = Noise(row["epsilon"], 3)  # n and two questions: one survivor's 1 + Q cells
        assert row["cells"]["half_width_95"] == noise.half_width()
        assert row["noise_scale"] == Decimal(noise.scale)
    # The same answers in two organisations give different cells: they are noised.
    first = [r["cells"]["groups"] for r in rows if r["breakdown"] is None]
    assert first[0] != first[1]


@pytest.fixture
async def released(conn: Connection, worker_conn: Connection) -> dict[str, Any]:
    keyed = await factories.keyed_tenant(conn, "numbers")
    await seed_answers(conn, keyed, 120)
    await release_q3(conn, worker_conn, keyed)
    await create_user(
        conn,
        organisation_id=keyed.tenant.organisation_id,
        email=ADMIN,
        role="admin",
        password=PASSWORD,
    )
    batch = await create_batch(conn, program_id=keyed.tenant.program_id, count=3)
    poster = await create_open_link(conn, program_id=keyed.tenant.program_id)
    return {"keyed": keyed, "tokens": batch.tokens, "poster": poster}


async def everything_staff_can_read(client: httpx.AsyncClient) -> dict[str, str]:
    """Every staff page, CSV and API response that shows releases or survivors' traces (not
    the audit log or the user list: staff records)."""
    pages = {}
    for path in (
        "/staff/",
        "/staff/p/shelter/",
        "/staff/p/shelter/?period=2026-Q3",
        "/staff/p/shelter/invitations",
        "/staff/p/shelter/notes",
        "/staff/admin/budget?year=2026",
    ):
        response = await client.get(path)
        assert response.status_code == 200, path
        pages[path] = response.text
    for chart in re.findall(r"/staff/p/shelter/([\w-]+)\.csv", pages["/staff/p/shelter/"]):
        path = f"/staff/p/shelter/{chart}.csv?period=2026-Q3"
        response = await client.get(path)
        assert response.status_code == 200, path
        assert tuple(response.text.splitlines()[0].split(",")) == CSV_COLUMNS[chart], chart
        pages[path] = response.text
    made = await client.post(
        "/staff/tokens",
        data={"csrf": csrf_of(pages["/staff/p/shelter/notes"]), "name": "numbers"},
        headers={"sec-fetch-site": "same-origin"},
    )
    token = re.search(r"fbk_[A-Za-z0-9_-]+", made.text)
    assert token is not None
    api = {"authorization": f"Bearer {token[0]}"}
    listed = await client.get("/staff/api/v1/programs/shelter/releases", headers=api)
    pages["releases"] = listed.text
    for release in listed.json():
        one = await client.get(
            f"/staff/api/v1/programs/shelter/releases/{release['id']}", headers=api
        )
        assert unlisted(one.json(), API_FIELDS) == [], "classify every number the API shows"
        pages[release["id"]] = one.text
    return pages


async def test_no_staff_page_csv_or_response_moves_when_only_survivors_data_does(
    conn: Connection,
    released: dict[str, Any],
    staff_client: StaffClient,
) -> None:
    keyed: factories.KeyedTenant = released["keyed"]
    async with staff_client(ADMIN) as client:
        before = await everything_staff_can_read(client)
        # What exact counts would show: answers arriving (through the survivor app, spending
        # a single-use link and through a poster), rows no key opens, another channel, more
        # rows in the released period, a withdrawal.
        spent = await client.post(f"/s/{released['tokens'][0]}", data={"q.believed": "2"})
        assert spent.status_code == 200
        receipt = re.search(r'<p class="code">([0-9A-Z-]+)</p>', spent.text)
        assert receipt is not None
        for _ in range(2):
            assert (await client.post(f"/s/{released['poster']}", data={})).status_code == 200
        assert (await client.post("/withdraw", data={"code": receipt[1]})).status_code == 200
        await seed_answers(conn, keyed, 7, channel="sms")
        await factories.submission(conn, keyed.tenant, ciphertext=os.urandom(1072), week=Q3)
        after = await everything_staff_can_read(client)
    changed = [path for path in before if before[path] != after[path]]
    assert changed == [], "these depend on survivors' data beyond the releases"


# Every numeric field of a publication's figures.json, and where its value comes from.
FIGURES_FIELDS = {
    r"sequence": "definition: the series' count of publications",
    r"releases\[\]\.cells\.groups\[\]\.n": "noised vector",
    r"releases\[\]\.cells\.groups\[\]\.questions\.\w+\.\w+": "noised vector",
    r"releases\[\]\.cells\.half_width_95": "definition: the noise scale's 95% bound",
    r"releases\[\]\.figures\[\]\.(value|low|high)": "post-processing of the noised vector",
    r"releases\[\]\.epsilon": "definition: the plan line",
    r"releases\[\]\.epsilon_spent_in_year\.epsilon": "definition: the ledger's epsilons",
    r"releases\[\]\.epsilon_spent_in_year\.year": "definition: the budget year",
    r"releases\[\]\.noise_scale\.\w+": "definition: sensitivity over epsilon",
    r"releases\[\]\.threshold": "definition: the organisation's k",
    r"releases\[\]\.survey\.version": "definition: the survey",
    r"verdicts\[\]\.estimate": "post-processing of the noised vector",
}


async def test_a_publication_moves_only_with_releases(
    conn: Connection, worker_conn: Connection, released: dict[str, Any]
) -> None:
    """A funder's publication, built before and after survivors' data changes beyond the
    releases, is the same to the byte; every number in its figures is classified."""
    keyed: factories.KeyedTenant = released["keyed"]
    heading = publications.Heading(
        "numbers", "Numbers", "quarterly", 1, Period.parse("2026-Q3"), Q3, None
    )

    async def built() -> dict[str, bytes]:
        gathered = await publications.gather(
            worker_conn, keyed.tenant.organisation_id, heading, None
        )
        return publications.files(gathered)

    before = await built()
    await seed_answers(conn, keyed, 9, channel="sms")
    await factories.submission(conn, keyed.tenant, ciphertext=os.urandom(1072), week=Q3)
    after = await built()
    assert [path for path in before if before[path] != after.get(path)] == []
    figures = json.loads(before[publications.FIGURES])
    shown = {key: figures[key] for key in ("sequence", "releases", "verdicts")}
    assert unlisted(shown, FIGURES_FIELDS) == []
    for chart in figures["charts"]:
        assert tuple(chart["columns"]) == CSV_COLUMNS[chart["name"]], chart["name"]
