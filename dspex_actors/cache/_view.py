"""Lock-protected access to a cache actor's store, for the request path.

OTP's ETS pattern: the :class:`~dspex_actors.cache.CacheActor` creates its
:class:`CacheStore` and a :class:`CacheView` of it in ``on_start`` and closes both
when it stops or crashes; program actors read (and, for a memory-only store, write)
through the view from their own threads instead of asking the actor. Every use of
the store, the actor's own included, takes the view's lock, so the store still sees
one caller at a time. Semantics are the cache's: JSON values, a fresh copy per
read, and a closed, dead or slow (lock not free within the timeout) cache is a miss.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pykka

import supervisors as sv
from dspex_actors.cache._store import CacheStore, encode_value

__all__ = ["PUT_TIMEOUT", "CacheView", "view_of"]

PUT_TIMEOUT = 0.05
"""Seconds a put waits for the lock before handing the value to the actor instead."""


class CacheView:
    """Thread-safe front of one :class:`CacheStore`, owned by its cache actor.

    Threading: any thread. Failure: reads never raise for the cache's sake (a closed
    store or a lock held past ``timeout`` is a miss); :meth:`put` raises ``TypeError``
    for a value that is not JSON, as the store does.
    """

    def __init__(self, store: CacheStore) -> None:
        self.store = store
        self.lock = threading.Lock()
        self._closed = False
        self.writes_through = store.config.path is not None
        """A file-backed store's writes go through the actor (SQLite I/O off the request path)."""

    @property
    def closed(self) -> bool:
        """Whether the owning actor has stopped (the store is gone)."""
        return self._closed

    def get(self, key: str, timeout: float) -> Any | None:
        """The value under ``key`` as a fresh object, or ``None`` (miss, closed, or busy
        for longer than ``timeout`` seconds). Only the lookup holds the lock."""
        if self._closed or not self.lock.acquire(timeout=max(timeout, 0.0)):
            return None
        try:
            text = None if self._closed else self.store.get_text(key)
        finally:
            self.lock.release()
        return None if text is None else json.loads(text)

    def put(self, key: str, value: Any) -> bool:
        """Store ``value`` now; ``False`` when the caller must also send a ``CachePut``.

        A memory-only store takes it whole (``True``). A file-backed store gets it in
        its memory tier at once, so the next identical call hits, and ``False`` asks
        the caller to send the ``CachePut`` that writes the file (SQLite I/O stays
        off the request path). ``False`` too when closed or busy past
        :data:`PUT_TIMEOUT`. Encodes outside the lock; raises ``TypeError`` for a
        value that is not JSON.
        """
        if self._closed:
            return False
        text = encode_value(value)
        if not self.lock.acquire(timeout=PUT_TIMEOUT):
            return False
        try:
            if self._closed:
                return False
            if self.writes_through:
                self.store.remember_text(key, text)
                return False
            self.store.put_text(key, text)
            return True
        finally:
            self.lock.release()

    def close(self) -> None:
        """Close the store (the owner's ``on_stop``/``on_failure``). Idempotent."""
        with self.lock:
            self._closed = True
            self.store.close()


def view_of(ref: pykka.ActorRef[Any]) -> CacheView | None:
    """The :class:`CacheView` the cache actor behind ``ref`` published, if any (it has
    none before its ``on_start`` ran, or when ``ref`` is not a cache actor)."""
    actor = sv.actor_of(ref)
    view = getattr(actor, "view", None)
    return view if isinstance(view, CacheView) else None
