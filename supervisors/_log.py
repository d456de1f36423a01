"""The structlog logger used for supervisor reports and crash reports.

The package never configures structlog itself: applications do (see
``structlog.configure``). Event names follow OTP's report names.
"""

from __future__ import annotations

from typing import Any

import structlog

__all__ = ["Logger", "describe_reason", "get_logger", "logger"]


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
        """The bound logger for the current structlog configuration."""
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


def describe_reason(reason: Any) -> str:
    """Render an exit reason for a log line: strings as-is, exceptions as ``Type('msg')``."""
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}({str(reason)!r})"
    return str(reason)
