"""The dashboard in a real headless Chromium, against a real server and database: the admin
invites a manager, the manager sees only their program, reads a release drawn as charts,
makes invitations and writes a note that reaches the survivor's thank-you page. And axe-core
on every dashboard page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Page

from feedback.db import Connection
from feedback.publish.accounts import create_user
from tests import factories
from tests.browser import ARTIFACTS, AXE, WCAG_21_AA, chromium, live_site
from tests.live import LiveServer
from tests.publish.conftest import PASSWORD, add_release

pytestmark = pytest.mark.slow
ADMIN = "admin@org.example"
NOTE = "You told us the waiting room felt unsafe: it now has a private entrance."


@dataclass
class Site:
    server: LiveServer
    database_url: str

    @property
    def staff(self) -> str:
        return self.server.base_url + "/staff"


async def seed(conn: Connection) -> None:
    keyed = await factories.keyed_tenant(conn)
    t = keyed.tenant
    await conn.execute("UPDATE organisations SET epsilon_per_year = 10")
    await conn.execute(
        "INSERT INTO programs (organisation_id, slug, name) VALUES ($1, 'outreach', 'Outreach')",
        t.organisation_id,
    )
    for period in ("2026-Q2", "2026-Q3"):
        await add_release(conn, t, period, epsilon=1.5)
        await add_release(conn, t, period, kind="indices", epsilon=0.5, respondents=200)
    await add_release(conn, t, "2026-Q3", breakdown="gender", epsilon=1.5)
    await add_release(conn, t, "2026-Q3", breakdown="time_in_program", epsilon=1.5)
    await add_release(conn, t, "2026-Q3", kind="indices", breakdown="gender", epsilon=1)
    await create_user(
        conn, organisation_id=t.organisation_id, email=ADMIN, role="admin", password=PASSWORD
    )


@pytest.fixture(scope="module")
def site(
    admin_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    with live_site(admin_url, template_database, tmp_path_factory.mktemp("server"), seed) as (
        server,
        url,
        _,
    ):
        yield Site(server, url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def log_in(page: Page, site: Site, email: str) -> None:
    page.goto(site.staff + "/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_selector("h1:text('Programs')")


def test_admin_invites_a_manager_who_reads_charts_invites_and_writes_back(
    site: Site, browser: Browser
) -> None:
    admin = browser.new_context().new_page()
    log_in(admin, site, ADMIN)
    admin.click("nav >> text=Users")
    admin.fill("#email", "manager@org.example")
    admin.select_option("#role", "manager")
    admin.check("#program-shelter")
    admin.click("main form button[type=submit]")
    link = re.search(r"http://\S+/set-password/[A-Za-z0-9_-]+", admin.inner_text(".notice"))
    assert link

    manager = browser.new_context().new_page()
    manager.goto(link[0])
    manager.fill("#password", PASSWORD)
    manager.fill("#again", PASSWORD)
    manager.click("main button[type=submit]")
    manager.wait_for_selector("h1:text('Log in')")
    log_in(manager, site, "manager@org.example")
    programs = manager.locator("ul.programs > li > a:first-child").all_inner_texts()
    assert programs == ["Shelter"]  # not Outreach

    manager.click("text=Shelter")
    manager.wait_for_selector("h1:text('Shelter')")
    charts = manager.locator(".chart svg")
    assert charts.count() >= 6
    # Rendered, not empty: the indices have their estimates, their two-sided intervals as
    # bars (2 periods x 2 indices) and the reference line at 50, labelled.
    indices = "#chart-indices-over-time ~ figure svg"
    assert manager.locator(f"{indices} .mark-symbol.role-mark path").count() == 4
    assert manager.locator(f"{indices} .mark-rect.role-mark path").count() == 4
    assert manager.locator(f"{indices} .mark-rule.role-mark line").count() == 1
    assert "neither agree nor disagree" in (manager.locator(indices).text_content() or "")
    assert manager.locator("table").count() == charts.count()
    ARTIFACTS.mkdir(exist_ok=True)
    manager.screenshot(path=str(ARTIFACTS / "dashboard-program.png"), full_page=True)
    with manager.expect_download() as download:
        manager.click("#chart-indices-by-gender ~ figure >> text=Download this table as CSV")
    assert download.value.suggested_filename == "shelter-indices-by-gender-2026-Q3.csv"

    manager.click("nav >> text=Programs")
    manager.click("ul.programs a[href$='/invitations']")
    manager.fill("#count", "2")
    manager.click("main form button[type=submit]")
    links = manager.locator(".notice .links li").all_inner_texts()
    assert len(links) == 2

    manager.click("nav >> text=Programs")
    manager.click("ul.programs a[href$='/notes']")
    manager.fill("#text_en", NOTE)
    manager.click("main form button[type=submit]")
    manager.wait_for_selector(f"text={NOTE}")

    survivor = browser.new_context().new_page()
    survivor.goto(links[0])
    while survivor.is_hidden("button[type=submit]"):  # one part at a time, to the last
        survivor.click("button.next")
    survivor.click("button[type=submit]")  # every question may be skipped
    survivor.wait_for_selector("h1:text('Thank you')")
    assert NOTE in survivor.inner_text("main")


def dashboard_pages(page: Page, site: Site) -> Iterator[str]:
    page.goto(site.staff + "/login")
    yield "login"
    log_in(page, site, ADMIN)
    yield "home"
    for path in (
        "/p/shelter/",
        "/p/shelter/invitations",
        "/p/shelter/notes",
        "/admin/users",
        "/admin/budget",
        "/admin/audit",
        "/admin/organisation",
        "/admin/programs",
        "/admin/keys",
        "/admin/publications",
        "/admin/funders",
        "/tokens",
    ):
        page.goto(site.staff + path)
        yield path
    page.goto(site.staff + "/admin/budget")
    page.fill("#respondents", "300")
    page.click("text=Advise")
    page.wait_for_selector("text=Plan these lines")
    yield "the advisor's plan"
    page.select_option("#kind", "questions")
    page.fill("#epsilon", "0.5")
    page.fill("#line-n", "20")
    page.click("button[name=step][value=preview]")
    page.wait_for_selector("#shortfall")
    yield "a line too wide to read"


def test_axe_finds_no_wcag_21_aa_violations_on_the_dashboard(site: Site, browser: Browser) -> None:
    context = browser.new_context(bypass_csp=True)  # to inject axe
    page = context.new_page()
    checked = []
    for name in dashboard_pages(page, site):
        page.add_script_tag(path=str(AXE))
        result = page.evaluate(
            "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})",
            WCAG_21_AA,
        )
        violations = [(v["id"], v["help"], len(v["nodes"])) for v in result["violations"]]
        assert violations == [], f"{name}: {violations}"
        assert result["passes"]
        checked.append(name)
    context.close()
    assert len(checked) == 16
