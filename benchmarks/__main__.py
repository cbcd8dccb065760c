"""Run every benchmark and print one JSON object:
``{"name": {"value": v, "unit": u, "baseline": b, "ratio": v / b, "target": t}}``.
Each baseline is measured in the same run on the same machine.

Benchmarks are imported one at a time, when their turn comes, so that one's imports (the
dashboard's chart renderer, say) do not weigh on another's memory figures."""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

Figure = dict[str, Any]
BENCHMARKS = [
    ("benchmarks.ingest", "ingest_sealed_submissions"),
    ("benchmarks.aggregate", "aggregation_figures"),
    ("benchmarks.dashboard", "dashboard_figures"),
    ("benchmarks.attack", "attack_figures"),
    ("benchmarks.coverage", "coverage_figures"),
    ("benchmarks.findings", "findings_figures"),
    ("benchmarks.indices", "share_figures"),
    ("benchmarks.publications", "publication_figures"),
]


def main() -> None:
    figures: dict[str, Figure] = {}
    for module, function in BENCHMARKS:
        figures.update(getattr(importlib.import_module(module), function)())
    json.dump(figures, sys.stdout, indent=2)
    sys.stdout.write("\n")


main()
