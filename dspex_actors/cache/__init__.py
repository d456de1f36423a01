"""The completion cache: keys, the LRU/TTL/SQLite store, and the actor that owns it.

Values are JSON (never pickle) and every read returns a fresh copy. The store is
owned by its :class:`CacheActor` and used by one thread at a time: the request path
reaches it through the actor's :class:`CacheView` (a lock, no ask); a dead or slow
cache is a miss.
"""

from dspex_actors.cache._actor import CacheActor
from dspex_actors.cache._messages import CacheClear, CacheGet, CachePut, ClearCache
from dspex_actors.cache._store import CacheConfig, CacheStore, cache_key
from dspex_actors.cache._view import CacheView, view_of

__all__ = [
    "CacheActor",
    "CacheClear",
    "CacheConfig",
    "CacheGet",
    "CachePut",
    "CacheStore",
    "CacheView",
    "ClearCache",
    "cache_key",
    "view_of",
]
