"""Optimization: ``Evaluate``, the teleprompters, and supervised resumable compile jobs.

Evaluation fans out through program actors and keeps finished work; a compile job
is an actor that checkpoints each unit of work and resumes after a crash.
"""

from dspex_actors.optimize._compile import CheckpointError, Job, JobCancelled, JobStatus, start_job
from dspex_actors.optimize._evaluate import (
    Evaluate,
    EvaluationResult,
    RecordedError,
    ResultsFileError,
)
from dspex_actors.optimize._teleprompt import (
    BootstrapFewShot,
    BootstrapFewShotWithRandomSearch,
    CompileError,
    LabeledFewShot,
    Teleprompter,
)

__all__ = [
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
    "start_job",
]
