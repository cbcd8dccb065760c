"""Survey definitions: versioned data files, loaded and checked before anything uses them."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

DEFINITIONS = Path(__file__).resolve().parent
DEFAULT_SURVEY = DEFINITIONS / "rights-based.toml"


def load_definition(path: Path = DEFAULT_SURVEY) -> dict[str, Any]:
    with path.open("rb") as handle:
        return tomllib.load(handle)
