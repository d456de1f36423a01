"""What a compile job runs: a teleprompter's :class:`CompilePlan` and the data around it.

A plan is the resumable state machine of one compile. It names the LM requests
it needs (:class:`WorkItem`, run concurrently by the job in program actors) and
does its CPU work one :class:`Unit` at a time. Everything it learns goes into
``entries`` (JSON, checkpointed by the job after each unit), and a plan rebuilt
from the same entries goes on where the last one stopped. :class:`Planner` is
what the job needs of a teleprompter.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from dspex_actors.modules import Module
from dspex_actors.optimize._examples import example_inputs
from dspex_actors.optimize._jsonable import describe_error
from dspex_actors.optimize._scoring import Scored
from dspex_actors.primitives import Example

__all__ = [
    "CompileError",
    "CompileFailure",
    "CompilePlan",
    "PlanContext",
    "Planner",
    "Progress",
    "TracedResult",
    "Unit",
    "WorkItem",
]


class CompileError(RuntimeError):
    """A compile job failed and the original exception object is not available.

    (For example an error recorded in a checkpoint before a restart, or a job
    whose supervisor gave up on it.) The message names the original error.
    """


class CompileFailure(Exception):
    """Raised by a plan to end the job as failed with ``error`` (not a crash)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(repr(error))
        self.error = error


@dataclass(frozen=True)
class TracedResult:
    """What a teacher request answers: the prediction and its trace, already as JSON."""

    prediction: dict[str, Any]
    trace: list[list[Any]]  # [predictor name | None, inputs, outputs]


@dataclass
class WorkItem:
    """One LM request a plan needs: run ``module`` on ``example``'s inputs.

    ``kind="teacher"``: ``module`` answers a :class:`TracedResult`; the entry is
    ``{"ok": true, "prediction": {...}, "trace": [[name, inputs, outputs], ...]}``
    or ``{"ok": false, "error": {...}}``. ``kind="eval"``: ``module`` is a
    ``ScoredRun`` (program and metric in the request's program actor); the entry
    is ``{"score": float, "error": null | {...}}`` (``failure_score`` on any error).
    """

    key: str
    kind: Literal["teacher", "eval"]
    module: Module
    example: Example
    failure_score: float = 0.0

    def call(self) -> tuple[Module, dict[str, Any]]:
        """The program call: the module and its keyword inputs."""
        return self.module, example_inputs(self.example)

    def entry(self, result: Any) -> tuple[dict[str, Any], BaseException | None]:
        """The checkpoint entry for ``result`` (the answer, or the exception that ended
        the request), and the exception behind a recorded error, if any. An eval
        entry whose error is the metric's has ``"metric_error": true``."""
        error: BaseException | None = result if isinstance(result, BaseException) else None
        if self.kind == "teacher":
            if error is not None:
                return {"ok": False, "error": describe_error(error)}, error
            if isinstance(result, TracedResult):
                return {"ok": True, "prediction": result.prediction, "trace": result.trace}, None
            return {"ok": False, "error": {"type": "TypeError", "message": repr(result)}}, None
        if isinstance(result, Scored):
            if result.error is None and result.score is not None:
                return {"score": result.score, "error": None}, None
            if result.error is not None:
                entry = {"score": self.failure_score, "error": describe_error(result.error)}
                return {**entry, "metric_error": True}, result.error
        if error is None:
            error = TypeError(f"an eval request answered {result!r}, not a score")
        return {"score": self.failure_score, "error": describe_error(error)}, error


@dataclass
class Unit:
    """One unit of plan work done by :meth:`CompilePlan.step`.

    ``keys``: the entries it wrote (to checkpoint); ``events``: structlog events
    ``(name, fields)`` for the job to log.
    """

    keys: list[str] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class PlanContext:
    """What a plan is built from (owned by one job actor generation).

    ``entries`` is the checkpoint: read at build time and extended by the plan.
    ``may_crash(key)`` says whether a metric exception while deciding ``key`` may
    crash the job (so that the supervisor restarts it and the unit is retried)
    or must be counted as an error, DSPy-style. ``current_unit`` is the key being
    decided (read by the job when it crashes). ``live_errors`` maps entry keys to
    the exception objects behind recorded errors, when known. ``on_metric_error(key,
    exc)`` is called when a metric's exception is recorded as an error (the job
    logs it, once per exception type).
    """

    student: Module
    trainset: list[Example]
    teacher: Module | None = None
    valset: list[Example] | None = None
    entries: dict[str, Any] = field(default_factory=dict)
    may_crash: Callable[[str], bool] = lambda _key: True
    live_errors: dict[str, BaseException] = field(default_factory=dict)
    current_unit: str | None = None
    on_metric_error: Callable[[str, BaseException], None] = lambda _key, _exc: None


@dataclass(frozen=True)
class Progress:
    """A plan's progress: ``done`` of ``total`` units, best score so far, phase name, errors.

    ``details``: teleprompter-specific fields for ``JobStatus`` (MIPROv2: ``trial``,
    ``num_trials``, ``best_trial``, ``lm_calls``, ``lm_budget``, ``budget_exhausted``,
    ``trials``).
    """

    done: int
    total: int
    best_score: float | None
    phase: str
    errors: int
    details: Mapping[str, Any] | None = None


class CompilePlan:
    """The resumable state machine of one compile (see the module docstring).

    ``done``/``result`` once finished. :meth:`step` does at most one unit of CPU
    work and returns it (``None``: nothing to do until a request finishes);
    :meth:`requests` names the requests to start now. Raises
    :class:`CompileFailure` to end the job as failed; any other exception is a
    crash (the job is restarted and rebuilds the plan from the checkpoint).
    Single-threaded: used by one job actor.
    """

    done: bool = False
    result: Module | None = None
    candidates: list[dict[str, Any]] | None = None

    def step(self) -> Unit | None:
        raise NotImplementedError

    def requests(self, busy: Container[str], limit: int) -> list[WorkItem]:
        return []

    def progress(self) -> Progress:
        raise NotImplementedError


class Planner(Protocol):
    """What a compile job needs of a teleprompter (``dx.Teleprompter`` is one)."""

    @property
    def name(self) -> str:
        """A short name: job ids and checkpoint file names start with it."""
        ...

    @property
    def max_concurrency(self) -> int:
        """LM requests in flight at once."""
        ...

    def config(self) -> dict[str, Any]:
        """The configuration as JSON (checkpoint fingerprints, logs)."""
        ...

    def validate(
        self,
        *,
        student: Module,
        trainset: Sequence[Example],
        teacher: Module | None,
        valset: Sequence[Example] | None,
    ) -> None:
        """Raise ``ValueError``/``TypeError`` for inputs it cannot compile."""
        ...

    def plan(self, ctx: PlanContext) -> CompilePlan:
        """The plan for one compile, built from ``ctx`` and its checkpoint entries."""
        ...
