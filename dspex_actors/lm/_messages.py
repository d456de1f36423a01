"""The LM client's protocol: what a program asks before a call and tells after it.

Plain frozen dataclasses: immutable, cheap, and safe to pass between threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

    from dspex_actors.lm._http import RequestPlan
    from dspex_actors.primitives import LMError

__all__ = [
    "BreakerDisable",
    "BreakerEnable",
    "Outcome",
    "PlanRequest",
    "Planned",
    "Refused",
    "Reset",
    "Wait",
]


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
class Reset:
    """Operator -> LM client (ask or tell): close its circuit breaker now, history forgotten."""


@dataclass(frozen=True, slots=True)
class BreakerDisable:
    """Operator -> LM client (ask or tell): turn its circuit breaker off (fuse's
    ``circuit_disable``): every call to the LM fails fast with ``CircuitOpen``, without
    I/O, until :class:`BreakerEnable`. Kept across restarts of the client."""


@dataclass(frozen=True, slots=True)
class BreakerEnable:
    """Operator -> LM client (ask or tell): undo :class:`BreakerDisable`; the breaker
    is closed, its history forgotten. A no-op if it was not disabled."""
