"""The messages the runtime's actors answer: ask and tell them from your own code.

Every long-lived actor of a system (``system.lm(name)``, ``system.cache``,
``system.programs``, ``system.teleprompters``, your services) is reached through a
named ref that ``ask`` / ``tell`` work on; a restart behind the name is invisible::

    import dspex_actors as dx
    from dspex_actors import messages as m

    stats = system.lm().ask(m.GetStats(), timeout=5)      # requests, errors, latency...
    state = system.lm("default").ask(m.GetState(), timeout=5)   # model, URL, breaker
    system.lm().tell(m.Reset())                           # close the breaker (operators)
    system.lm("x").tell(m.BreakerDisable())               # refuse its calls until...
    system.lm("x").tell(m.BreakerEnable())                # ...it is enabled again
    system.cache.ask(m.CacheGet(key), timeout=1)          # a stored completion or None
    system.cache.ask(m.ClearCache(), timeout=10)

An actor asked something it does not handle raises :class:`UnknownMessage` in the
asker's thread, naming what it accepts; the actor itself does not crash. All
messages are frozen dataclasses, safe to pass between threads.
"""

from __future__ import annotations

from dspex_actors.cache import CacheClear, CacheGet, CachePut, ClearCache
from dspex_actors.lm import (
    BreakerDisable,
    BreakerEnable,
    Outcome,
    Planned,
    PlanRequest,
    Refused,
    Reset,
    Wait,
)
from dspex_actors.primitives import GetState, GetStats, UnknownMessage
from dspex_actors.runtime import Cancel

__all__ = [
    "BreakerDisable",
    "BreakerEnable",
    "CacheClear",
    "CacheGet",
    "CachePut",
    "Cancel",
    "ClearCache",
    "GetState",
    "GetStats",
    "Outcome",
    "PlanRequest",
    "Planned",
    "Refused",
    "Reset",
    "UnknownMessage",
    "Wait",
]
