"""Run every benchmark and print one JSON object:
``{"name": {"value": v, "unit": u, "baseline": b, "ratio": v / b, "target": t}}``.
Each baseline is measured in the same run on the same machine."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from benchmarks.aggregate import aggregation_figures
from benchmarks.dashboard import dashboard_figures
from benchmarks.ingest import ingest_sealed_submissions

Figure = dict[str, Any]
BENCHMARKS: list[Callable[[], dict[str, Figure]]] = [
    ingest_sealed_submissions,
    aggregation_figures,
    dashboard_figures,
]


def main() -> None:
    figures: dict[str, Figure] = {}
    for benchmark in BENCHMARKS:
        figures.update(benchmark())
    json.dump(figures, sys.stdout, indent=2)
    sys.stdout.write("\n")


main()
