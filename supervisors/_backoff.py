"""Exponential backoff with jitter for restarts (Akka's ``restartWithBackoff``).

OTP restarts a child at once; a child that crashes on start is then restarted in a
tight loop until its supervisor's intensity gives up. A :class:`Backoff` spaces
those restarts out. It is plain, immutable data: the delay for the *n*-th restart
in a row is ``min(max_s, min_s * 2**n) * (1 + U * jitter)`` with ``U`` uniform in
[0, 1), and the count ``n`` starts again from 0 once the child stayed up for
``reset_after_s`` seconds.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["Backoff"]

_MAX_EXPONENT = 64  # 2**64 * any sane min_s is far beyond max_s; avoids overflow


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before the *n*-th consecutive restart.

    - ``min_s`` (> 0, default 0.1): the first delay.
    - ``max_s`` (>= ``min_s``, default 10.0): the largest delay before jitter.
    - ``jitter`` (0..1, default 0.2): up to this fraction is added at random, so
      restarts of many children do not line up.
    - ``reset_after_s`` (> 0, default 30.0): after this long up, ``n`` is 0 again.

    Raises ``ValueError`` at construction for out-of-range values. Thread-safe
    (immutable); :meth:`delay` takes the caller's random generator.
    """

    min_s: float = 0.1
    max_s: float = 10.0
    jitter: float = 0.2
    reset_after_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("min_s", "max_s", "jitter", "reset_after_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"Backoff.{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"Backoff.{name} must be finite, got {value!r}")
        if self.min_s <= 0:
            raise ValueError(f"Backoff.min_s must be > 0, got {self.min_s}")
        if self.max_s < self.min_s:
            raise ValueError(f"Backoff.max_s ({self.max_s}) must be >= min_s ({self.min_s})")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"Backoff.jitter must be in [0, 1], got {self.jitter}")
        if self.reset_after_s <= 0:
            raise ValueError(f"Backoff.reset_after_s must be > 0, got {self.reset_after_s}")

    def base_delay(self, n: int) -> float:
        """The delay before the ``n``-th consecutive restart (``n`` from 0), without jitter."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return min(self.max_s, self.min_s * 2.0 ** min(n, _MAX_EXPONENT))

    def delay(self, n: int, rng: random.Random | None = None) -> float:
        """The delay before the ``n``-th consecutive restart, jitter included."""
        u = (rng or random).random()
        return self.base_delay(n) * (1.0 + u * self.jitter)

    def next_count(self, n: int, up_for_s: float) -> int:
        """The count to use after a child that was up ``up_for_s`` seconds failed again."""
        return 0 if up_for_s >= self.reset_after_s else n + 1
