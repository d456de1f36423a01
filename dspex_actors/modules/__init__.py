"""Modules: ``Predict``, ``ChainOfThought`` and your own composed ``Module``s.

A module is plain Python: calling it runs its ``forward`` in a program actor of the
current system. Saved programs use DSPy's JSON layout.
"""

from dspex_actors.modules._module import (
    BatchError,
    ChainOfThought,
    Module,
    Predict,
    ProgramFileError,
    recording_trace,
)
from dspex_actors.modules._streamify import StreamingProgram, streamify

__all__ = [
    "BatchError",
    "ChainOfThought",
    "Module",
    "Predict",
    "ProgramFileError",
    "StreamingProgram",
    "recording_trace",
    "streamify",
]
