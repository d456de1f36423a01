"""The structlog loggers used for supervisor reports and crash reports.

The package never configures structlog itself: applications do (see
``structlog.configure``). Until somebody does, our events still never reach
stdout (structlog's unconfigured default): :func:`get_logger` sends them to stderr
at INFO and above. Event names follow OTP's report names.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO, cast

import structlog

__all__ = ["describe_reason", "get_logger", "logger", "safe_repr"]


class _StderrUntilConfigured:
    """A logger that is ``structlog.get_logger(name)`` once structlog is configured,
    and before that a stderr logger at INFO (structlog's own default prints DEBUG to
    stdout, mixing our events into a program's output). Thread-safe; each call is
    one ``is_configured()`` check more than a plain structlog proxy."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._configured: Any = structlog.get_logger(name)
        self._fallback: Any = None

    def _target(self) -> Any:
        if structlog.is_configured():
            return self._configured
        if self._fallback is None:
            self._fallback = structlog.wrap_logger(
                structlog.PrintLogger(file=cast(TextIO, _Stderr())),
                processors=[
                    structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
                    structlog.dev.ConsoleRenderer(colors=False),
                ],
                wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            )
        return self._fallback

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


class _Stderr:
    """Writes to ``sys.stderr`` as it is at each write (pytest and tools swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def get_logger(name: str) -> Any:
    """A structlog logger for ``name`` that never prints to stdout (see the module doc)."""
    return _StderrUntilConfigured(name)


logger: Any = get_logger("supervisors")


#: Longest text a log line keeps of one user object.
MAX_REPR = 500


def safe_repr(value: Any, limit: int = MAX_REPR) -> str:
    """``repr(value)`` for a log line, cut to ``limit`` characters; never raises.

    A user object whose ``__repr__`` raises (or returns a non-str) is shown as
    ``<Type object (repr failed: Error)>``: logging a bad message must not crash the
    actor that received it.
    """
    try:
        text = repr(value)
        if not isinstance(text, str):
            raise TypeError("__repr__ returned a non-string")
    except Exception as exc:
        try:
            name = type(value).__name__
        except Exception:
            name = "?"
        return f"<{name} object (repr failed: {type(exc).__name__})>"
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def describe_reason(reason: Any) -> str:
    """Render an exit reason for a log line: strings as-is, exceptions as ``Type('msg')``.

    Never raises, whatever the reason object is.
    """
    if isinstance(reason, str):
        return reason if len(reason) <= MAX_REPR else f"{reason[: MAX_REPR - 3]}..."
    if isinstance(reason, BaseException):
        try:
            message = str(reason)
        except Exception:
            message = "<str() failed>"
        return f"{type(reason).__name__}({safe_repr(message)})"
    return safe_repr(reason)
