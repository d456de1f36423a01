"""A pretend terminal for progress-bar tests: a stream that says it is a TTY, and what
a terminal would show for the text written to it."""

from __future__ import annotations

import io


class FakeTTY(io.StringIO):
    """A text stream that claims to be a terminal (so progress is a live tqdm bar)."""

    def isatty(self) -> bool:
        return True


def terminal_rows(text: str) -> list[str]:
    """What a terminal shows for ``text``, row by row (``\\r`` returns to column 0)."""
    rows = []
    for line in text.split("\n"):
        row = ""
        for segment in line.split("\r"):
            row = segment + row[len(segment) :]
        rows.append(row.rstrip())
    return rows
