"""The structlog logger used for supervisor reports and crash reports.

The package never configures structlog itself: applications do (see
``structlog.configure``). Event names follow OTP's report names.
"""

from __future__ import annotations

from typing import Any

import structlog

logger: Any = structlog.get_logger("supervisors")


def describe_reason(reason: Any) -> str:
    """Render an exit reason for a log line: strings as-is, exceptions as ``Type('msg')``."""
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}({str(reason)!r})"
    return str(reason)
