"""Messages exchanged by the runtime's actors (program, LM client, cache, I/O workers).

Plain frozen dataclasses: immutable, cheap, and safe to pass between threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

    from dspex_actors._errors import LMError
    from dspex_actors._lm import Completion, RequestPlan


# ----------------------------------------------------------------- LM client


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """Program -> LM client (ask): may I send these messages, and how?"""

    messages: list[dict[str, Any]]
    overrides: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Planned:
    """LM client -> program: send ``plan`` with ``session`` (the client's connection pool)."""

    plan: RequestPlan
    session: requests.Session


@dataclass(frozen=True, slots=True)
class Wait:
    """LM client -> program: the rate limit says ask again in ``seconds``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Refused:
    """LM client -> program: not now (``CircuitOpen``) or not ever (bad parameters)."""

    error: LMError


@dataclass(frozen=True, slots=True)
class Outcome:
    """I/O worker -> LM client (tell): how one request went, for the breaker and stats."""

    ok: bool
    latency_s: float
    usage: dict[str, int] | None = None
    error: LMError | None = None


@dataclass(frozen=True, slots=True)
class GetStats:
    """Ask an LM client or the cache for a stats snapshot (a dict)."""


# --------------------------------------------------------------------- cache


@dataclass(frozen=True, slots=True)
class CacheGet:
    """Program -> cache (ask): the stored JSON value for ``key``, or ``None``."""

    key: str


@dataclass(frozen=True, slots=True)
class CachePut:
    """Program -> cache (tell): store a JSON value."""

    key: str
    value: Any


@dataclass(frozen=True, slots=True)
class CacheClear:
    """Ask the cache to drop every entry (memory and file)."""


# --------------------------------------------------------------- I/O workers


@dataclass(frozen=True, slots=True)
class Perform:
    """Program -> I/O worker (tell): run the request now."""


@dataclass(frozen=True, slots=True)
class Completed:
    """I/O worker -> program (tell): the completion of call ``call_id``."""

    call_id: int
    completion: Completion


# ------------------------------------------------------------------ programs


@dataclass(frozen=True, slots=True)
class Run:
    """Caller -> program actor (ask): run the module's forward and answer with the result."""


@dataclass(frozen=True, slots=True)
class Cancel:
    """Caller -> program actor (tell): give up at the next wait."""


@dataclass(frozen=True, slots=True)
class Failed:
    """Program actor -> caller: the request ended with this error (re-raised by the caller)."""

    error: BaseException
