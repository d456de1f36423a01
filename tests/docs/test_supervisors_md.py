"""Every ```python block of docs/supervisors.md runs on its own and cleans up after itself.

Each block is executed in a fresh namespace (as if it were a script of its own),
with structlog at its default configuration, and must raise nothing and leave no
``sv:`` actor thread behind (threads of killed actors get a bounded time to reach
their next message boundary).
"""

from __future__ import annotations

import pykka
import pytest

import supervisors as sv
from tests.docs.examples import doc_blocks, extract_blocks, run_example
from tests.paths import DOCS

DOC = DOCS / "supervisors.md"
BLOCKS = doc_blocks(DOC)


def test_the_guide_has_an_example_for_every_section() -> None:
    assert len(BLOCKS) >= 13


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_docs_example_runs_and_leaves_no_actor_threads(line: int, code: str) -> None:
    assert run_example(code, line, doc=DOC) == []


def test_checker_reports_an_example_that_leaves_an_actor_running() -> None:
    leaky = "import supervisors as sv\nclass Leak(sv.Actor):\n    pass\nLeak.start()\n"
    try:
        assert run_example(leaky, 1, doc=DOC, grace=0.05) == ["sv:Leak"]
    finally:
        for ref in pykka.ActorRegistry.get_by_class_name("Leak"):
            sv.stop(ref)


def test_checker_reports_an_example_that_raises() -> None:
    with pytest.raises(AssertionError, match="from the example"):
        run_example('raise AssertionError("from the example")\n', 1, doc=DOC)


def test_extract_blocks_finds_only_python_fences_with_their_line_numbers() -> None:
    text = "intro\n```python\nx = 1\n```\n```text\nnot code\n```\n```python\ny = 2\nz = 3\n```\n"
    assert extract_blocks(text) == [(3, "x = 1\n"), (9, "y = 2\nz = 3\n")]
