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

from dspex_actors._adapter import ChatAdapter, JSONAdapter
from dspex_actors._cache_store import CacheConfig, cache_key
from dspex_actors._compile import CheckpointError, Job, JobCancelled, JobStatus
from dspex_actors._errors import (
    AdapterParseError,
    CircuitOpen,
    DeadlineExceeded,
    LMBadRequest,
    LMConnectionError,
    LMError,
    LMRateLimited,
    LMServerError,
    LMTimeout,
)
from dspex_actors._evaluate import Evaluate, EvaluationResult, RecordedError, ResultsFileError
from dspex_actors._example import Example, Prediction
from dspex_actors._fields import InputField, OutputField
from dspex_actors._lm import LM, Completion
from dspex_actors._module import BatchError, ChainOfThought, Module, Predict, ProgramFileError
from dspex_actors._retry import RetryPolicy
from dspex_actors._rule_server import Fault, RuleBasedLMServer
from dspex_actors._signature import InputFieldsError, Signature, SignatureError, ensure_signature
from dspex_actors._system import ActorSystem, NoSystemError, current_system, start
from dspex_actors._teleprompt import (
    BootstrapFewShot,
    BootstrapFewShotWithRandomSearch,
    CompileError,
    LabeledFewShot,
    Teleprompter,
)

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
    "DeadlineExceeded",
    "Evaluate",
    "EvaluationResult",
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
    "LMRateLimited",
    "LMServerError",
    "LMTimeout",
    "LabeledFewShot",
    "Module",
    "NoSystemError",
    "OutputField",
    "Predict",
    "Prediction",
    "ProgramFileError",
    "RecordedError",
    "ResultsFileError",
    "RetryPolicy",
    "RuleBasedLMServer",
    "Signature",
    "SignatureError",
    "Teleprompter",
    "cache_key",
    "current_system",
    "ensure_signature",
    "start",
]
