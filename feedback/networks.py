"""Network summaries: one picture across a coalition's members, computed from the members'
signed publications alone (post-processing of their releases: no key shared, no budget spent).

Each member counts its respondents once: for each kind of release (indices, questions) and
each program (or the whole organisation, whose releases then stand for its programs), the
summary pools one granularity of the member's overall releases inside the period (``choose``:
the coarsest whose releases tile the period, so a release of the period itself when there is
one; else the one that covers most of it), never a year and its quarters together. A figure is
the network's only when at least three members have it; the others are named, not shown.

The pooled figures' intervals cover sampling and noise (feedback.stats.pooled): an index's
from the members' noisy squares where their releases carry them (the Bhatia-Davis bound
otherwise) and the counts' and sums' noise; a share's from binomial sampling and each cell's
noise.

Each consenting member is shown beside the network with the probability that the mean of the
people it sampled is above the median of the members' figures, by the same law of its
estimate's error, and a band read from it: never a bare rank. Everything here is a pure
function of the member bundles, so that `feedback verify` recomputes a summary and fails on
any figure that differs.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feedback.bundles import WHOLE_ORGANISATION, BundleError, Manifest, check_folder
from feedback.errors import FeedbackError
from feedback.minisign import BadSignature, PublicKey
from feedback.stats import means
from feedback.stats.cells import AGREE, DISAGREE, NEITHER, SUPPRESSED
from feedback.stats.periods import GRANULARITIES, NAMES, Granularity, Period
from feedback.stats.pooled import Counted, Pooled, pooled_mean, pooled_share

NETWORK = "network.json"
NETWORK_FORMAT = "feedback-network/2"
FIGURES = "figures.json"  # a member publication's figures (feedback.publish.publications)
MEMBERS = "members"  # the folder of the member bundles inside a network bundle
ABOVE, BELOW = 0.95, 0.05  # the bands' edges on the probability of being above the median
# A figure is the network's, and members are compared with the members' median, only when at
# least this many members have it: from one member it would be that member's figure, and
# beside a median of two, one is above and one below. Every member's figures are in the
# summary's member publications anyway: consent decides who is named beside the network.
LEAST_MEMBERS = 3


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


# Which releases a member brings ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chosen:
    """The releases of one kind and program (or the whole organisation) that a member brings
    to a period: of one granularity, and whether they tile the period."""

    program: str
    kind: str
    granularity: str
    periods: tuple[str, ...]
    tiles: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "program": self.program,
            "kind": self.kind,
            "granularity": self.granularity,
            "periods": list(self.periods),
            "covers_the_period": self.tiles,
        }


def choose(
    cards: Sequence[Mapping[str, Any]], period: Period
) -> list[tuple[Chosen, list[Mapping[str, Any]]]]:
    """A member's release cards to pool for ``period``, so that each respondent counts once.
    Of its overall releases inside the period, per kind, those of the whole organisation when
    it made any (they count every survivor once), else each program's; of those, per kind
    and program, one granularity: the coarsest whose releases tile the period (the release
    of the period itself when there is one), else the one whose releases cover most of its
    months (on a tie, the coarser). Releases of two granularities overlap (a year and its
    quarters hold the same answers) and are never pooled together."""
    inside = [c for c in cards if c["breakdown"] is None and _inside(c["period"], period)]
    found = []
    for kind in sorted({c["kind"] for c in inside}):
        of_kind = [c for c in inside if c["kind"] == kind]
        scope = [c for c in of_kind if c["program"] == WHOLE_ORGANISATION] or of_kind
        for program in sorted({c["program"] for c in scope}):
            found.append(
                _one_granularity(
                    program, kind, [c for c in scope if c["program"] == program], period
                )
            )
    return found


def _one_granularity(
    program: str, kind: str, cards: Sequence[Mapping[str, Any]], period: Period
) -> tuple[Chosen, list[Mapping[str, Any]]]:
    length = _months(period)
    by_granularity: dict[Granularity, list[tuple[Period, Mapping[str, Any]]]] = {}
    for c in cards:
        inner = Period.parse(c["period"])
        by_granularity.setdefault(inner.granularity, []).append((inner, c))
    covered = {
        g: sum(_months(p) for p in {p for p, _ in found}) for g, found in by_granularity.items()
    }
    best = max(covered, key=lambda g: (covered[g] == length, covered[g], GRANULARITIES.index(g)))
    chosen = sorted(by_granularity[best], key=lambda pc: (pc[0].start, pc[1]["release"]))
    periods = tuple(dict.fromkeys(str(p) for p, _ in chosen))
    return Chosen(program, kind, best, periods, covered[best] == length), [c for _, c in chosen]


def _months(period: Period) -> int:
    return 12 * (period.end.year - period.start.year) + period.end.month - period.start.month


def _inside(text: str, period: Period) -> bool:
    inner = Period.parse(text)
    return period.start <= inner.start and inner.end <= period.end


@dataclass
class MemberPools:
    """What one member brings: per index, its groups' noisy cells and their release's scales;
    per question, its groups' headline counts; and which releases those are."""

    indices: dict[str, list[tuple[means.Noisy, means.Scales]]] = field(default_factory=dict)
    shares: dict[str, list[Counted]] = field(default_factory=dict)
    chosen: list[Chosen] = field(default_factory=list)


def _headline(cells: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The headline cells of a question (agreeing among the scale's answers, yes among yes and
    no); None for a question without one (a choice among options). Releases made before
    scales had three categories hold 1 to 5 (agreeing: 4 and 5)."""
    if AGREE in cells:
        return (AGREE,), (NEITHER, DISAGREE)
    if "5" in cells:
        return ("4", "5"), ("1", "2", "3")
    if "yes" in cells:
        return ("yes",), ("no",)
    return None


def pools_of(figures: Mapping[str, Any], period: Period) -> MemberPools:
    """A member's pooled figures for ``period``: the groups shown of the releases ``choose``
    picks."""
    pools = MemberPools()
    for chosen, cards in choose(figures["releases"], period):
        pools.chosen.append(chosen)
        for card in cards:
            cells = card["cells"]
            names = [g["group"] for g in cells["groups"] if g["n"] != SUPPRESSED]
            if chosen.kind == "indices":
                scales = means.stored_scales(cells)
                for name in names:
                    for index, noisy in means.stored_group(cells, name).items():
                        pools.indices.setdefault(index, []).append((noisy, scales))
                continue
            scale = float(card["noise_scale"]["cells"])
            for group in (g for g in cells["groups"] if g["group"] in names):
                for question, got in group["questions"].items():
                    headline = _headline(got)
                    if headline is None:
                        continue
                    agree, rest = headline
                    pools.shares.setdefault(question, []).append(
                        Counted(
                            sum(got[c] for c in agree),
                            sum(got[c] for c in rest),
                            len(agree),
                            len(rest),
                            scale,
                        )
                    )
    return pools


# The summary --------------------------------------------------------------------------------


def _json(figure: Pooled) -> dict[str, Any]:
    return {
        "value": round(figure.value, 1),
        "low": round(figure.low, 1),
        "high": round(figure.high, 1),
    }


def _band(p: float) -> str:
    if p >= ABOVE:
        return "above the network's median"
    if p <= BELOW:
        return "below the network's median"
    return "cannot be told apart from the network's median"


def summarise(
    members: Sequence[tuple[str, bool, Mapping[str, Any]]], period: Period
) -> dict[str, Any]:
    """The network's figures from each member's (short name, consents to be shown, figures of
    its publication). Deterministic: the same bundles always give the same summary."""
    pools = {slug: pools_of(figures, period) for slug, _, figures in members}
    out: dict[str, Any] = {
        "indices": {},
        "shares": {},
        "too_few_members": {"indices": {}, "shares": {}},
        "pooled": {slug: [c.to_json() for c in p.chosen] for slug, p in sorted(pools.items())},
        "members": [],
    }
    kinds: tuple[tuple[str, Any], ...] = (("indices", pooled_mean), ("shares", pooled_share))
    for kind, make in kinds:
        names = sorted({name for p in pools.values() for name in getattr(p, kind)})
        for name in names:
            each = {s: getattr(p, kind)[name] for s, p in pools.items() if name in getattr(p, kind)}
            alone = {s: make(groups) for s, groups in each.items()}
            known: dict[str, Pooled] = {s: f for s, f in alone.items() if f is not None}
            network = make([g for groups in each.values() for g in groups])
            if len(known) < LEAST_MEMBERS or network is None:
                out["too_few_members"][kind][name] = len(known)
                continue
            median = statistics.median(round(f.value, 1) for f in known.values())
            out[kind][name] = {
                **_json(network),
                "respondents": round(network.respondents, -1),
                "members": len(known),
                "median_of_members": median,
            }
            if kind != "indices":
                continue
            for slug, consents, _ in members:
                figure = known.get(slug)
                if not consents or figure is None:
                    continue
                p = figure.above(median)
                out["members"].append(
                    {
                        "member": slug,
                        "index": name,
                        **_json(figure),
                        "p_above_median": round(p, 2),
                        "band": _band(p),
                    }
                )
    return out


def method(period: Period) -> list[str]:
    """How a summary of ``period`` was computed, in sentences (its page shows them)."""
    return [
        "Each member counts its respondents once. For each kind of release (the indices, the "
        "questions) and each program, or the whole organisation where the member released "
        "it (it then stands for its programs), the network pools one granularity of the "
        f"member's overall releases inside {period}: the coarsest whose releases cover the "
        f"{NAMES[period.granularity]} without a gap (so the release of {period} itself when "
        "there is one), else the one whose releases cover most of its months. A year and its "
        "quarters hold the same answers and are never pooled together. Where shorter periods "
        f"stand for the {NAMES[period.granularity]}, a survivor who answered in two of them "
        "counts in each, as in the member's own releases.",
        f"A figure is the network's only when at least {LEAST_MEMBERS} members have it; "
        "a figure fewer members have is named, not shown: it would be one or two members' "
        "own figures.",
        "Every interval covers sampling (the members' respondents taken as a sample of the "
        "people the members serve) and the noise, at 95%. An index's interval reads the "
        "spread of answers from the members' noisy sums of squares, or bounds it where a "
        "release has none (the Bhatia-Davis bound), adds the spread between the members' "
        "figures, and adds the counts' and the sums' noise (the three largest sums' noise "
        "terms as Laplace laws, exactly). A share's interval adds binomial sampling to each "
        "count's noise. "
        "Neither covers who chose not to answer.",
        "A member beside the network is read the same way from its own releases, with the "
        "probability that the mean of the people it serves is above the members' median.",
    ]


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
    for key in sorted((set(stated) | set(recomputed)) - {"indices", "shares", "members"}):
        if stated.get(key) != recomputed.get(key):
            problems.append(f"{NETWORK}: {key} differs from the recomputation")
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
