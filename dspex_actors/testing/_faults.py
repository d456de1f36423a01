"""Injected faults: the :class:`Fault` kinds and the schedule that hands them out.

A :class:`FaultSchedule` gives each chat-completions request the next queued
fault (FIFO), else a random one drawn from seeded rates, else none.
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

FAULT_KINDS: Final = frozenset(
    {
        "500",
        "503",
        "429",
        "400",
        "401",
        "drop",
        "hang",
        "garbage",
        "bad_format",
        "slow",
        "stream_cut",
    }
)
"""Every fault kind :class:`Fault` accepts."""

STATUS_FAULTS: Final = frozenset({"500", "503", "429", "400", "401"})
"""The kinds answered with an OpenAI-style JSON error body and that status."""


@dataclass(frozen=True)
class Fault:
    """One injected fault, applied to one chat-completions request.

    ``kind`` is one of :data:`FAULT_KINDS`. ``retry_after`` (seconds) is sent as
    the ``Retry-After`` header of a ``"429"``; ``hang_seconds`` is how long a
    ``"hang"`` withholds its response; ``delay`` is the extra wait of a
    ``"slow"``. Raises :class:`ValueError` on an unknown kind or a negative or
    non-finite duration.
    """

    kind: str
    retry_after: float = 1.0
    hang_seconds: float = 30.0
    delay: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(
                f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}"
            )
        for name in ("retry_after", "hang_seconds", "delay"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"Fault.{name} must be a finite number >= 0, got {value!r}")


class FaultSchedule:
    """Which fault the next request gets: queued faults first, then seeded random rates.

    Threading: all methods may be called from any thread (one lock guards the
    queue, the rate table and the RNG). Validation errors raise
    :class:`ValueError` and leave the schedule unchanged.
    """

    def __init__(self, seed: int) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()
        self._rates: tuple[tuple[Fault, float], ...] = ()
        self._rng = random.Random(seed)

    def inject(self, *faults: str | Fault) -> None:
        """Queue faults in order; a string is a kind with default parameters."""
        parsed = [f if isinstance(f, Fault) else Fault(kind=f) for f in faults]
        with self._lock:
            self._queue.extend(parsed)

    def set_rates(
        self, rates: Mapping[str, float], seed: int, templates: Mapping[str, Fault]
    ) -> None:
        """Replace the random rates (``{"429": 0.1}``) and reseed the RNG with ``seed``.

        ``templates`` give the parameters per kind (default ``Fault(kind)``).
        Raises :class:`ValueError` on an unknown kind, a template of another
        kind, a rate outside [0, 1] or rates summing to more than 1.
        """
        table = []
        total = 0.0
        for kind, raw_rate in sorted(rates.items()):
            fault = templates.get(kind) or Fault(kind=kind)
            if fault.kind != kind:
                raise ValueError(f"template for {kind!r} has kind {fault.kind!r}")
            rate = float(raw_rate)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"rate for {kind!r} must be in [0, 1], got {rate!r}")
            total += rate
            if rate > 0:
                table.append((fault, rate))
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault rates sum to {total}, more than 1")
        with self._lock:
            self._rates = tuple(table)
            self._rng = random.Random(seed)

    def clear(self) -> None:
        """Drop queued faults and turn random faults off."""
        with self._lock:
            self._queue.clear()
            self._rates = ()

    def next(self) -> Fault | None:
        """The fault for the next request: the oldest queued one, else a random draw."""
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            if not self._rates:
                return None
            draw = self._rng.random()
            for fault, rate in self._rates:
                if draw < rate:
                    return fault
                draw -= rate
            return None
