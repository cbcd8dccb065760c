"""Networks (issue 14): a coalition registers members by their public keys, imports their
signed publications after checking them, and publishes a summary computed from them alone,
which `feedback verify` recomputes."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from feedback.aggregate.signing import create_signing_key, unlock_signing_key
from feedback.bundles import MANIFEST, SIGNATURE, WHOLE_ORGANISATION, check, write_bundle
from feedback.cli.networks import (
    add_member,
    create_network,
    import_bundle,
    summarise_network,
)
from feedback.cli.publications import export
from feedback.cli.publishing import publish
from feedback.db import Connection
from feedback.errors import FeedbackError
from feedback.minisign import PublicKey
from feedback.networks import (
    NETWORK,
    NetworkError,
    Requirements,
    check_network,
    choose,
    refusals,
    summarise,
)
from feedback.schedules import add_schedule, schedule_of
from feedback.stats.means import MIDDLE
from feedback.stats.periods import Period
from feedback.wrapping import INSECURE_TEST
from tests import factories
from tests.cli import run_feedback
from tests.publish.conftest import add_release

PASSPHRASE = "network lantern quietly orbit teapot"
TODAY = dt.datetime.now(dt.UTC).date()
MEMBERS = {"north": 120, "south": 240, "east": 400}  # respondents a quarter


@dataclass
class Coalition:
    network_id: uuid.UUID
    key: PublicKey
    members: dict[str, factories.Tenant]
    bundles: dict[tuple[str, str], Path]  # (member, period) -> its exported publication


async def member_key(conn: Connection, t: factories.Tenant) -> PublicKey:
    key = await conn.fetchval(
        "SELECT public_key FROM signing_keys WHERE organisation_id = $1", t.organisation_id
    )
    return PublicKey.of(key)


async def publish_member(
    conn: Connection, t: factories.Tenant, slug: str, period: str, folder: Path
) -> Path:
    schedule_row = await conn.fetchrow(
        "SELECT 1 FROM publication_schedules WHERE organisation_id = $1", t.organisation_id
    )
    if schedule_row is None:
        await add_schedule(conn, t.organisation_id, "quarterly", "quarter", 5, None)
    schedule = await schedule_of(conn, t.organisation_id, "quarterly")
    made = await publish(conn, schedule, Period.parse(period), passphrase=PASSPHRASE, issued=TODAY)
    packed = await conn.fetchval("SELECT archive FROM publications WHERE id = $1", made.id)
    return export(packed, folder / f"{slug}-{period}")


@pytest.fixture
async def coalition(conn: Connection, worker_conn: Connection, tmp_path: Path) -> Coalition:
    members = {}
    bundles = {}
    for slug, n in MEMBERS.items():
        t = await factories.tenant(conn, slug)
        await conn.execute(
            "UPDATE organisations SET epsilon_per_year = 10 WHERE id = $1", t.organisation_id
        )
        await create_signing_key(
            worker_conn,
            organisation_id=t.organisation_id,
            passphrase=PASSPHRASE,
            cost=INSECURE_TEST,
        )
        for period in ("2026-Q2", "2026-Q3"):
            await add_release(worker_conn, t, period, kind="indices", respondents=n, draw=False)
            await add_release(worker_conn, t, period, respondents=n, draw=False)
            bundles[slug, period] = await publish_member(worker_conn, t, slug, period, tmp_path)
        members[slug] = t
    network_id = await create_network(
        conn, "coalition", "The Coalition", Requirements("invitation", 11), PASSPHRASE,
        cost=INSECURE_TEST,
    )  # fmt: skip
    for slug, t in members.items():
        key = await member_key(conn, t)
        await add_member(conn, network_id, slug, slug.title(), key, consents=slug != "east")
    network_key = await conn.fetchval(
        "SELECT public_key FROM signing_keys WHERE organisation_id = $1", network_id
    )
    return Coalition(network_id, PublicKey.of(network_key), members, bundles)


async def summary_bundle(
    conn: Connection, c: Coalition, period: str, target: Path, left: str = ""
) -> Path:
    for (slug, p), bundle in c.bundles.items():
        if p == period and slug != left:
            await import_bundle(conn, c.network_id, bundle)
    publication_id, _ = await summarise_network(
        conn,
        c.network_id,
        Period.parse(period),
        PASSPHRASE,
        TODAY,
    )
    packed = await conn.fetchval("SELECT archive FROM publications WHERE id = $1", publication_id)
    return export(packed, target)


async def test_a_network_summary_is_the_combination_of_its_members_releases(
    coalition: Coalition, worker_conn: Connection, tmp_path: Path
) -> None:
    ledger = await worker_conn.fetch(
        "SELECT organisation_id, count(*), sum(epsilon) FROM privacy_ledger GROUP BY 1 ORDER BY 1"
    )
    bundle = await summary_bundle(worker_conn, coalition, "2026-Q3", tmp_path / "network")
    stated = json.loads((bundle / NETWORK).read_text())
    # Each index pools the members' noisy centred sums and counts, as released.
    rows = await worker_conn.fetch(
        "SELECT cells FROM releases WHERE kind = 'indices' AND period_start = '2026-07-01'"
    )
    for index in ("rights", "recovery"):
        cells = [r["cells"]["groups"][0]["indices"][index] for r in rows]
        total, n = sum(c["sum"] for c in cells), sum(c["n"] for c in cells)
        figure = stated["figures"]["indices"][index]
        assert figure["value"] == round(MIDDLE + total / n, 1)
        assert figure["low"] < figure["value"] < figure["high"]
        assert figure["members"] == 3
        assert figure["respondents"] == round(n, -1)
    assert stated["figures"]["pooled"]["north"] == [
        {
            "program": "shelter",
            "kind": kind,
            "granularity": "quarter",
            "periods": ["2026-Q3"],
            "covers_the_period": True,
        }
        for kind in ("indices", "questions")
    ]
    assert "How the figures were computed" in (bundle / "summary.html").read_text()
    shown = {m["member"] for m in stated["figures"]["members"]}
    assert shown == {"north", "south"}  # east did not consent
    for m in stated["figures"]["members"]:
        assert 0 <= m["p_above_median"] <= 1
        assert "median" in m["band"]
    assert "rank" not in json.dumps(stated["figures"])
    # No member's ledger changed: the summary is post-processing.
    after = await worker_conn.fetch(
        "SELECT organisation_id, count(*), sum(epsilon) FROM privacy_ledger GROUP BY 1 ORDER BY 1"
    )
    assert after == ledger
    # And verify recomputes it from the member bundles inside.
    report = check(bundle, coalition.key, then=check_network)
    assert report.ok, report.problems
    key_file = tmp_path / "coalition.pub"
    key_file.write_text(coalition.key.file("coalition signing key"))
    done = run_feedback("verify", str(bundle), "--key", str(key_file))
    assert done.returncode == 0, done.stdout + done.stderr


async def test_verify_fails_a_signed_summary_whose_figure_differs(
    coalition: Coalition, worker_conn: Connection, tmp_path: Path
) -> None:
    bundle = await summary_bundle(worker_conn, coalition, "2026-Q3", tmp_path / "network")
    stated = json.loads((bundle / NETWORK).read_text())
    stated["figures"]["indices"]["rights"]["value"] += 0.1
    files = {
        p.relative_to(bundle).as_posix(): p.read_bytes()
        for p in bundle.rglob("*")
        if p.is_file() and p.relative_to(bundle).as_posix() not in (MANIFEST, SIGNATURE)
    }
    files[NETWORK] = json.dumps(stated).encode()
    _, key = await unlock_signing_key(worker_conn, coalition.network_id, PASSPHRASE)
    forged = tmp_path / "forged"
    write_bundle(
        forged, files, organisation="coalition", series="network", sequence=9, issued=TODAY,
        next_due=None, previous=None, signing_key=key,
    )  # fmt: skip
    report = check(forged, coalition.key, then=check_network)
    assert report.problems == [
        f"{NETWORK}: the index rights differs from its recomputation from the member bundles"
    ]


async def test_imports_are_refused_unless_signed_by_a_registered_member_with_its_rules(
    coalition: Coalition, conn: Connection, worker_conn: Connection, tmp_path: Path
) -> None:
    network = coalition.network_id
    # Not a member.
    stranger = await factories.tenant(conn, "stranger")
    await create_signing_key(
        worker_conn, organisation_id=stranger.organisation_id, passphrase=PASSPHRASE,
        cost=INSECURE_TEST,
    )  # fmt: skip
    await add_release(worker_conn, stranger, "2026-Q3", kind="indices", draw=False)
    theirs = await publish_member(worker_conn, stranger, "stranger", "2026-Q3", tmp_path)
    with pytest.raises(NetworkError, match="stranger is not a current member"):
        await import_bundle(worker_conn, network, theirs)
    # A member's name, another key: the stranger's bundle relabelled would not verify; a
    # member registered with the wrong key cannot bring its own bundle either.
    await add_member(
        worker_conn,
        network,
        "stranger",
        "Stranger",
        coalition.key,
        consents=False,
    )
    with pytest.raises(NetworkError, match="does not verify with the key registered"):
        await import_bundle(worker_conn, network, theirs)
    # A tampered file.
    bundle = coalition.bundles["north", "2026-Q3"]
    (bundle / "figures.csv").write_text("changed\n")
    with pytest.raises(NetworkError, match=r"figures.csv: changed"):
        await import_bundle(worker_conn, network, bundle)
    # A release card with another threshold than the network requires.
    lax = await factories.tenant(conn, "lax")
    await create_signing_key(
        worker_conn, organisation_id=lax.organisation_id, passphrase=PASSPHRASE, cost=INSECURE_TEST
    )
    await add_release(worker_conn, lax, "2026-Q3", kind="indices", threshold=5, draw=False)
    laxer = await publish_member(worker_conn, lax, "lax", "2026-Q3", tmp_path)
    await add_member(
        worker_conn,
        network,
        "lax",
        "Lax",
        await member_key(worker_conn, lax),
        consents=True,
    )
    with pytest.raises(NetworkError, match="its threshold is 5, the network requires 11"):
        await import_bundle(worker_conn, network, laxer)
    assert await worker_conn.fetchval("SELECT count(*) FROM network_imports") == 0


async def test_a_member_that_leaves_is_absent_from_later_summaries_and_earlier_ones_stand(
    coalition: Coalition, worker_conn: Connection, tmp_path: Path
) -> None:
    earlier = await summary_bundle(worker_conn, coalition, "2026-Q2", tmp_path / "q2")
    await worker_conn.execute(
        "UPDATE network_members SET left_on = utc_today() WHERE member = 'south'"
    )
    with pytest.raises(NetworkError, match="south is not a current member"):
        await import_bundle(
            worker_conn, coalition.network_id, coalition.bundles["south", "2026-Q3"]
        )
    later = await summary_bundle(worker_conn, coalition, "2026-Q3", tmp_path / "q3", left="south")
    members = {m["member"] for m in json.loads((later / NETWORK).read_text())["members"]}
    assert members == {"north", "east"}
    before = {m["member"] for m in json.loads((earlier / NETWORK).read_text())["members"]}
    assert before == {"north", "south", "east"}
    assert check(earlier, coalition.key, then=check_network).ok
    assert check(later, coalition.key, then=check_network).ok


def test_a_card_with_another_privacy_unit_is_refused_by_name() -> None:
    card = {
        "release": "r1",
        "program": "shelter",
        "period": "2026-Q3",
        "privacy_unit": {"unit": "submission"},
        "threshold": 11,
    }
    assert refusals({"releases": [card]}, Requirements("invitation", 11)) == [
        "release r1 (shelter, 2026-Q3): its privacy unit is 'submission', the network requires "
        "'invitation'"
    ]
    assert refusals({"releases": [card]}, Requirements("submission", 11)) == []


async def test_a_member_keeps_the_key_it_was_registered_with(
    coalition: Coalition, worker_conn: Connection
) -> None:
    with pytest.raises(NetworkError, match="north is registered with another key"):
        await add_member(
            worker_conn, coalition.network_id, "north", "North", coalition.key, consents=True
        )
    with pytest.raises(FeedbackError, match="cannot be a member's short name"):
        await add_member(
            worker_conn, coalition.network_id, "No Such!", "X", coalition.key, consents=True
        )
    assert await worker_conn.fetchval("SELECT count(*) FROM network_members") == 3


# Member publications' release cards, as figures.json carries them (fast: no database).


def indices_card(program: str, period: str, n: int, mean: float, sd: float = 20) -> dict[str, Any]:
    """An overall indices release of ``n`` respondents whose two indices are at ``mean``."""
    offset = mean - MIDDLE
    cells = {"n": n, "sum": round(offset * n), "squares": round((offset**2 + sd**2 - 1250) * n)}
    return {
        "release": f"{program}-{period}-indices",
        "program": program,
        "period": period,
        "kind": "indices",
        "breakdown": None,
        "cells": {
            "groups": [{"group": "all", "n": n, "indices": {"rights": cells, "recovery": cells}}],
            "count_scale": 3.0,
            "sum_scale": 100.0,
            "squares_scale": 20000.0,
        },
    }


def questions_card(program: str, period: str, n: int, agree: int) -> dict[str, Any]:
    return {
        "release": f"{program}-{period}-questions",
        "program": program,
        "period": period,
        "kind": "questions",
        "breakdown": None,
        "noise_scale": {"cells": 3.0},
        "cells": {
            "groups": [
                {
                    "group": "all",
                    "n": n,
                    "questions": {
                        "believed": {"agree": agree, "neither": 0, "disagree": n - agree}
                    },
                }
            ]
        },
    }


def year_of(program: str, n: int, mean: float, agree: float) -> list[dict[str, Any]]:
    return [
        indices_card(program, "2026", n, mean),
        questions_card(program, "2026", n, round(agree * n)),
    ]


def quarters_of(program: str, n: int, mean: float, agree: float) -> list[dict[str, Any]]:
    return [
        card
        for q in range(1, 5)
        for card in (
            indices_card(program, f"2026-Q{q}", n, mean),
            questions_card(program, f"2026-Q{q}", n, round(agree * n)),
        )
    ]


YEAR = Period.parse("2026")


def test_a_member_with_a_year_and_its_quarters_counts_its_respondents_once() -> None:
    """North released 2026 (400 respondents) and each of its quarters (100 each): the network
    pools its year alone, so its 400 are counted once, and the summary is the one it would be
    had North released the year only."""
    others = [
        ("south", True, {"releases": year_of("shelter", 400, 60, 0.6)}),
        ("east", True, {"releases": year_of("shelter", 400, 70, 0.7)}),
    ]
    year_only = [("north", True, {"releases": year_of("shelter", 400, 80, 0.8)}), *others]
    both = [
        (
            "north",
            True,
            {"releases": year_of("shelter", 400, 80, 0.8) + quarters_of("shelter", 100, 80, 0.8)},
        ),
        *others,
    ]
    summary = summarise(both, YEAR)
    for kind, name in (("indices", "rights"), ("indices", "recovery"), ("shares", "believed")):
        assert summary[kind][name]["respondents"] == 1200  # not 1,600
        assert summary[kind][name]["members"] == 3
    assert summary["indices"]["rights"]["value"] == 70.0
    assert summary["shares"]["believed"]["value"] == 70.0
    assert summary == summarise(year_only, YEAR)
    assert summary["pooled"]["north"] == [
        {
            "program": "shelter",
            "kind": kind,
            "granularity": "year",
            "periods": ["2026"],
            "covers_the_period": True,
        }
        for kind in ("indices", "questions")
    ]
    # Without the year, the quarters stand for it: the same 400 respondents.
    quarters = [("north", True, {"releases": quarters_of("shelter", 100, 80, 0.8)}), *others]
    assert summarise(quarters, YEAR)["indices"]["rights"]["respondents"] == 1200


def chosen(cards: list[dict[str, Any]], period: str = "2026") -> list[tuple[str, str, str, bool]]:
    return [
        (c.program, c.kind, ",".join(c.periods), c.tiles)
        for c, _ in choose(cards, Period.parse(period))
    ]


def test_one_granularity_per_member_program_and_kind_the_coarsest_that_tiles_the_period() -> None:
    def ind(program: str, *periods: str) -> list[dict[str, Any]]:
        return [indices_card(program, p, 100, 60) for p in periods]

    quarters = ("2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4")
    # Halves and quarters both tile the year: the halves.
    assert chosen(ind("shelter", "2026-H1", "2026-H2", *quarters)) == [
        ("shelter", "indices", "2026-H1,2026-H2", True)
    ]
    # Nothing tiles it: the granularity that covers most of it (three quarters, not a half),
    # said to cover part of it; never the half and the third quarter together.
    assert chosen(ind("shelter", "2026-H1", *quarters[:3])) == [
        ("shelter", "indices", "2026-Q1,2026-Q2,2026-Q3", False)
    ]
    # As much of it either way: the coarser.
    assert chosen(ind("shelter", "2026-H1", "2026-Q3", "2026-Q4")) == [
        ("shelter", "indices", "2026-H1", False)
    ]
    # A quarter's network period and a member's months and quarter: the quarter.
    months = ("2026-07", "2026-08", "2026-09")
    assert chosen(ind("shelter", *months, "2026-Q3"), "2026-Q3") == [
        ("shelter", "indices", "2026-Q3", True)
    ]
    assert chosen(ind("shelter", *months, "2026-Q3", "2026"), "2026-Q3") == [
        ("shelter", "indices", "2026-Q3", True)  # the year is not inside the quarter
    ]
    # Each program and kind chooses its own: they are different people or releases.
    cards = [*ind("shelter", "2026", *quarters), *ind("legal", *quarters)]
    cards += [questions_card("shelter", p, 100, 60) for p in ("2026-H1", "2026-H2")]
    assert chosen(cards) == [
        ("legal", "indices", ",".join(quarters), True),
        ("shelter", "indices", "2026", True),
        ("shelter", "questions", "2026-H1,2026-H2", True),
    ]
    # A breakdown release is never pooled.
    assert chosen([{**indices_card("shelter", "2026", 100, 60), "breakdown": "gender"}]) == []


def test_a_member_s_whole_organisation_releases_stand_for_its_programs() -> None:
    """Survivors are counted once: where a member released the whole organisation's figures,
    its programs' (the same people) are not pooled beside them."""
    shelter = year_of("shelter", 100, 90, 0.9)
    whole = year_of(WHOLE_ORGANISATION, 100, 90, 0.9)
    others = [
        ("y", True, {"releases": year_of("shelter", 100, 90, 0.9)}),
        ("z", True, {"releases": year_of("shelter", 100, 90, 0.9)}),
    ]
    alone = summarise([("x", True, {"releases": whole}), *others], YEAR)
    both = summarise([("x", True, {"releases": shelter + whole}), *others], YEAR)
    assert both == alone
    assert alone["shares"]["believed"]["value"] == 90.0
    assert alone["shares"]["believed"]["respondents"] == 300


def test_a_figure_fewer_than_three_members_have_is_not_a_network_figure() -> None:
    """Only North and South asked the question: its pooled share would be two members'
    figures, so it is named, not shown."""
    members = [
        ("north", True, {"releases": year_of("shelter", 200, 80, 0.8)}),
        ("south", True, {"releases": year_of("shelter", 200, 60, 0.6)}),
        ("east", True, {"releases": [indices_card("shelter", "2026", 200, 70)]}),
    ]
    summary = summarise(members, YEAR)
    assert set(summary["indices"]) == {"rights", "recovery"}
    assert summary["shares"] == {}
    assert summary["too_few_members"] == {"indices": {}, "shares": {"believed": 2}}
    two = summarise(members[:2], YEAR)
    assert (two["indices"], two["shares"], two["members"]) == ({}, {}, [])
    assert two["too_few_members"]["indices"] == {"rights": 2, "recovery": 2}


def test_members_beside_the_median_are_read_with_sampling_and_noise() -> None:
    """A member of 30 respondents, five points above the median with a spread of 30, cannot
    be told apart from it (sampling alone moves its mean by about 5.5 points); one of 3,000
    can."""
    small = [
        ("north", True, {"releases": [indices_card("shelter", "2026", 30, 60, sd=30)]}),
        ("south", True, {"releases": [indices_card("shelter", "2026", 30, 55, sd=30)]}),
        ("east", False, {"releases": [indices_card("shelter", "2026", 30, 50, sd=30)]}),
    ]
    found = summarise(small, YEAR)
    north = next(m for m in found["members"] if m["member"] == "north")
    assert found["indices"]["rights"]["median_of_members"] == 55.0
    assert 0.7 < north["p_above_median"] < 0.9
    assert north["band"] == "cannot be told apart from the network's median"
    assert north["high"] - north["low"] > 20  # sampling: about +/-11 points
    assert {m["member"] for m in found["members"]} == {"north", "south"}  # east: no consent
    large = [
        ("north", True, {"releases": [indices_card("shelter", "2026", 3000, 60, sd=30)]}),
        *small[1:],
    ]
    north = next(m for m in summarise(large, YEAR)["members"] if m["member"] == "north")
    assert north["band"] == "above the network's median"


async def test_a_network_summary_is_corrected_by_a_new_one_that_names_it(
    coalition: Coalition, worker_conn: Connection, tmp_path: Path
) -> None:
    q3 = Period.parse("2026-Q3")
    for slug in ("north", "south"):  # east's publication arrives late
        await import_bundle(worker_conn, coalition.network_id, coalition.bundles[slug, "2026-Q3"])
    first, one = await summarise_network(worker_conn, coalition.network_id, q3, PASSPHRASE, TODAY)
    await import_bundle(worker_conn, coalition.network_id, coalition.bundles["east", "2026-Q3"])
    again = await summarise_network(worker_conn, coalition.network_id, q3, PASSPHRASE, TODAY)
    assert again == (first, one)  # a period is summarised once
    with pytest.raises(NetworkError, match="says why"):
        await summarise_network(
            worker_conn, coalition.network_id, q3, PASSPHRASE, TODAY, corrects=one
        )
    fixed, two = await summarise_network(
        worker_conn, coalition.network_id, q3, PASSPHRASE, TODAY,
        corrects=one, why="East's publication arrived late",
    )  # fmt: skip
    packed = await worker_conn.fetchval("SELECT archive FROM publications WHERE id = $1", fixed)
    bundle = export(packed, tmp_path / "fixed")
    report = check(bundle, coalition.key, then=check_network)
    assert report.ok, report.problems
    assert report.manifest is not None
    assert (report.manifest.sequence, report.manifest.corrects) == (two, one)
    members = json.loads((bundle / NETWORK).read_text())["members"]
    assert {m["member"] for m in members} == {"north", "south", "east"}
