"""The bottom layer: typed errors, examples and predictions, shared messages.

Everything here is plain data, safe to share between threads, and imports nothing
else of ``dspex_actors``.
"""

from dspex_actors.primitives import _telemetry as telemetry
from dspex_actors.primitives._console import LogStream, live_progress_bars
from dspex_actors.primitives._errors import (
    AdapterParseError,
    CircuitOpen,
    DeadlineExceeded,
    LMBadRequest,
    LMConnectionError,
    LMError,
    LMQueueFull,
    LMQueueTimeout,
    LMQuotaExceeded,
    LMRateLimited,
    LMRefused,
    LMResponseTooLarge,
    LMServerError,
    LMStreamInterrupted,
    LMTimeout,
    LMTruncated,
    LMUnavailable,
    SystemDown,
    UnknownMessage,
    excerpt,
)
from dspex_actors.primitives._events import Event, EventBus, Subscription
from dspex_actors.primitives._example import Completions, Example, Prediction
from dspex_actors.primitives._log import logger
from dspex_actors.primitives._messages import GetState, GetStats

__all__ = [
    "AdapterParseError",
    "CircuitOpen",
    "Completions",
    "DeadlineExceeded",
    "Event",
    "EventBus",
    "Example",
    "GetState",
    "GetStats",
    "LMBadRequest",
    "LMConnectionError",
    "LMError",
    "LMQueueFull",
    "LMQueueTimeout",
    "LMQuotaExceeded",
    "LMRateLimited",
    "LMRefused",
    "LMResponseTooLarge",
    "LMServerError",
    "LMStreamInterrupted",
    "LMTimeout",
    "LMTruncated",
    "LMUnavailable",
    "LogStream",
    "Prediction",
    "Subscription",
    "SystemDown",
    "UnknownMessage",
    "excerpt",
    "live_progress_bars",
    "logger",
    "telemetry",
]
