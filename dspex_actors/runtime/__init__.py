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
from dspex_actors.runtime._stream import (
    AsyncSink,
    StreamListener,
    StreamResponse,
    StreamSink,
    ThreadSink,
    final_of,
    start_streaming,
)
from dspex_actors.runtime._system import (
    ActorSystem,
    Compiler,
    NoSystemError,
    current_system,
    start,
)
from dspex_actors.runtime._tool_worker import ToolFailure, call_tool, format_error_for_lm

__all__ = [
    "AStart",
    "ActorSystem",
    "AsyncSink",
    "Cancel",
    "Compiler",
    "NoSystemError",
    "StreamListener",
    "StreamResponse",
    "StreamSink",
    "SystemClosed",
    "ThreadSink",
    "ToolFailure",
    "astart",
    "call_result",
    "call_tool",
    "current_program",
    "current_system",
    "final_of",
    "format_error_for_lm",
    "off_loop",
    "run_in_program",
    "start",
    "start_streaming",
]
