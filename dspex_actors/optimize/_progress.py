"""Progress of an evaluation or a compile job, through tqdm, on stderr; and one-line notices.

On a terminal a live tqdm bar is redrawn in place (at most every 0.1 s); log
lines printed through :class:`~dspex_actors.primitives.LogStream` (the package's
structlog setup does) land above it, never inside it. Anywhere else (a log
file, a pipe, pytest's capture) tqdm's meter is printed as a full line each
time another ~10% finished, and at the end, so a log never fills with ``\\r``.
tqdm is imported on first use (importing the package stays cheap).

A :class:`Progress` is drawn by one thread (Evaluate's caller, or the thread
waiting in ``Job.result``); log lines may come from any thread.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

from dspex_actors.primitives import LogStream

__all__ = ["Progress", "notice"]

_LINE_FORMAT = (
    "{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%) [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
)


_FALLBACK_SIZE = (100, 24)
"""Columns and rows of a terminal that reports no size (a pty of size 0, a fake TTY)."""


def _terminal_size(stream: IO[str]) -> tuple[int, int]:
    """Columns and rows of the terminal behind ``stream``; 0 where it does not say."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return 0, 0
    return size.columns, size.lines


def _is_tty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def notice(text: str, stream: IO[str] | None = None) -> None:
    """Print ``text`` as one line on ``stream`` (stderr), above any live bar; never raises."""
    LogStream(stream).write(text.replace("\n", " ") + "\n")


class Progress:
    """A progress display of ``total`` units on ``stream`` (stderr by default).

    ``update(done, postfix)`` sets the count and the text after the rate (score,
    errors); ``close()`` draws the final state (``leave=False``: clears a bar and
    prints no final line). ``initial`` units were done before (read back from a
    file): they count, but add nothing to the rate. Write errors are ignored.
    """

    def __init__(
        self,
        total: int,
        *,
        label: str,
        stream: IO[str] | None = None,
        initial: int = 0,
        unit: str = "ex",
    ) -> None:
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _is_tty(self.stream)
        self.unit = unit
        self.done = initial
        self.initial = initial
        self.postfix = ""
        self.started = time.monotonic()
        self._next_pct = self._pct(initial) // 10 * 10 + 10
        self._printed = -1
        self._closed = False
        self._bar: Any = None
        if self.tty:
            from tqdm.std import tqdm

            columns, rows = _terminal_size(self.stream)
            sized = columns > 0 and rows > 0
            self._bar = tqdm(
                total=total,
                initial=initial,
                desc=label,
                file=self.stream,
                unit=unit,
                dynamic_ncols=sized,  # follows the window as it is resized
                ncols=None if sized else _FALLBACK_SIZE[0],
                nrows=None if sized else _FALLBACK_SIZE[1],  # (0 rows would hide the bar)
                mininterval=0.1,
                leave=True,
            )

    def _pct(self, done: int) -> int:
        return 100 * done // self.total if self.total else 100

    def update(self, done: int, postfix: str = "", *, total: int | None = None) -> None:
        """Show ``done`` of ``total`` (unchanged if ``None``) units and ``postfix``."""
        if self._closed:
            return
        changed = total is not None and total != self.total
        if changed:
            assert total is not None
            self.total = total
        self.postfix = postfix
        delta, self.done = done - self.done, done
        if self._bar is not None:
            self._draw_bar(delta, changed)
        elif self._pct(done) >= self._next_pct:
            while self._next_pct <= self._pct(done):
                self._next_pct += 10
            self._print_line()

    def _draw_bar(self, delta: int, total_changed: bool) -> None:
        bar = self._bar
        try:
            if total_changed:
                bar.total = self.total
            bar.set_postfix_str(self.postfix, refresh=False)
            if delta:
                bar.update(delta)
            elif total_changed:
                bar.refresh()
        except (OSError, ValueError):
            pass

    def line(self) -> str:
        """The current state as one line (tqdm's meter, without the bar)."""
        from tqdm.std import tqdm

        text: str = tqdm.format_meter(
            self.done,
            self.total,
            time.monotonic() - self.started,
            prefix=self.label,
            unit=self.unit,
            postfix=self.postfix or None,
            initial=self.initial,
            bar_format=_LINE_FORMAT if self.total else "{desc}: {n_fmt} [{elapsed}{postfix}]",
        )
        return text

    def _print_line(self) -> None:
        self._printed = self.done
        notice(self.line(), self.stream)

    def close(self, *, leave: bool = True) -> None:
        """Draw the final state (or clear it, ``leave=False``) and stop; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            try:
                self._bar.leave = leave
                self._bar.set_postfix_str(self.postfix, refresh=False)
                self._bar.close()
            except (OSError, ValueError):
                pass
            _stop_monitor()
        elif leave and self.done != self._printed:
            self._print_line()


def _stop_monitor() -> None:
    """Stop tqdm's monitor thread once no bar is left (tqdm starts it with the first bar
    and keeps it until exit): a finished evaluation leaves no thread behind."""
    from tqdm.std import tqdm

    bars: Any = tqdm  # (the stubs leave these untyped)
    with bars.get_lock():
        monitor: Any = bars.monitor if not getattr(bars, "_instances", None) else None
        if monitor is not None:
            bars.monitor = None
    if monitor is not None:
        monitor.exit()  # wakes it and joins it (it takes the lock: not held here)
