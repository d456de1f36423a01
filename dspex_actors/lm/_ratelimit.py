"""Token-bucket rate limiter for requests per minute (pure, never sleeps).

Threading: not thread-safe; used under the lock of the LM's
:class:`~dspex_actors.lm.Admission`. A caller told to wait asks again after waiting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["TokenBucket"]

# Waiting exactly the returned delay must succeed despite float rounding.
_EPSILON = 1e-9


class TokenBucket:
    """A token bucket refilled at ``rate_per_minute / 60`` tokens per second.

    ``burst`` is the bucket capacity (how many requests may go back to back after an
    idle period); the default is one second's worth of tokens, at least 1, so a
    limit of 600 rpm allows bursts of 10 and 30 rpm allows 1. The bucket starts
    full. ``clock`` returns monotonic seconds; inject a fake clock for tests.

    Raises ``ValueError`` for a non-positive or non-finite rate, or ``burst < 1``.
    """

    def __init__(
        self,
        rate_per_minute: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not math.isfinite(rate_per_minute) or rate_per_minute <= 0:
            raise ValueError(f"rate_per_minute must be a positive number, got {rate_per_minute}")
        rate = rate_per_minute / 60.0
        if burst is None:
            burst = max(1.0, rate)
        if not math.isfinite(burst) or burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.rate_per_minute = float(rate_per_minute)
        self.rate_per_second = rate
        self.burst = float(burst)
        self._clock = clock
        self._tokens = self.burst
        self._last = clock()

    def _refill(self, now: float) -> None:
        if now > self._last:  # a clock that goes backwards never removes tokens
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate_per_second)
            self._last = now

    def try_acquire(self, now: float | None = None) -> float:
        """Take one token if available.

        Returns 0.0 when a token was taken, otherwise the seconds until one will be
        available (nothing is taken; call again after waiting). ``now`` defaults to
        the clock.
        """
        current = self._clock() if now is None else now
        self._refill(current)
        if self._tokens >= 1.0 - _EPSILON:
            self._tokens = max(0.0, self._tokens - 1.0)
            return 0.0
        return (1.0 - self._tokens) / self.rate_per_second

    def available(self, now: float | None = None) -> float:
        """Tokens currently in the bucket (fractional); takes nothing."""
        self._refill(self._clock() if now is None else now)
        return self._tokens

    def __repr__(self) -> str:
        return f"TokenBucket(rate_per_minute={self.rate_per_minute}, burst={self.burst})"
