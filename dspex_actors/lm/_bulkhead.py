"""The bulkhead of one LM: at most ``max_in_flight`` calls at once, ``max_queue`` waiting.

Each LM has its own (its client creates it with its admission), so a provider that
hangs fills only its own slots and its own queue: the calls beyond them fail fast
with :class:`LMQueueFull`, a call that waits longer than ``queue_timeout`` fails with
:class:`LMQueueTimeout`, and the other LMs' calls never wait behind it (together
with the LM's own HTTP connection pool; see docs/providers.md).

Threading: any thread. :meth:`Bulkhead.acquire` blocks the calling thread (a
program actor's own thread) for at most the time it is given; a :class:`Permit` is
released exactly once, whoever releases it first (the I/O worker when its attempt
ends, or the program if the worker never got that far).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from dspex_actors.primitives import DeadlineExceeded, LMQueueFull, LMQueueTimeout

__all__ = ["Bulkhead", "Permit"]


class Permit:
    """One slot of a :class:`Bulkhead`; :meth:`release` is idempotent and thread-safe."""

    __slots__ = ("_bulkhead", "_released")

    def __init__(self, bulkhead: Bulkhead) -> None:
        self._bulkhead = bulkhead
        self._released = False

    def release(self) -> None:
        """Give the slot back (a second call does nothing)."""
        bulkhead = self._bulkhead
        with bulkhead._cond:
            if self._released:
                return
            self._released = True
            bulkhead._in_flight -= 1
            bulkhead._cond.notify()


class Bulkhead:
    """``max_in_flight`` slots and a queue of at most ``max_queue`` waiters.

    ``label`` names the LM in errors. Waiters are woken one per released slot (the
    condition's FIFO order: the longest waiter first).
    """

    def __init__(
        self, label: str, max_in_flight: int, max_queue: int, queue_timeout: float
    ) -> None:
        if max_in_flight < 1 or max_queue < 0 or queue_timeout <= 0:
            raise ValueError("bulkhead: max_in_flight >= 1, max_queue >= 0, queue_timeout > 0")
        self.label = label
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self._cond = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._waiting = 0
        self._peak = 0
        self._full = 0
        self._timed_out = 0

    def acquire(self, deadline_left: float | None = None) -> Permit:
        """A slot, now or after waiting in the queue.

        Raises :class:`LMQueueFull` at once when all slots are taken and ``max_queue``
        callers already wait; :class:`LMQueueTimeout` after ``queue_timeout`` seconds
        without a slot; :class:`DeadlineExceeded` if ``deadline_left`` (the request's
        remaining time) runs out first. None of them has done any I/O.
        """
        with self._cond:
            if self._in_flight < self.max_in_flight and not self._waiting:
                return self._take()
            if self._waiting >= self.max_queue:
                self._full += 1
                raise LMQueueFull(
                    f"{self.label}: bulkhead full ({self._in_flight} of max_in_flight="
                    f"{self.max_in_flight} running, {self._waiting} of max_queue="
                    f"{self.max_queue} waiting); refused without waiting",
                    lm=self.label,
                )
            limit = (
                self.queue_timeout
                if deadline_left is None
                else min(self.queue_timeout, deadline_left)
            )
            end = time.monotonic() + max(limit, 0.0)
            self._waiting += 1
            try:
                while self._in_flight >= self.max_in_flight:
                    left = end - time.monotonic()
                    if left <= 0:
                        return self._gave_up(limit, deadline_left)
                    self._cond.wait(left)
                return self._take()
            finally:
                self._waiting -= 1

    def _take(self) -> Permit:
        self._in_flight += 1
        self._peak = max(self._peak, self._in_flight)
        return Permit(self)

    def _gave_up(self, waited: float, deadline_left: float | None) -> Permit:
        if deadline_left is not None and deadline_left < self.queue_timeout:
            raise DeadlineExceeded(
                f"{self.label}: the request deadline passed while waiting {waited:.3g} s "
                "in the bulkhead queue"
            )
        self._timed_out += 1
        raise LMQueueTimeout(
            f"{self.label}: waited queue_timeout={self.queue_timeout:g} s in the bulkhead "
            f"queue without a free slot (max_in_flight={self.max_in_flight})",
            lm=self.label,
        )

    def stats(self) -> dict[str, Any]:
        """``in_flight``, ``waiting``, ``peak_in_flight``, the limits, and the
        refusals so far (``queue_full``, ``queue_timeout``)."""
        with self._cond:
            return {
                "in_flight": self._in_flight,
                "waiting": self._waiting,
                "peak_in_flight": self._peak,
                "max_in_flight": self.max_in_flight,
                "max_queue": self.max_queue,
                "queue_timeout": self.queue_timeout,
                "queue_full": self._full,
                "queue_timeout_refusals": self._timed_out,
            }
