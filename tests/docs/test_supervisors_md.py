"""Every ```python block of docs/supervisors.md runs on its own and cleans up after itself.

Each block is executed in a fresh namespace (as if it were a script of its own),
with structlog at its default configuration, and must raise nothing and leave no
``sv:`` actor thread behind (threads of killed actors get a bounded time to reach
their next message boundary).
"""

from __future__ import annotations

import re
import threading
import time

import pykka
import pytest
import structlog

import supervisors as sv
from tests.paths import DOCS

DOC = DOCS / "supervisors.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
THREAD_GRACE = 5.0
"""Seconds an example's actor threads get to end after the example returned."""


def extract_blocks(text: str) -> list[tuple[int, str]]:
    """Return ``(line number of the block's first code line, code)`` for each python block."""
    return [
        (text.count("\n", 0, match.start(1)) + 1, match.group(1)) for match in _BLOCK.finditer(text)
    ]


def run_example(code: str, line: int, grace: float = THREAD_GRACE) -> list[str]:
    """Run ``code`` in a fresh namespace; return the names of ``sv:`` threads it left behind.

    Line numbers in tracebacks are those of the document. structlog is reset to its
    defaults for the example and its previous configuration restored afterwards.
    """
    before = set(threading.enumerate())
    saved = structlog.get_config()
    structlog.reset_defaults()
    try:
        compiled = compile("\n" * (line - 1) + code, str(DOC), "exec")
        exec(compiled, {"__name__": f"docs_example_line_{line}"})
    finally:
        structlog.reset_defaults()
        structlog.configure(**saved)
    deadline = time.monotonic() + grace
    new = [t for t in threading.enumerate() if t not in before and t.name.startswith("sv:")]
    for thread in new:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in new if t.is_alive()]


BLOCKS = extract_blocks(DOC.read_text(encoding="utf-8"))


def test_the_guide_has_an_example_for_every_section() -> None:
    assert len(BLOCKS) >= 13


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_docs_example_runs_and_leaves_no_actor_threads(line: int, code: str) -> None:
    assert run_example(code, line) == []


def test_checker_reports_an_example_that_leaves_an_actor_running() -> None:
    leaky = "import supervisors as sv\nclass Leak(sv.Actor):\n    pass\nLeak.start()\n"
    try:
        assert run_example(leaky, 1, grace=0.05) == ["sv:Leak"]
    finally:
        for ref in pykka.ActorRegistry.get_by_class_name("Leak"):
            sv.stop(ref)


def test_checker_reports_an_example_that_raises() -> None:
    with pytest.raises(AssertionError, match="from the example"):
        run_example('raise AssertionError("from the example")\n', 1)


def test_extract_blocks_finds_only_python_fences_with_their_line_numbers() -> None:
    text = "intro\n```python\nx = 1\n```\n```text\nnot code\n```\n```python\ny = 2\nz = 3\n```\n"
    assert extract_blocks(text) == [(3, "x = 1\n"), (9, "y = 2\nz = 3\n")]
