"""The runtime's own protocol: callers, program actors and their I/O workers.

Plain frozen dataclasses: immutable, cheap, and safe to pass between threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dspex_actors.lm import Completion

__all__ = ["Cancel", "Completed", "Failed", "Perform", "Run"]


@dataclass(frozen=True, slots=True)
class Perform:
    """Program -> I/O worker (tell): run the request now."""


@dataclass(frozen=True, slots=True)
class Completed:
    """I/O worker -> program (tell): the completion of call ``call_id``."""

    call_id: int
    completion: Completion


@dataclass(frozen=True, slots=True)
class Run:
    """Caller -> program actor (ask): run ``module.forward(**inputs)`` by ``deadline``
    (``time.monotonic()`` seconds) and answer with the result.

    The request travels in this first message, not in the actor's start arguments,
    so that one child spec per system serves every program actor.
    """

    module: Any
    inputs: dict[str, Any]
    deadline: float
    stream: Any = None
    """A ``StreamSink`` when the caller streams (``dx.streamify``), else ``None``."""
    span: Any = None
    """The caller's telemetry span, if one runs in its thread (the program's parent)."""


@dataclass(frozen=True, slots=True)
class Cancel:
    """Caller -> program actor (tell): give up at the next wait."""


@dataclass(frozen=True, slots=True)
class Failed:
    """Program actor -> caller: the request ended with this error (re-raised by the caller)."""

    error: BaseException
