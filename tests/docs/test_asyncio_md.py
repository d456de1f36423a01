"""Every ```python block of docs/asyncio.md runs and leaves nothing running."""

from __future__ import annotations

import pytest

from tests.docs.examples import doc_blocks, run_example
from tests.paths import DOCS

DOC = DOCS / "asyncio.md"
BLOCKS = doc_blocks(DOC)


def test_the_asyncio_guide_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_asyncio_guide_example_runs(line: int, code: str) -> None:
    assert run_example(code, line, doc=DOC, prefixes=("sv:", "dx:")) == []
