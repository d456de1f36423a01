"""``BootstrapFewShot``: demos from a teacher's successful traces (DSPy's ``bootstrap.py``).

The plan runs the teacher on the trainset examples (:class:`TracedRun` requests,
concurrently) and applies the metric to the finished runs strictly in trainset
order (:class:`Walk`, DSPy's ``_bootstrap`` loop): teacher runs started ahead
of the walk (speculatively, at most ``max_concurrency`` positions ahead) change
the wall time, never the demos. The random search (``_random_search.py``) walks
the same way once per candidate.

Differences from DSPy, on purpose:

* When one example calls the same predictor several times, DSPy picks one of the
  traces with an RNG seeded by its object hasher; here the seed is a SHA-256 of
  the traces' JSON (same rule, different but stable choice).
* Rounds after the first set ``temperature=1.0`` on the teacher's predictors (as
  DSPy); there is no ``rollout_id``, so with the cache on, rounds 3+ of one example
  may be answered from the cache.

Threading: the plan, teacher and walks live in one compile job actor's thread;
``TracedRun.forward`` runs in a program actor.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Container, Mapping, Sequence
from typing import Any

from dspex_actors.modules import Module, Predict, recording_trace
from dspex_actors.optimize._entries import KINDS_BOOTSTRAP, check_entry
from dspex_actors.optimize._jsonable import describe_error, json_safe
from dspex_actors.optimize._labeled import labeled
from dspex_actors.optimize._plan import (
    CompileError,
    CompileFailure,
    CompilePlan,
    PlanContext,
    Progress,
    TracedResult,
    Unit,
    WorkItem,
)
from dspex_actors.optimize._scoring import Metric, module_label
from dspex_actors.optimize._teleprompter import (
    DEFAULT_MAX_ERRORS,
    Teleprompter,
    check_positive,
    metric_name,
)
from dspex_actors.primitives import Example, Prediction

__all__ = [
    "BootstrapFewShot",
    "Teacher",
    "TracedRun",
    "Walk",
    "check_bootstrap_inputs",
    "error_of",
    "state_hash",
]


def check_bootstrap_inputs(student: Module, trainset: Sequence[Example]) -> None:
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
        self.max_bootstrapped_demos = check_positive(
            "max_bootstrapped_demos", max_bootstrapped_demos
        )
        self.max_labeled_demos = check_positive("max_labeled_demos", max_labeled_demos)
        self.max_rounds = check_positive("max_rounds", max_rounds, minimum=1)
        self.max_errors = (
            DEFAULT_MAX_ERRORS
            if max_errors is None
            else check_positive("max_errors", max_errors, minimum=1)
        )
        self.max_concurrency = check_positive("max_concurrency", max_concurrency, minimum=1)

    def config(self) -> dict[str, Any]:
        return {
            "class": type(self).__name__,
            "metric": metric_name(self.metric),
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
        check_bootstrap_inputs(student, trainset)

    def check_entry(self, key: str, value: Any) -> None:
        check_entry(key, value, KINDS_BOOTSTRAP)

    def plan(self, ctx: PlanContext) -> CompilePlan:
        return _BootstrapPlan(self, ctx)


class TracedRun(Module):
    """Runs ``program`` in a program actor and records its predictor calls (DSPy's trace).

    ``forward`` returns a :class:`TracedResult` whose trace entries name each
    predictor by its ``named_predictors`` name in ``program`` (``None`` for a
    predictor created on the fly). Runs in the program actor's thread.
    """

    def __init__(self, program: Module) -> None:
        self.program = program

    @property
    def __wrapped__(self) -> Module:
        """The user's program: the runtime names the request after it (logs, the tree)."""
        return self.program

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


def error_of(record: Mapping[str, Any]) -> str:
    error = record.get("error") or {}
    return f"{error.get('type', 'Error')}: {error.get('message', '')}"


class Teacher:
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
            teacher = labeled(teacher.reset_copy(), self.trainset, max_labeled_demos, 0)
        self.program = teacher
        self.predictors: dict[str, Predict] = dict(teacher.named_predictors())
        self.label = module_label(ctx.student)
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
            prediction = Prediction(outcome["prediction"])
            trace = [
                (self.predictors.get(name) if name is not None else None, inputs, Prediction(out))
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
                self.ctx.on_metric_error(key, exc)
                return {"ok": False, "error": describe_error(exc), "metric_error": True}
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

    def error(self, key: str, why: str = "too many errors") -> BaseException:
        """The exception behind the error recorded at ``key`` (else a ``CompileError``)."""
        verdict = self.entries[key]
        live = self.ctx.live_errors.get(key)
        if live is not None:
            return live
        return CompileError(f"bootstrap failed: {why}; last: {error_of(verdict)}")

    def predictor_names(self, names: Sequence[str]) -> list[str]:
        """Predictor names for a log line: a lone predictor (DSPy's ``self``) by its program."""
        return sorted(self.label if name == "self" else name for name in names)


class Walk:
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
        self.scored = 0  # verdicts the metric gave (it ran on the teacher's prediction)
        self.metric_errors: list[str] = []  # verdict keys where the metric raised
        self.done = target <= 0 or not order

    def advance(self, teacher: Teacher) -> Unit | None:
        """Apply known verdicts in order; decide at most one new one. ``None``: blocked."""
        entries = teacher.entries
        while not self.done:
            if len(self.bootstrapped) >= self.target or self.pos >= len(self.order):
                self.done = True
                self._check_metric(teacher)
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
                            "predictors": teacher.predictor_names(verdict["demos"]),
                        },
                    )
                )
            self._apply(teacher, index, key, verdict)
            return unit
        return None

    def _check_metric(self, teacher: Teacher) -> None:
        """A walk whose metric raised on every example it scored fails with that error."""
        if self.scored and len(self.metric_errors) == self.scored:
            why = f"the metric raised on all {self.scored} examples it scored"
            raise CompileFailure(teacher.error(self.metric_errors[-1], why))

    def _apply(self, teacher: Teacher, index: int, key: str, verdict: Mapping[str, Any]) -> None:
        self.decided += 1
        if verdict.get("metric_error"):
            self.metric_errors.append(key)
        if verdict["ok"] or verdict.get("error") is None or verdict.get("metric_error"):
            self.scored += int(teacher.metric is not None)
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
        self, teacher: Teacher, busy: Container[str], window: int, taken: set[str]
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
            augmented = [Example(d) for d in self.traces.get(name, [])[:max_bootstrapped]]
            size = max(0, min(max_labeled - len(augmented), len(validation)))
            predictor.demos = augmented + rng.sample(validation, size)
        setattr(program, "_compiled", True)  # noqa: B010 - DSPy's marker, not a field
        return program


class _BootstrapPlan(CompilePlan):
    def __init__(self, tp: BootstrapFewShot, ctx: PlanContext) -> None:
        self.tp = tp
        self.ctx = ctx
        self.teacher = Teacher(
            ctx,
            max_labeled_demos=tp.max_labeled_demos,
            metric=tp.metric,
            metric_threshold=tp.metric_threshold,
            max_rounds=tp.max_rounds,
            max_errors=tp.max_errors,
        )
        self.walk = Walk(list(range(len(ctx.trainset))), tp.max_bootstrapped_demos)

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
