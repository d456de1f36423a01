"""``LabeledFewShot``: labeled trainset examples as demos (DSPy's ``vanilla.py``).

No LM request: its plan does one unit, the copy with demos. :func:`labeled` is
also the labeled-demo step of the bootstrapping teleprompters.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from dspex_actors.modules import Module
from dspex_actors.optimize._plan import CompilePlan, PlanContext, Progress, Unit
from dspex_actors.optimize._teleprompter import Teleprompter, check_positive
from dspex_actors.primitives import Example

__all__ = ["LabeledFewShot", "labeled"]


class LabeledFewShot(Teleprompter):
    """Put ``k`` labeled trainset examples into every predictor (DSPy's ``LabeledFewShot``).

    Each predictor gets ``random.Random(seed).sample(trainset, min(k, len))`` (one
    RNG for all predictors, in ``named_predictors`` order), or the first ``k``
    with ``sample=False``. No LM request is made.
    """

    name = "labeled_few_shot"

    def __init__(self, k: int = 16, seed: int = 0, *, sample: bool = True) -> None:
        self.k = check_positive("k", k)
        self.seed = seed
        self.sample = sample

    def config(self) -> dict[str, Any]:
        return {"class": type(self).__name__, "k": self.k, "seed": self.seed, "sample": self.sample}

    def apply(self, student: Module, trainset: Sequence[Example]) -> Module:
        """The compiled program (a reset copy of ``student`` with demos), synchronously."""
        return labeled(student, list(trainset), self.k, self.seed, self.sample)

    def plan(self, ctx: PlanContext) -> CompilePlan:
        return _LabeledPlan(self, ctx)


def labeled(
    student: Module, trainset: list[Example], k: int, seed: int, sample: bool = True
) -> Module:
    """A reset copy of ``student`` whose predictors get ``k`` trainset examples as demos."""
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
