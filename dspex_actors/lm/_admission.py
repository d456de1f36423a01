"""Admission for one LM: rate limit, circuit breaker and outcome counters behind one lock.

OTP's ETS pattern (counters and fuses in a table that a GenServer owns and other
processes read): the LM client actor creates an :class:`Admission` in ``on_start``,
publishes it in the system's :class:`AdmissionTable` and closes it when it stops or
crashes; its restart publishes a fresh one (new token bucket, new breaker, same
:class:`LMCounters`). Program actors ask it "may I send?" and I/O workers tell it how
a request went by calling it from their own threads: no ask, no tell, no thread
hand-off on the request path.
"""

from __future__ import annotations

import collections
import math
import statistics
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dspex_actors.lm._breaker import CircuitBreaker
from dspex_actors.lm._bulkhead import Bulkhead
from dspex_actors.lm._config import LM
from dspex_actors.lm._http import build_plan
from dspex_actors.lm._messages import Outcome, Planned, Refused, Wait
from dspex_actors.lm._ratelimit import TokenBucket
from dspex_actors.primitives import CircuitOpen, LMBadRequest, LMError, logger

if TYPE_CHECKING:
    import requests

__all__ = ["RESTART_POLL", "Admission", "AdmissionTable", "LMCounters"]

_LATENCY_WINDOW = 1000

RESTART_POLL = 0.01
"""Seconds a program waits before looking again when the LM's client is restarting."""


class LMCounters:
    """Request statistics of one LM, kept across restarts of its client.

    Threading: read and written only under :attr:`lock`, which every
    :class:`Admission` of this LM shares (so an old admission still recording the
    outcome of a request planned before a restart cannot race the new one).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: collections.deque[float] = collections.deque(maxlen=_LATENCY_WINDOW)
        self.counts: collections.Counter[str] = collections.Counter()
        self.restarts = 0
        self.breaker_disabled = False  # BreakerDisable told, no BreakerEnable since
        self.starts = 0  # of the client, in any supervisor incarnation (restarts = starts - 1)
        self.warned_bad_outcome = False  # an Outcome with wrong-typed fields was logged

    def stats(self, model: str) -> dict[str, Any]:
        """Counts, errors by type, tokens and latency percentiles (taken under the lock).

        Available whatever the client's state: the history outlives restarts, and a
        stopped or down system still reports it.
        """
        with self.lock:
            lat = sorted(self.latencies)
            counts = dict(self.counts)
            restarts = self.restarts
        return {
            "model": model,
            "requests": counts.get("requests", 0),
            "ok": counts.get("ok", 0),
            "errors": counts.get("errors", 0),
            "errors_by_type": {
                k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("error:")
            },
            "prompt_tokens": counts.get("prompt_tokens", 0),
            "completion_tokens": counts.get("completion_tokens", 0),
            # Requests that used tokens we could not count (a stream cut before its
            # usage event, or one that sent none): unknown, not zero.
            "usage_unknown": counts.get("usage_unknown", 0),
            "circuit_open_refusals": counts.get("circuit_open", 0),
            "rate_limited_locally": counts.get("rate_limited_locally", 0),
            "latency_ms": {
                "p50": _percentile_ms(lat, 0.50),
                "p95": _percentile_ms(lat, 0.95),
                "mean": round(statistics.fmean(lat) * 1000, 3) if lat else None,
            },
            "restarts": restarts,
            "client_restarts": restarts,  # the earlier name, kept
        }


_TOKEN_KEYS = ("prompt_tokens", "completion_tokens")


def _is_count(value: object) -> bool:
    return type(value) is int and value >= 0


def _checked_parts(outcome: Outcome) -> tuple[float | None, dict[str, int], list[str]]:
    """What of ``outcome`` can be counted: its latency (None if not a finite number >= 0),
    its token counts (ints >= 0; a missing or None count is 0), and the fields ignored.

    An :class:`Outcome` is told by I/O workers but any sender can tell one; a wrong-typed
    field must not crash the client (nor, later, its stats).
    """
    ignored: list[str] = []
    latency: Any = getattr(outcome, "latency_s", None)
    is_number = isinstance(latency, (int, float)) and not isinstance(latency, bool)
    if not is_number or not math.isfinite(latency) or latency < 0:
        latency = None
    if latency is None:
        ignored.append("latency_s")
    usage: Any = getattr(outcome, "usage", None)
    tokens: dict[str, int] = {}
    if usage is not None and not isinstance(usage, dict):
        ignored.append("usage")
        usage = None
    for key in _TOKEN_KEYS:
        value = None if usage is None else usage.get(key)
        if value is None:
            continue
        if _is_count(value):
            tokens[key] = value
        else:
            ignored.append(f"usage.{key}")
    return (None if latency is None else float(latency)), tokens, ignored


class Admission:
    """One LM client's admission state: token bucket, circuit breaker, counters, session.

    Created, published and closed by the :class:`~dspex_actors.lm.LMClient` that owns
    it. :meth:`admit` and :meth:`record` are what the request path calls instead of
    asking the client; both take the counters' lock for a few microseconds and never
    block otherwise, never do I/O and never raise for a failed request.

    ``clock`` (monotonic seconds) drives the bucket and the breaker; inject one in tests.
    ``owner_stopped`` is the owning actor's ``actor_stopped`` event.

    Threading: every method may be called from any thread. After :meth:`close` (the
    client stopped or crashed) :meth:`admit` answers ``Wait(RESTART_POLL)`` so the
    caller looks up the replacement; outcomes are still counted.
    """

    def __init__(
        self,
        lm_name: str,
        lm: LM,
        session: requests.Session,
        counters: LMCounters | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        owner_stopped: threading.Event | None = None,
    ) -> None:
        self.lm_name = lm_name
        self.lm = lm
        self.session = session
        self.counters = counters if counters is not None else LMCounters()
        self._lock = self.counters.lock
        self._bucket = TokenBucket(lm.rpm, clock=clock) if lm.rpm else None
        self._breaker = CircuitBreaker(
            lm.breaker_threshold,
            lm.breaker_cooldown,
            clock,
            trial_timeout=max(60.0, lm.timeout * 2),
            mode=lm.breaker_mode,
            window=lm.breaker_window,
            min_calls=min(lm.breaker_min_calls, lm.breaker_window),
            failure_rate=lm.breaker_failure_rate,
            success_threshold=lm.breaker_success_threshold,
            backoff=lm.breaker_backoff,
            max_cooldown=max(lm.breaker_max_cooldown, lm.breaker_cooldown),
            jitter=lm.breaker_jitter,
        )
        if self.counters.breaker_disabled:
            self._breaker.disable()  # an operator's switch outlives a restart of the client
        self.bulkhead = Bulkhead(lm.label, lm.max_in_flight, lm.max_queue, lm.queue_timeout)
        """This LM's own bulkhead (a restarted client brings a fresh one; slots held
        across the restart are given back to the old one)."""
        self._closed = False
        self._owner_stopped = owner_stopped

    @property
    def closed(self) -> bool:
        """Whether the owning client has stopped (a replacement may be published): it
        closed this admission, or its ``owner_stopped`` event is set (it was killed, so
        no hook ran), as an ETS table dies with its owner."""
        owner_stopped = self._owner_stopped
        return self._closed or (owner_stopped is not None and owner_stopped.is_set())

    def close(self) -> None:
        """Called by the owning client when it stops or crashes. Idempotent."""
        self._closed = True

    def admit(self) -> Wait | Refused | None:
        """May one attempt go now? ``None``: yes (a token and, in half-open, the trial
        slot are taken); :class:`Wait`: the rate limit (or a restart) says try again
        in ``seconds``; :class:`Refused`: the breaker is open (``CircuitOpen``)."""
        if self.closed:
            return Wait(RESTART_POLL)
        counts = self.counters.counts
        with self._lock:
            if self._bucket is not None:
                wait = self._bucket.try_acquire()
                if wait > 0:
                    counts["rate_limited_locally"] += 1
                    return Wait(wait)
            try:
                self._breaker.before_request()
            except CircuitOpen as exc:
                counts["circuit_open"] += 1
                exc.message = f"{self.lm.label}: {exc.message}"  # name the LM and its URL
                return Refused(exc)
            counts["planned"] += 1
        return None

    def plan(
        self, messages: list[dict[str, Any]], overrides: dict[str, Any]
    ) -> Planned | Wait | Refused:
        """:meth:`admit` and :func:`build_plan` in one (what a ``PlanRequest`` ask answers).

        Bad parameters are refused with :class:`LMBadRequest` before anything is taken.
        """
        try:
            request = build_plan(self.lm, messages, **overrides)
        except (ValueError, TypeError) as exc:
            return Refused(LMBadRequest(f"{self.lm.label}: bad request parameters: {exc}"))
        verdict = self.admit()
        return Planned(request, self.session) if verdict is None else verdict

    def record(self, outcome: Outcome) -> None:
        """Count one attempt's outcome and feed it to the breaker (any thread).

        Logs ``lm.breaker_opened`` at WARNING when this outcome opened the breaker.
        """
        counts = self.counters.counts
        opened = False
        latency, tokens, ignored = _checked_parts(outcome)
        with self._lock:
            counts["requests"] += 1
            if latency is not None:
                self.counters.latencies.append(latency)
            if ignored:
                warn, self.counters.warned_bad_outcome = not self.counters.warned_bad_outcome, True
            if outcome.ok:
                self._breaker.record_success()
                counts["ok"] += 1
                for key, value in tokens.items():
                    counts[key] += value
                if getattr(outcome, "usage", None) is None:  # e.g. a stream without usage
                    counts["usage_unknown"] += 1
            else:
                error: LMError | None = outcome.error
                opened = self._breaker.record_failure(error)
                counts["errors"] += 1
                counts[f"error:{type(error).__name__}"] += 1
                if type(error).__name__ == "LMStreamInterrupted":  # tokens were spent
                    counts["usage_unknown"] += 1
            if opened:
                breaker = self._breaker.snapshot()
        if ignored and warn:
            logger.warning(
                "lm.outcome_ignored_fields",
                lm=self.lm_name,
                fields=ignored,
                note="values of the wrong type were not counted (warned once per LM)",
            )
        if opened:
            logger.warning(
                "lm.breaker_opened",
                lm=self.lm_name,
                failures=breaker["consecutive_failures"],
                cooldown_s=breaker["cooldown"],
                error=type(outcome.error).__name__,
            )

    def disable_breaker(self) -> None:
        """Refuse every attempt with ``CircuitOpen`` until :meth:`enable_breaker` (an
        operator's ``BreakerDisable``); kept across restarts of the client."""
        with self._lock:
            self.counters.breaker_disabled = True
            self._breaker.disable()

    def enable_breaker(self) -> None:
        """Undo :meth:`disable_breaker`: the breaker is closed again, history forgotten."""
        with self._lock:
            self.counters.breaker_disabled = False
            self._breaker.enable()

    def reset_breaker(self) -> None:
        """Close the breaker now, its history forgotten (an operator's ``Reset``)."""
        with self._lock:
            self._breaker.reset()

    def breaker_state(self) -> str:
        """``"closed"``, ``"open"``, ``"half_open"`` or ``"disabled"``."""
        with self._lock:
            return self._breaker.state

    def stats(self) -> dict[str, Any]:
        """A snapshot: request counts, errors by type, tokens, latency, breaker state."""
        with self._lock:
            breaker = self._breaker.snapshot()
        out = self.counters.stats(self.lm.model)
        out["breaker"] = breaker
        out["bulkhead"] = self.bulkhead.stats()
        return out

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Admission {self.lm_name!r} {state}, breaker={self._breaker!r}>"


def _percentile_ms(ordered: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` percentile of sorted seconds, in ms (p95 >= p50 always)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return round(ordered[rank - 1] * 1000, 3)


class AdmissionTable:
    """The system's table of current admissions, one per LM name.

    LM clients :meth:`publish` theirs when they start and :meth:`withdraw` it when
    they stop; programs :meth:`get` the current one for each attempt. Threading:
    any thread (a dict read; publish and withdraw under a lock).
    """

    def __init__(self) -> None:
        self._current: dict[str, Admission] = {}
        self._lock = threading.Lock()

    def publish(self, admission: Admission) -> None:
        """Make ``admission`` the current one of its LM. The one it replaces is closed
        (its client was killed, so it could not withdraw it)."""
        with self._lock:
            old = self._current.get(admission.lm_name)
            self._current[admission.lm_name] = admission
        if old is not None and old is not admission:
            old.close()

    def withdraw(self, admission: Admission) -> None:
        """Close ``admission`` and remove it if it is still the current one of its LM."""
        admission.close()
        with self._lock:
            if self._current.get(admission.lm_name) is admission:
                del self._current[admission.lm_name]

    def get(self, lm_name: str) -> Admission | None:
        """The current admission of ``lm_name``, or ``None`` while its client is down."""
        return self._current.get(lm_name)

    def __repr__(self) -> str:
        return f"<AdmissionTable {sorted(self._current)}>"
