"""LM clients: endpoint configuration, HTTP plans, retries, rate limit, breaker, client actor.

:class:`LM` describes an endpoint; :func:`build_plan` / :func:`execute_plan` make one
HTTP attempt; :class:`RetryPolicy`, :class:`TokenBucket` and :class:`CircuitBreaker`
decide when to try; :class:`LMClient` is the long-lived actor that owns one LM's
connection pool and its :class:`Admission` (rate limit, breaker, statistics behind a
lock), which it publishes in an :class:`AdmissionTable` so that the request path
needs no ask. Nothing here runs a program.
"""

from dspex_actors.lm._admission import RESTART_POLL, Admission, AdmissionTable
from dspex_actors.lm._breaker import CircuitBreaker
from dspex_actors.lm._bulkhead import Bulkhead, Permit
from dspex_actors.lm._client import LMClient, LMCounters
from dspex_actors.lm._config import LM
from dspex_actors.lm._http import (
    Completion,
    RequestPlan,
    build_plan,
    execute_plan,
    make_session,
    stream_plan,
)
from dspex_actors.lm._messages import (
    BreakerDisable,
    BreakerEnable,
    Outcome,
    Planned,
    PlanRequest,
    Refused,
    Reset,
    Wait,
)
from dspex_actors.lm._ratelimit import TokenBucket
from dspex_actors.lm._retry import RetryPolicy
from dspex_actors.lm._sse import SSEEvent, SSEParser
from dspex_actors.lm._stream import execute_stream
from dspex_actors.lm._transport import AttemptAbort

__all__ = [
    "LM",
    "RESTART_POLL",
    "Admission",
    "AdmissionTable",
    "AttemptAbort",
    "BreakerDisable",
    "BreakerEnable",
    "Bulkhead",
    "CircuitBreaker",
    "Completion",
    "LMClient",
    "LMCounters",
    "Outcome",
    "Permit",
    "PlanRequest",
    "Planned",
    "Refused",
    "RequestPlan",
    "Reset",
    "RetryPolicy",
    "SSEEvent",
    "SSEParser",
    "TokenBucket",
    "Wait",
    "build_plan",
    "execute_plan",
    "execute_stream",
    "make_session",
    "stream_plan",
]
