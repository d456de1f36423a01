"""The cache actor: a long-lived, supervised owner of one :class:`CacheStore`."""

from __future__ import annotations

from typing import Any

import supervisors as sv
from dspex_actors.cache._messages import CacheGet, CachePut, ClearCache
from dspex_actors.cache._store import CacheConfig, CacheStore
from dspex_actors.cache._view import CacheView
from dspex_actors.primitives import GetState, GetStats, UnknownMessage, logger
from supervisors import Actor

__all__ = ["CacheActor"]


_ACCEPTS = (CacheGet, CachePut, ClearCache, GetStats, GetState)


class CacheActor(Actor):
    """Owns a :class:`CacheStore` (LRU in memory, optional SQLite file) and its :class:`CacheView`.

    Messages: :class:`CacheGet` (ask) -> JSON value or ``None``;
    :class:`CachePut` (tell); :class:`CacheClear` (ask); :class:`GetStats` (ask).
    Values are JSON, never pickle, and every ``get`` returns a fresh copy. The
    request path uses :attr:`view` (reads, and writes to a memory-only store) from
    its own threads under the view's lock; the actor takes the same lock, so the
    store sees one caller at a time.

    Failure: a bad value (not JSON) is refused and logged, not a crash. If the actor
    does crash, its supervisor restarts it: the memory tier is lost, the file (if
    any) is reopened and still serves old entries. Callers treat a dead or slow
    cache as a miss.
    """

    def __init__(self, config: CacheConfig) -> None:
        super().__init__()
        self.config = config
        self.view: CacheView | None = None

    def on_start(self) -> None:
        self.view = CacheView(CacheStore(self.config))

    def on_stop(self) -> None:
        self._close()

    def on_failure(self, *_exc_info: Any) -> None:
        self._close()

    def _close(self) -> None:
        if self.view is not None:
            self.view.close()

    def on_receive(self, message: Any) -> Any:
        view = self.view
        assert view is not None
        with view.lock:
            return self._handle(view.store, message)

    @staticmethod
    def _handle(store: CacheStore, message: Any) -> Any:
        if isinstance(message, CacheGet):
            if not isinstance(message.key, str):  # a bad message is a miss, not a crash
                logger.warning("cache_get_refused", key_type=type(message.key).__name__)
                return None
            return store.get(message.key)
        if isinstance(message, CachePut):
            try:
                store.put(message.key, message.value)
            except TypeError as exc:
                logger.warning("cache_put_refused", reason=str(exc))
            return None
        if isinstance(message, GetStats):
            return store.stats()
        if isinstance(message, ClearCache):
            store.clear()
            return None
        if isinstance(message, GetState):
            return {
                "entries": len(store),
                "max_entries": store.config.max_entries,
                "path": None if store.config.path is None else str(store.config.path),
                "storage": store.storage_state,
            }
        return sv.Reject(UnknownMessage("the cache", message, _ACCEPTS))

    def describe(self) -> str | None:
        view = self.view
        return f"{len(view.store)} entries" if view is not None and not view.closed else None
