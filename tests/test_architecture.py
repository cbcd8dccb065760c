"""The import direction of DESIGN.md section 4, checked two ways: import-linter's contracts
(also run by `make lint`) and a walk over the syntax trees for what imports cannot show."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "feedback"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
SIDES = {"collect", "aggregate", "publish"}
WIRING = {"cli", "__main__", "__init__"}


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def python_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def test_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("collect/app.py", "import feedback.aggregate", "talk through tables"),
        ("publish/app.py", "from feedback.collect import jobs", "talk through tables"),
        ("web.py", "import feedback.publish.app", "core modules import none"),
        # The probes of the review that found the contracts kept when they should not be:
        ("collect/jobs.py", "from nacl.public import PrivateKey", "never touch libsodium"),
        ("publish/api.py", "from nacl.public import PrivateKey", "never touch libsodium"),
        ("publish/charts.py", "from nacl.signing import SigningKey", "never touch libsodium"),
        ("collect/views.py", "import feedback.wrapping", "never see private keys"),
        ("publish/accounts.py", "from feedback import wrapping", "never see private keys"),
        ("collect/sms/store.py", "from feedback import keyrows", "never see private keys"),
        ("publish/dashboard.py", "import feedback.keyrows", "never see private keys"),
        ("publish/reports.py", "from feedback.aggregate.keys import unlock", "private keys"),
        ("publish/guard.py", "def f():\n    import feedback.wrapping", "never see private"),
    ],
)
def test_a_forbidden_import_breaks_the_check(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    shutil.copytree(PACKAGE, tmp_path / "feedback", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "feedback" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert any(contract in row for row in broken), result.stdout


def test_every_core_module_is_under_the_core_contract() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    core_contract = next(c for c in contracts if c["name"].startswith("core modules"))
    listed = set(core_contract["source_modules"])
    core = {
        f"feedback.{path.stem if path.is_file() else path.name}"
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" or (path / "__init__.py").exists())
        and (path.stem if path.is_file() else path.name) not in SIDES | WIRING
    }
    assert core == listed, "add new core modules to the contract in pyproject.toml"


def constructed_names(path: Path) -> set[str]:
    """Names called directly, or whose methods are called (``X(...)``, ``X.generate()``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                func = func.value
            if isinstance(func, ast.Name):
                names.add(func.id)
            elif isinstance(func, ast.Attribute):
                names.add(func.attr)
    return names


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("PrivateKey", PACKAGE / "aggregate" / "keys.py"),
        ("SigningKey", PACKAGE / "aggregate" / "signing.py"),
    ],
)
def test_private_keys_are_built_in_one_module_only(name: str, allowed: Path) -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in python_files(PACKAGE)
        if path != allowed and name in constructed_names(path)
    ]
    assert offenders == []


def test_the_survivor_side_never_reads_releases() -> None:
    """collect may read the notes managers write, never releases or the ledger."""
    forbidden = re.compile(r"\b(releases|privacy_ledger|publications)\b")
    offenders = []
    for path in python_files(PACKAGE / "collect"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and forbidden.search(node.value)
                and re.search(r"\b(FROM|JOIN)\b", node.value)
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
