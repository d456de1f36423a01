"""Completion cache: in-memory LRU with optional TTL and optional SQLite file.

Compared with DSPy (diskcache + pickle, shared mutable results): values are stored as
JSON text, never pickled, and every :meth:`CacheStore.get` returns a fresh object, so
a caller mutating its result cannot corrupt the cache or other callers' results.

Layout: the memory tier is an LRU of at most ``max_entries`` entries. With ``path``,
every ``put`` is also written to a SQLite file (WAL journal; table ``cache(key TEXT
PRIMARY KEY, value TEXT, created REAL)``, ``created`` in wall-clock epoch seconds),
and a memory miss is looked up in the file. The file is not bounded by
``max_entries`` (memory eviction does not delete from it); expired rows are deleted
when met and when a store opens the file. A store re-created on the same path sees
the earlier entries, so a restarted cache actor loses only its memory tier.

Threading: not thread-safe. The SQLite connection is opened with
``check_same_thread=False`` because the store is used from several threads, one at
a time: its owner (a cache actor) serialises all calls with its :class:`CacheView`'s lock. Several
processes may share a file (SQLite locking, 5 s busy timeout).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dspex_actors.cache._file import FileTier

__all__ = ["FORBIDDEN_KEY_PARAMS", "CacheConfig", "CacheStore", "cache_key", "encode_value"]

#: Parameter names stripped from cache keys, compared case-insensitively with ``-``
#: read as ``_``, at any nesting depth of ``params``.
FORBIDDEN_KEY_PARAMS = frozenset({"api_key", "api_base", "base_url", "authorization"})


class CacheConfig(BaseModel):
    """Cache configuration: ``max_entries`` (>= 1) in memory, optional SQLite
    ``path``, optional ``ttl`` in seconds (> 0; ``None`` = entries never expire)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_entries: int = Field(default=10_000, ge=1)
    path: str | Path | None = None
    ttl: float | None = Field(default=None, gt=0.0)


def _strip_forbidden(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value  # the common leaves, without the Mapping ABC check
    if isinstance(value, dict) or isinstance(value, Mapping):  # noqa: SIM101 - dict: no ABC check
        return {
            k: _strip_forbidden(v)
            for k, v in value.items()
            if not (isinstance(k, str) and k.lower().replace("-", "_") in FORBIDDEN_KEY_PARAMS)
        }
    if isinstance(value, list | tuple):
        return [_strip_forbidden(v) for v in value]
    return value


def cache_key(
    model: str,
    messages: list[dict[str, Any]],
    params: Mapping[str, Any],
    endpoint: str | None = None,
) -> str:
    """SHA-256 hex digest of the canonical JSON of ``{model, messages, params}``, plus
    ``endpoint`` when given.

    Canonical: ``sort_keys=True, separators=(",", ":"), ensure_ascii=False``, UTF-8,
    so the key does not depend on dict ordering. ``endpoint`` is the identity of the
    server (the runtime passes ``LM.cache_endpoint``: the base URL without
    credentials, or the LM's ``cache_scope``), so one cache file never serves one
    server's answers to another with the same model name; LMs that share a
    ``cache_scope`` share entries on purpose. Credentials and routing (``api_key``,
    ``api_base``, ``base_url``, ``authorization``) are stripped from ``params`` at
    any depth: keys never reach the cache file, and the same request with two keys
    shares an entry.

    Raises ``TypeError`` if the inputs are not JSON-serialisable (NaN included).
    """
    payload: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "params": _strip_forbidden(params),
    }
    if endpoint is not None:
        payload["endpoint"] = endpoint
    try:
        text = json.dumps(
            payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except ValueError as exc:
        raise TypeError(f"cache_key: not JSON-serialisable: {exc}") from exc
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _is_plain_json(value: Any) -> bool:
    """Whether ``value`` is plain JSON data made of exactly the built-in types.

    The quick walk of :func:`_check_json_value`: no paths built, no isinstance on
    unions. ``False`` for subclasses too: the full walk decides those.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not _is_plain_json(item):
                return False
        return True
    if kind is list:
        for item in value:  # noqa: SIM110 - a loop is cheaper than all(<genexpr>) here
            if not _is_plain_json(item):
                return False
        return True
    if kind is float:
        return math.isfinite(value)
    return False


def _check_json_value(value: Any, path: str = "value") -> None:
    """Raise TypeError unless value is made only of dict[str, ...], list, str,
    finite int/float, bool and None (so it round-trips through JSON unchanged).

    The walk that names the offending path runs only when the quick one said no."""
    if not _is_plain_json(value):
        _explain_not_json(value, path)


def _explain_not_json(value: Any, path: str) -> None:
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{path}: non-finite float {value!r} is not JSON")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _explain_not_json(item, f"{path}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: dict key {key!r} is not a str")
            _explain_not_json(item, f"{path}[{key!r}]")
        return
    raise TypeError(f"{path}: {type(value).__name__} is not JSON-serialisable")


def encode_value(value: Any) -> str:
    """The stored form of ``value``: compact JSON text. Raises ``TypeError`` unless
    ``value`` is plain JSON data (see :meth:`CacheStore.put`)."""
    _check_json_value(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclass
class _Entry:
    text: str
    expires_at: float | None  # on the monotonic clock


class CacheStore:
    """LRU + optional TTL + optional SQLite write-through store of JSON values.

    ``clock`` (monotonic seconds) times memory TTL; ``wall_clock`` (epoch seconds)
    stamps and ages file rows. Inject both for tests.

    Failure: ``put`` raises ``TypeError`` for values that are not plain JSON data
    (tuples, non-str dict keys, NaN, objects). The file tier fails soft
    (:class:`~dspex_actors.cache._file.FileTier`): a storage error never raises
    here; the memory tier keeps serving, a corrupt file is quarantined and the file
    is retried later (``stats()["storage"]`` says ``"degraded"`` meanwhile). A
    corrupt (non-JSON) row is a miss and is deleted. Any use after :meth:`close`
    raises ``RuntimeError``.
    """

    def __init__(
        self,
        config: CacheConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config if config is not None else CacheConfig()
        self._clock = clock
        self._wall_clock = wall_clock
        self._memory: OrderedDict[str, _Entry] = OrderedDict()
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._closed = False
        self._file: FileTier | None = None
        if self.config.path is not None:
            self._file = FileTier(
                Path(self.config.path).expanduser(), ttl=self.config.ttl, wall_clock=wall_clock
            )

    # -- file tier ------------------------------------------------------------

    def _file_get(self, key: str) -> tuple[str, float] | None:
        return self._file.get(key) if self._file is not None else None

    def _file_delete(self, key: str) -> bool:
        return self._file.delete(key) if self._file is not None else False

    @property
    def storage_state(self) -> str:
        """``"ok"``, ``"degraded"`` (file failing; memory serves), or ``"memory"`` (no file)."""
        return self._file.state if self._file is not None else "memory"

    # -- helpers --------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("CacheStore is closed")

    @staticmethod
    def _check_key(key: str) -> None:
        if not isinstance(key, str):
            raise TypeError(f"cache keys are str, got {type(key).__name__}")

    def _remember(self, key: str, text: str, expires_at: float | None) -> None:
        self._memory[key] = _Entry(text, expires_at)
        self._memory.move_to_end(key)
        while len(self._memory) > self.config.max_entries:
            self._memory.popitem(last=False)
            self._evictions += 1

    # -- public API -----------------------------------------------------------

    def get(self, key: str) -> Any | None:
        """The value stored under ``key`` as a fresh object, or ``None`` on a miss
        (absent or expired). A hit refreshes the key's LRU position; a file hit is
        copied into memory."""
        text = self.get_text(key)
        return None if text is None else json.loads(text)

    def get_text(self, key: str) -> str | None:
        """Like :meth:`get`, but the stored JSON text (for callers that parse it later,
        outside a lock); hits and misses are counted the same way."""
        self._check_open()
        self._check_key(key)
        entry = self._memory.get(key)
        if entry is not None:
            if entry.expires_at is not None and self._clock() >= entry.expires_at:
                del self._memory[key]
                self._file_delete(key)
                self._misses += 1
                return None
            self._memory.move_to_end(key)
            self._hits += 1
            return entry.text
        row = self._file_get(key)
        if row is None:
            self._misses += 1
            return None
        text, created = row
        expires_at: float | None = None
        if self.config.ttl is not None:
            age = max(0.0, self._wall_clock() - created)
            if age >= self.config.ttl:
                self._file_delete(key)
                self._misses += 1
                return None
            expires_at = self._clock() + (self.config.ttl - age)
        try:
            json.loads(text)
        except ValueError:
            self._file_delete(key)
            self._misses += 1
            return None
        self._remember(key, text, expires_at)
        self._hits += 1
        return text

    def put(self, key: str, value: Any) -> None:
        """Store a copy of ``value`` (plain JSON data only) under ``key``, replacing
        any earlier value; written through to the file when there is one. Raises
        ``TypeError`` for non-JSON values (nothing is stored then)."""
        self._check_open()
        self._check_key(key)
        self.put_text(key, encode_value(value))

    def put_text(self, key: str, text: str) -> None:
        """Store ``text``, which must come from :func:`encode_value` (so it is the JSON
        of plain data), under ``key``: :meth:`put` without the encoding, for callers
        that encode outside a lock."""
        self._check_open()
        self._check_key(key)
        ttl = self.config.ttl
        self._remember(key, text, None if ttl is None else self._clock() + ttl)
        if self._file is not None:
            self._file.put(key, text)

    def remember_text(self, key: str, text: str) -> None:
        """Put ``text`` (from :func:`encode_value`) in the memory tier only; the file
        write follows through :meth:`put_text` (the cache actor's ``CachePut``)."""
        self._check_open()
        self._check_key(key)
        ttl = self.config.ttl
        self._remember(key, text, None if ttl is None else self._clock() + ttl)

    def delete(self, key: str) -> bool:
        """Remove ``key`` from memory and file; True if it was present in either."""
        self._check_open()
        self._check_key(key)
        in_memory = self._memory.pop(key, None) is not None
        in_file = self._file_delete(key)
        return in_memory or in_file

    def clear(self) -> None:
        """Remove every entry from memory and file (counters are kept)."""
        self._check_open()
        self._memory.clear()
        if self._file is not None:
            self._file.clear()

    def __len__(self) -> int:
        """Entries in the memory tier (expired ones included until met)."""
        return len(self._memory)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is in the memory tier (no TTL check, no file lookup)."""
        return key in self._memory

    def stats(self) -> dict[str, Any]:
        """``hits``, ``misses``, ``size`` (memory entries), ``evictions`` (memory LRU
        evictions), ``file_entries`` (rows in the file; 0 without one or while
        degraded), ``storage`` (ok / degraded / memory) and, with a file,
        ``storage_error``, ``storage_failures`` and ``quarantined``."""
        file = self._file if not self._closed else None
        out: dict[str, Any] = {
            "hits": self._hits,
            "misses": self._misses,
            "size": len(self._memory),
            "evictions": self._evictions,
            "file_entries": file.count() if file is not None else 0,
            "storage": self.storage_state,
        }
        if file is not None:
            out.update(file.stats())
        return out

    def close(self) -> None:
        """Close the file (idempotent). The store cannot be used afterwards."""
        self._closed = True
        self._memory.clear()
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> CacheStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"CacheStore(size={len(self._memory)}, max_entries={self.config.max_entries}, "
            f"path={self.config.path!r}, ttl={self.config.ttl})"
        )
