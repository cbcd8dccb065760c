"""The dashboard reads releases: charts with tables and CSV, suppressed groups marked,
invitations, notes that reach survivors, the budget page and the API."""

from __future__ import annotations

import csv
import io
import random
import re
import uuid

import pytest

from feedback.cli.demo_data import _answers
from feedback.db import Connection
from feedback.publish import views
from feedback.publish.accounts import create_user
from feedback.publish.invitations import create_batch
from feedback.surveys import FIRST_VERSION, Survey, from_json, load_definition
from feedback.tokens import hash_token
from tests import factories
from tests.publish.conftest import PASSWORD, StaffClient, World, add_release, post_form


async def test_a_program_page_draws_its_release(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    # A small group: its release is suppressed, and must say so, never show 0. (Noise alone
    # lifts a group of 0 over a threshold of 11 about one time in twelve at this scale: the
    # threshold here is one no noise reaches.)
    await add_release(conn, world.org, "2026-Q1", respondents=0, threshold=10**6, epsilon=0.5)
    async with staff_client(world.manager) as client:
        page = await client.get("/staff/p/shelter/")
        assert page.status_code == 200
        html = page.text
        assert html.count("<svg") >= 6  # indices (time, gender), answers, outcomes, equity, n
        for title in (
            "Treated with rights and Recovery over time",
            "Treated with rights and Recovery by gender, 2026-Q3",
            "Each question: share agreeing, 2026-Q3",
            "Outcomes by time in program, 2026-Q3",
            "Treatment and outcomes by gender, 2026-Q3",
            "Respondents per period",
            "Words used on this page",
        ):
            assert title in html
        # Plain words only: no ids in legends, headings or tables.
        for raw in ("needs_asked", "time_in_program", "Your gender", "web_nojs"):
            assert raw not in html
        # The indices lead, each with a two-sided interval and a verdict on the period before
        # (the period before is too uncertain to read here, so it cannot be compared).
        assert html.index("Treated with rights and Recovery over time") < html.index(
            "Each question"
        )
        assert re.search(
            r"<td>2026-Q3</td><td>Treated with rights</td><td>\d+</td>"
            r"<td>\d+ to \d+</td><td>(higher|lower|can&#39;t tell)( \(too uncertain to read\))?"
            r"</td>",
            html,
        )
        # What the intervals cover and how verdicts are made, in the page's words; each chart
        # with verdicts says them in words, under the page's one rule.
        assert "It covers that sampling and the noise, not who chose to answer" in html
        rule = "on this page is wrong by chance is at most 5%"
        assert html.count(rule) >= 3  # the method, the glossary, the charts' notes
        assert re.search(
            "(No difference between these groups is real|Real differences between groups|No two "
            "groups are readable enough here to compare)",
            html,
        ), re.findall(r'<p class="note">.*?</p>', html)
        assert '<th scope="col">real differences</th>' in html
        # 20 respondents at epsilon 0.5: too uncertain to read, drawn greyed and said so, or
        # suppressed (about one time in thirty the noise takes the count below 1). Each index
        # alone comes out readable about one time in thirty (noise pushed its estimate past
        # 100, and the interval, cut at 100, is narrow; simulated through the release code),
        # both together about one time in a thousand.
        q2 = re.findall(r"<tr[^>]*><td>2026-Q2</td><td>[A-Za-z ]+</td><td>[^<]*</td>", html)
        assert len(q2) == 2
        assert any(
            row.startswith('<tr class="uncertain">') and "(too uncertain to read)" in row
            for row in q2
        ) or all(row.endswith("<td>suppressed</td>") for row in q2), q2
        assert "<script" not in html
        q1 = await client.get("/staff/p/shelter/?period=2026-Q1")
        assert "suppressed" in q1.text
        assert "No answers can be shown for 2026-Q1" in q1.text
        assert re.search(r"<td>Staff believed me.</td><td>suppressed</td>", q1.text)
        assert (await client.get("/staff/p/shelter/?period=2026-Q5")).status_code == 400
        assert (await client.get("/staff/p/shelter/?period=2025-Q1")).status_code == 404

        # One CSV per table, named after it: the gender table is not the time-in-program one.
        links = re.findall(r'href="[^"]*/p/shelter/([\w-]+)\.csv\?period=2026-Q3"', html)
        assert len(links) == len(set(links)) == html.count("<table")
        by_gender = await client.get(
            "/staff/p/shelter/treatment-and-outcomes-by-gender.csv?period=2026-Q3"
        )
        assert by_gender.text.splitlines()[0].split(",")[1] == "gender"
        exported = await client.get("/staff/p/shelter/answers.csv?period=2026-Q3")
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/csv")
        assert "shelter-answers-2026-Q3.csv" in exported.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(exported.text)))
        assert rows[0][0] == "question"
        assert any(row[0] == "Staff believed me." and row[1].endswith("%") for row in rows[1:])
        for row in rows[1:]:  # a share is shown only when its interval is within 30 points
            if row[1] != "not enough answers to show this yet":
                low, high = (int(end.rstrip("%")) for end in row[2].split(" to "))
                assert high - low <= 30, row
        # 60 respondents per group: the shares by group are withheld, and the page says why.
        assert "not enough answers to show this yet" in by_gender.text
        assert "wider than 30 points" in html
    actions = [r["action"] for r in await conn.fetch("SELECT action FROM audit_log")]
    assert "release.view" in actions
    assert "release.export" in actions


async def test_invitations_are_made_and_revoked_and_their_use_is_never_shown(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    async with staff_client(world.manager) as client:
        made = await post_form(client, "/staff/p/shelter/invitations", count="3")
        links = re.findall(r"http://127\.0\.0\.1:8000/s/([A-Za-z0-9_-]{22})", made.text)
        assert len(links) == 3
        stored = {r["token_hash"] for r in await conn.fetch("SELECT token_hash FROM invitations")}
        assert stored == {hash_token(t) for t in links}  # only hashes are kept
        sheet = await post_form(client, "/staff/p/shelter/invitations", count="2", output="sheet")
        assert sheet.headers["content-type"].startswith("image/svg+xml")
        assert sheet.text.count("<path") >= 2
        before = (await client.get("/staff/p/shelter/invitations")).text
        assert "<td>links</td><td>3</td>" in before  # issued
        answered = await client.post(f"/s/{links[0]}", data={"q.believed": "4"})
        assert answered.status_code == 200
        after = (await client.get("/staff/p/shelter/invitations")).text
        assert after == before  # a survivor's answer changes nothing a manager can see
        batch = await conn.fetchval(
            "SELECT batch_id FROM invitations WHERE token_hash = $1", hash_token(links[1])
        )
        await post_form(
            client, "/staff/p/shelter/invitations", f"/staff/p/shelter/invitations/{batch}/revoke"
        )
        page = await client.get("/staff/p/shelter/invitations")
        assert page.text.count("Revoke the batch") == 1  # the sheet's batch only
        revisit = await client.get(f"/s/{links[1]}")
        assert revisit.status_code == 404  # revoked: like any link that does not work
        bad = await post_form(client, "/staff/p/shelter/invitations", count="0")
        assert bad.status_code == 400
        assert "1 to 1000" in bad.text
    assert await conn.fetchval(
        "SELECT details FROM audit_log WHERE action = 'invitations.revoke'"
    ) == {"batch": str(batch), "issued": 3}


async def test_a_note_reaches_the_survivor_pages(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    [token] = (await create_batch(conn, program_id=world.org.program_id, count=1)).tokens
    async with staff_client(world.manager) as client:
        written = await post_form(
            client,
            "/staff/p/shelter/notes",
            text_en="You said the waiting room felt unsafe; it now has a private entrance.",
            text_es="Dijeron que la sala de espera no era segura; ahora tiene una entrada privada.",
        )
        assert written.status_code == 303
        survey = await client.get(f"/s/{token}?lang=es")
        assert "ahora tiene una entrada privada" in survey.text
        empty = await post_form(client, "/staff/p/shelter/notes")
        assert empty.status_code == 400
    assert await conn.fetchval("SELECT count(*) FROM note_texts") == 2


async def test_the_api_serves_the_same_release_to_a_token_until_it_is_revoked(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    async with staff_client(world.manager) as client:
        made = await post_form(client, "/staff/tokens", name="warehouse")
        token = re.search(r"fbk_[A-Za-z0-9_-]+", made.text)
        assert token
        headers = {"authorization": f"Bearer {token[0]}"}
        listed = await client.get("/staff/api/v1/programs/shelter/releases", headers=headers)
        assert listed.status_code == 200
        q3 = next(
            r
            for r in listed.json()
            if r["period"] == "2026-Q3" and not r["breakdown"] and r["kind"] == "questions"
        )
        one = await client.get(
            f"/staff/api/v1/programs/shelter/releases/{q3['id']}", headers=headers
        )
        body = one.json()
        assert body["threshold"] == 11
        assert body["mechanism"] == "discrete_laplace"
        believed = next(s for s in body["shares"] if s["question"] == "believed")
        assert believed["low"] <= believed["share"] <= believed["high"]
        schema = (await client.get("/staff/api/openapi.json")).json()
        assert "/api/v1/programs/{program}/releases/{release}" in schema["paths"]
        # What the intervals cover, said where a program reading the API finds it.
        assert "covers sampling" in body["note"]
        assert "not who chose to answer" in body["note"]
        interval = schema["components"]["schemas"]["Interval"]["description"]
        assert "covers sampling" in interval
        assert "noise only" not in interval
        token_id = await conn.fetchval("SELECT id FROM api_tokens")
        await post_form(client, "/staff/tokens", f"/staff/tokens/{token_id}/revoke")
        revoked = await client.get("/staff/api/v1/programs", headers=headers)
        assert revoked.status_code == 401
        assert (await client.get("/staff/api/v1/programs")).status_code == 401
    assert await conn.fetchval("SELECT token_hash FROM api_tokens") != token[0].encode()


async def test_the_budget_page_previews_the_plan(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    from decimal import Decimal

    from feedback.stats.plans import add_line

    await add_line(
        conn,
        organisation_id=world.org.organisation_id,
        year=2027,
        program_id=world.org.program_id,
        survey_id=world.org.survey_id,
        granularity="quarter",
        questions=["believed", "safe_now"],
        breakdown=None,
        epsilon=Decimal("1"),
    )
    async with staff_client(world.admin) as client:
        page = await client.get("/staff/admin/budget?year=2027&n=80")
        assert page.status_code == 200
        assert "<td>10</td><td>0</td><td>4</td><td>6</td>" in page.text
        assert re.search(r"<td>believed</td><td>±\d+", page.text)
        assert (await client.get("/staff/admin/budget?year=soon")).status_code == 400


async def test_an_admin_plans_on_the_web_with_the_advisor_and_confirms_wide_lines(
    world: World, staff_client: StaffClient, conn: Connection
) -> None:
    budget = "/staff/admin/budget?year=2027"
    lines = "/staff/admin/budget/lines"
    async with staff_client(world.admin) as client:
        form = {"year": "2027", "program": "outreach", "every": "year", "n": "60"}
        readable = await post_form(
            client, budget, lines, **form, kind="indices", epsilon="1", step="preview"
        )
        assert readable.status_code == 200
        assert "This line can be read at 60 respondents" in readable.text
        assert await conn.fetchval("SELECT count(*) FROM release_plans") == 0

        wide = {**form, "kind": "questions", "epsilon": "0.5", "n": "20", "step": "add"}
        refused = await post_form(client, budget, lines, **wide)
        assert refused.status_code == 400
        assert "This line cannot be read: at 20 respondents per group" in refused.text
        assert "Confirm the line to plan it." in refused.text
        assert await conn.fetchval("SELECT count(*) FROM release_plans") == 0
        confirmed = await post_form(client, budget, lines, **wide, confirm="yes")
        assert confirmed.status_code == 303

        for bad, message in (
            ({"epsilon": "lots"}, "epsilon must be a number"),
            ({"epsilon": "11"}, "at most 10"),
            ({"program": "nowhere"}, "no program &#39;nowhere&#39;"),
            ({"every": "week"}, "choose a month, a quarter, a half-year or a year"),
            ({"epsilon": "0.00002"}, "must be at least 0.05 for this table"),  # no slow preview
            ({"epsilon": "1E-400"}, "at most six decimal places"),
            ({"epsilon": "0.1234567"}, "at most six decimal places"),
        ):
            answer = await post_form(
                client, budget, lines, **{**form, "kind": "indices", "epsilon": "1", **bad}
            )
            assert answer.status_code == 400, bad
            assert message in answer.text, bad
        assert await conn.fetchval("SELECT count(*) FROM release_plans") == 1

        advise = "/staff/admin/budget/advise"
        for respondents in ("0", "1000001", "10" * 20, "many"):
            refused = await post_form(client, budget, advise, year="2027", respondents=respondents)
            assert refused.status_code == 400, respondents
        too_much = await post_form(
            client, budget, advise, year="2027", respondents="300", budget="10", apply="yes"
        )
        assert too_much.status_code == 400
        assert "but only" in too_much.text  # all of the advice or none of it
        assert await conn.fetchval("SELECT count(*) FROM release_plans") == 1
        advised = await post_form(
            client, budget, advise, year="2027", program="shelter", respondents="300"
        )
        assert advised.status_code == 200
        assert "Treated with rights and Recovery every quarter" in advised.text
        assert await conn.fetchval("SELECT count(*) FROM release_plans") == 1
        applied = await post_form(
            client,
            budget,
            advise,
            year="2027",
            program="shelter",
            respondents="300",
            budget="4",
            apply="yes",
        )
        assert applied.status_code == 303
        planned = await conn.fetch(
            "SELECT p.kind, p.granularity FROM release_plans p JOIN programs g "
            "ON g.id = p.program_id WHERE g.slug = 'shelter' ORDER BY p.kind"
        )
        assert [(r["kind"], r["granularity"]) for r in planned] == [
            ("indices", "quarter"),
            ("questions", "year"),
        ]
        page = await client.get(budget)
        assert "each index within ±" in page.text
        assert "(not enough answers to show this)" in page.text  # the wide line, greyed

        line_id = await conn.fetchval(
            "SELECT id FROM release_plans WHERE kind = 'questions' "
            "AND expected_n IS NULL AND granularity = 'year' "
            "AND program_id = $1",
            world.outreach,
        )
        removed = await post_form(
            client, budget, f"/staff/admin/budget/lines/{line_id}/remove", year="2027"
        )
        assert removed.status_code == 303
        assert await conn.fetchval("SELECT count(*) FROM release_plans") == 2
    actions = [r["action"] for r in await conn.fetch("SELECT action FROM audit_log")]
    assert actions.count("plan.add") == 3
    assert "plan.remove" in actions
    async with staff_client(world.manager) as client:
        assert (await client.get(budget)).status_code == 404


async def test_an_index_missing_an_item_in_a_survey_version_says_which_items_it_holds(
    world: World, staff_client: StaffClient, conn: Connection, worker_conn: Connection
) -> None:
    first = load_definition(FIRST_VERSION)
    document = {
        **first,
        "version": 3,
        "questions": [q for q in first["questions"] if q["id"] != "own_decisions"],
    }
    survey_id = await conn.fetchval(
        "INSERT INTO surveys (organisation_id, slug, version, definition) "
        "VALUES ($1, 'rights-based', 3, $2) RETURNING id",
        world.org.organisation_id,
        document,
    )
    await add_release(
        worker_conn,
        world.org,
        "2026-Q1",
        kind="indices",
        epsilon=0.5,
        survey=(survey_id, from_json(document)),
    )
    async with staff_client(world.manager) as client:
        page = (await client.get("/staff/p/shelter/?period=2026-Q1")).text
    said = re.search(r"Treated with rights in 2026-Q1 is the mean of: (.*?)\.</p>", page)
    assert said is not None
    assert "Staff believed me." in said[1]
    assert "I was asked what I needed" in said[1]
    assert "I made the decisions" not in said[1]  # removed in this version: not counted
    assert re.search(r"<td>2026-Q1</td><td>Treated with rights</td><td>\d+", page)


READER = "reader@org.example"


@pytest.fixture
async def reader(conn: Connection) -> tuple[factories.Tenant, tuple[uuid.UUID, Survey]]:
    """An organisation with the default survey (as the demo has it) and a manager who reads
    its shelter program; no release yet."""
    tenant = await factories.tenant(conn, "org")
    await conn.execute("UPDATE organisations SET epsilon_per_year = 10")
    definition = load_definition()
    survey_id = await conn.fetchval(
        "INSERT INTO surveys (organisation_id, slug, version, definition) "
        "VALUES ($1, $2, $3, $4) RETURNING id",
        tenant.organisation_id,
        definition["slug"],
        definition["version"],
        definition,
    )
    await create_user(
        conn,
        organisation_id=tenant.organisation_id,
        email=READER,
        role="manager",
        programs=[tenant.program_id],
        password=PASSWORD,
    )
    return tenant, (survey_id, from_json(definition))


def rows_of(html: str, first: str) -> list[list[str]]:
    """The cells of a page's table rows whose first cell is ``first``."""
    return [
        re.findall(r"<td>(.*?)</td>", row)
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html)
        if row.startswith(f"<td>{first}</td>")
    ]


async def test_the_audits_skip_example_reads_as_the_page_says(
    reader: tuple[factories.Tenant, tuple[uuid.UUID, Survey]],
    staff_client: StaffClient,
    worker_conn: Connection,
) -> None:
    """The audit's example: 40 answer every Recovery item at the top (100), 20 skip them all
    (answering the other index). The page says someone who answered none of an index's
    questions is not in it, and its figure is the mean of the 40 (about 100, of about 40
    people), not 83 (the 20 counted at the middle). Epsilon 8: the noise is small beside the
    difference between the two readings."""
    tenant, (survey_id, survey) = reader
    top = {q.id: 5 for q in survey.items_of("recovery")}
    rights = {q.id: 4 for q in survey.items_of("rights")}
    await add_release(
        worker_conn, tenant, "2026-Q1", kind="indices", epsilon=8, respondents=60,
        survey=(survey_id, survey), answers=lambda i: {**top, **rights} if i < 40 else rights,
    )  # fmt: skip
    async with staff_client(READER) as client:
        html = (await client.get("/staff/p/shelter/?period=2026-Q1")).text
    assert "someone who answered none of an index's questions is not counted in it" in html
    [rights_row, recovery, respondents] = rows_of(html, "2026-Q1")
    assert rights_row[1] == "Treated with rights"
    assert 70 <= int(rights_row[2]) <= 80  # everyone at 4 of 5: 75, and the noise
    assert rights_row[5] == "60"  # all 60 answered it
    assert recovery[1] == "Recovery"
    assert int(recovery[2].split()[0]) >= 90  # the 40's mean, never the 83 of counting all 60
    assert recovery[3].endswith(" to 100")  # its interval holds 100
    assert recovery[5] == "40"  # the 20 who skipped it are in none of its cells
    assert respondents == ["2026-Q1", "60"]  # everyone who took part


async def test_the_demo_s_pages_call_no_difference_its_generator_does_not_make(
    reader: tuple[factories.Tenant, tuple[uuid.UUID, Survey]],
    staff_client: StaffClient,
    worker_conn: Connection,
) -> None:
    """A year of the demo's synthetic answers (its generator: gender has no effect on either
    index, time in program raises Recovery only), released by gender and by time in program
    through the real release code, and the 2025 page as a manager reads it: no difference
    between genders, nor of Treated with rights between times in program, is called real;
    Recovery's rise with time in program is. The noise is made small (epsilon 4.5 each), so
    that the verdicts turn on sampling, which the intervals of the issue left out; the sample
    (seed 5) is a typical one, its groups' exact means within about one standard error. (At
    the demo's epsilon 1, noise alone makes a false verdict on about one page in 75 of this
    sample, within the 5% the rule allows, too often for a test.)"""
    tenant, (survey_id, survey) = reader
    rng = random.Random(5)  # noqa: S311 - synthetic answers
    year = [_answers(rng, survey, 0) for _ in range(1000)]
    for by in ("gender", "time_in_program"):
        await add_release(
            worker_conn, tenant, "2025", kind="indices", breakdown=by, epsilon=4.5,
            respondents=len(year), survey=(survey_id, survey), answers=year.__getitem__,
            draw=False,
        )  # fmt: skip
    await views.draw_program(worker_conn, tenant.organisation_id, tenant.program_id)
    async with staff_client(READER) as client:
        html = (await client.get("/staff/p/shelter/?period=2025")).text
    for gender in ("Woman", "Man", "Another way"):
        for row in rows_of(html, gender):
            assert row[4] == "none", row
    assert "No difference between these groups is real: for every pair, can&#39;t tell" in html
    bands = ("Less than 3 months", "3 to 6 months", "6 to 12 months", "More than 12 months")
    said = {(band, row[1]): row[4] for band in bands for row in rows_of(html, band)}
    assert {said[band, "Treated with rights"] for band in bands} == {"none"}
    assert "higher than 3 to 6 months" in said["More than 12 months", "Recovery"]
    assert said["Less than 3 months", "Recovery"].startswith("lower than")
    # The year, released only by group, shows its respondents and overall indices like any
    # period: added up from its groups by gender.
    assert re.search(r"<td>2025</td><td>(9[5-9]0|10[0-4]0)</td>", html)
    assert len(rows_of(html, "2025")) == 3  # two indices, and the respondents
    assert "2025 is added up from its groups by gender" in html
