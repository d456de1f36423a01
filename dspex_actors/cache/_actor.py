"""The cache actor: a long-lived, supervised owner of one :class:`CacheStore`."""

from __future__ import annotations

from typing import Any

from dspex_actors.cache._messages import CacheClear, CacheGet, CachePut
from dspex_actors.cache._store import CacheConfig, CacheStore
from dspex_actors.primitives import GetStats, logger
from supervisors import Actor

__all__ = ["CacheActor"]


class CacheActor(Actor):
    """Serialises all access to a :class:`CacheStore` (LRU in memory, optional SQLite file).

    Messages: :class:`CacheGet` (ask) -> JSON value or ``None``;
    :class:`CachePut` (tell); :class:`CacheClear` (ask); :class:`GetStats` (ask).
    Values are JSON, never pickle, and every ``get`` returns a fresh copy.

    Failure: a bad value (not JSON) is refused and logged, not a crash. If the actor
    does crash, its supervisor restarts it: the memory tier is lost, the file (if
    any) is reopened and still serves old entries. Callers treat a dead or slow
    cache as a miss.
    """

    def __init__(self, config: CacheConfig) -> None:
        super().__init__()
        self.config = config
        self._store: CacheStore | None = None

    def on_start(self) -> None:
        self._store = CacheStore(self.config)

    def on_stop(self) -> None:
        self._close()

    def on_failure(self, *_exc_info: Any) -> None:
        self._close()

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def on_receive(self, message: Any) -> Any:
        store = self._store
        assert store is not None
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
        if isinstance(message, CacheClear):
            store.clear()
            return None
        logger.warning("unexpected_message", actor="CacheActor", message=repr(message))
        return None

    def describe(self) -> str | None:
        store = self._store
        return f"{len(store)} entries" if store is not None else None
