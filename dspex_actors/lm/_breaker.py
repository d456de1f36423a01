"""Circuit breaker for one LM endpoint (pure state machine, injected clock).

States:

- ``"closed"``: requests flow. In the default ``"rate"`` mode (Resilience4j's model) it
  opens when, over the last ``window`` counted calls and with at least ``min_calls`` of
  them, the share of counted failures reaches ``failure_rate``; a flaky upstream
  (retries handle it) does not open it, a dead one does. In ``"consecutive"`` mode
  ``threshold`` consecutive counted failures open it.
- ``"open"``: :meth:`CircuitBreaker.before_request` raises :class:`CircuitOpen`
  (no I/O) until ``cooldown`` seconds have passed since it opened.
- ``"half_open"``: exactly one trial request is let through at a time; the others get
  :class:`CircuitOpen`. ``success_threshold`` (default 1) trials in a row that succeed
  close the breaker; a counted failure re-opens it, for a longer cooldown: the
  ``n``-th re-opening in a row (``n >= 1``) waits ``min(max_cooldown, cooldown *
  backoff**n) * (1 + U * jitter)`` (Akka's exponential reset timeout with its random
  factor; ``backoff=1``, ``jitter=0`` keep it fixed). The first opening waits exactly
  ``cooldown``. Closing starts ``n`` again from 0.
- ``"disabled"``: an operator turned it off (fuse's ``circuit_disable``): every
  request gets :class:`CircuitOpen` until :meth:`CircuitBreaker.enable`, which closes
  it with its history forgotten.

Which failures count: only :class:`LMServerError` (5xx, malformed 2xx body),
:class:`LMTimeout` and :class:`LMConnectionError`, i.e. evidence that the endpoint is
down or broken. ``LMRateLimited`` (429) does not count: the server is alive and
throttling, which the rate limiter and Retry-After deal with; opening the breaker
would turn a slowdown into an outage. ``LMBadRequest`` (other 4xx), ``CircuitOpen``,
``AdapterParseError`` and any non-LM exception do not count either. A non-counting
error is *neutral*: it neither increments nor resets the consecutive-failure count
(a gateway may answer 4xx while its upstream is down), and in half-open it only
frees the trial slot so another trial can go.

Results reported while the breaker is open (requests that were already in flight
when it opened) are ignored. If a half-open trial never reports back, its slot is
released after ``trial_timeout`` seconds.

Threading: not thread-safe; used under the lock of the LM's
:class:`~dspex_actors.lm.Admission` (or owned by one thread).
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from dspex_actors.primitives import (
    CircuitOpen,
    LMConnectionError,
    LMServerError,
    LMTimeout,
    telemetry,
)

__all__ = ["BreakerState", "CircuitBreaker", "counts_as_failure"]

BreakerState = Literal["closed", "open", "half_open", "disabled"]
BreakerMode = Literal["rate", "consecutive"]

#: Defaults of the rate mode: >= 50% failures over the last 100 counted calls, once at
#: least 50 were seen. With 30% random failures the chance of ever crossing is about
#: 1e-3 per thousand calls; an endpoint failing every call opens it after 50.
DEFAULT_WINDOW = 100
DEFAULT_MIN_CALLS = 50
DEFAULT_FAILURE_RATE = 0.5

_COUNTED = (LMServerError, LMTimeout, LMConnectionError)


def counts_as_failure(error: BaseException | None) -> bool:
    """Whether ``error`` counts towards opening the breaker.

    ``None`` (the caller reports a failure without an exception) counts; otherwise
    only :class:`LMServerError`, :class:`LMTimeout` and :class:`LMConnectionError` do.
    """
    return error is None or isinstance(error, _COUNTED)


class CircuitBreaker:
    """Circuit breaker with a single-trial half-open state: failure-rate or consecutive mode.

    ``mode="rate"`` (default): ``failure_rate`` (0 < r <= 1) of the last ``window``
    counted calls, with at least ``min_calls`` (1 <= min_calls <= window) of them, open
    it. ``mode="consecutive"``: ``threshold`` (>= 1) consecutive counted failures open
    it. Either way it stays open for ``cooldown`` (>= 0) seconds. ``clock`` returns
    monotonic seconds. ``trial_timeout`` (> 0) bounds how long a half-open trial may
    hold its slot without reporting; set it to at least the request timeout.
    ``success_threshold`` (>= 1) half-open successes in a row close it; ``backoff``
    (>= 1), ``max_cooldown`` (>= cooldown, ``None``: no cap but ``cooldown`` itself when
    ``backoff`` is 1) and ``jitter`` (0..1) grow the cooldown after each failed
    half-open trial; ``rng`` draws the jitter.

    Raises ``ValueError`` for invalid parameters.
    """

    def __init__(
        self,
        threshold: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        trial_timeout: float = 60.0,
        mode: BreakerMode = "rate",
        window: int = DEFAULT_WINDOW,
        min_calls: int = DEFAULT_MIN_CALLS,
        failure_rate: float = DEFAULT_FAILURE_RATE,
        success_threshold: int = 1,
        backoff: float = 1.0,
        max_cooldown: float | None = None,
        jitter: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
            raise ValueError(f"threshold must be an int >= 1, got {threshold!r}")
        if mode not in ("rate", "consecutive"):
            raise ValueError(f"mode must be 'rate' or 'consecutive', got {mode!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be an int >= 1, got {window!r}")
        if isinstance(min_calls, bool) or not isinstance(min_calls, int):
            raise ValueError(f"min_calls must be an int, got {min_calls!r}")
        if not 1 <= min_calls <= window:
            raise ValueError(f"min_calls must be in [1, window={window}], got {min_calls}")
        if not (math.isfinite(failure_rate) and 0 < failure_rate <= 1):
            raise ValueError(f"failure_rate must be in (0, 1], got {failure_rate}")
        self.mode: BreakerMode = mode
        self.window = window
        self.min_calls = min_calls
        self.failure_rate = float(failure_rate)
        self._calls: deque[bool] = deque(maxlen=window)  # True = a counted failure
        self._window_failures = 0
        if not math.isfinite(cooldown) or cooldown < 0:
            raise ValueError(f"cooldown must be >= 0, got {cooldown}")
        if not math.isfinite(trial_timeout) or trial_timeout <= 0:
            raise ValueError(f"trial_timeout must be > 0, got {trial_timeout}")
        self._check_growth(success_threshold, backoff, max_cooldown, jitter, cooldown)
        self.success_threshold = success_threshold
        self.backoff = float(backoff)
        self.max_cooldown = float(max_cooldown) if max_cooldown is not None else None
        self.jitter = float(jitter)
        self._rng = rng or random.Random()
        self._reopened = 0  # re-openings in a row (failed half-open trials)
        self._half_open_successes = 0
        self._disabled = False
        self.threshold = threshold
        self.cooldown = float(cooldown)
        self._current_cooldown = float(cooldown)
        self.trial_timeout = float(trial_timeout)
        self._clock = clock
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_started: float | None = None
        self._times_opened = 0
        self._rejected = 0
        self._why_opened = "failures"

    @staticmethod
    def _check_growth(
        success_threshold: int,
        backoff: float,
        max_cooldown: float | None,
        jitter: float,
        cooldown: float,
    ) -> None:
        if isinstance(success_threshold, bool) or not isinstance(success_threshold, int):
            raise ValueError(f"success_threshold must be an int, got {success_threshold!r}")
        if success_threshold < 1:
            raise ValueError(f"success_threshold must be >= 1, got {success_threshold}")
        if not (math.isfinite(backoff) and backoff >= 1):
            raise ValueError(f"backoff must be a finite number >= 1, got {backoff}")
        if max_cooldown is not None and not (
            math.isfinite(max_cooldown) and max_cooldown >= cooldown
        ):
            raise ValueError(f"max_cooldown must be >= cooldown ({cooldown}), got {max_cooldown}")
        if not (math.isfinite(jitter) and 0 <= jitter <= 1):
            raise ValueError(f"jitter must be in [0, 1], got {jitter}")

    def _next_cooldown(self) -> float:
        """This opening's cooldown: grown by ``backoff`` per failed trial, capped, jittered."""
        if self._reopened == 0:
            return self.cooldown
        grown = self.cooldown * self.backoff ** min(self._reopened, 64)
        cap = self.max_cooldown if self.max_cooldown is not None else grown
        return min(cap, grown) * (1.0 + self._rng.random() * self.jitter)

    def _refresh(self, now: float) -> None:
        if (
            self._state == "open"
            and self._opened_at is not None
            and now - self._opened_at >= self._current_cooldown
        ):
            self._state = "half_open"
            telemetry.breaker_state("open", "half_open")
            self._trial_started = None
            self._half_open_successes = 0
        if (
            self._state == "half_open"
            and self._trial_started is not None
            and now - self._trial_started >= self.trial_timeout
        ):
            self._trial_started = None

    def _open(self, now: float) -> None:
        telemetry.breaker_state(self._state, "open")
        if self._state == "half_open":
            self._reopened += 1
        else:
            self._reopened = 0
        self._current_cooldown = self._next_cooldown()
        self._state = "open"
        self._opened_at = now
        self._trial_started = None
        self._times_opened += 1
        self._calls.clear()
        self._window_failures = 0

    def _note(self, failed: bool) -> None:
        """Slide the rate window by one counted call."""
        calls = self._calls
        if len(calls) == calls.maxlen and calls[0]:
            self._window_failures -= 1
        calls.append(failed)
        self._window_failures += failed

    def _tripped(self) -> bool:
        if self.mode == "consecutive":
            return self._failures >= self.threshold
        seen = len(self._calls)
        return seen >= self.min_calls and self._window_failures >= self.failure_rate * seen

    def disable(self) -> None:
        """Turn the breaker off (an operator's ``BreakerDisable``): refuse every request
        with :class:`CircuitOpen` until :meth:`enable`. Idempotent."""
        self._disabled = True

    def enable(self) -> None:
        """Undo :meth:`disable`: the breaker is closed, its history forgotten. Idempotent."""
        if self._disabled:
            self._disabled = False
            self.reset()

    @property
    def disabled(self) -> bool:
        """Whether an operator disabled the breaker."""
        return self._disabled

    def reset(self) -> None:
        """Close the breaker now and forget its history (an operator's reset)."""
        telemetry.breaker_state(self._state, "closed")
        self._reopened = 0
        self._half_open_successes = 0
        self._current_cooldown = self.cooldown
        self._state = "closed"
        self._failures = 0
        self._opened_at = None
        self._trial_started = None
        self._calls.clear()
        self._window_failures = 0

    @property
    def state(self) -> BreakerState:
        """``"closed"``, ``"open"``, ``"half_open"`` (open turns half-open once the
        cooldown has passed, even before the next request) or ``"disabled"``."""
        if self._disabled:
            return "disabled"
        self._refresh(self._clock())
        return self._state

    def retry_after(self) -> float:
        """Seconds until a request could be let through (0.0 when it could now)."""
        now = self._clock()
        self._refresh(now)
        if self._state == "open" and self._opened_at is not None:
            return max(0.0, self._opened_at + self._current_cooldown - now)
        if self._state == "half_open" and self._trial_started is not None:
            return max(0.0, self._trial_started + self.trial_timeout - now)
        return 0.0

    def before_request(self) -> None:
        """Call before each request attempt.

        Returns when the request may go (in half-open it becomes the trial). Raises
        :class:`CircuitOpen` with ``retry_after`` (seconds until the cooldown ends,
        or in half-open until the running trial's slot would time out) otherwise.
        """
        if self._disabled:
            self._rejected += 1
            raise CircuitOpen(
                "circuit disabled by an operator (tell BreakerEnable() to resume)",
                retry_after=0.0,
            )
        now = self._clock()
        self._refresh(now)
        if self._state == "closed":
            return
        if self._state == "half_open" and self._trial_started is None:
            self._trial_started = now
            return
        self._rejected += 1
        wait = self.retry_after()
        if self._state == "open":
            raise CircuitOpen(f"circuit open after {self._why_opened}", retry_after=wait)
        raise CircuitOpen("circuit half-open: a trial request is in flight", retry_after=wait)

    def record_success(self) -> None:
        """Report a successful request: resets the failure count; closes a half-open
        breaker. Ignored while open (a late result from before it opened)."""
        self._refresh(self._clock())
        if self._state == "open":
            return
        if self._state == "half_open":
            self._half_open_successes += 1
            if self._half_open_successes < self.success_threshold:
                self._trial_started = None  # the next trial may go
                return
            self._calls.clear()  # a fresh window after recovery
            self._window_failures = 0
            self._reopened = 0
            self._current_cooldown = self.cooldown
        telemetry.breaker_state(self._state, "closed")
        self._state = "closed"
        self._failures = 0
        self._opened_at = None
        self._trial_started = None
        self._note(False)

    def record_failure(self, error: BaseException | None = None) -> bool:
        """Report a failed request (see :func:`counts_as_failure`).

        A counted failure increments the consecutive count and opens the breaker at
        ``threshold``; in half-open it re-opens it at once. A non-counting error is
        neutral (in half-open it frees the trial slot). Ignored while open.
        Returns whether this report opened the breaker.
        """
        now = self._clock()
        self._refresh(now)
        if self._state == "open":
            return False
        if not counts_as_failure(error):
            if self._state == "half_open":
                self._trial_started = None
            return False
        self._failures += 1
        self._note(True)
        if self._state == "half_open" or self._tripped():
            self._why_opened = self._describe_trip()
            self._open(now)
            return True
        return False

    def _describe_trip(self) -> str:
        if self._state == "half_open":
            return "a failed half-open trial"
        if self.mode == "consecutive":
            return f"{self._failures} consecutive failures"
        return f"{self._window_failures} failures in the last {len(self._calls)} calls"

    def snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable view for status reports and logs."""
        return {
            "state": self.state,
            "mode": self.mode,
            "consecutive_failures": self._failures,
            "threshold": self.threshold,
            "window_calls": len(self._calls),
            "window_failures": self._window_failures,
            "failure_rate": self.failure_rate,
            "cooldown": self.cooldown,
            "current_cooldown": round(self._current_cooldown, 3),
            "max_cooldown": self.max_cooldown,
            "reopened": self._reopened,
            "half_open_successes": self._half_open_successes,
            "success_threshold": self.success_threshold,
            "disabled": self._disabled,
            "retry_after": self.retry_after(),
            "trial_in_flight": self._trial_started is not None,
            "times_opened": self._times_opened,
            "rejected": self._rejected,
        }

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(state={self._state!r}, failures={self._failures}, "
            f"threshold={self.threshold}, cooldown={self.cooldown})"
        )
