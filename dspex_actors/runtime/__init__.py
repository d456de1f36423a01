"""The runtime: the actor system, per-request program actors and their I/O workers.

:func:`start` builds the supervision tree (LM clients, cache, programs,
teleprompters); each call runs in a short-lived program actor that owns one I/O
worker actor per attempt and handles its crash as a ``Down`` message. Many calls
at once go through one fan-out engine (``ActorSystem.fan_out``, on ``sv.fan_out``).
"""

from dspex_actors.runtime._astart import AStart, astart
from dspex_actors.runtime._async import SystemClosed, off_loop
from dspex_actors.runtime._fanout import call_result
from dspex_actors.runtime._messages import Cancel
from dspex_actors.runtime._program import current_program, run_in_program
from dspex_actors.runtime._system import (
    ActorSystem,
    Compiler,
    NoSystemError,
    current_system,
    start,
)

__all__ = [
    "AStart",
    "ActorSystem",
    "Cancel",
    "Compiler",
    "NoSystemError",
    "SystemClosed",
    "astart",
    "call_result",
    "current_program",
    "current_system",
    "off_loop",
    "run_in_program",
    "start",
]
