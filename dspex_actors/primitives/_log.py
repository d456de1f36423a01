"""The package's logger: ``structlog.get_logger("dspex_actors")``.

The package never configures structlog when imported; ``dx.start(configure_logs=True)``
does (see ``docs/runtime.md``). Supervisor reports log as ``supervisors``.
"""

from __future__ import annotations

from typing import Any

import structlog

__all__ = ["logger"]

logger: Any = structlog.get_logger("dspex_actors")
