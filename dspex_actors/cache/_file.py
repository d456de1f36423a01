"""The cache's file tier: SQLite that fails soft.

A storage problem (a corrupt or truncated file, a read-only file or folder, disk
full, a lock held past the busy timeout) must never reach the caller, nor take the
cache actor or the tree down: the memory tier keeps serving. :class:`FileTier`
turns every SQLite or OS error into a *degraded* state: one warning is logged, a
corrupt file is renamed aside (quarantined, with its ``-wal``/``-shm``), and the
file is opened again, fresh, after ``retry_after_s``. Used by one thread at a time
(the cache actor's).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dspex_actors.primitives import logger

__all__ = ["FileTier"]

#: Seconds between attempts to reopen a failed file.
RETRY_AFTER_S = 30.0

# SQLite's words for a file that is not (or no longer) a database of ours.
_CORRUPT_MARKERS = ("not a database", "malformed", "file is encrypted", "no such table")


def _is_corruption(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and any(m in text for m in _CORRUPT_MARKERS)


class FileTier:
    """Write-through SQLite rows ``(key, value, created)`` that degrade instead of failing.

    Every method returns a neutral result (a miss, ``False``, 0) while degraded.
    ``state`` is ``"ok"`` or ``"degraded"``; ``error`` says why; ``quarantined``
    lists files renamed aside. ``clock`` is monotonic seconds (for the retry).
    """

    def __init__(
        self,
        path: Path,
        *,
        ttl: float | None,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        retry_after_s: float = RETRY_AFTER_S,
    ) -> None:
        self.path = path
        self._ttl = ttl
        self._wall_clock = wall_clock
        self._clock = clock
        self.retry_after_s = retry_after_s
        self._db: sqlite3.Connection | None = None
        self.error: str | None = None
        self.quarantined: list[str] = []
        self.failures = 0
        self._retry_at = 0.0
        self._open()

    @property
    def state(self) -> str:
        """``"ok"`` while the file serves, ``"degraded"`` while only memory does."""
        return "ok" if self._db is not None else "degraded"

    # ------------------------------------------------------------ lifecycle

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                str(self.path), timeout=5.0, isolation_level=None, check_same_thread=False
            )
        except (sqlite3.Error, OSError) as exc:
            self._fail(exc)
            return
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS cache ("
                "key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
            )
            if self._ttl is not None:
                db.execute(
                    "DELETE FROM cache WHERE created <= ?", (self._wall_clock() - self._ttl,)
                )
        except (sqlite3.Error, OSError) as exc:
            db.close()
            self._fail(exc)
            return
        if self.error is not None:
            logger.info("cache.storage_recovered", path=str(self.path))
        self._db, self.error = db, None

    def _fail(self, exc: BaseException) -> None:
        """Go degraded: close, quarantine a corrupt file, schedule a retry, warn once."""
        first = self.error is None
        self.failures += 1
        self.error = f"{type(exc).__name__}: {exc}"
        if self._db is not None:
            db, self._db = self._db, None
            try:
                db.close()
            except sqlite3.Error:
                pass
        if _is_corruption(exc):
            self._quarantine()
        self._retry_at = self._clock() + self.retry_after_s
        if first:
            logger.warning(
                "cache.storage_degraded",
                path=str(self.path),
                error=self.error,
                quarantined=self.quarantined[-1:] or None,
                retry_after_s=self.retry_after_s,
            )

    def _quarantine(self) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if not source.exists():
                continue
            target = Path(f"{self.path}.corrupt-{stamp}{suffix}")
            try:
                source.rename(target)
            except OSError:
                continue
            if suffix == "":
                self.quarantined.append(str(target))

    def _usable(self) -> sqlite3.Connection | None:
        if self._db is None and self._clock() >= self._retry_at:
            self._open()
        return self._db

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            self._fail(exc)

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._db is not None:
            db, self._db = self._db, None
            db.close()
        self._retry_at = float("inf")

    # ------------------------------------------------------------- rows

    def get(self, key: str) -> tuple[str, float] | None:
        """``(value_text, created)`` for ``key``, or ``None`` (absent, or degraded)."""
        db = self._usable()
        if db is None:
            return None
        row: Any = None
        with self._guard():
            row = db.execute("SELECT value, created FROM cache WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return str(row[0]), float(row[1])

    def put(self, key: str, text: str) -> None:
        """Store ``text`` under ``key`` (no-op while degraded)."""
        db = self._usable()
        if db is None:
            return
        with self._guard():
            db.execute(
                "INSERT OR REPLACE INTO cache (key, value, created) VALUES (?, ?, ?)",
                (key, text, self._wall_clock()),
            )

    def delete(self, key: str) -> bool:
        """Remove ``key``; whether a row was there (``False`` while degraded)."""
        db = self._usable()
        if db is None:
            return False
        deleted = False
        with self._guard():
            deleted = db.execute("DELETE FROM cache WHERE key = ?", (key,)).rowcount > 0
        return deleted

    def clear(self) -> None:
        """Remove every row (no-op while degraded)."""
        db = self._usable()
        if db is None:
            return
        with self._guard():
            db.execute("DELETE FROM cache")

    def count(self) -> int:
        """Rows in the file (0 while degraded)."""
        db = self._usable()
        if db is None:
            return 0
        count = 0
        with self._guard():
            count = int(db.execute("SELECT COUNT(*) FROM cache").fetchone()[0])
        return count

    def stats(self) -> dict[str, Any]:
        """``storage`` (ok/degraded), ``storage_error``, ``storage_failures``, ``quarantined``."""
        return {
            "storage": self.state,
            "storage_error": self.error,
            "storage_failures": self.failures,
            "quarantined": list(self.quarantined),
        }
