"""The survivor pages in a real headless Chromium, against a real server and database."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page

from feedback.aggregate.keys import UnlockedKey
from feedback.envelope import answers_of, from_plaintext
from feedback.publish.invitations import create_batch, create_open_link
from feedback.surveys import DEFAULT_SURVEY
from tests import factories
from tests.browser import (
    ARTIFACTS,
    AXE,
    WCAG_21_AA,
    chromium,
    live_site,
    run_with_connection,
)
from tests.live import LiveServer

pytestmark = pytest.mark.slow
EXIT_URL = "https://www.bbc.com/weather"


@dataclass
class Site:
    server: LiveServer
    database_url: str
    keyed: factories.KeyedTenant

    def run(self, coroutine_function: Any, *args: Any) -> Any:
        return run_with_connection(self.database_url, coroutine_function, *args)

    def new_link(self, kind: str = "single") -> str:
        async def make(conn: Any) -> str:
            program_id = self.keyed.tenant.program_id
            if kind == "open":
                token = await create_open_link(conn, program_id=program_id)
            else:
                token = (await create_batch(conn, program_id=program_id, count=1)).tokens[0]
            return f"{self.server.base_url}/s/{token}"

        return str(self.run(make))

    def submissions(self) -> list[dict[str, Any]]:
        async def fetch(conn: Any) -> list[dict[str, Any]]:
            return [dict(r) for r in await conn.fetch("SELECT * FROM submissions")]

        return list(self.run(fetch))


@pytest.fixture(scope="module")
def site(
    admin_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    with live_site(
        admin_url, template_database, tmp_path_factory.mktemp("server"), factories.keyed_tenant
    ) as (server, url, keyed):
        yield Site(server, url, keyed)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


THANKS = {"en": "Thank you", "es": "Gracias"}


def reveal(page: Page, selector: str) -> None:
    """With JavaScript the survey shows one part at a time: move on to the part that holds
    ``selector`` (without, every part shows at once)."""
    while not page.is_visible(selector):
        page.click("button.next")


def answer_survey(page: Page, marker: str, language: str = "en") -> None:
    page.check("#q-believed-5")  # Strongly agree
    if page.locator("#q-pressured-6").count():  # version 1 (version 2 has no such item)
        page.check("#q-pressured-6")  # Prefer not to say
    reveal(page, "#q-time_in_program-2")
    page.check("#q-time_in_program-2")  # 3 to 6 months
    reveal(page, "label[for=q-gender-1]")
    page.check("label[for=q-gender-1]")  # Woman, by clicking its label
    page.fill("#comment", f"Thank you {marker}")
    page.click("button[type=submit]")
    page.wait_for_selector(f"h1:text('{THANKS[language]}')")


EXPECTED = {
    "believed": 5,
    "pressured": "prefer_not",
    "gender": "woman",
    "time_in_program": "3_to_6",
}


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("kind", ["single", "open"])
@pytest.mark.parametrize(("javascript", "channel"), [(True, "web"), (False, "web_nojs")])
def test_survey_completed_stores_one_submission_that_opens_to_the_answers(
    site: Site, browser: Browser, javascript: bool, channel: str, kind: str, language: str
) -> None:
    """Every way in: single-use and open (poster) links, with and without JavaScript, in
    English and Spanish. Each stores exactly one row that the aggregator opens back to the
    answers given."""
    before = {row["id"] for row in site.submissions()}
    marker = f"MARKER-{uuid.uuid4().hex}"
    context = browser.new_context(
        java_script_enabled=javascript, viewport={"width": 320, "height": 640}
    )
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.post_data or "") if r.method == "POST" else None)
    page.goto(f"{site.new_link(kind)}?lang={language}")
    assert page.title() == {"en": "Your experience", "es": "Su experiencia"}[language]
    answer_survey(page, marker, language)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"survey-thanks-{channel}-{kind}-{language}.png"
    page.screenshot(path=str(shot), full_page=True)
    cookies = context.cookies()
    storage = (
        page.evaluate("() => [localStorage.length, sessionStorage.length]")
        if javascript
        else [0, 0]
    )
    context.close()

    [row] = [r for r in site.submissions() if r["id"] not in before]  # exactly one
    assert (row["channel"], row["open_link"]) == (channel, kind == "open")
    key = UnlockedKey(site.keyed.tenant.key_id, site.keyed.private_key)  # the aggregator's
    envelope = from_plaintext(key.open(row["ciphertext"]))
    assert dict(answers_of(key.open(row["ciphertext"]), "rights-based", 1)) == EXPECTED
    assert dict(envelope.answers) == EXPECTED
    assert envelope.comment == f"Thank you {marker}"
    assert envelope.language == language
    # With JavaScript, only ciphertext left the browser; without, the form itself did.
    assert (marker in "".join(posted)) is (not javascript)
    assert all(url.startswith(site.server.base_url) for url in requests), requests
    assert cookies == []
    assert storage == [0, 0]


def test_the_default_bank_in_parts_on_a_small_phone_sends_only_what_was_answered(
    site: Site, browser: Browser
) -> None:
    """Version 2 of the default bank (comments off) at 360x640: the first question on the
    first screen, one part at a time with its place, no request between parts; a survivor
    who answers two questions sends exactly those two."""

    async def v2_link(conn: Any) -> tuple[factories.KeyedTenant, str]:
        keyed = await factories.keyed_tenant(
            conn, f"v2-{uuid.uuid4().hex[:8]}", comments=False, survey=DEFAULT_SURVEY
        )
        token = (await create_batch(conn, program_id=keyed.tenant.program_id, count=1)).tokens[0]
        return keyed, f"{site.server.base_url}/s/{token}"

    keyed, link = site.run(v2_link)
    context = browser.new_context(viewport={"width": 360, "height": 640}, has_touch=True)
    page = context.new_page()
    page.goto(link)
    first = page.locator("fieldset.question").first.bounding_box()
    assert first is not None
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "survey-v2-360x640.png"))
    assert first["y"] + first["height"] <= 640  # the whole first question, without scrolling
    assert page.locator("#part-1-heading").inner_text().startswith("Part 1 of 3")
    assert page.is_hidden("#part-2")
    assert page.is_hidden("button[type=submit]")
    assert page.is_hidden("[data-shift-tip]")  # a touch screen has no Shift key
    assert page.locator("textarea").count() == 0  # comments are off: no box
    assert page.locator("input:checked").count() == 0  # nothing chosen for the survivor
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.method + " " + request.url))
    page.check("#q-needs_asked-4")
    page.click("button.next")
    assert page.locator("#part-2-heading").inner_text().startswith("Part 2 of 3")
    assert page.evaluate("() => document.activeElement.id") == "part-2-heading"
    page.click("button.back")  # back and forth keeps the answer, and asks nothing of the server
    assert page.is_checked("#q-needs_asked-4")
    page.click("button.next")
    page.check("#q-housing-2")
    page.click("button.next")
    assert page.locator("#part-3-heading").inner_text().startswith("Part 3 of 3")
    assert requests == []
    page.click("button[type=submit]")
    page.wait_for_selector(".receipt")
    assert "never before the end of this week" in page.inner_text(".receipt")
    context.close()

    async def stored(conn: Any) -> list[bytes]:
        rows = await conn.fetch(
            "SELECT ciphertext FROM submissions WHERE organisation_id = $1",
            keyed.tenant.organisation_id,
        )
        return [r["ciphertext"] for r in rows]

    [ciphertext] = site.run(stored)
    key = UnlockedKey(keyed.tenant.key_id, keyed.private_key)
    envelope = from_plaintext(key.open(ciphertext))
    assert (envelope.survey, envelope.survey_version) == ("rights-based", 2)
    assert dict(envelope.answers) == {"needs_asked": 4, "housing": 2}
    assert envelope.comment is None


def test_without_javascript_every_part_shows_headed_with_its_place(
    site: Site, browser: Browser
) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(site.new_link())
    headings = page.locator("section.part h2").all_inner_texts()
    assert [h.split("\n")[0] for h in headings] == [f"Part {n} of 3" for n in (1, 2, 3)]
    assert all(page.is_visible(f"#part-{n}") for n in (1, 2, 3))
    assert page.is_visible("button[type=submit]")
    assert page.is_hidden("[data-shift-tip]")  # pressing Shift needs the script
    assert page.locator("button.next").count() == 0
    context.close()


def test_quick_exit_leaves_no_history_entry_for_the_survey(site: Site, browser: Browser) -> None:
    for how in ("button", "shift"):
        context = browser.new_context()
        context.route(
            "https://www.bbc.com/**",
            lambda route: route.fulfill(body="<title>Weather</title>", content_type="text/html"),
        )
        page = context.new_page()
        page.goto(f"{site.server.base_url}/withdraw")  # somewhere before the survey
        survey = site.new_link()
        page.goto(survey)
        length = page.evaluate("() => history.length")
        if how == "button":
            page.click("[data-quick-exit]")
        else:
            for _ in range(3):
                page.keyboard.press("Shift")
        page.wait_for_url(EXIT_URL)
        assert page.evaluate("() => history.length") == length  # replaced, not added
        page.go_back()
        assert not page.url.startswith(survey)
        page.go_forward()
        assert page.url == EXIT_URL
        context.close()


def test_keyboard_only_completion(site: Site, browser: Browser) -> None:
    before = len(site.submissions())
    context = browser.new_context()
    page = context.new_page()
    page.goto(site.new_link())
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.dataset.quickExit") == ""
    page.focus("#q-believed-1")
    page.keyboard.press("ArrowDown")  # arrows move within a radio group
    page.keyboard.press("ArrowDown")
    assert page.is_checked("#q-believed-3")
    for _ in range(2):  # Next, by keyboard, to the last part
        page.focus("button.next")
        page.keyboard.press("Enter")
    page.focus("button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_selector("h1:text('Thank you')")
    context.close()
    assert len(site.submissions()) == before + 1


def test_readable_on_a_320_pixel_screen(site: Site, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 320, "height": 568})
    page = context.new_page()
    page.goto(site.new_link() + "?lang=es")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 320
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "survey-320-es.png"))
    context.close()


def test_whole_survey_page_is_under_60_kb_compressed(site: Site) -> None:
    total = 0
    with httpx.Client(headers={"accept-encoding": "gzip"}) as client:
        page = client.get(site.new_link())
        total += page.num_bytes_downloaded
        assert page.headers["content-encoding"] == "gzip"
        for asset in ("survivor.css", "exit.js", "survey.js"):
            path = next(p for p in _links(page.text) if f"/static/{asset}" in p)
            total += client.get(site.server.base_url + path).num_bytes_downloaded
    assert total < 60 * 1024, total


def _links(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/static/[^"]+)"', html)


def survivor_pages(site: Site, page: Page, language: str) -> Iterator[str]:
    """Visit every survivor page in ``language``; yield a name for each once it is shown."""
    base = site.server.base_url
    link = site.new_link()
    page.goto(f"{link}?lang={language}")
    yield "survey"
    page.check("#q-believed-4")
    page.click("button.next")
    yield "survey, part 2"
    reveal(page, "button[type=submit]")
    yield "survey, last part"
    page.click("button[type=submit]")
    page.wait_for_selector(".receipt")
    yield "thanks"
    page.goto(f"{link}?lang={language}")
    yield "already-received"
    page.goto(f"{base}/s/AAAAAAAAAAAAAAAAAAAAAA?lang={language}")
    yield "unknown-link"
    page.goto(f"{link}?lang=xx")
    yield "unknown-language"
    page.goto(f"{base}/withdraw?lang={language}")
    yield "withdraw"
    page.fill("#code", "0000-0000-0000")
    page.click("form button[type=submit]")
    page.wait_for_selector("#code-error")
    yield "withdraw-unknown-code"


@pytest.mark.parametrize("language", ["en", "es"])
def test_axe_finds_no_wcag_21_aa_violations(site: Site, browser: Browser, language: str) -> None:
    # bypass_csp: axe is injected as a script, which the pages' own CSP rightly forbids.
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    checked = []
    for name in survivor_pages(site, page, language):
        page.add_script_tag(path=str(AXE))
        result = page.evaluate(
            "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})",
            WCAG_21_AA,
        )
        violations = [(v["id"], v["help"], len(v["nodes"])) for v in result["violations"]]
        assert violations == [], f"{name} ({language}): {violations}"
        assert result["passes"]  # axe really ran its rules on this page
        assert page.evaluate("() => document.documentElement.lang") in (language, "en")
        assert page.locator("[data-quick-exit]").count() == 1, name
        checked.append(name)
    context.close()
    assert len(checked) == 9


def test_axe_flags_a_broken_page(site: Site, browser: Browser) -> None:
    """The control for the check above: the same call reports a real violation."""
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.goto(site.new_link())
    reveal(page, "#comment")  # axe checks what is shown: the comment is in the last part
    page.evaluate("() => document.querySelector('label[for=comment]').remove()")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})",
        WCAG_21_AA,
    )
    context.close()
    assert "label" in {v["id"] for v in result["violations"]}


def test_pages_leave_no_trace_in_cookies_or_storage(site: Site, browser: Browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    responses = []
    page.on("response", lambda r: responses.append(r))
    page.goto(site.new_link())
    assert context.cookies() == []
    assert all("set-cookie" not in r.headers for r in responses)
    assert all(urlsplit(r.url).netloc == urlsplit(site.server.base_url).netloc for r in responses)
    context.close()
