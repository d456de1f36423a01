"""Teleprompters: ``LabeledFewShot``, ``BootstrapFewShot``, ``BootstrapFewShotWithRandomSearch``.

Semantics follow DSPy 3.x (``dspy/teleprompt/vanilla.py``, ``bootstrap.py``,
``random_search.py``); what differs is *how* they run. A teleprompter object holds
configuration only. ``system.compile(teleprompter, student=..., trainset=...)``
starts a compile job (``_compile.py``), which asks the teleprompter for a
:class:`CompilePlan` and drives it: the plan names the LM requests it needs
(:meth:`CompilePlan.requests`, run concurrently in program actors) and does its
CPU work one small unit at a time (:meth:`CompilePlan.step`: one metric verdict,
one candidate scored...). Everything a plan learns is written to ``entries``, a
JSON-able dict that the job checkpoints after each unit, and a plan rebuilt from
the same entries continues where the last one stopped without redoing anything.

Determinism: results are decided in trainset order, never in completion order.
A bootstrap walk (DSPy's ``_bootstrap`` loop) consumes teacher outcomes strictly
in its order, so running teacher requests ahead of it (speculatively, at most
``max_concurrency`` positions ahead) changes the wall time, not the demos.

Differences from DSPy, on purpose:

* Teacher runs of one compile are shared: ``BootstrapFewShotWithRandomSearch``
  runs the (identical) teacher once per training example and round, whatever the
  number of candidates that need it; DSPy reruns it per candidate (and relies on
  its cache).
* When one example calls the same predictor several times, DSPy picks one of the
  traces with an RNG seeded by its object hasher; here the seed is a SHA-256 of
  the traces' JSON (same rule, different but stable choice).
* Rounds after the first set ``temperature=1.0`` on the teacher's predictors (as
  DSPy); there is no ``rollout_id``, so with the cache on, rounds 3+ of one example
  may be answered from the cache.
* The candidates of a random search are attached to the best program as
  ``_candidate_programs`` (DSPy: ``candidate_programs``) so that
  ``named_predictors`` does not walk into them; ``Job.candidate_programs`` has them.

Threading: teleprompter objects are immutable in use; a plan lives in one compile
job actor's thread.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from dspex_actors.modules import Module, Predict, recording_trace
from dspex_actors.optimize._evaluate import (
    as_score,
    check_examples,
    describe_error,
    example_inputs,
    json_safe,
)
from dspex_actors.primitives import Example, Prediction

if TYPE_CHECKING:
    from dspex_actors.runtime import ActorSystem

__all__ = [
    "BootstrapFewShot",
    "BootstrapFewShotWithRandomSearch",
    "CompileError",
    "CompileFailure",
    "CompilePlan",
    "LabeledFewShot",
    "PlanContext",
    "Teleprompter",
    "TracedRun",
    "Unit",
    "WorkItem",
]

Metric = Callable[..., Any]

DEFAULT_MAX_ERRORS = 10
"""Errors tolerated by a bootstrap or a candidate evaluation (DSPy's ``settings.max_errors``)."""


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


# ---------------------------------------------------------------------- plan types


@dataclass
class WorkItem:
    """One LM request a plan needs: run ``module`` on ``example``'s inputs.

    ``kind="teacher"``: ``module`` is a :class:`TracedRun`; the outcome is
    ``{"ok": true, "prediction": {...}, "trace": [[name, inputs, outputs], ...]}``
    or ``{"ok": false, "error": {...}}``. ``kind="eval"``: the outcome is
    ``{"score": float, "error": null | {...}}``, scored by ``metric(example,
    prediction)`` in the request's thread (``failure_score`` on any error).
    """

    key: str
    kind: Literal["teacher", "eval"]
    module: Module
    example: Example
    metric: Metric | None = None
    failure_score: float = 0.0


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
    the exception objects behind recorded errors, when known.
    """

    student: Module
    trainset: list[Example]
    teacher: Module | None = None
    valset: list[Example] | None = None
    entries: dict[str, Any] = field(default_factory=dict)
    may_crash: Callable[[str], bool] = lambda _key: True
    live_errors: dict[str, BaseException] = field(default_factory=dict)
    current_unit: str | None = None


@dataclass(frozen=True)
class Progress:
    """A plan's progress: ``done`` of ``total`` units, best score so far, phase name, errors."""

    done: int
    total: int
    best_score: float | None
    phase: str
    errors: int


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


# ----------------------------------------------------------------- teleprompters


class Teleprompter:
    """Base class: configuration of an optimizer, compiled by ``system.compile``.

    :meth:`compile` is the blocking DSPy-style shortcut
    (``tp.compile(student, trainset=...)``); ``system.compile(tp, ...)`` returns a
    ``Job`` at once instead.
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
    ) -> Module:
        """Compile and wait (DSPy's ``compile``): ``system.compile(...).result(timeout)``.

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
        return job.result(timeout=timeout)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "class")
        return f"{type(self).__name__}({args})"


def _check_positive(name: str, value: Any, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _metric_name(metric: Metric | None) -> str | None:
    if metric is None:
        return None
    return getattr(metric, "__qualname__", None) or type(metric).__name__


class LabeledFewShot(Teleprompter):
    """Put ``k`` labeled trainset examples into every predictor (DSPy's ``LabeledFewShot``).

    Each predictor gets ``random.Random(seed).sample(trainset, min(k, len))`` (one
    RNG for all predictors, in ``named_predictors`` order), or the first ``k``
    with ``sample=False``. No LM request is made.
    """

    name = "labeled_few_shot"

    def __init__(self, k: int = 16, seed: int = 0, *, sample: bool = True) -> None:
        self.k = _check_positive("k", k)
        self.seed = seed
        self.sample = sample

    def config(self) -> dict[str, Any]:
        return {"class": type(self).__name__, "k": self.k, "seed": self.seed, "sample": self.sample}

    def apply(self, student: Module, trainset: Sequence[Example]) -> Module:
        """The compiled program (a reset copy of ``student`` with demos), synchronously."""
        return _labeled(student, list(trainset), self.k, self.seed, self.sample)

    def plan(self, ctx: PlanContext) -> CompilePlan:
        return _LabeledPlan(self, ctx)


def _labeled(
    student: Module, trainset: list[Example], k: int, seed: int, sample: bool = True
) -> Module:
    program = student.reset_copy()
    if not trainset:
        return program
    rng = random.Random(seed)
    for predictor in program.predictors():
        if sample:
            predictor.demos = rng.sample(trainset, min(k, len(trainset)))
        else:
            predictor.demos = trainset[: min(k, len(trainset))]
    return program


def _check_bootstrap_inputs(student: Module, trainset: Sequence[Example]) -> None:
    """Bootstrapping needs an uncompiled student and at least one training example."""
    if getattr(student, "_compiled", False):
        raise ValueError("the student must be uncompiled (pass the original program)")
    if not trainset:
        raise ValueError("trainset must contain at least one example")


class BootstrapFewShot(Teleprompter):
    """Bootstrap demos from a teacher's successful traces (DSPy's ``BootstrapFewShot``).

    The teacher (default: the student) gets ``LabeledFewShot(k=max_labeled_demos)``
    demos unless it is already compiled; it is run on the trainset examples in
    order (the example itself removed from its demos), up to ``max_rounds`` times
    each (rounds after the first at ``temperature=1.0``), until
    ``max_bootstrapped_demos`` examples succeeded. A run succeeds when
    ``metric(example, prediction, trace)`` is truthy (``>= metric_threshold`` when
    one is given; no metric: always). Each predictor of the compiled student gets
    the successful traces as ``augmented`` demos, then labeled demos from the
    examples not bootstrapped (shuffled with ``Random(0)``), up to
    ``max_labeled_demos`` in all. ``max_errors`` (default 10) failed runs or metric
    errors fail the job.

    ``max_concurrency`` (not in DSPy): teacher runs in flight at once. The demos do
    not depend on it (see the module docstring).
    """

    name = "bootstrap_few_shot"

    def __init__(
        self,
        metric: Metric | None = None,
        metric_threshold: float | None = None,
        max_bootstrapped_demos: int = 4,
        max_labeled_demos: int = 16,
        max_rounds: int = 1,
        max_errors: int | None = None,
        *,
        max_concurrency: int = 16,
    ) -> None:
        if metric is not None and not callable(metric):
            raise TypeError(f"metric must be callable, got {metric!r}")
        self.metric = metric
        self.metric_threshold = metric_threshold
        self.max_bootstrapped_demos = _check_positive(
            "max_bootstrapped_demos", max_bootstrapped_demos
        )
        self.max_labeled_demos = _check_positive("max_labeled_demos", max_labeled_demos)
        self.max_rounds = _check_positive("max_rounds", max_rounds, minimum=1)
        self.max_errors = (
            DEFAULT_MAX_ERRORS
            if max_errors is None
            else _check_positive("max_errors", max_errors, minimum=1)
        )
        self.max_concurrency = _check_positive("max_concurrency", max_concurrency, minimum=1)

    def config(self) -> dict[str, Any]:
        return {
            "class": type(self).__name__,
            "metric": _metric_name(self.metric),
            "metric_threshold": self.metric_threshold,
            "max_bootstrapped_demos": self.max_bootstrapped_demos,
            "max_labeled_demos": self.max_labeled_demos,
            "max_rounds": self.max_rounds,
            "max_errors": self.max_errors,
        }

    def validate(
        self,
        *,
        student: Module,
        trainset: Sequence[Example],
        teacher: Module | None,
        valset: Sequence[Example] | None,
    ) -> None:
        super().validate(student=student, trainset=trainset, teacher=teacher, valset=valset)
        _check_bootstrap_inputs(student, trainset)

    def plan(self, ctx: PlanContext) -> CompilePlan:
        return _BootstrapPlan(self, ctx)


class BootstrapFewShotWithRandomSearch(Teleprompter):
    """Compile several candidates and keep the best on the valset (DSPy's random search).

    Candidates, by seed: ``-3`` the zero-shot student, ``-2`` labeled demos only
    (``LabeledFewShot(k=max_labeled_demos)``), ``-1`` ``BootstrapFewShot`` on the
    trainset in order, and ``0 .. num_candidate_programs-1`` ``BootstrapFewShot`` on
    the trainset shuffled by ``Random(seed)`` with ``max_bootstrapped_demos`` drawn
    by ``Random(seed).randint(1, max_bootstrapped_demos)``. Each is scored as
    ``Evaluate`` would on ``valset`` (default: the trainset; failure score 0); the
    first best score in seed order wins, and ``stop_at_score`` ends the search at
    the first candidate reaching it. Bootstraps and evaluations of all candidates
    run concurrently, at most ``max_concurrency`` requests at once; the result
    does not depend on the order they finish in.
    """

    name = "random_search"

    def __init__(
        self,
        metric: Metric,
        num_candidate_programs: int = 8,
        max_concurrency: int = 16,
        seed: int = 0,
        *,
        max_bootstrapped_demos: int = 4,
        max_labeled_demos: int = 16,
        max_rounds: int = 1,
        max_errors: int | None = None,
        stop_at_score: float | None = None,
        metric_threshold: float | None = None,
    ) -> None:
        if not callable(metric):
            raise TypeError(f"metric must be callable, got {metric!r}")
        self.metric = metric
        self.num_candidate_programs = _check_positive(
            "num_candidate_programs", num_candidate_programs
        )
        self.max_concurrency = _check_positive("max_concurrency", max_concurrency, minimum=1)
        self.seed = seed
        self.max_bootstrapped_demos = _check_positive(
            "max_bootstrapped_demos", max_bootstrapped_demos, minimum=1
        )
        self.max_labeled_demos = _check_positive("max_labeled_demos", max_labeled_demos)
        self.max_rounds = _check_positive("max_rounds", max_rounds, minimum=1)
        self.max_errors = (
            DEFAULT_MAX_ERRORS
            if max_errors is None
            else _check_positive("max_errors", max_errors, minimum=1)
        )
        self.stop_at_score = stop_at_score
        self.metric_threshold = metric_threshold

    def config(self) -> dict[str, Any]:
        return {
            "class": type(self).__name__,
            "metric": _metric_name(self.metric),
            "num_candidate_programs": self.num_candidate_programs,
            "seed": self.seed,
            "max_bootstrapped_demos": self.max_bootstrapped_demos,
            "max_labeled_demos": self.max_labeled_demos,
            "max_rounds": self.max_rounds,
            "max_errors": self.max_errors,
            "stop_at_score": self.stop_at_score,
            "metric_threshold": self.metric_threshold,
        }

    def seeds(self) -> list[int]:
        """The candidate seeds in evaluation order: -3, -2, -1, then ``seed`` + 0..N-1."""
        return [-3, -2, -1, *range(self.seed, self.seed + self.num_candidate_programs)]

    def validate(
        self,
        *,
        student: Module,
        trainset: Sequence[Example],
        teacher: Module | None,
        valset: Sequence[Example] | None,
    ) -> None:
        super().validate(student=student, trainset=trainset, teacher=teacher, valset=valset)
        _check_bootstrap_inputs(student, trainset)
        if valset is not None and not valset:
            raise ValueError("valset must contain at least one example (or be None)")

    def plan(self, ctx: PlanContext) -> CompilePlan:
        return _RandomSearchPlan(self, ctx)


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


# ----------------------------------------------------------------- teacher runs


@dataclass(frozen=True)
class TracedResult:
    """What a :class:`TracedRun` returns: the prediction and trace, already as JSON."""

    prediction: dict[str, Any]
    trace: list[list[Any]]  # [predictor name | None, inputs, outputs]


class TracedRun(Module):
    """Runs ``program`` in a program actor and records its predictor calls (DSPy's trace).

    ``forward`` returns a :class:`TracedResult` whose trace entries name each
    predictor by its ``named_predictors`` name in ``program`` (``None`` for a
    predictor created on the fly). Runs in the program actor's thread.
    """

    def __init__(self, program: Module) -> None:
        self.program = program

    def forward(self, **kwargs: Any) -> TracedResult:
        names = {id(p): n for n, p in self.program.named_predictors()}
        with recording_trace() as trace:
            prediction = self.program(**kwargs)
        steps = [
            [names.get(id(predictor)), json_safe(inputs), json_safe(outputs.toDict())]
            for predictor, inputs, outputs in trace
        ]
        return TracedResult(json_safe(_as_dict(prediction)), steps)


def _as_dict(prediction: Any) -> dict[str, Any]:
    if isinstance(prediction, Example):
        return prediction.toDict()
    if isinstance(prediction, Mapping):
        return dict(prediction)
    raise TypeError(f"the program returned {type(prediction).__name__}, not a Prediction")


def _stable_seed(value: Any) -> int:
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def state_hash(program: Module) -> str:
    """A short hash of a program's saved state (demos, instructions, fields)."""
    return hashlib.sha256(
        json.dumps(program.dump_state(), sort_keys=True, default=str).encode("utf-8")
    ).hexdigest()[:16]


def _error_of(record: Mapping[str, Any]) -> str:
    error = record.get("error") or {}
    return f"{error.get('type', 'Error')}: {error.get('message', '')}"


class _Teacher:
    """The teacher runs and metric verdicts of one compile, keyed by trainset index and round.

    Entries: ``t/{i}/{r}`` teacher outcome, ``v/{i}/{r}`` verdict
    ``{"ok", "error", "demos": {predictor: [demo, ...]}}``.
    """

    def __init__(
        self,
        ctx: PlanContext,
        *,
        max_labeled_demos: int,
        metric: Metric | None,
        metric_threshold: float | None,
        max_rounds: int,
        max_errors: int,
    ) -> None:
        self.ctx = ctx
        self.trainset = ctx.trainset
        self.entries = ctx.entries
        base = ctx.teacher if ctx.teacher is not None else ctx.student
        teacher = base.deepcopy()
        if max_labeled_demos and not getattr(teacher, "_compiled", False):
            teacher = _labeled(teacher.reset_copy(), self.trainset, max_labeled_demos, 0)
        self.program = teacher
        self.predictors: dict[str, Predict] = dict(teacher.named_predictors())
        self.metric = metric
        self.metric_threshold = metric_threshold
        self.max_rounds = max_rounds
        self.max_errors = max_errors

    def item(self, index: int, round_: int) -> WorkItem:
        """The request for the teacher run on ``trainset[index]`` in round ``round_``."""
        example = self.trainset[index]
        program = self.program.deepcopy()
        for predictor in program.predictors():
            predictor.demos = [demo for demo in predictor.demos if demo != example]
            if round_ > 0:
                predictor.config = {**predictor.config, "temperature": 1.0}
        return WorkItem(f"t/{index}/{round_}", "teacher", TracedRun(program), example)

    def next_round(self, index: int) -> int | None:
        """The round whose teacher run ``index`` needs next, or ``None`` if it needs none."""
        for round_ in range(self.max_rounds):
            verdict = self.entries.get(f"v/{index}/{round_}")
            if verdict is None:
                return round_
            if verdict["ok"]:
                return None
        return None

    def decide(self, index: int, round_: int) -> dict[str, Any]:
        """Apply the metric to a finished teacher run (the job actor's thread)."""
        key = f"v/{index}/{round_}"
        outcome = self.entries[f"t/{index}/{round_}"]
        if not outcome["ok"]:
            live = self.ctx.live_errors.get(f"t/{index}/{round_}")
            if live is not None:
                self.ctx.live_errors[key] = live
            return {"ok": False, "error": outcome["error"]}
        example = self.trainset[index]
        steps = outcome["trace"]
        if self.metric is not None:
            prediction = Prediction(**outcome["prediction"])
            trace = [
                (self.predictors.get(name) if name is not None else None, inputs, Prediction(**out))
                for name, inputs, out in steps
            ]
            self.ctx.current_unit = key  # read by the job if the metric crashes it
            try:
                value = self.metric(example, prediction, trace)
                if self.metric_threshold is not None:
                    success = bool(value >= self.metric_threshold)
                else:
                    success = bool(value)
            except Exception as exc:
                if self.ctx.may_crash(key):
                    raise  # the job crashes, is restarted, and decides this unit again
                self.ctx.current_unit = None
                self.ctx.live_errors[key] = exc
                return {"ok": False, "error": describe_error(exc)}
            self.ctx.current_unit = None
            if not success:
                return {"ok": False, "error": None}
        demos: dict[str, list[dict[str, Any]]] = {}
        for name, inputs, out in steps:
            if name is None:
                continue
            demos.setdefault(name, []).append({"augmented": True, **inputs, **out})
        for name, found in demos.items():
            if len(found) > 1:
                # DSPy: one of the first N-1 traces or the last, 50/50, seeded by the traces.
                rng = random.Random(_stable_seed(found))
                demos[name] = [rng.choice(found[:-1]) if rng.random() < 0.5 else found[-1]]
        return {"ok": True, "error": None, "demos": demos}

    def error(self, key: str) -> BaseException:
        verdict = self.entries[key]
        live = self.ctx.live_errors.get(key)
        if live is not None:
            return live
        return CompileError(f"bootstrap failed: too many errors; last: {_error_of(verdict)}")


class _Walk:
    """One ``BootstrapFewShot._bootstrap`` loop over ``order`` (trainset indices), resumable."""

    def __init__(self, order: list[int], target: int) -> None:
        self.order = order
        self.target = target
        self.pos = 0
        self.round = 0
        self.bootstrapped: list[int] = []
        self.traces: dict[str, list[dict[str, Any]]] = {}
        self.errors = 0
        self.decided = 0  # verdicts applied (attempts), for the lookahead's success rate
        self.done = target <= 0 or not order

    def advance(self, teacher: _Teacher) -> Unit | None:
        """Apply known verdicts in order; decide at most one new one. ``None``: blocked."""
        entries = teacher.entries
        while not self.done:
            if len(self.bootstrapped) >= self.target or self.pos >= len(self.order):
                self.done = True
                return None
            index = self.order[self.pos]
            key = f"v/{index}/{self.round}"
            verdict = entries.get(key)
            if verdict is not None:
                self._apply(teacher, index, key, verdict)
                continue
            if f"t/{index}/{self.round}" not in entries:
                return None
            verdict = teacher.decide(index, self.round)
            entries[key] = verdict
            unit = Unit([key])
            if verdict["ok"]:
                unit.events.append(
                    (
                        "demo.bootstrapped",
                        {
                            "example": index,
                            "round": self.round,
                            "predictors": sorted(verdict["demos"]),
                        },
                    )
                )
            self._apply(teacher, index, key, verdict)
            return unit
        return None

    def _apply(self, teacher: _Teacher, index: int, key: str, verdict: Mapping[str, Any]) -> None:
        self.decided += 1
        if verdict.get("error") is not None:
            self.errors += 1
            if self.errors >= teacher.max_errors:
                raise CompileFailure(teacher.error(key))
        if verdict["ok"]:
            self.bootstrapped.append(index)
            for name, demos in verdict["demos"].items():
                self.traces.setdefault(name, []).extend(demos)
            self.pos += 1
            self.round = 0
            return
        self.round += 1
        if self.round >= teacher.max_rounds:
            self.pos += 1
            self.round = 0

    def lookahead(self, max_window: int) -> int:
        """How many positions from the cursor are worth running now (at most ``max_window``).

        The positions the remaining successes are expected to need, at the success
        rate seen so far (smoothed, starting at 1): enough to keep the requests
        concurrent without running many teacher requests past the point where the
        walk stops. Only the wall time and the wasted requests depend on it, never
        the demos.
        """
        remaining = self.target - len(self.bootstrapped)
        if remaining <= 0:
            return 0  # the walk is complete: it stops at its next advance
        rate = (len(self.bootstrapped) + 1) / (self.decided + 1)
        return max(1, min(max_window, math.ceil(remaining / rate)))

    def requests(
        self, teacher: _Teacher, busy: Container[str], window: int, taken: set[str]
    ) -> list[WorkItem]:
        """Teacher runs to start for the next positions (speculatively), within ``window``."""
        items: list[WorkItem] = []
        window = self.lookahead(window)
        for pos in range(self.pos, min(self.pos + window, len(self.order))):
            index = self.order[pos]
            round_ = self.round if pos == self.pos else teacher.next_round(index)
            if round_ is None:
                continue
            key = f"t/{index}/{round_}"
            if key in teacher.entries or key in busy or key in taken:
                continue
            taken.add(key)
            items.append(teacher.item(index, round_))
        return items

    def program(
        self, student: Module, trainset: Sequence[Example], max_bootstrapped: int, max_labeled: int
    ) -> Module:
        """DSPy's ``_train``: augmented demos first, then labeled ones (``Random(0)``)."""
        program = student.reset_copy()
        bootstrapped = set(self.bootstrapped)
        validation = [trainset[i] for i in self.order if i not in bootstrapped]
        random.Random(0).shuffle(validation)
        rng = random.Random(0)
        for name, predictor in program.named_predictors():
            augmented = [Example(**d) for d in self.traces.get(name, [])[:max_bootstrapped]]
            size = max(0, min(max_labeled - len(augmented), len(validation)))
            predictor.demos = augmented + rng.sample(validation, size)
        setattr(program, "_compiled", True)  # noqa: B010 - DSPy's marker, not a field
        return program


# ------------------------------------------------------------------------ plans


class _LabeledPlan(CompilePlan):
    def __init__(self, tp: LabeledFewShot, ctx: PlanContext) -> None:
        self.tp = tp
        self.ctx = ctx

    def step(self) -> Unit | None:
        if self.done:
            return None
        self.result = self.tp.apply(self.ctx.student, self.ctx.trainset)
        self.done = True
        return Unit()

    def progress(self) -> Progress:
        return Progress(int(self.done), 1, None, "done" if self.done else "labeling", 0)


class _BootstrapPlan(CompilePlan):
    def __init__(self, tp: BootstrapFewShot, ctx: PlanContext) -> None:
        self.tp = tp
        self.ctx = ctx
        self.teacher = _Teacher(
            ctx,
            max_labeled_demos=tp.max_labeled_demos,
            metric=tp.metric,
            metric_threshold=tp.metric_threshold,
            max_rounds=tp.max_rounds,
            max_errors=tp.max_errors,
        )
        self.walk = _Walk(list(range(len(ctx.trainset))), tp.max_bootstrapped_demos)

    def step(self) -> Unit | None:
        if self.done:
            return None
        unit = self.walk.advance(self.teacher)
        if unit is not None:
            return unit
        if not self.walk.done:
            return None
        self.result = self.walk.program(
            self.ctx.student,
            self.ctx.trainset,
            self.tp.max_bootstrapped_demos,
            self.tp.max_labeled_demos,
        )
        self.done = True
        return Unit()

    def requests(self, busy: Container[str], limit: int) -> list[WorkItem]:
        if self.walk.done or limit <= 0:
            return []
        window = max(self.tp.max_concurrency, 1)
        return self.walk.requests(self.teacher, busy, window, set())[:limit]

    def progress(self) -> Progress:
        total = len(self.ctx.trainset)
        done = total if self.done else min(self.walk.pos, total)
        phase = "done" if self.done else "bootstrapping"
        return Progress(done, total, None, phase, self.walk.errors)


@dataclass
class _Candidate:
    seed: int
    walk: _Walk | None = None
    max_bootstrapped: int = 0
    program: Module | None = None
    hash: str | None = None
    score: float | None = None
    subscores: list[float] | None = None


class _RandomSearchPlan(CompilePlan):
    def __init__(self, tp: BootstrapFewShotWithRandomSearch, ctx: PlanContext) -> None:
        self.tp = tp
        self.ctx = ctx
        self.valset = ctx.valset if ctx.valset else ctx.trainset
        self.teacher = _Teacher(
            ctx,
            max_labeled_demos=tp.max_labeled_demos,
            metric=tp.metric,
            metric_threshold=tp.metric_threshold,
            max_rounds=tp.max_rounds,
            max_errors=tp.max_errors,
        )
        n = len(ctx.trainset)
        self._cands: list[_Candidate] = []
        for seed in tp.seeds():
            candidate = _Candidate(seed)
            if seed == -3:
                self._ready(candidate, ctx.student.reset_copy())
            elif seed == -2:
                self._ready(candidate, _labeled(ctx.student, ctx.trainset, tp.max_labeled_demos, 0))
            elif seed == -1:
                candidate.max_bootstrapped = tp.max_bootstrapped_demos
                candidate.walk = _Walk(list(range(n)), candidate.max_bootstrapped)
            else:
                order = list(range(n))
                random.Random(seed).shuffle(order)
                candidate.max_bootstrapped = random.Random(seed).randint(
                    1, tp.max_bootstrapped_demos
                )
                candidate.walk = _Walk(order, candidate.max_bootstrapped)
            self._cands.append(candidate)

    def _ready(self, candidate: _Candidate, program: Module) -> None:
        candidate.program = program
        candidate.hash = state_hash(program)

    def _cut(self) -> int:
        """How many candidates (in seed order) count: all, or up to the first >= stop_at_score."""
        stop = self.tp.stop_at_score
        if stop is not None:
            for position, candidate in enumerate(self._cands):
                if candidate.score is None:
                    break
                if candidate.score >= stop:
                    return position + 1
        return len(self._cands)

    def step(self) -> Unit | None:
        if self.done:
            return None
        cut = self._cut()
        active = self._cands[:cut]
        for candidate in active:
            walk = candidate.walk
            if walk is None or candidate.program is not None:
                continue
            unit = walk.advance(self.teacher)
            if unit is not None:
                for _, fields in unit.events:
                    fields["seed"] = candidate.seed
                return unit
            if walk.done:
                self._ready(
                    candidate,
                    walk.program(
                        self.ctx.student,
                        self.ctx.trainset,
                        candidate.max_bootstrapped,
                        self.tp.max_labeled_demos,
                    ),
                )
                return Unit()
        for candidate in active:
            if candidate.program is None or candidate.score is not None:
                continue
            unit = self._score(candidate)
            if unit is not None:
                return unit
        if all(c.score is not None for c in active):
            self._finish(active)
            return Unit()
        return None

    def _score(self, candidate: _Candidate) -> Unit | None:
        entries = self.ctx.entries
        keys = [f"e/{candidate.hash}/{j}" for j in range(len(self.valset))]
        if any(key not in entries for key in keys):
            return None
        records = [entries[key] for key in keys]
        errors = [key for key, record in zip(keys, records, strict=True) if record.get("error")]
        if len(errors) >= self.tp.max_errors:
            last = errors[-1]
            live = self.ctx.live_errors.get(last)
            raise CompileFailure(
                live
                if live is not None
                else CompileError(
                    f"evaluating candidate {candidate.seed}: {len(errors)} errors; "
                    f"last: {_error_of(entries[last])}"
                )
            )
        subscores = [float(record["score"]) for record in records]
        candidate.subscores = subscores
        candidate.score = round(100.0 * sum(subscores) / len(subscores), 2)
        key = f"c/{candidate.seed}"
        record = {"score": candidate.score, "hash": candidate.hash}
        if entries.get(key) == record:
            return Unit()  # scored before a restart: nothing new to log
        entries[key] = record
        best = max(c.score for c in self._cands if c.score is not None)
        return Unit(
            [key],
            [
                (
                    "candidate.evaluated",
                    {"seed": candidate.seed, "score": candidate.score, "best_score": best},
                )
            ],
        )

    def _finish(self, active: list[_Candidate]) -> None:
        best: _Candidate | None = None
        for candidate in active:
            assert candidate.score is not None
            if best is None or best.score is None or candidate.score > best.score:
                best = candidate
        assert best is not None and best.program is not None
        ranked = sorted(active, key=lambda c: c.score or 0.0, reverse=True)
        self.candidates = [
            {"score": c.score, "subscores": c.subscores, "seed": c.seed, "program": c.program}
            for c in ranked
        ]
        program = best.program
        setattr(program, "_compiled", True)  # noqa: B010
        setattr(program, "_candidate_programs", self.candidates)  # noqa: B010
        self.result = program
        self.done = True

    def requests(self, busy: Container[str], limit: int) -> list[WorkItem]:
        if limit <= 0 or self.done:
            return []
        active = self._cands[: self._cut()]
        taken: set[str] = set()
        items: list[WorkItem] = []
        window = max(self.tp.max_concurrency, 1)
        # Teacher runs first: they gate the evaluations of the bootstrapped candidates.
        for candidate in active:
            if candidate.walk is not None and not candidate.walk.done:
                items.extend(candidate.walk.requests(self.teacher, busy, window, taken))
                if len(items) >= limit:
                    return items[:limit]
        entries = self.ctx.entries
        for candidate in active:
            if candidate.program is None or candidate.score is not None:
                continue
            for j, example in enumerate(self.valset):
                key = f"e/{candidate.hash}/{j}"
                if key in entries or key in busy or key in taken:
                    continue
                taken.add(key)
                items.append(WorkItem(key, "eval", candidate.program, example, self.tp.metric, 0.0))
                if len(items) >= limit:
                    return items
        return items

    def progress(self) -> Progress:
        scored = [c.score for c in self._cands if c.score is not None]
        best = max(scored) if scored else None
        errors = sum(c.walk.errors for c in self._cands if c.walk is not None)
        if self.done:
            phase = "done"
        elif any(c.walk is not None and not c.walk.done for c in self._cands):
            phase = "bootstrapping"
        else:
            phase = "evaluating"
        total = len(self._cands)
        return Progress(total if self.done else len(scored), total, best, phase, errors)


def eval_outcome(item: WorkItem, prediction: Any) -> tuple[dict[str, Any], BaseException | None]:
    """Score an eval request's prediction with its metric (the request's thread)."""
    assert item.metric is not None
    try:
        score = as_score(item.metric(item.example, prediction))
    except Exception as exc:
        return {"score": item.failure_score, "error": describe_error(exc)}, exc
    return {"score": score, "error": None}, None


def item_inputs(item: WorkItem) -> dict[str, Any]:
    """The call inputs of a work item."""
    return example_inputs(item.example)
