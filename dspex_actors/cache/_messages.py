"""The cache actor's protocol.

Plain frozen dataclasses: immutable, cheap, and safe to pass between threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CacheClear", "CacheGet", "CachePut", "ClearCache"]


@dataclass(frozen=True, slots=True)
class CacheGet:
    """Program -> cache (ask): the stored JSON value for ``key``, or ``None``."""

    key: str


@dataclass(frozen=True, slots=True)
class CachePut:
    """Program -> cache (tell): store a JSON value."""

    key: str
    value: Any


@dataclass(frozen=True, slots=True)
class ClearCache:
    """Ask the cache to drop every entry (memory and file); answers ``None``."""


CacheClear = ClearCache
"""The earlier name of :class:`ClearCache` (kept working)."""
