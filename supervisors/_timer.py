"""One shared timer thread: :func:`call_later` / :func:`call_at` run a callback later.

What Erlang's ``erlang:send_after`` gives a process that cannot block: a wake-up
at a time. Used by :class:`~supervisors.FanOut` to wake a consumer that is an
actor when an item's deadline passes. All timers of the process share one daemon
thread (``sv:timer``), started on demand; it exits after :data:`IDLE_TIMEOUT`
seconds with nothing to do. Callbacks run in that thread and must be quick (tell
an actor, set an event); an exception in one is logged and dropped.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

from supervisors._log import describe_reason, logger

__all__ = ["IDLE_TIMEOUT", "TimerHandle", "call_at", "call_later"]

IDLE_TIMEOUT = 1.0
"""Seconds the timer thread waits with no timer pending before it exits."""

_cond = threading.Condition(threading.Lock())
_heap: list[tuple[float, int, TimerHandle]] = []
_order = itertools.count()
_thread: threading.Thread | None = None


class TimerHandle:
    """A pending :func:`call_later`; :meth:`cancel` it if it is no longer wanted. Thread-safe."""

    __slots__ = ("_callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self._callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run the callback (a no-op if it already ran)."""
        with _cond:
            self.cancelled = True
            _cond.notify()  # the thread forgets it now (and exits if nothing else is due)


def call_later(delay: float, callback: Callable[[], None]) -> TimerHandle:
    """Run ``callback()`` in the timer thread ``delay`` seconds from now (at the earliest)."""
    return call_at(time.monotonic() + max(0.0, delay), callback)


def call_at(when: float, callback: Callable[[], None]) -> TimerHandle:
    """Run ``callback()`` in the timer thread at ``time.monotonic() == when`` (at the earliest)."""
    global _thread
    handle = TimerHandle(when, callback)
    with _cond:
        heapq.heappush(_heap, (handle.when, next(_order), handle))
        if _thread is None:
            _thread = threading.Thread(target=_serve, name="sv:timer", daemon=True)
            _thread.start()
        else:
            _cond.notify()
    return handle


def _serve() -> None:
    global _thread
    while True:
        with _cond:
            handle = _next_due()
            if handle is None:
                _thread = None
                return
        if handle.cancelled:
            continue
        try:
            handle._callback()
        except Exception as exc:
            logger.error("timer_callback_failed", reason=describe_reason(exc))


def _next_due() -> TimerHandle | None:
    """Wait (with ``_cond`` held) for the earliest timer to be due; ``None`` after idling."""
    idle_since: float | None = None
    while True:
        now = time.monotonic()
        while _heap and _heap[0][2].cancelled:
            heapq.heappop(_heap)
        if _heap:
            idle_since = None
            when = _heap[0][0]
            if when <= now:
                return heapq.heappop(_heap)[2]
            _cond.wait(when - now)
            continue
        if idle_since is None:
            idle_since = now
        elif now - idle_since >= IDLE_TIMEOUT:
            return None
        _cond.wait(IDLE_TIMEOUT - (now - idle_since))
