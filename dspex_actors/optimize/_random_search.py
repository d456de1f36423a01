"""``BootstrapFewShotWithRandomSearch``: several candidates, the best on the valset.

DSPy's ``random_search.py``. Candidates bootstrap as ``BootstrapFewShot`` does
(``_bootstrap.py``) and are scored as ``Evaluate`` would, each valset example one
``ScoredRun`` request (program and metric in one program actor). Everything runs
concurrently; the result does not depend on the order requests finish in.

Differences from DSPy, on purpose:

* Teacher runs of one compile are shared: it runs the (identical) teacher once
  per training example and round, whatever the number of candidates that need
  it; DSPy reruns it per candidate (and relies on its cache).
* The candidates are attached to the best program as ``_candidate_programs``
  (DSPy: ``candidate_programs``) so that ``named_predictors`` does not walk into
  them; ``Job.candidate_programs`` has them.

Threading: the plan lives in one compile job actor's thread.
"""

from __future__ import annotations

import random
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from dspex_actors.modules import Module
from dspex_actors.optimize._bootstrap import (
    Teacher,
    Walk,
    check_bootstrap_inputs,
    error_of,
    state_hash,
)
from dspex_actors.optimize._entries import KINDS_SEARCH, check_entry
from dspex_actors.optimize._labeled import labeled
from dspex_actors.optimize._plan import (
    CompileError,
    CompileFailure,
    CompilePlan,
    PlanContext,
    Progress,
    Unit,
    WorkItem,
)
from dspex_actors.optimize._scoring import Metric, ScoredRun
from dspex_actors.optimize._teleprompter import (
    DEFAULT_MAX_ERRORS,
    Teleprompter,
    check_positive,
    metric_name,
)
from dspex_actors.primitives import Example

__all__ = ["BootstrapFewShotWithRandomSearch"]


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
        self.num_candidate_programs = check_positive(
            "num_candidate_programs", num_candidate_programs
        )
        self.max_concurrency = check_positive("max_concurrency", max_concurrency, minimum=1)
        self.seed = seed
        self.max_bootstrapped_demos = check_positive(
            "max_bootstrapped_demos", max_bootstrapped_demos, minimum=1
        )
        self.max_labeled_demos = check_positive("max_labeled_demos", max_labeled_demos)
        self.max_rounds = check_positive("max_rounds", max_rounds, minimum=1)
        self.max_errors = (
            DEFAULT_MAX_ERRORS
            if max_errors is None
            else check_positive("max_errors", max_errors, minimum=1)
        )
        self.stop_at_score = stop_at_score
        self.metric_threshold = metric_threshold

    def config(self) -> dict[str, Any]:
        return {
            "class": type(self).__name__,
            "metric": metric_name(self.metric),
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
        check_bootstrap_inputs(student, trainset)
        if valset is not None and not valset:
            raise ValueError("valset must contain at least one example (or be None)")

    def check_entry(self, key: str, value: Any) -> None:
        check_entry(key, value, KINDS_SEARCH)

    def plan(self, ctx: PlanContext) -> CompilePlan:
        return _RandomSearchPlan(self, ctx)


@dataclass
class _Candidate:
    seed: int
    walk: Walk | None = None
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
        self.teacher = Teacher(
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
                self._ready(candidate, labeled(ctx.student, ctx.trainset, tp.max_labeled_demos, 0))
            elif seed == -1:
                candidate.max_bootstrapped = tp.max_bootstrapped_demos
                candidate.walk = Walk(list(range(n)), candidate.max_bootstrapped)
            else:
                order = list(range(n))
                random.Random(seed).shuffle(order)
                candidate.max_bootstrapped = random.Random(seed).randint(
                    1, tp.max_bootstrapped_demos
                )
                candidate.walk = Walk(order, candidate.max_bootstrapped)
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
            self._fail(candidate, errors, f"{len(errors)} errors")
        if all(record.get("metric_error") for record in records):
            self._fail(candidate, errors, f"the metric raised on all {len(records)} examples")
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

    def _fail(self, candidate: _Candidate, errors: list[str], why: str) -> NoReturn:
        """End the job failed with the last error's exception (else a ``CompileError``)."""
        last = errors[-1]
        live = self.ctx.live_errors.get(last)
        if live is not None:
            raise CompileFailure(live)
        last_error = error_of(self.ctx.entries[last])
        raise CompileFailure(
            CompileError(f"evaluating candidate {candidate.seed}: {why}; last: {last_error}")
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
                scored = ScoredRun(candidate.program, self.tp.metric, example)
                items.append(WorkItem(key, "eval", scored, example))
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
