"""Messages every long-lived runtime actor answers (the LM clients and the cache)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GetStats"]


@dataclass(frozen=True, slots=True)
class GetStats:
    """Ask an LM client or the cache for a stats snapshot (a dict)."""
