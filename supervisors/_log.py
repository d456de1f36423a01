"""The structlog logger used for supervisor reports and crash reports.

The package never configures structlog itself: applications do (see
``structlog.configure``). Event names follow OTP's report names.
"""

from __future__ import annotations

from typing import Any

import structlog

logger: Any = structlog.get_logger("supervisors")


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
