"""A pool of reusable daemon threads for short-lived actors.

Starting an OS thread costs 80-230 us on the machines we run on; a per-request
actor that lives a millisecond pays that twice or more. Actor classes that set
``reuse_threads = True`` run their loop on a pooled thread instead: when the
actor ends, its thread waits (at most :data:`IDLE_TIMEOUT` seconds) for the next
actor to run, then exits. One actor still has one thread for its whole life.

Threads are daemon threads named ``sv:pool-N``; :func:`shutdown_idle_threads`
ends the idle ones at once (``ActorSystem.shutdown`` calls it).
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable

__all__ = ["IDLE_TIMEOUT", "run_pooled", "shutdown_idle_threads"]

IDLE_TIMEOUT = 5.0
"""Seconds an idle pooled thread waits for work before it exits."""

_lock = threading.Lock()
_idle: list[_PoolThread] = []
_numbers = itertools.count(1)


class _PoolThread:
    __slots__ = ("jobs", "thread")

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[tuple[Callable[[], None], Callable[[], None]] | None] = (
            queue.SimpleQueue()
        )
        self.thread = threading.Thread(
            target=self._serve, name=f"sv:pool-{next(_numbers)}", daemon=True
        )

    def _serve(self) -> None:
        while True:
            try:
                job = self.jobs.get(timeout=IDLE_TIMEOUT)
            except queue.Empty:
                with _lock:
                    if self in _idle:
                        _idle.remove(self)
                        return
                # Someone took us off the idle list at the last moment: a job is coming.
                job = self.jobs.get()
            if job is None:
                return
            work, on_done = job
            try:
                work()
            finally:
                # Idle again *before* telling anyone the work is done, so whoever
                # waits for it and then calls shutdown_idle_threads() finds us.
                with _lock:
                    _idle.append(self)
                on_done()


def run_pooled(job: Callable[[], None], on_done: Callable[[], None]) -> threading.Thread:
    """Run ``job`` on an idle pooled thread, or on a new one; return that thread.

    ``on_done`` runs after ``job``, once the thread is back in the pool. ``job``
    must catch its own exceptions (an actor loop does).
    """
    with _lock:
        worker = _idle.pop() if _idle else None
    if worker is None:
        worker = _PoolThread()
        worker.jobs.put((job, on_done))
        worker.thread.start()
    else:
        worker.jobs.put((job, on_done))
    return worker.thread


def shutdown_idle_threads(timeout: float = 5.0) -> int:
    """End every idle pooled thread now and wait for them; return how many ended.

    Busy pooled threads (running an actor) are not touched: they return to the
    pool when their actor ends and exit after :data:`IDLE_TIMEOUT`.
    """
    with _lock:
        idle = list(_idle)
        _idle.clear()
    for worker in idle:
        worker.jobs.put(None)
    for worker in idle:
        worker.thread.join(timeout)
    return len(idle)
