"""Every ```python block of docs/testing.md runs and leaves nothing running.

A block that opens with ``# test_<name>.py`` is a pytest module: it is written to
that file and run by pytest in a child process, as a user would run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.examples import doc_blocks, run_example
from tests.paths import DOCS, ROOT

DOC = DOCS / "testing.md"
BLOCKS = doc_blocks(DOC)
SCRIPTS = [(line, code) for line, code in BLOCKS if not code.startswith("# test_")]
TEST_MODULES = [(line, code) for line, code in BLOCKS if code.startswith("# test_")]


def test_the_testing_guide_has_scripts_and_a_pytest_module() -> None:
    assert len(SCRIPTS) >= 5
    assert len(TEST_MODULES) == 1


@pytest.mark.parametrize(("line", "code"), SCRIPTS, ids=[f"line{line}" for line, _ in SCRIPTS])
def test_testing_guide_example_runs_and_leaves_no_thread(line: int, code: str) -> None:
    prefixes = ("sv:", "dspex:", "dspex-rule-server")
    assert run_example(code, line, doc=DOC, prefixes=prefixes) == []


@pytest.mark.parametrize(
    ("line", "code"), TEST_MODULES, ids=[f"line{line}" for line, _ in TEST_MODULES]
)
def test_testing_guide_pytest_module_passes_under_pytest(
    line: int, code: str, tmp_path: Path
) -> None:
    name = code.splitlines()[0].removeprefix("# ").strip()
    (tmp_path / name).write_text(code, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tests = code.count("\ndef test_")
    assert f"{tests} passed" in done.stdout, done.stdout
