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

__all__ = ["Logger", "describe_reason", "get_logger", "logger", "safe_repr"]


class Logger:
    """``structlog.get_logger(name)``, assembled once per structlog configuration.

    What ``structlog.get_logger`` returns when loggers are not cached on first use
    assembles a new bound logger on every call (about 2.5 us, even for an event its
    level filter drops: several per request on a hot path). This logger keeps the
    one it assembled while structlog's processors, wrapper class, logger factory and
    context class are the objects they were, and assembles a new one as soon as
    ``structlog.configure`` (or ``reset_defaults``) changes any of them; so it
    follows reconfiguration as the lazy proxy does (``structlog.testing.capture_logs``
    included). It assumes, as structlog's own caching does, that the logger factory
    gives an equivalent logger on every call. Any thread.
    """

    __slots__ = ("_cached", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._cached: tuple[Any, Any, Any, Any, Any] | None = None

    def bound(self) -> Any:
        """The bound logger for the current structlog configuration.

        Until anybody configured structlog, a stderr logger at INFO: structlog's own
        default prints DEBUG lines to stdout, mixing our events into a program's output.
        """
        if not structlog.is_configured():
            return _fallback()
        config = structlog.get_config()
        processors, wrapper = config["processors"], config["wrapper_class"]
        factory, context = config["logger_factory"], config["context_class"]
        cached = self._cached
        if (
            cached is not None
            and cached[0] is processors
            and cached[1] is wrapper
            and cached[2] is factory
            and cached[3] is context
        ):
            return cached[4]
        bound = structlog.get_logger(self.name).bind()
        self._cached = (processors, wrapper, factory, context, bound)
        return bound

    def bind(self, **values: Any) -> Any:
        return self.bound().bind(**values)

    def is_enabled_for(self, level: int) -> bool:
        """Whether an event at ``level`` could get past the bound logger's level filter:
        ``False`` only when the wrapper class is a structlog filtering logger that
        drops ``level`` (then the event would be a no-op). Lets a hot path skip
        building the fields of an event nobody will see. Any thread."""
        check = getattr(self.bound(), "is_enabled_for", None)
        return True if check is None else bool(check(level))

    def debug(self, event: str, **kw: Any) -> Any:
        return self.bound().debug(event, **kw)

    def info(self, event: str, **kw: Any) -> Any:
        return self.bound().info(event, **kw)

    def warning(self, event: str, **kw: Any) -> Any:
        return self.bound().warning(event, **kw)

    def error(self, event: str, **kw: Any) -> Any:
        return self.bound().error(event, **kw)

    def exception(self, event: str, **kw: Any) -> Any:
        return self.bound().exception(event, **kw)

    def critical(self, event: str, **kw: Any) -> Any:
        return self.bound().critical(event, **kw)

    def log(self, level: int, event: str, **kw: Any) -> Any:
        return self.bound().log(level, event, **kw)

    def __repr__(self) -> str:
        return f"<supervisors.Logger {self.name!r}>"


def get_logger(name: str) -> Logger:
    """A :class:`Logger` for ``name``: structlog's, cheap to call on hot paths."""
    return Logger(name)


logger = get_logger("supervisors")


class _Stderr:
    """Writes to ``sys.stderr`` as it is at each write (pytest and tools swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_FALLBACK: list[Any] = []


def _fallback() -> Any:
    """The stderr INFO logger used while structlog is unconfigured (made once)."""
    if not _FALLBACK:
        _FALLBACK.append(
            structlog.wrap_logger(
                structlog.PrintLogger(file=cast(TextIO, _Stderr())),
                processors=[
                    structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
                    structlog.dev.ConsoleRenderer(colors=False),
                ],
                wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            )
        )
    return _FALLBACK[0]


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
