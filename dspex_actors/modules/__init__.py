"""Modules: ``Predict``, ``ChainOfThought``, ``ReAct`` and ``Tool``, ``Pipeline``, yours.

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
from dspex_actors.modules._pipeline import Pipeline, PipelineError
from dspex_actors.modules._react import ContextWindowExceeded, ReAct
from dspex_actors.modules._streamify import StreamingProgram, streamify
from dspex_actors.modules._tool import Tool, ToolArgsError

__all__ = [
    "BatchError",
    "ChainOfThought",
    "ContextWindowExceeded",
    "Module",
    "Pipeline",
    "PipelineError",
    "Predict",
    "ProgramFileError",
    "ReAct",
    "StreamingProgram",
    "Tool",
    "ToolArgsError",
    "recording_trace",
    "streamify",
]
