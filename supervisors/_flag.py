"""A cheap ``threading.Event`` for per-actor flags: :class:`Flag`.

Every actor has three events (stopped, started, done). A ``threading.Event`` builds
a ``Condition`` when it is created (whose constructor raises and catches three
``AttributeError`` for a plain lock) and runs a Python ``notify_all`` when it is
set: about 2 us and 0.6 us, paid three times per actor, although for a short-lived
actor nobody waits on most of them. A :class:`Flag` is a boolean until someone
waits: only a waiter allocates a lock.
"""

from __future__ import annotations

import threading

__all__ = ["Flag"]

_lock = threading.Lock()  # guards every Flag's waiter list (held for a few bytecodes)
_allocate_lock = threading.Lock


class Flag(threading.Event):
    """A ``threading.Event`` whose creation and ``set`` cost next to nothing without waiters.

    Same API and semantics as ``threading.Event`` (``is_set``, ``set``, ``clear``,
    ``wait``), so it can stand where pykka expects an event (``actor_stopped``).
    Thread-safe; ``wait`` blocks the calling thread, bounded by ``timeout``.
    """

    def __init__(self) -> None:  # no Condition: see the module docstring
        self._flag = False
        self._waiters: list[threading.Lock] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} at {id(self):#x}: {'set' if self._flag else 'unset'}>"

    def _at_fork_reinit(self) -> None:
        self._waiters = None

    def is_set(self) -> bool:
        return self._flag

    isSet = is_set  # threading.Event's old name

    def set(self) -> None:
        with _lock:
            self._flag = True
            waiters, self._waiters = self._waiters, None
        if waiters:
            for waiter in waiters:
                waiter.release()

    def clear(self) -> None:
        with _lock:
            self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the flag is set or ``timeout`` seconds passed; return the flag."""
        if self._flag or (timeout is not None and timeout <= 0):
            return self._flag
        waiter = _allocate_lock()
        waiter.acquire()
        with _lock:
            if self._flag:
                return True
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
        if timeout is None:
            waiter.acquire()
        elif not waiter.acquire(True, timeout):
            with _lock:
                waiters = self._waiters
                if waiters is not None and waiter in waiters:
                    waiters.remove(waiter)
        return self._flag
