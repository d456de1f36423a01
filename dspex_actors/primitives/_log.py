"""The package's logger: ``sv.get_logger("dspex_actors")`` (never on stdout).

The package never configures structlog when imported; ``dx.start(configure_logs=True)``
does (see ``docs/runtime.md``). Supervisor reports log as ``supervisors``.
"""

from __future__ import annotations

from typing import Any

import supervisors as sv

__all__ = ["logger"]

logger: Any = sv.get_logger("dspex_actors")
