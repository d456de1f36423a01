"""Optimization: ``Evaluate``, the teleprompters, and supervised resumable compile jobs.

Evaluation fans out through program actors and keeps finished work; a compile job
is an actor that checkpoints each unit of work and resumes after a crash. Modules
(import downward only): ``_jsonable``, ``_examples``, ``_scoring``, ``_progress``,
``_entries`` (helpers) < ``_plan`` (what a job runs) < ``_checkpoint`` <
``_compile`` (the job) < ``_teleprompter`` (the base class) < ``_labeled``,
``_bootstrap``, ``_random_search``; ``_propose`` < ``_mipro_settings`` <
``_mipro_items`` < ``_mipro_propose`` < ``_mipro`` (MIPROv2); and ``_evaluate``
(with ``_results_file``).
"""

from dspex_actors.optimize._backend import LOCAL, Backend, LocalBackend, Stream
from dspex_actors.optimize._bootstrap import BootstrapFewShot, TracedRun
from dspex_actors.optimize._checkpoint import CheckpointError
from dspex_actors.optimize._compile import Job, JobCancelled, JobStatus, start_job
from dspex_actors.optimize._evaluate import Evaluate, EvaluationResult
from dspex_actors.optimize._jsonable import RecordedError
from dspex_actors.optimize._labeled import LabeledFewShot
from dspex_actors.optimize._mipro import MIPROv2, Trial
from dspex_actors.optimize._mipro_settings import CostEstimate
from dspex_actors.optimize._plan import CompileError, TracedResult
from dspex_actors.optimize._random_search import BootstrapFewShotWithRandomSearch
from dspex_actors.optimize._results_file import ResultsFileError
from dspex_actors.optimize._scoring import Scored, ScoredRun
from dspex_actors.optimize._teleprompter import Teleprompter

__all__ = [
    "LOCAL",
    "Backend",
    "BootstrapFewShot",
    "BootstrapFewShotWithRandomSearch",
    "CheckpointError",
    "CompileError",
    "CostEstimate",
    "Evaluate",
    "EvaluationResult",
    "Job",
    "JobCancelled",
    "JobStatus",
    "LabeledFewShot",
    "LocalBackend",
    "MIPROv2",
    "RecordedError",
    "ResultsFileError",
    "Scored",
    "ScoredRun",
    "Stream",
    "Teleprompter",
    "TracedResult",
    "TracedRun",
    "Trial",
    "start_job",
]
