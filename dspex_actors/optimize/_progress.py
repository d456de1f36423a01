"""The progress line of an evaluation: count, running score, rate and errors on one line.

Drawn by the consumer's thread only (``Evaluate.__call__``).
"""

from __future__ import annotations

import sys
import time
from typing import IO

__all__ = ["ProgressLine"]


class ProgressLine:
    """A one-line progress display on a stream (stderr by default); caller's thread only.

    On a TTY the line is redrawn in place (``\\r``), at most every 0.1 s; on
    anything else (a log file, a pipe, pytest's capture) a full line is printed
    each time another ~10% finished, and at the end. Write errors are ignored.
    """

    def __init__(self, total: int, *, label: str = "Evaluate", stream: IO[str] | None = None):
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        try:
            self.tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self.tty = False
        self.started = time.monotonic()
        self._last_draw = 0.0
        self._next_pct = 10
        self._width = 0
        self._base = 0
        self._printed = -1

    def start(self, already: int) -> None:
        """Note ``already`` results that came from a results file (they add no rate)."""
        self._base = already

    def line(self, done: int, score_sum: float, errors: int) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = (done - self._base) / elapsed
        score = 100.0 * score_sum / done if done else 0.0
        return (
            f"{self.label}: {done}/{self.total}  score {score:.1f}%  {rate:.1f}/s  errors {errors}"
        )

    def update(self, done: int, score_sum: float, errors: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            if not final and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            text = self.line(done, score_sum, errors)
            pad = max(0, self._width - len(text))
            self._width = len(text)
            self._write("\r" + text + " " * pad + ("\n" if final else ""))
            return
        pct = 100 * done // self.total if self.total else 100
        if (final and done != self._printed) or pct >= self._next_pct:
            while self._next_pct <= pct:
                self._next_pct += 10
            self._printed = done
            self._write(self.line(done, score_sum, errors) + "\n")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass
