"""The :class:`Teleprompter` base class: an optimizer's configuration, compiled as a job.

A teleprompter object holds configuration only (immutable in use, any thread).
``system.compile(tp, student=..., trainset=...)`` calls :meth:`Teleprompter.start_job`,
which starts a compile job (``_compile.py``) that asks the teleprompter for its
:class:`~dspex_actors.optimize._plan.CompilePlan` and drives it. Subclasses
(``_labeled.py``, ``_bootstrap.py``, ``_random_search.py``) define :meth:`config`,
:meth:`plan` and, if they need more checks, :meth:`validate`; their semantics
follow DSPy 3.x, what differs is how they run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from dspex_actors.modules import Module
from dspex_actors.optimize._backend import Backend
from dspex_actors.optimize._compile import Job, start_job
from dspex_actors.optimize._examples import check_examples
from dspex_actors.optimize._plan import CompilePlan, PlanContext
from dspex_actors.optimize._scoring import Metric
from dspex_actors.primitives import Example

if TYPE_CHECKING:
    from dspex_actors.runtime import ActorSystem

__all__ = ["DEFAULT_MAX_ERRORS", "Teleprompter", "check_positive", "metric_name"]

DEFAULT_MAX_ERRORS = 10
"""Errors tolerated by a bootstrap or a candidate evaluation (DSPy's ``settings.max_errors``)."""


class Teleprompter:
    """Base class: configuration of an optimizer, compiled by ``system.compile``.

    :meth:`compile` is the blocking DSPy-style shortcut
    (``tp.compile(student, trainset=...)``); ``system.compile(tp, ...)`` returns a
    :class:`~dspex_actors.optimize.Job` at once instead.
    """

    name: ClassVar[str] = "teleprompter"
    max_concurrency: int = 16

    def config(self) -> dict[str, Any]:
        """The configuration as JSON (checkpoint fingerprints, logs)."""
        raise NotImplementedError

    def validate(
        self,
        *,
        student: Module,
        trainset: Sequence[Example],
        teacher: Module | None,
        valset: Sequence[Example] | None,
    ) -> None:
        """Raise ``ValueError``/``TypeError`` for inputs this teleprompter cannot compile."""
        if not isinstance(student, Module):
            raise TypeError(f"student must be a dx.Module, got {type(student).__name__}")
        if not student.predictors():
            raise ValueError("student has no predictors to compile")
        check_examples(trainset, "trainset")
        if valset is not None:
            check_examples(valset, "valset")
        if teacher is not None:
            _check_same_structure(student, teacher)

    def plan(self, ctx: PlanContext) -> CompilePlan:
        """Build the plan for one compile from ``ctx`` (and its checkpoint entries)."""
        raise NotImplementedError

    def check_entry(self, key: str, value: Any) -> None:
        """Raise ``ValueError`` if a checkpoint file's entry is not one this plan writes.

        Called for every entry of a checkpoint file when a job starts from it (a
        refused entry raises ``CheckpointError`` from ``system.compile``). The base
        class accepts every entry; teleprompters with entries override it.
        """

    def start_job(
        self,
        system: ActorSystem,
        /,
        *,
        student: Module,
        trainset: Sequence[Example],
        teacher: Module | None = None,
        valset: Sequence[Example] | None = None,
        checkpoint_dir: str | Path | None = None,
        backend: Backend | None = None,
    ) -> Job:
        """Start compiling in ``system``; return the job's handle at once (``system.compile``).

        ``backend``: where the LM requests run (``dx.RayBackend``: on a Ray cluster).

        See :func:`~dspex_actors.optimize.start_job` for what it checks and raises.
        """
        return start_job(
            system,
            self,
            student=student,
            trainset=trainset,
            teacher=teacher,
            valset=valset,
            checkpoint_dir=checkpoint_dir,
            backend=backend,
        )

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Example],
        teacher: Module | None = None,
        valset: Sequence[Example] | None = None,
        checkpoint_dir: str | Path | None = None,
        system: ActorSystem | None = None,
        timeout: float | None = None,
        display_progress: bool = True,
    ) -> Module:
        """Compile and wait (DSPy's ``compile``): ``system.compile(...).result(timeout)``.

        ``display_progress``: the job's progress bar on stderr while it waits.
        Raises what ``Job.result`` raises.
        """
        if system is None:
            from dspex_actors.runtime import current_system

            system = current_system()
        job = system.compile(
            self,
            student=student,
            trainset=trainset,
            teacher=teacher,
            valset=valset,
            checkpoint_dir=checkpoint_dir,
        )
        return job.result(timeout=timeout, display_progress=display_progress)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "class")
        return f"{type(self).__name__}({args})"


def check_positive(name: str, value: Any, *, minimum: int = 0) -> int:
    """``value`` if it is an int >= ``minimum``; ``ValueError`` otherwise (constructor checks)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def metric_name(metric: Metric | None) -> str | None:
    """A metric's name for the configuration (fingerprints compare it, not the object)."""
    if metric is None:
        return None
    return getattr(metric, "__qualname__", None) or type(metric).__name__


def _check_same_structure(student: Module, teacher: Module) -> None:
    mine, theirs = student.named_predictors(), teacher.named_predictors()
    if [n for n, _ in mine] != [n for n, _ in theirs]:
        raise ValueError(
            "student and teacher must have the same program structure: predictors "
            f"{[n for n, _ in mine]} != {[n for n, _ in theirs]}"
        )
    for (name, a), (_, b) in zip(mine, theirs, strict=True):
        if not a.signature.equals(b.signature):
            raise ValueError(f"student and teacher signatures differ at predictor {name!r}")
        if a is b:
            raise ValueError(f"student and teacher share the predictor object {name!r}")
