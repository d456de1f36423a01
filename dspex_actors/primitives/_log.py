"""The package's logger: structlog's ``dspex_actors`` logger, as an ``sv.Logger``.

The package never configures structlog when imported; ``dx.start(configure_logs=True)``
does (see ``docs/runtime.md``). Supervisor reports log as ``supervisors``. An
``sv.Logger`` assembles structlog's bound logger once per configuration (not per
call), so the per-request DEBUG events cost little when filtered out, and never
prints to stdout (until structlog is configured it writes to stderr at INFO).
"""

from __future__ import annotations

import supervisors as sv

__all__ = ["logger"]

logger: sv.Logger = sv.get_logger("dspex_actors")
