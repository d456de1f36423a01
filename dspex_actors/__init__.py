"""dspex_actors: DSPy-style LM programs running as supervised actors.

Signatures, modules (``Predict``, ``ChainOfThought``, your own ``Module``), LM
clients, a cache and optimizers, each a long-lived actor under an OTP-style
supervision tree (the ``supervisors`` package); every request runs in a
short-lived program actor that owns its I/O workers and handles their crashes
as messages.

Quick start::

    import dspex_actors as dx

    with dx.start(lm=dx.LM("openai/gpt-4o-mini", api_base="http://127.0.0.1:8000/v1")) as system:
        qa = dx.Predict("question -> answer")
        print(qa(question="What is the capital of France?").answer)
        print(system.tree())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dspex_actors.adapters import ChatAdapter, JSONAdapter
from dspex_actors.cache import CacheConfig, cache_key
from dspex_actors.lm import LM, Completion, RetryPolicy
from dspex_actors.modules import (
    BatchError,
    ChainOfThought,
    ContextWindowExceeded,
    Module,
    Pipeline,
    PipelineError,
    Predict,
    ProgramFileError,
    ReAct,
    StreamingProgram,
    Tool,
    ToolArgsError,
    streamify,
)
from dspex_actors.primitives import (
    AdapterParseError,
    CircuitOpen,
    DeadlineExceeded,
    Event,
    EventBus,
    Example,
    LMBadRequest,
    LMConnectionError,
    LMError,
    LMQueueFull,
    LMQueueTimeout,
    LMQuotaExceeded,
    LMRateLimited,
    LMRefused,
    LMResponseTooLarge,
    LMServerError,
    LMStreamInterrupted,
    LMTimeout,
    LMTruncated,
    LMUnavailable,
    Prediction,
    Subscription,
    SystemDown,
    UnknownMessage,
)
from dspex_actors.runtime import (  # asyncio (docs/asyncio.md)
    ActorSystem,
    NoSystemError,
    StreamListener,
    StreamResponse,
    SystemClosed,
    astart,
    current_system,
    start,
)
from dspex_actors.signatures import (
    InputField,
    InputFieldsError,
    OutputField,
    Signature,
    SignatureError,
    ensure_signature,
)

if TYPE_CHECKING:  # loaded on first use (see __getattr__): optimizers and the test server
    from dspex_actors import messages as messages
    from dspex_actors import otel as otel
    from dspex_actors import testing as testing
    from dspex_actors.distributed import RayBackend
    from dspex_actors.optimize import (
        BootstrapFewShot,
        BootstrapFewShotWithRandomSearch,
        CheckpointError,
        CompileError,
        CostEstimate,
        Evaluate,
        EvaluationResult,
        Job,
        JobCancelled,
        JobStatus,
        LabeledFewShot,
        MIPROv2,
        RecordedError,
        ResultsFileError,
        Teleprompter,
        Trial,
    )
    from dspex_actors.testing import Fault, RuleBasedLMServer

# name -> the module that defines it, imported on first access: `import dspex_actors`
# stays cheap for programs that never optimize or start the test server.
_LAZY = {
    **dict.fromkeys(
        [
            "BootstrapFewShot",
            "BootstrapFewShotWithRandomSearch",
            "CheckpointError",
            "CompileError",
            "Evaluate",
            "EvaluationResult",
            "Job",
            "JobCancelled",
            "JobStatus",
            "LabeledFewShot",
            "RecordedError",
            "ResultsFileError",
            "Teleprompter",
            "MIPROv2",
            "Trial",
            "CostEstimate",
        ],
        "dspex_actors.optimize",
    ),
    "Fault": "dspex_actors.testing",
    "RuleBasedLMServer": "dspex_actors.testing",
    "RayBackend": "dspex_actors.distributed",
}
_LAZY_MODULES = frozenset({"testing", "optimize", "messages", "otel"})

__all__ = [
    "LM",
    "ActorSystem",
    "AdapterParseError",
    "BatchError",
    "BootstrapFewShot",
    "BootstrapFewShotWithRandomSearch",
    "CacheConfig",
    "ChainOfThought",
    "ChatAdapter",
    "CheckpointError",
    "CircuitOpen",
    "CompileError",
    "Completion",
    "ContextWindowExceeded",
    "CostEstimate",
    "DeadlineExceeded",
    "Evaluate",
    "EvaluationResult",
    "Event",
    "EventBus",
    "Example",
    "Fault",
    "InputField",
    "InputFieldsError",
    "JSONAdapter",
    "Job",
    "JobCancelled",
    "JobStatus",
    "LMBadRequest",
    "LMConnectionError",
    "LMError",
    "LMQueueFull",
    "LMQueueTimeout",
    "LMQuotaExceeded",
    "LMRateLimited",
    "LMRefused",
    "LMResponseTooLarge",
    "LMServerError",
    "LMStreamInterrupted",
    "LMTimeout",
    "LMTruncated",
    "LMUnavailable",
    "LabeledFewShot",
    "MIPROv2",
    "Module",
    "NoSystemError",
    "OutputField",
    "Pipeline",
    "PipelineError",
    "Predict",
    "Prediction",
    "ProgramFileError",
    "RayBackend",
    "ReAct",
    "RecordedError",
    "ResultsFileError",
    "RetryPolicy",
    "RuleBasedLMServer",
    "Signature",
    "SignatureError",
    "StreamListener",
    "StreamResponse",
    "StreamingProgram",
    "Subscription",
    "SystemClosed",
    "SystemDown",
    "Teleprompter",
    "Tool",
    "ToolArgsError",
    "Trial",
    "UnknownMessage",
    "astart",
    "cache_key",
    "current_system",
    "ensure_signature",
    "start",
    "streamify",
]


def _public_module(value: Any) -> Any:
    """Show our exceptions as ``dspex_actors.X`` in tracebacks (trio does the same)."""
    if (
        isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__.startswith("dspex_actors.")
    ):
        value.__module__ = "dspex_actors"
    return value


for _name in __all__:
    if _name in globals():
        _public_module(globals()[_name])


def __getattr__(name: str) -> Any:
    """Import a lazily loaded public name (or subpackage) on first access, then keep it."""
    if name in _LAZY_MODULES:
        value: Any = importlib.import_module(f"dspex_actors.{name}")
    elif name in _LAZY:
        value = _public_module(getattr(importlib.import_module(_LAZY[name]), name))
    else:
        raise AttributeError(f"module 'dspex_actors' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_LAZY_MODULES})
