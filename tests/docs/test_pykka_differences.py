"""docs/supervisors.md lists exactly the pykka tests that fail on purpose, grouped by reason."""

from __future__ import annotations

import re

from tests.paths import DOCS
from tests.pykka_suite.conftest import EXPECTED_DIFFERENCES

SECTION = "## 16. Differences from pykka"
_TEST = re.compile(r"`([\w/]+\.py::test_\w+)`")


def _table_rows() -> list[str]:
    text = (DOCS / "supervisors.md").read_text(encoding="utf-8")
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]


def test_every_expected_difference_is_documented_and_nothing_else() -> None:
    documented = {name for row in _table_rows() for name in _TEST.findall(row)}
    assert documented == set(EXPECTED_DIFFERENCES)


def test_each_documented_line_is_one_reason() -> None:
    for row in _table_rows():
        reasons = {EXPECTED_DIFFERENCES[name] for name in _TEST.findall(row)}
        assert len(reasons) <= 1, row
    rows_with_tests = [row for row in _table_rows() if _TEST.search(row)]
    assert len(rows_with_tests) == len(set(EXPECTED_DIFFERENCES.values()))
