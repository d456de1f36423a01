"""MIPROv2's run settings and cost estimate: what DSPy 3.4.1 derives before its first call.

:func:`resolve` replays DSPy's use of its one ``random.Random(seed)`` up to the
search (the ``auto`` valset sample, the demo sets' shuffles and sizes, the
proposer's tips and rollout draws), so that the plan and :func:`estimate` agree
and a resumed job draws exactly what an uninterrupted one did. Pure functions.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dspex_actors.optimize._propose import MAX_SUMMARY_CALLS, TIPS
from dspex_actors.primitives import Example

__all__ = [
    "AUTO_RUN_SETTINGS",
    "CostEstimate",
    "DemoSetPlan",
    "Settings",
    "num_trials_for",
    "resolve",
]

AUTO_RUN_SETTINGS = {
    "light": {"n": 6, "val_size": 100},
    "medium": {"n": 12, "val_size": 300},
    "heavy": {"n": 18, "val_size": 1000},
}
"""DSPy's ``auto`` presets: candidates ``n`` and the valset size."""

MIN_MINIBATCH_SIZE = 50
BOOTSTRAPPED_IN_CONTEXT = 3
"""DSPy's ``BOOTSTRAPPED_FEWSHOT_EXAMPLES_IN_CONTEXT`` (zero-shot runs, the proposer's demos)."""


@dataclass(frozen=True)
class CostEstimate:
    """``MIPROv2.estimate(...)``: LM calls a compile may make, computed before any call.

    ``lm_calls`` is the total; ``by_phase`` splits it into ``bootstrap`` (at most
    one teacher run per training example and round), ``propose`` (prompt-model
    calls) and ``search`` (task-model calls, DSPy's formula). An upper bound:
    evaluations shared between trials run once here, so a job usually makes fewer.
    """

    lm_calls: int
    by_phase: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DemoSetPlan:
    """One of ``create_n_fewshot_demo_sets``' candidate sets: its seed, order and size."""

    seed: int
    kind: str  # "zero_shot" | "labeled" | "bootstrap"
    order: tuple[int, ...] = ()
    max_bootstrapped: int = 0


@dataclass(frozen=True)
class Settings:
    """Everything a MIPROv2 compile derives from its arguments before the first call."""

    trainset: list[Example]
    valset: list[Example]
    num_trials: int
    minibatch: bool
    num_instruct: int
    num_fewshot: int
    zeroshot: bool
    max_bootstrapped: int
    max_labeled: int
    demo_sets: list[DemoSetPlan]
    tips: list[list[str]]  # per predictor, per proposal: the tip key
    rng_state: Any  # the RNG after the proposer's draws: the search goes on with it

    @property
    def num_proposals(self) -> int:
        """Instruction candidates per predictor (DSPy: ``min(N, number of demo sets)``)."""
        return min(self.num_instruct, max(len(self.demo_sets), 1))


def num_trials_for(num_predictors: int, zeroshot: bool, num_candidates: int) -> int:
    """DSPy's ``_set_num_trials_from_num_candidates``."""
    num_vars = num_predictors * (1 if zeroshot else 2)
    return int(max(2 * num_vars * math.log2(num_candidates), 1.5 * num_candidates))


def resolve(
    tp: Any, num_predictors: int, trainset: Sequence[Example], valset: Sequence[Example] | None
) -> Settings:
    """The settings of one compile of ``tp`` (a ``MIPROv2``); ``ValueError`` if unusable."""
    train = list(trainset)
    if not train:
        raise ValueError("trainset must contain at least one example")
    if valset is None:
        if len(train) < 2:
            raise ValueError("trainset must have at least 2 examples if no valset is given")
        size = min(1000, max(1, int(len(train) * 0.80)))
        val = train[len(train) - size :]
        train = train[: len(train) - size]
    else:
        val = list(valset)
        if not val:
            raise ValueError("valset must contain at least one example")
    rng = random.Random(tp.seed)
    zeroshot = tp.max_bootstrapped_demos == 0 and tp.max_labeled_demos == 0
    minibatch = tp.minibatch
    if tp.auto is None:
        num_trials, n_instr, n_few = tp.num_trials, tp.num_candidates, tp.num_candidates
    else:
        auto = AUTO_RUN_SETTINGS[tp.auto]
        picked = rng.sample(range(len(val)), min(auto["val_size"], len(val)))
        val = [val[i] for i in picked]
        minibatch = len(val) > MIN_MINIBATCH_SIZE
        n_few = auto["n"]
        n_instr = auto["n"] if zeroshot else int(auto["n"] * 0.5)
        num_trials = num_trials_for(num_predictors, zeroshot, auto["n"])
    if minibatch and tp.minibatch_size > len(val):
        raise ValueError(
            f"minibatch_size ({tp.minibatch_size}) cannot exceed the valset size ({len(val)})"
        )
    max_labeled = 0 if zeroshot else tp.max_labeled_demos
    max_boot = BOOTSTRAPPED_IN_CONTEXT if zeroshot else tp.max_bootstrapped_demos
    sets = _demo_sets(rng, n_few, len(train), max_labeled, max_boot)
    tips: list[list[str]] = []
    for _ in range(num_predictors):
        mine = []
        for _ in range(min(n_instr, max(len(sets), 1))):
            mine.append(rng.choice(list(TIPS)) if tp.tip_aware_proposer else "none")
            rng.randint(0, 10**9)  # DSPy's rollout id (this proposer makes none)
        tips.append(mine)
    return Settings(
        trainset=train,
        valset=val,
        num_trials=num_trials,
        minibatch=minibatch,
        num_instruct=n_instr,
        num_fewshot=n_few,
        zeroshot=zeroshot,
        max_bootstrapped=max_boot,
        max_labeled=max_labeled,
        demo_sets=sets,
        tips=tips,
        rng_state=rng.getstate(),
    )


def _demo_sets(
    rng: random.Random, n: int, size: int, max_labeled: int, max_boot: int
) -> list[DemoSetPlan]:
    """DSPy's ``create_n_fewshot_demo_sets`` loop: seeds -3 .. n-4, drawing from ``rng``."""
    sets = []
    for seed in range(-3, n - 3):
        if seed == -3:
            sets.append(DemoSetPlan(seed, "zero_shot"))
        elif seed == -2 and max_labeled > 0:
            sets.append(DemoSetPlan(seed, "labeled"))
        elif seed == -1:
            sets.append(DemoSetPlan(seed, "bootstrap", tuple(range(size)), max_boot))
        else:  # DSPy: seed -2 without labeled demos is a shuffled bootstrap too
            order = list(range(size))
            rng.shuffle(order)
            sets.append(DemoSetPlan(seed, "bootstrap", tuple(order), rng.randint(1, max_boot)))
    return sets


def full_eval_due(m: int, num_trials: int, steps: int) -> bool:
    """Whether DSPy fully evaluates after minibatch trial ``m`` (1-based).

    DSPy's rule ``trial_num % (steps + 1) == 0 or trial_num == adjusted - 1`` over
    Optuna's trial numbers (the default and full-eval trials take numbers too)
    comes to: after every ``steps``-th minibatch trial, and after the last one.
    """
    return m % steps == 0 or m == num_trials


def estimate_calls(
    settings: Settings, num_predictors: int, tp: Any, summary_batches: int
) -> CostEstimate:
    """The :class:`CostEstimate` for ``settings`` (see its docstring)."""
    bootstrap = 0
    if any(s.kind == "bootstrap" for s in settings.demo_sets):
        bootstrap = len(settings.trainset) * num_predictors
    summary = 0
    if tp.data_aware_proposer:
        summary = min(summary_batches, MAX_SUMMARY_CALLS) + 1
    per_proposal = 3 if tp.program_aware_proposer else 1
    propose = summary + num_predictors * max(settings.num_proposals - 1, 0) * per_proposal
    val = len(settings.valset)
    if settings.minibatch:
        # The default program's, then one after every ``steps`` trials and after the last.
        full_evals = 1 + math.ceil(settings.num_trials / tp.minibatch_full_eval_steps)
        search = tp.minibatch_size * settings.num_trials + val * full_evals
    else:
        search = val * (settings.num_trials + 1)
    search *= num_predictors
    by_phase = {"bootstrap": bootstrap, "propose": propose, "search": search}
    return CostEstimate(lm_calls=sum(by_phase.values()), by_phase=by_phase)
