"""Paths the tests read: the repository root, the docs and the DSPy fixtures."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FIXTURES = ROOT / "tests" / "fixtures"
DSPY_FIXTURES = FIXTURES / "dspy"
