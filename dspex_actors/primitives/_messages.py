"""Messages every long-lived runtime actor answers (LM clients, the cache, services).

Plain frozen dataclasses, safe to pass between threads. An actor answers a message
it does not know with :class:`~dspex_actors.UnknownMessage` (raised in the asker's
thread; the actor does not crash).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GetState", "GetStats"]


@dataclass(frozen=True, slots=True)
class GetStats:
    """Ask for a statistics snapshot (a dict): requests, errors, tokens, latency; hits."""


@dataclass(frozen=True, slots=True)
class GetState:
    """Ask for what the actor is now (a dict): its configuration and current state.

    For an LM client: LM name, model, base URL, breaker state, restarts. For the cache:
    entries, storage state. Never includes an API key.
    """
