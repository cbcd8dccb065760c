"""Network summaries: one picture across a coalition's members, computed from the members'
signed publications alone (post-processing of their releases: no key shared, no budget spent).

For each index, the network's figure pools the members' noisy centred sums and noisy counts
(each member's overall indices release of every program in the period); for each question, it
pools the noisy counts of its headline share. The noise of a pooled figure is the sum of the
members' independent discrete Laplace draws, whose variances add (a draw of scale ``b`` has
variance ``2a / (1 - a)^2``, ``a = exp(-1/b)``); the 95% interval is the normal one of the
delta method around the pooled ratio. Like the members' own intervals it covers the noise
only, not sampling or who chose to answer.

Each consenting member is shown beside the network with the probability that its own figure
(without noise) is above the median of the members' figures, by the same normal approximation,
and a band read from it: never a bare rank. Everything here is a pure function of the member
bundles, so that `feedback verify` recomputes a summary and fails on any figure that differs.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feedback.bundles import WHOLE_ORGANISATION, BundleError, Manifest, check_folder
from feedback.errors import FeedbackError
from feedback.minisign import BadSignature, PublicKey
from feedback.stats.cells import AGREE, DISAGREE, NEITHER, SUPPRESSED
from feedback.stats.means import BOUND, MIDDLE
from feedback.stats.periods import Period
from feedback.surveys import INDICES

NETWORK = "network.json"
NETWORK_FORMAT = "feedback-network/1"
FIGURES = "figures.json"  # a member publication's figures (feedback.publish.publications)
MEMBERS = "members"  # the folder of the member bundles inside a network bundle
Z95 = 1.959963984540054
ABOVE, BELOW = 0.95, 0.05  # the bands' edges on the probability of being above the median
# Members are compared with the members' median only when at least this many have the figure
# (beside a median of two, one is above and one below). Every member's figures are in the
# summary's member publications anyway: consent decides who is named beside the network.
LEAST_FOR_MEDIAN = 3


class NetworkError(FeedbackError):
    pass


@dataclass(frozen=True, slots=True)
class Requirements:
    privacy_unit: str  # "invitation" or "submission"
    threshold: int


def refusals(figures: Mapping[str, Any], required: Requirements) -> list[str]:
    """Why a member publication cannot join the network: each release card whose privacy
    unit or threshold differs from what the network requires, named."""
    found = []
    for card in figures.get("releases", []):
        where = f"release {card['release']} ({card['program']}, {card['period']})"
        unit = card["privacy_unit"]["unit"]
        if unit != required.privacy_unit:
            found.append(
                f"{where}: its privacy unit is {unit!r}, the network requires "
                f"{required.privacy_unit!r}"
            )
        if card["threshold"] != required.threshold:
            found.append(
                f"{where}: its threshold is {card['threshold']}, the network requires "
                f"{required.threshold}"
            )
    return found


def _variance(scale: float) -> float:
    """Of one discrete Laplace draw of ``scale``."""
    a = math.exp(-1 / scale)
    return 2 * a / (1 - a) ** 2


@dataclass
class Pool:
    """Noisy sums of one figure over releases: a numerator, a denominator, their variances."""

    top: float = 0
    bottom: float = 0
    var_top: float = 0
    var_bottom: float = 0
    releases: int = 0

    def add(self, top: float, bottom: float, var_top: float, var_bottom: float) -> None:
        self.top += top
        self.bottom += bottom
        self.var_top += var_top
        self.var_bottom += var_bottom
        self.releases += 1


@dataclass(frozen=True, slots=True)
class Figure:
    value: float
    low: float
    high: float
    sd: float

    def to_json(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def index_figure(pool: Pool) -> Figure | None:
    """An index (0 to 100) from pooled centred sums and counts."""
    if pool.bottom < 1:
        return None
    theta = min(BOUND, max(-BOUND, pool.top / pool.bottom))
    sd = math.sqrt(pool.var_top + theta**2 * pool.var_bottom) / pool.bottom
    value = MIDDLE + theta
    return _figure(value, sd, 0, 100)


def share_figure(pool: Pool) -> Figure | None:
    """A share (0 to 100) of agreeing answers: ``top`` agreeing, ``bottom`` the rest."""
    total = pool.top + pool.bottom
    if total < 1 or pool.top < 0 or pool.bottom < 0:
        return None
    p = pool.top / total
    sd = math.sqrt((1 - p) ** 2 * pool.var_top + p**2 * pool.var_bottom) / total
    return _figure(100 * p, 100 * sd, 0, 100)


def _figure(value: float, sd: float, low: float, high: float) -> Figure:
    return Figure(
        round(value, 1),
        round(max(low, value - Z95 * sd), 1),
        round(min(high, value + Z95 * sd), 1),
        sd,
    )


# What one member brings --------------------------------------------------------------------


@dataclass
class MemberPools:
    indices: dict[str, Pool] = field(default_factory=dict)
    shares: dict[str, Pool] = field(default_factory=dict)


def _headline(cells: Mapping[str, int]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The headline cells of a question (agreeing among the scale's answers, yes among yes and
    no); None for a question without one (a choice among options)."""
    if AGREE in cells:
        return (AGREE,), (NEITHER, DISAGREE)
    if "yes" in cells:
        return ("yes",), ("no",)
    return None


def pools_of(figures: Mapping[str, Any], period: Period) -> MemberPools:
    """A member's pooled figures: its overall releases inside ``period``, of the whole
    organisation where it made such releases of a kind (they count every survivor once),
    else of every program."""
    pools = MemberPools()
    chosen = [
        card
        for card in figures["releases"]
        if card["breakdown"] is None and _inside(card["period"], period)
    ]
    whole = {card["kind"] for card in chosen if card["program"] == WHOLE_ORGANISATION}
    for card in chosen:
        if card["kind"] in whole and card["program"] != WHOLE_ORGANISATION:
            continue
        cells = card["cells"]
        shown = [g for g in cells["groups"] if g["n"] != SUPPRESSED]
        if not shown:
            continue
        if card["kind"] == "indices":
            sums, count = float(cells["sum_scale"]), float(cells["count_scale"])
            for index in INDICES:
                if index not in shown[0]["sums"]:
                    continue
                pool = pools.indices.setdefault(index, Pool())
                for g in shown:
                    pool.add(g["sums"][index], g["n"], _variance(sums), _variance(count))
            continue
        scale = _variance(float(card["noise_scale"]["cells"]))
        for question, first in shown[0]["questions"].items():
            headline = _headline(first)
            if headline is None:
                continue
            agree, rest = headline
            pool = pools.shares.setdefault(question, Pool())
            for g in shown:
                got = g["questions"][question]
                pool.add(
                    sum(got[c] for c in agree),
                    sum(got[c] for c in rest),
                    len(agree) * scale,
                    len(rest) * scale,
                )
    return pools


def _inside(text: str, period: Period) -> bool:
    inner = Period.parse(text)
    return period.start <= inner.start and inner.end <= period.end


# The summary --------------------------------------------------------------------------------


def _merged(pools: Iterable[Pool]) -> Pool:
    total = Pool()
    for pool in pools:
        total.add(pool.top, pool.bottom, pool.var_top, pool.var_bottom)
    return total


def _band(p: float) -> str:
    if p >= ABOVE:
        return "above the network's median"
    if p <= BELOW:
        return "below the network's median"
    return "cannot be told apart from the network's median"


def _normal_above(value: float, sd: float, median: float) -> float:
    if sd <= 0:
        return 1.0 if value > median else 0.0
    return 0.5 * (1 + math.erf((value - median) / (sd * math.sqrt(2))))


def summarise(
    members: Sequence[tuple[str, bool, Mapping[str, Any]]], period: Period
) -> dict[str, Any]:
    """The network's figures from each member's (short name, consents to be shown, figures of
    its publication). Deterministic: the same bundles always give the same summary."""
    pools = {slug: pools_of(figures, period) for slug, _, figures in members}
    out: dict[str, Any] = {"indices": {}, "shares": {}, "members": []}
    for kind, make in (("indices", index_figure), ("shares", share_figure)):
        names = sorted({name for p in pools.values() for name in getattr(p, kind)})
        for name in names:
            each = {s: getattr(p, kind).get(name) for s, p in pools.items()}
            network = make(_merged(pool for pool in each.values() if pool is not None))
            if network is None:
                continue
            alone = {s: make(pool) for s, pool in each.items() if pool is not None}
            known = {s: f for s, f in alone.items() if f is not None}
            median = (
                statistics.median(f.value for f in known.values())
                if len(known) >= LEAST_FOR_MEDIAN
                else None
            )
            out[kind][name] = {
                **network.to_json(),
                "members": len(known),
                "median_of_members": median,
            }
            if kind != "indices" or median is None:
                continue
            for slug, consents, _ in members:
                figure = known.get(slug)
                if not consents or figure is None:
                    continue
                p = _normal_above(figure.value, figure.sd, median)
                out["members"].append(
                    {
                        "member": slug,
                        "index": name,
                        **figure.to_json(),
                        "p_above_median": round(p, 2),
                        "band": _band(p),
                    }
                )
    return out


def compare(stated: Mapping[str, Any], recomputed: Mapping[str, Any]) -> list[str]:
    """Each figure of a stated summary that its recomputation does not give, named."""
    problems = []
    for kind in ("indices", "shares"):
        for name in sorted(set(stated.get(kind, {})) | set(recomputed.get(kind, {}))):
            if stated.get(kind, {}).get(name) != recomputed.get(kind, {}).get(name):
                what = "index" if kind == "indices" else "share"
                problems.append(
                    f"{NETWORK}: the {what} {name} differs from its recomputation from the "
                    "member bundles"
                )
    if stated.get("members") != recomputed.get("members"):
        problems.append(f"{NETWORK}: the members beside the network differ from the recomputation")
    return problems


def read_figures(folder: Path) -> dict[str, Any]:
    try:
        figures: dict[str, Any] = json.loads((folder / FIGURES).read_text())
    except (OSError, ValueError) as exc:
        raise NetworkError(f"{folder.name}: no readable {FIGURES} ({exc})") from None
    return figures


# A network bundle ---------------------------------------------------------------------------


def member_entry(
    slug: str, name: str, public_key: str, consents: bool, bundle: str, manifest: Manifest,
    manifest_sha256: str,
) -> dict[str, Any]:  # fmt: skip
    return {
        "member": slug,
        "name": name,
        "public_key": public_key,
        "consents": consents,
        "bundle": bundle,
        "series": manifest.series,
        "sequence": manifest.sequence,
        "manifest_sha256": manifest_sha256,
    }


def check_network(folder: Path) -> list[str]:
    """For a network bundle (one holding network.json; others pass): each member bundle it
    names verifies with the member's key it states and meets the network's requirements, and
    every figure equals its recomputation from those bundles."""
    if not (folder / NETWORK).is_file():
        return []
    try:
        stated = json.loads((folder / NETWORK).read_text())
        if stated["format"] != NETWORK_FORMAT:
            return [f"{NETWORK}: not {NETWORK_FORMAT}"]
        period = Period.parse(stated["period"])
        required = Requirements(**stated["requirements"])
        entries = stated["members"]
    except (KeyError, TypeError, ValueError, FeedbackError) as exc:
        return [f"{NETWORK}: not readable ({exc})"]
    problems: list[str] = []
    members = []
    for entry in entries:
        where = f"member {entry['member']} ({entry['bundle']})"
        inner = folder / entry["bundle"]
        if not inner.is_dir() or not inner.resolve().is_relative_to(folder.resolve()):
            problems.append(f"{where}: missing")
            continue
        try:
            report = check_folder(inner, PublicKey.parse(entry["public_key"]))
        except (BadSignature, BundleError) as exc:
            problems.append(f"{where}: {exc}")
            continue
        if not report.ok or report.manifest is None:
            problems += [f"{where}: {p}" for p in report.problems]
            continue
        if report.manifest.organisation != entry["member"]:
            problems.append(f"{where}: it is {report.manifest.organisation}'s publication")
        if report.manifest_sha256 != entry["manifest_sha256"]:
            problems.append(f"{where}: not the publication the summary names")
        figures = read_figures(inner)
        problems += [f"{where}: {p}" for p in refusals(figures, required)]
        members.append((entry["member"], bool(entry["consents"]), figures))
    if problems:
        return problems
    return compare(stated["figures"], summarise(members, period))
