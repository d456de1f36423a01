"""Retry policy for LM calls: exponential backoff, jitter, Retry-After, deadline.

Compared with DSPy (``min(2**attempt, 60)`` seconds, no jitter): delays start small,
are jittered so that many concurrent callers do not retry in lock-step, respect the
server's Retry-After, and an overall deadline bounds the whole call.

Threading: :class:`RetryPolicy` is immutable; share freely. The ``rng`` passed to
:meth:`RetryPolicy.delay` belongs to the caller (one per actor).
"""

from __future__ import annotations

import math
import random

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dspex_actors.primitives import LMError

__all__ = ["RetryPolicy"]

# 2**64 * any sane base_delay is far beyond max_delay; avoids int->float overflow.
_MAX_EXPONENT = 64


class RetryPolicy(BaseModel):
    """When and how long to wait before retrying a failed LM attempt.

    - ``max_attempts`` (>= 1): attempts in total, the first one included.
    - ``base_delay``, ``max_delay`` (>= 0): the backoff before retry *n* (after the
      *n*-th failed attempt) is ``min(max_delay, base_delay * 2**(n-1))``.
    - ``jitter`` (0..1): the fraction of that backoff that is randomised downwards:
      ``backoff * (1 - jitter * rng.random())``, so the delay lies in
      ``[backoff * (1 - jitter), backoff]``. ``jitter=0`` is deterministic, ``1`` is
      "full jitter". The upper bound never exceeds ``max_delay``.
    - Retry-After: when the error carries ``retry_after`` (429 from the server), the
      delay is ``max(jittered backoff, retry_after)``: the server's wish is a floor,
      never shortened, and is not capped by ``max_delay`` (the deadline decides).
    - ``deadline`` (> 0 or ``None``): seconds for the whole call, all attempts and
      waits included; no retry is started whose wait would reach it.
    - ``retry_also``: error classes retried although their class says
      ``retryable = False``, e.g. ``(dx.LMTruncated,)`` (useful with a non-zero
      temperature); by default none.

    Raises :class:`pydantic.ValidationError` for negative or non-finite numbers.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=4, ge=1)
    base_delay: float = Field(default=0.25, ge=0.0)
    max_delay: float = Field(default=20.0, ge=0.0)
    jitter: float = Field(default=0.5, ge=0.0, le=1.0)
    deadline: float | None = Field(default=60.0, gt=0.0)
    retry_also: tuple[type[LMError], ...] = ()

    @field_validator("base_delay", "max_delay", "jitter", "deadline")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be finite")
        return value

    def backoff(self, attempt: int) -> float:
        """The un-jittered backoff after failed attempt ``attempt`` (1-based)."""
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt}")
        exponent = min(attempt - 1, _MAX_EXPONENT)
        return min(self.max_delay, self.base_delay * float(2**exponent))

    @staticmethod
    def _retry_after(error: BaseException) -> float | None:
        value = getattr(error, "retry_after", None)
        if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
            return float(value)
        return None

    def delay(self, attempt: int, error: BaseException, rng: random.Random) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) before the next.

        Draws exactly one ``rng.random()`` per call (even when ``jitter`` is 0), so a
        seeded ``rng`` gives a reproducible sequence.
        """
        backoff = self.backoff(attempt)
        wait = backoff * (1.0 - self.jitter * rng.random())
        floor = self._retry_after(error)
        return max(wait, floor) if floor is not None else wait

    def min_delay(self, attempt: int, error: BaseException) -> float:
        """The smallest value :meth:`delay` can return for these arguments."""
        wait = self.backoff(attempt) * (1.0 - self.jitter)
        floor = self._retry_after(error)
        return max(wait, floor) if floor is not None else wait

    def retries(self, error: BaseException) -> bool:
        """Whether ``error`` is of a kind this policy retries: a retryable
        :class:`LMError`, or one of ``retry_also``."""
        if not isinstance(error, LMError):
            return False
        return error.retryable or isinstance(error, self.retry_also)

    def should_retry(
        self,
        attempt: int,
        error: BaseException,
        elapsed: float,
        delay: float | None = None,
    ) -> bool:
        """Whether to retry after failed attempt ``attempt`` (1-based).

        False when :meth:`retries` says no for ``error``, when ``attempt``
        reached ``max_attempts``, or when ``elapsed`` (seconds since the call began)
        plus the wait would reach the deadline. The wait is ``delay`` if given (pass
        the value :meth:`delay` returned), else :meth:`min_delay`.
        """
        if not self.retries(error):
            return False
        if attempt >= self.max_attempts:
            return False
        if self.deadline is not None:
            wait = self.min_delay(attempt, error) if delay is None else delay
            if elapsed + wait >= self.deadline:
                return False
        return True

    def next_delay(
        self, attempt: int, error: BaseException, elapsed: float, rng: random.Random
    ) -> float | None:
        """:meth:`delay` and :meth:`should_retry` in one: the seconds to wait before
        the next attempt, or ``None`` to give up and raise ``error``."""
        if not self.retries(error):
            return None
        wait = self.delay(attempt, error, rng)
        return wait if self.should_retry(attempt, error, elapsed, delay=wait) else None

    def remaining(self, elapsed: float) -> float | None:
        """Seconds left before the deadline (never negative), or ``None`` without one.
        Use it to shorten the next attempt's HTTP timeout."""
        return None if self.deadline is None else max(0.0, self.deadline - elapsed)
