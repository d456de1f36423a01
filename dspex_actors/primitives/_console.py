"""Writing whole lines to stderr without breaking a live progress bar.

:class:`LogStream` is the stream the package's structlog setup prints log lines
to (``dx.start(configure_logs=True)``); Evaluate's and compile jobs' notices use
it too. While a tqdm progress bar is shown, each line goes through
``tqdm.write``, which clears the bar, prints the line and redraws the bar below
it; otherwise the line is written as it is. tqdm is never imported here: if
nothing imported it, no bar can be live.
"""

from __future__ import annotations

import sys
import threading
from typing import IO, Any, TextIO, cast

__all__ = ["LogStream", "live_progress_bars"]


def live_progress_bars() -> bool:
    """Whether a tqdm progress bar is shown in this process right now (any thread)."""
    std = sys.modules.get("tqdm.std")
    if std is None:
        return False
    return bool(getattr(std.tqdm, "_instances", None))


class LogStream:
    """A text stream that writes whole lines to ``target`` (default: the current ``sys.stderr``).

    Text is buffered until a newline, then each line is written at once: through
    ``tqdm.write`` while a progress bar is live (so the line lands above the bar,
    never inside it), else directly. Give it to structlog as
    ``structlog.PrintLoggerFactory(file=LogStream.stderr())`` when you configure
    structlog yourself. Thread-safe (one lock per stream). Write errors of the target (a
    closed stream) are ignored: logging never fails the caller.
    """

    def __init__(self, target: IO[str] | None = None) -> None:
        self._target = target
        self._lock = threading.Lock()
        self._buffer = ""

    @classmethod
    def stderr(cls) -> TextIO:
        """A stream to the current ``sys.stderr``, typed as the ``TextIO`` that APIs
        such as ``structlog.PrintLoggerFactory(file=...)`` ask for (it has the
        ``write``/``flush``/``isatty`` they use)."""
        return cast(TextIO, cls())

    @property
    def target(self) -> IO[str]:
        """Where lines go: the given stream, or ``sys.stderr`` as it is now."""
        return self._target if self._target is not None else sys.stderr

    def write(self, text: str) -> int:
        """Buffer ``text``; write every line it completes. Returns ``len(text)``."""
        with self._lock:
            self._buffer += text
            if "\n" not in self._buffer:
                return len(text)
            *lines, self._buffer = self._buffer.split("\n")
            for line in lines:
                self._emit(line)
        return len(text)

    def flush(self) -> None:
        """Flush the target (a partial line stays buffered until its newline)."""
        try:
            self.target.flush()
        except (OSError, ValueError, AttributeError):
            pass

    def isatty(self) -> bool:
        try:
            return bool(self.target.isatty())
        except (OSError, ValueError, AttributeError):
            return False

    def _emit(self, line: str) -> None:
        target = self.target
        try:
            if live_progress_bars():
                std: Any = sys.modules["tqdm.std"]
                std.tqdm.write(line, file=target)
            else:
                target.write(line + "\n")
            target.flush()
        except (OSError, ValueError, AttributeError):
            pass

    def __repr__(self) -> str:
        where = "sys.stderr" if self._target is None else repr(self._target)
        return f"<LogStream to {where}>"
