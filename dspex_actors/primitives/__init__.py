"""The bottom layer: typed errors, examples and predictions, shared messages.

Everything here is plain data, safe to share between threads, and imports nothing
else of ``dspex_actors``.
"""

from dspex_actors.primitives._errors import (
    AdapterParseError,
    CircuitOpen,
    DeadlineExceeded,
    LMBadRequest,
    LMConnectionError,
    LMError,
    LMRateLimited,
    LMServerError,
    LMTimeout,
)
from dspex_actors.primitives._example import Completions, Example, Prediction
from dspex_actors.primitives._log import logger
from dspex_actors.primitives._messages import GetStats

__all__ = [
    "AdapterParseError",
    "CircuitOpen",
    "Completions",
    "DeadlineExceeded",
    "Example",
    "GetStats",
    "LMBadRequest",
    "LMConnectionError",
    "LMError",
    "LMRateLimited",
    "LMServerError",
    "LMTimeout",
    "Prediction",
    "logger",
]
