"""The completion cache: keys, the LRU/TTL/SQLite store, and the actor that owns it.

Values are JSON (never pickle) and every read returns a fresh copy. The store is
used by one thread at a time (its :class:`CacheActor`); a dead or slow cache is a miss.
"""

from dspex_actors.cache._actor import CacheActor
from dspex_actors.cache._messages import CacheClear, CacheGet, CachePut
from dspex_actors.cache._store import CacheConfig, CacheStore, cache_key

__all__ = [
    "CacheActor",
    "CacheClear",
    "CacheConfig",
    "CacheGet",
    "CachePut",
    "CacheStore",
    "cache_key",
]
