"""Every ```python block of docs/runtime.md runs and leaves nothing running."""

from __future__ import annotations

import threading
import time

import pytest

from tests.docs.test_supervisors_md import extract_blocks
from tests.paths import DOCS

DOC = DOCS / "runtime.md"
BLOCKS = extract_blocks(DOC.read_text(encoding="utf-8"))


def test_the_runtime_guide_has_examples() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_runtime_guide_example_runs(line: int, code: str) -> None:
    before = set(threading.enumerate())
    exec(compile("\n" * (line - 1) + code, str(DOC), "exec"), {"__name__": f"doc_{line}"})
    deadline = time.monotonic() + 5.0
    new = [t for t in threading.enumerate() if t not in before and t.name.startswith("sv:")]
    for thread in new:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert [t.name for t in new if t.is_alive()] == []
