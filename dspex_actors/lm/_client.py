"""The LM client actor: one per configured LM, long-lived, supervised.

It owns the LM's configuration, its HTTP connection pool, its token-bucket rate
limit, its circuit breaker and its statistics. It **never does HTTP itself and
never crashes because a request failed**: programs ask it for a request plan
(answered at once) and I/O workers tell it how each request went.
"""

from __future__ import annotations

import collections
import statistics
from typing import Any

from dspex_actors.lm._breaker import CircuitBreaker
from dspex_actors.lm._config import LM
from dspex_actors.lm._http import build_plan, make_session
from dspex_actors.lm._messages import Outcome, Planned, PlanRequest, Refused, Wait
from dspex_actors.lm._ratelimit import TokenBucket
from dspex_actors.primitives import CircuitOpen, GetStats, LMBadRequest, LMError, logger
from supervisors import Actor

__all__ = ["LMClient", "LMCounters"]

_LATENCY_WINDOW = 1000


class LMCounters:
    """Request statistics of one LM, kept across restarts of its client.

    Written only by the LM client actor's thread (one live client at a time).
    """

    def __init__(self) -> None:
        self.latencies: collections.deque[float] = collections.deque(maxlen=_LATENCY_WINDOW)
        self.counts: collections.Counter[str] = collections.Counter()
        self.restarts = 0


class LMClient(Actor):
    """Holds one LM's config, connection pool, rate limit, breaker and stats.

    Messages: :class:`PlanRequest` (ask) -> :class:`Planned` | :class:`Wait` |
    :class:`Refused`; :class:`Outcome` (tell); :class:`GetStats` (ask) -> dict.

    Threading: everything runs in the actor's thread; the ``requests.Session`` it
    hands out is shared by the I/O workers (urllib3's pool is thread-safe).
    On restart (a bug here, never a failed request) the pool, the breaker and the
    counters start afresh.
    """

    def __init__(self, lm_name: str, lm: LM, counters: LMCounters | None = None) -> None:
        super().__init__()
        self.lm_name = lm_name
        self.lm = lm
        self._session: Any = None
        self._bucket = TokenBucket(lm.rpm) if lm.rpm else None
        self._breaker = CircuitBreaker(
            lm.breaker_threshold, lm.breaker_cooldown, trial_timeout=max(60.0, lm.timeout * 2)
        )
        # Counters are handed in by the system so they survive restarts of this
        # actor (a restart resets the pool and the breaker, not the history).
        shared = counters if counters is not None else LMCounters()
        self._latencies = shared.latencies
        self._counts = shared.counts
        shared.restarts = self.restart_count

    def on_start(self) -> None:
        self._session = make_session(self.lm.pool_size, base_url=self.lm.chat_url)

    def on_stop(self) -> None:
        self._close()

    def on_failure(self, *_exc_info: Any) -> None:
        self._close()

    def _close(self) -> None:
        if self._session is not None:
            self._session.close()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, PlanRequest):
            return self._plan(message)
        if isinstance(message, Outcome):
            self._record(message)
            return None
        if isinstance(message, GetStats):
            return self.stats()
        logger.warning(
            "unexpected_message", actor="LMClient", lm=self.lm_name, message=repr(message)
        )
        return None

    def _plan(self, request: PlanRequest) -> Planned | Wait | Refused:
        if self._bucket is not None:
            wait = self._bucket.try_acquire()
            if wait > 0:
                self._counts["rate_limited_locally"] += 1
                return Wait(wait)
        try:
            self._breaker.before_request()
        except CircuitOpen as exc:
            self._counts["circuit_open"] += 1
            exc.message = f"{self.lm.label}: {exc.message}"  # name the LM and its URL
            return Refused(exc)
        try:
            plan = build_plan(self.lm, request.messages, **request.overrides)
        except (ValueError, TypeError) as exc:
            self._breaker.record_failure(LMBadRequest(str(exc)))  # frees a half-open trial slot
            return Refused(LMBadRequest(f"{self.lm.label}: bad request parameters: {exc}"))
        self._counts["planned"] += 1
        return Planned(plan, self._session)

    def _record(self, outcome: Outcome) -> None:
        self._counts["requests"] += 1
        self._latencies.append(outcome.latency_s)
        if outcome.ok:
            self._breaker.record_success()
            self._counts["ok"] += 1
            usage = outcome.usage or {}
            self._counts["prompt_tokens"] += int(usage.get("prompt_tokens", 0) or 0)
            self._counts["completion_tokens"] += int(usage.get("completion_tokens", 0) or 0)
        else:
            error: LMError | None = outcome.error
            self._breaker.record_failure(error)
            self._counts["errors"] += 1
            self._counts[f"error:{type(error).__name__}"] += 1

    def stats(self) -> dict[str, Any]:
        """A snapshot: request counts, errors by type, tokens, latency, breaker state."""
        lat = sorted(self._latencies)
        counts = dict(self._counts)
        return {
            "model": self.lm.model,
            "requests": counts.get("requests", 0),
            "ok": counts.get("ok", 0),
            "errors": counts.get("errors", 0),
            "errors_by_type": {
                k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("error:")
            },
            "prompt_tokens": counts.get("prompt_tokens", 0),
            "completion_tokens": counts.get("completion_tokens", 0),
            "circuit_open_refusals": counts.get("circuit_open", 0),
            "rate_limited_locally": counts.get("rate_limited_locally", 0),
            "latency_ms": {
                "p50": round(statistics.median(lat) * 1000, 3) if lat else None,
                "p95": round(lat[int(0.95 * (len(lat) - 1))] * 1000, 3) if lat else None,
                "mean": round(statistics.fmean(lat) * 1000, 3) if lat else None,
            },
            "breaker": self._breaker.snapshot(),
            "client_restarts": self.restart_count,
        }

    def describe(self) -> str | None:
        return f"{self.lm.model}  breaker={self._breaker.state}"
