"""The folder layout is the architecture: the import contracts hold and can fail.

The contracts live in pyproject.toml (import-linter); .ci/run runs ``lint-imports``.
These tests check that the contracts cover every layer, that a deliberate violation
is caught, and that no function is longer than the house rule allows.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.paths import ROOT

PACKAGES = ("supervisors", "dspex_actors")
MAX_FUNCTION_LINES = 80


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(exe), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        check=False,
    )


def _copy_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_every_dspex_actors_subpackage_is_in_a_layer_contract() -> None:
    layers = next(c for c in _contracts() if c["type"] == "layers")
    named = {
        part.strip()
        for layer in layers["layers"]
        for part in str(layer).split("|")  # type: ignore[attr-defined]
    }
    standalone = {"testing"}  # its own contract: it imports nothing of ours
    subpackages = {
        p.name
        for p in (ROOT / "dspex_actors").iterdir()
        if p.is_dir() and (p / "__init__.py").exists()
    }
    assert subpackages, "no subpackages found"
    assert subpackages - standalone <= named, subpackages - standalone - named
    assert {"primitives", "signatures", "adapters", "lm", "cache", "runtime"} <= named
    assert {"modules", "optimize"} <= named


def test_the_contracts_forbid_reaching_into_supervisors_and_cycles() -> None:
    kinds = {(c["type"], str(c.get("source_modules"))) for c in _contracts()}
    assert ("forbidden", "['supervisors']") in kinds
    assert ("forbidden", "['dspex_actors']") in kinds
    assert sum(1 for c in _contracts() if c["type"] == "acyclic_siblings") == 2


def test_the_contracts_hold_on_this_tree(tmp_path: Path) -> None:
    result = _lint_imports(_copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("dspex_actors/lm/_config.py", "import dspex_actors.optimize", "layers import downward"),
        ("dspex_actors/cache/_actor.py", "import supervisors._actor", "public names"),
        ("supervisors/_spec.py", "import dspex_actors", "knows nothing of dspex_actors"),
        ("dspex_actors/testing/__init__.py", "import dspex_actors.lm", "stands alone"),
    ],
)
def test_a_deliberate_violation_is_caught(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    tree = _copy_tree(tmp_path)
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # deliberate violation\n")
    result = _lint_imports(tree)
    assert result.returncode != 0
    broken = [ln for ln in result.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(contract in ln for ln in broken), result.stdout


def _long_functions() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                body = node.body
                if (
                    body
                    and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                ):
                    body = body[1:]  # the docstring does not count
                if not body:
                    continue
                lines = (body[-1].end_lineno or body[-1].lineno) - body[0].lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines})")
    return found


def test_no_function_is_longer_than_eighty_lines() -> None:
    assert _long_functions() == []
