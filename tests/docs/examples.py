"""Running a document's ```python blocks as scripts: what the docs tests share."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

_BLOCK = re.compile(r"^```python\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
THREAD_GRACE = 5.0
"""Seconds an example's threads get to end after the example returned."""


def extract_blocks(text: str) -> list[tuple[int, str]]:
    """Return ``(line number of the block's first code line, code)`` for each python block."""
    return [
        (text.count("\n", 0, match.start(1)) + 1, match.group(1)) for match in _BLOCK.finditer(text)
    ]


def doc_blocks(doc: Path) -> list[tuple[int, str]]:
    """The python blocks of the document at ``doc``."""
    return extract_blocks(doc.read_text(encoding="utf-8"))


def run_example(
    code: str,
    line: int,
    *,
    doc: Path,
    grace: float = THREAD_GRACE,
    prefixes: Sequence[str] = ("sv:",),
) -> list[str]:
    """Run ``code`` in a fresh namespace; return the names of the threads it left behind.

    Only new threads whose names start with one of ``prefixes`` count; each gets
    until ``grace`` seconds after the example returned to end. Line numbers in
    tracebacks are those of ``doc``. structlog is reset to its defaults for the
    example and its previous configuration restored afterwards. Raises whatever
    the example raises.
    """
    before = set(threading.enumerate())
    saved = structlog.get_config()
    structlog.reset_defaults()
    try:
        compiled = compile("\n" * (line - 1) + code, str(doc), "exec")
        exec(compiled, {"__name__": f"docs_example_line_{line}"})
    finally:
        structlog.reset_defaults()
        structlog.configure(**saved)
    deadline = time.monotonic() + grace
    new = [
        t for t in threading.enumerate() if t not in before and t.name.startswith(tuple(prefixes))
    ]
    for thread in new:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in new if t.is_alive()]
