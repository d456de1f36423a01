"""``MIPROv2``: DSPy 3.4.1's ``teleprompt/mipro_optimizer_v2.py`` as a resumable compile job.

Phases (``job.status().phase``): ``bootstrap`` (``create_n_fewshot_demo_sets``:
the zero-shot set, the labeled set, then ``BootstrapFewShot`` walks, as
``_random_search.py`` does them), ``propose`` (the grounded proposer,
``_propose.py``), ``search`` (Optuna's ``TPESampler(seed=seed,
multivariate=True)`` over one instruction index and one demo-set index per
predictor, minibatches with periodic full evaluations), ``done``. Every request
(teacher run, proposer step, one valset example scored) goes through the job's
one fan-out, at most ``max_concurrency`` at once whatever ``parallel_trials`` is.

Determinism and resume: all of DSPy's RNG draws up to the search are replayed
from the seed (``_mipro_settings.py``); trials are asked and told in a fixed
order (the window of ``parallel_trials`` trials is refilled before the oldest is
told, and trials are told in number order), so the study, and the program chosen,
depend on the scores only, never on the order requests finish in. A rebuilt
plan replays the study from the checkpoint's entries without a request.

Differences from DSPy, on purpose:

* The proposal for instruction 0 is not made (DSPy makes it, then overwrites it
  with the original instruction): fewer prompt-model calls, same candidates.
* Evaluations are entries keyed by the program's state and the example, so a
  combination evaluated again (a full evaluation of a minibatch winner, the
  default program) reuses what it already scored instead of asking the LM again.
* The teacher runs of the bootstrap are shared between demo sets (as
  ``BootstrapFewShotWithRandomSearch`` here does).
* When every combination tried has been fully evaluated, a due full evaluation
  is skipped (DSPy raises).

Threading: the plan lives in one compile job actor's thread.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from dspex_actors.modules import Module
from dspex_actors.optimize._bootstrap import Teacher, Walk, check_bootstrap_inputs, state_hash
from dspex_actors.optimize._entries import KINDS_SEARCH, check_entry
from dspex_actors.optimize._events import TRIAL_EVENT
from dspex_actors.optimize._labeled import labeled
from dspex_actors.optimize._mipro_items import CountedItem, calls_of, check_mipro_entry
from dspex_actors.optimize._mipro_propose import Proposals
from dspex_actors.optimize._mipro_settings import (
    CostEstimate,
    Settings,
    estimate_calls,
    full_eval_due,
    resolve,
)
from dspex_actors.optimize._plan import (
    CompileFailure,
    CompilePlan,
    PlanContext,
    Progress,
    Unit,
    WorkItem,
)
from dspex_actors.optimize._scoring import Metric
from dspex_actors.optimize._teleprompter import (
    DEFAULT_MAX_ERRORS,
    Teleprompter,
    check_positive,
    metric_name,
)
from dspex_actors.primitives import Example

__all__ = ["MIPROv2", "Trial", "import_optuna"]

Auto = Literal["light", "medium", "heavy"]


def import_optuna() -> Any:
    """The ``optuna`` module; ``ImportError`` naming the extra to install if it is missing."""
    try:
        import optuna
    except ModuleNotFoundError as exc:
        if exc.name == "optuna":
            raise ImportError(
                "dx.MIPROv2 needs the optional dependency 'optuna': "
                "pip install 'dspex-actors[mipro]'"
            ) from exc
        raise
    return optuna


@dataclass(frozen=True)
class Trial:
    """One evaluation of the search (``job.trials()``), in the order they were told.

    ``number``: 1 is the default program's full evaluation, then DSPy's trial
    numbers (minibatch trials and full evaluations share the sequence).
    ``instructions``/``demo_sets``: the chosen index per predictor (``demo_sets``
    empty for a zero-shot run). ``score``: percent of the examples scored.
    ``minibatch``: scored on a minibatch; ``full_eval``: scored on the whole valset.
    """

    number: int
    instructions: tuple[int, ...]
    demo_sets: tuple[int, ...]
    score: float
    minibatch: bool
    full_eval: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "instructions": list(self.instructions),
            "demo_sets": list(self.demo_sets),
            "score": self.score,
            "minibatch": self.minibatch,
            "full_eval": self.full_eval,
        }


class MIPROv2(Teleprompter):
    """DSPy's MIPROv2: bootstrapped demo sets, grounded instructions, a Bayesian search.

    ``auto`` (``"light"``, ``"medium"``, ``"heavy"``) sets candidates, trials and
    the valset size as DSPy does; with ``auto=None`` give ``num_candidates`` and
    ``num_trials``. ``max_lm_calls`` caps the LM calls of the whole job: it stops
    there with the best program so far (``status().budget_exhausted``).
    ``parallel_trials`` trials are evaluated at once (Optuna's ask/tell), all
    through the job's one fan-out of at most ``max_concurrency`` requests.
    ``prompt_model``/``task_model`` name system LMs (default: the default LM).
    Raises ``ImportError`` (naming the ``mipro`` extra) without optuna, and
    ``ValueError`` for inconsistent settings, here, before any call. See the
    module docstring for where it differs from DSPy.
    """

    name = "mipro_v2"

    def __init__(
        self,
        metric: Metric,
        auto: Auto | None = "light",
        num_candidates: int | None = None,
        num_trials: int | None = None,
        minibatch: bool = True,
        minibatch_size: int = 35,
        minibatch_full_eval_steps: int = 5,
        max_bootstrapped_demos: int = 4,
        max_labeled_demos: int = 4,
        init_temperature: float = 1.0,
        seed: int = 9,
        max_concurrency: int = 16,
        max_lm_calls: int | None = None,
        prompt_model: str | None = None,
        task_model: str | None = None,
        parallel_trials: int = 1,
        *,
        max_errors: int | None = None,
        metric_threshold: float | None = None,
        view_data_batch_size: int = 10,
        program_aware_proposer: bool = True,
        data_aware_proposer: bool = True,
        tip_aware_proposer: bool = True,
        fewshot_aware_proposer: bool = True,
    ) -> None:
        import_optuna()
        if not callable(metric):
            raise TypeError(f"metric must be callable, got {metric!r}")
        _check_auto(auto, num_candidates, num_trials)
        self.metric = metric
        self.auto = auto
        self.num_candidates = num_candidates
        self.num_trials = num_trials
        self.minibatch = bool(minibatch)
        self.minibatch_size = check_positive("minibatch_size", minibatch_size, minimum=1)
        self.minibatch_full_eval_steps = check_positive(
            "minibatch_full_eval_steps", minibatch_full_eval_steps, minimum=1
        )
        self.max_bootstrapped_demos = check_positive(
            "max_bootstrapped_demos", max_bootstrapped_demos
        )
        self.max_labeled_demos = check_positive("max_labeled_demos", max_labeled_demos)
        self.init_temperature = float(init_temperature)
        self.seed = seed
        self.max_concurrency = check_positive("max_concurrency", max_concurrency, minimum=1)
        self.max_lm_calls = (
            None if max_lm_calls is None else check_positive("max_lm_calls", max_lm_calls)
        )
        self.prompt_model = prompt_model
        self.task_model = task_model
        self.parallel_trials = check_positive("parallel_trials", parallel_trials, minimum=1)
        self.max_errors = (
            DEFAULT_MAX_ERRORS
            if max_errors is None
            else check_positive("max_errors", max_errors, minimum=1)
        )
        self.metric_threshold = metric_threshold
        self.view_data_batch_size = check_positive(
            "view_data_batch_size", view_data_batch_size, minimum=1
        )
        self.program_aware_proposer = program_aware_proposer
        self.data_aware_proposer = data_aware_proposer
        self.tip_aware_proposer = tip_aware_proposer
        self.fewshot_aware_proposer = fewshot_aware_proposer

    def config(self) -> dict[str, Any]:
        """The configuration (fingerprints): ``max_concurrency``, ``parallel_trials`` and
        ``max_lm_calls`` are left out, so a job resumes under other limits."""
        return {
            "class": type(self).__name__,
            "metric": metric_name(self.metric),
            "auto": self.auto,
            "num_candidates": self.num_candidates,
            "num_trials": self.num_trials,
            "minibatch": self.minibatch,
            "minibatch_size": self.minibatch_size,
            "minibatch_full_eval_steps": self.minibatch_full_eval_steps,
            "max_bootstrapped_demos": self.max_bootstrapped_demos,
            "max_labeled_demos": self.max_labeled_demos,
            "init_temperature": self.init_temperature,
            "seed": self.seed,
            "prompt_model": self.prompt_model,
            "task_model": self.task_model,
            "max_errors": self.max_errors,
            "metric_threshold": self.metric_threshold,
            "view_data_batch_size": self.view_data_batch_size,
            "proposer": [
                self.program_aware_proposer,
                self.data_aware_proposer,
                self.tip_aware_proposer,
                self.fewshot_aware_proposer,
            ],
        }

    def settings(
        self, student: Module, trainset: Sequence[Example], valset: Sequence[Example] | None
    ) -> Settings:
        """What a compile derives before its first call; ``ValueError`` if unusable."""
        return resolve(self, len(student.predictors()), trainset, valset)

    def estimate(
        self,
        student: Module,
        trainset: Sequence[Example],
        valset: Sequence[Example] | None = None,
    ) -> CostEstimate:
        """The LM calls a compile would make at most, by phase; makes no call (any thread)."""
        self.validate(student=student, trainset=trainset, teacher=None, valset=valset)
        settings = self.settings(student, trainset, valset)
        batches = max(1, -(-len(settings.trainset) // self.view_data_batch_size))
        return estimate_calls(settings, len(student.predictors()), self, batches)

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
        self.settings(student, trainset, valset)

    def check_entry(self, key: str, value: Any) -> None:
        if key[:1] in KINDS_SEARCH:
            check_entry(key, value, KINDS_SEARCH)
        else:
            check_mipro_entry(key, value)

    def plan(self, ctx: PlanContext) -> CompilePlan:
        return _MiproPlan(self, ctx)


def _check_auto(auto: Any, num_candidates: Any, num_trials: Any) -> None:
    if auto not in (None, "light", "medium", "heavy"):
        raise ValueError(f"auto must be 'light', 'medium', 'heavy' or None, got {auto!r}")
    if auto is None:
        if num_candidates is None or num_trials is None:
            raise ValueError("with auto=None, give both num_candidates and num_trials")
        check_positive("num_candidates", num_candidates, minimum=1)
        check_positive("num_trials", num_trials, minimum=1)
    elif num_candidates is not None or num_trials is not None:
        raise ValueError(
            "with auto set, num_candidates and num_trials cannot be given (auto sets them): "
            "set auto=None to choose them"
        )


@dataclass
class _Eval:
    """One evaluation the search waits for: a parameter choice on some valset indices."""

    params: dict[str, int]
    indices: list[int]
    program: Module
    hash: str
    number: int
    minibatch: bool
    optuna_trial: Any = None  # an asked trial (minibatch or plain), else a full eval
    combo: str = ""


@dataclass
class _Search:
    """The search's state (rebuilt by replay from the checkpoint)."""

    study: Any
    rng: random.Random
    default: _Eval | None = None
    pending: list[_Eval] = field(default_factory=list)
    full: _Eval | None = None
    asked: int = 0  # minibatch (or plain) trials asked
    number: int = 1  # the last Trial.number used
    best_score: float | None = None
    best: _Eval | None = None
    scores: dict[str, list[float]] = field(default_factory=dict)  # combo -> minibatch scores
    combos: dict[str, _Eval] = field(default_factory=dict)  # combo -> its first trial
    fully: set[str] = field(default_factory=set)
    trials: list[Trial] = field(default_factory=list)
    full_evals: list[tuple[float, Module]] = field(default_factory=list)


class _MiproPlan(CompilePlan):
    def __init__(self, tp: MIPROv2, ctx: PlanContext) -> None:
        self.tp = tp
        self.ctx = ctx
        self.settings = tp.settings(ctx.student, ctx.trainset, ctx.valset)
        ctx.trainset = self.settings.trainset  # the valset split off, when none was given
        self.student = _with_lm(ctx.student.deepcopy(), tp.task_model)
        self.n_pred = len(self.student.predictors())
        self.teacher = Teacher(
            ctx,
            max_labeled_demos=self.settings.max_labeled,
            metric=tp.metric,
            metric_threshold=tp.metric_threshold,
            max_rounds=1,
            max_errors=tp.max_errors,
        )
        self.teacher.program = _with_lm(self.teacher.program, tp.task_model)
        self.walks: list[Walk | None] = []
        self.demo_programs: list[Module | None] = []
        for plan in self.settings.demo_sets:
            if plan.kind == "zero_shot":
                self.walks.append(None)
                self.demo_programs.append(self.student.reset_copy())
            elif plan.kind == "labeled":
                self.walks.append(None)
                train = self.settings.trainset
                self.demo_programs.append(
                    labeled(self.student, train, self.settings.max_labeled, 0)
                )
            else:
                self.walks.append(Walk(list(plan.order), plan.max_bootstrapped))
                self.demo_programs.append(None)
        self.demo_sets: list[list[list[Example]]] | None = None  # [predictor][set] -> demos
        self.proposals: Proposals | None = None
        self.search: _Search | None = None
        self.reserved: dict[str, int] = {}
        self.used = sum(calls_of(key, value) for key, value in ctx.entries.items())
        self.budget_exhausted = False
        self.phase = "bootstrap"

    # ------------------------------------------------------------------ steps

    def step(self) -> Unit | None:
        if self.done:
            return None
        self._reconcile()
        unit = self._advance()
        if unit is not None:
            return unit
        if not self.reserved and self._wanted_unaffordable():
            self.budget_exhausted = True
            self._finish()
            return Unit([], [("compile.budget_exhausted", {"lm_calls": self.used})])
        return None

    def _advance(self) -> Unit | None:
        if self.demo_sets is None:
            return self._bootstrap_step()
        if self.proposals is None or not self.proposals.ready:
            if self.proposals is None:
                self.proposals = Proposals(
                    self.tp, self.ctx, self.student, self.settings, self.demo_sets
                )
                self.phase = "propose"
                return Unit()
            return self.proposals.step()
        if self.search is None:
            self._start_search()
            self.phase = "search"
            return Unit()
        return self._search_step()

    def _bootstrap_step(self) -> Unit | None:
        for position, walk in enumerate(self.walks):
            if walk is None or self.demo_programs[position] is not None:
                continue
            unit = walk.advance(self.teacher)
            if unit is not None:
                for _, fields in unit.events:
                    fields["seed"] = self.settings.demo_sets[position].seed
                return unit
            if not walk.done:
                return None
            self.demo_programs[position] = walk.program(
                self.student, self.settings.trainset, walk.target, self.settings.max_labeled
            )
            return Unit()
        programs = [p for p in self.demo_programs if p is not None]
        self.demo_sets = [
            [list(program.predictors()[i].demos) for program in programs]
            for i in range(self.n_pred)
        ]
        return Unit()

    # ----------------------------------------------------------------- search

    def _start_search(self) -> None:
        optuna = import_optuna()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # multivariate TPE is "experimental"
            sampler = optuna.samplers.TPESampler(seed=self.tp.seed, multivariate=True)
        rng = random.Random()
        rng.setstate(self.settings.rng_state)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        search = _Search(study, rng)
        params = {name: 0 for name in self._param_names()}
        search.default = self._eval(params, list(range(len(self.settings.valset))), 1, False)
        self.search = search

    def _param_names(self) -> list[str]:
        names = []
        for i in range(self.n_pred):
            names.append(f"{i}_predictor_instruction")
            if not self.settings.zeroshot:
                names.append(f"{i}_predictor_demos")
        return names

    def _distributions(self) -> dict[str, Any]:
        optuna = import_optuna()
        assert self.proposals is not None and self.demo_sets is not None
        out = {}
        for i in range(self.n_pred):
            out[f"{i}_predictor_instruction"] = optuna.distributions.CategoricalDistribution(
                range(len(self.proposals.candidates[i]))
            )
            if not self.settings.zeroshot:
                out[f"{i}_predictor_demos"] = optuna.distributions.CategoricalDistribution(
                    range(len(self.demo_sets[i]))
                )
        return out

    def _program(self, params: dict[str, int]) -> Module:
        assert self.proposals is not None and self.demo_sets is not None
        program = self.student.deepcopy()
        for i, predictor in enumerate(program.predictors()):
            text = self.proposals.candidates[i][params[f"{i}_predictor_instruction"]]
            predictor.signature = predictor.signature.with_instructions(text)
            if not self.settings.zeroshot:
                predictor.demos = list(self.demo_sets[i][params[f"{i}_predictor_demos"]])
        return program

    def _eval(self, params: dict[str, int], indices: list[int], number: int, mb: bool) -> _Eval:
        program = self._program(params)
        combo = ",".join(f"{k}={params[k]}" for k in self._param_names())
        return _Eval(params, indices, program, state_hash(program), number, mb, combo=combo)

    def _score(self, ev: _Eval) -> float | None:
        """The evaluation's score (percent), or ``None`` while entries are missing."""
        entries = self.ctx.entries
        keys = [f"e/{ev.hash}/{j}" for j in ev.indices]
        if any(key not in entries for key in keys):
            return None
        records = [entries[key] for key in keys]
        if sum(1 for r in records if r.get("error")) >= self.tp.max_errors:
            return 0.0  # DSPy: Evaluate raises, eval_candidate_program scores 0.0
        return round(100.0 * sum(float(r["score"]) for r in records) / len(records), 2)

    def _search_step(self) -> Unit | None:
        search = self.search
        assert search is not None
        if search.default is not None:
            return self._tell_default(search, search.default)
        if search.full is not None:
            return self._tell_full(search, search.full)
        if (
            search.asked < self.settings.num_trials
            and len(search.pending) < self.tp.parallel_trials
        ):
            return self._ask(search)
        if search.pending:
            return self._tell_head(search)
        self._finish()
        return Unit()

    def _tell_default(self, search: _Search, ev: _Eval) -> Unit | None:
        score = self._score(ev)
        if score is None:
            return None
        optuna = import_optuna()
        search.study.add_trial(
            optuna.trial.create_trial(
                params=ev.params, distributions=self._distributions(), value=score
            )
        )
        search.default = None
        search.best_score, search.best = score, ev
        search.full_evals.append((score, ev.program))
        return self._record(search, ev, score, full=True)

    def _ask(self, search: _Search) -> Unit:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial = search.study.ask()
            params = {}
            assert self.proposals is not None and self.demo_sets is not None
            for i in range(self.n_pred):
                name = f"{i}_predictor_instruction"
                params[name] = trial.suggest_categorical(
                    name, range(len(self.proposals.candidates[i]))
                )
                if not self.settings.zeroshot:
                    name = f"{i}_predictor_demos"
                    params[name] = trial.suggest_categorical(name, range(len(self.demo_sets[i])))
        search.asked += 1
        size = len(self.settings.valset)
        batch = self.tp.minibatch_size if self.settings.minibatch else size
        indices = list(range(size)) if batch >= size else search.rng.sample(range(size), batch)
        ev = self._eval(params, indices, 0, self.settings.minibatch and batch < size)
        ev.optuna_trial = trial
        search.pending.append(ev)
        return Unit()

    def _tell_head(self, search: _Search) -> Unit | None:
        ev = search.pending[0]
        score = self._score(ev)
        if score is None:
            return None
        search.pending.pop(0)
        search.study.tell(ev.optuna_trial, score)
        search.number += 1
        ev.number = search.number
        full = len(ev.indices) >= len(self.settings.valset)
        if not self.settings.minibatch:
            if search.best_score is None or score > search.best_score:
                search.best_score, search.best = score, ev
            search.full_evals.append((score, ev.program))
        else:
            search.scores.setdefault(ev.combo, []).append(score)
            search.combos.setdefault(ev.combo, ev)
        unit = self._record(search, ev, score, full=full)
        told = search.asked - len(search.pending)
        steps = self.tp.minibatch_full_eval_steps
        if self.settings.minibatch and full_eval_due(told, self.settings.num_trials, steps):
            self._plan_full(search)
        return unit

    def _plan_full(self, search: _Search) -> None:
        ranked = sorted(search.scores.items(), key=lambda kv: sum(kv[1]) / len(kv[1]), reverse=True)
        for combo, _scores in ranked:
            if combo in search.fully:
                continue
            first = search.combos[combo]
            indices = list(range(len(self.settings.valset)))
            search.full = _Eval(
                first.params, indices, first.program, first.hash, 0, False, combo=combo
            )
            return

    def _tell_full(self, search: _Search, ev: _Eval) -> Unit | None:
        score = self._score(ev)
        if score is None:
            return None
        optuna = import_optuna()
        search.study.add_trial(
            optuna.trial.create_trial(
                params=ev.params, distributions=self._distributions(), value=score
            )
        )
        search.full = None
        search.fully.add(ev.combo)
        search.number += 1
        ev.number = search.number
        search.full_evals.append((score, ev.program))
        if search.best_score is None or score > search.best_score:
            search.best_score, search.best = score, ev
        return self._record(search, ev, score, full=True)

    def _record(self, search: _Search, ev: _Eval, score: float, *, full: bool) -> Unit:
        """Checkpoint the trial (``r/{number}``) and record it: its ``compile.trial``
        event goes to :func:`~dspex_actors.optimize._events.record_trial` (the one seam)."""
        trial = Trial(
            number=ev.number,
            instructions=tuple(ev.params[f"{i}_predictor_instruction"] for i in range(self.n_pred)),
            demo_sets=tuple(
                ev.params[f"{i}_predictor_demos"]
                for i in range(self.n_pred)
                if not self.settings.zeroshot
            ),
            score=score,
            minibatch=not full,
            full_eval=full,
        )
        search.trials.append(trial)
        key = f"r/{trial.number}"
        record = trial.as_json()
        known = self.ctx.entries.get(key)
        if known is not None and known != record:
            raise CompileFailure(
                RuntimeError(
                    f"resuming MIPROv2: trial {trial.number} replayed as {record}, "
                    f"but the checkpoint has {known} (another optuna version?)"
                )
            )
        self.ctx.entries[key] = record
        fields = {**record, "best_score": search.best_score}
        return Unit([key], [(TRIAL_EVENT, fields)])

    def _finish(self) -> None:
        search = self.search
        if search is not None and search.best is not None:
            program = search.best.program.deepcopy()
            ranked = sorted(search.full_evals, key=lambda sp: sp[0], reverse=True)
            self.candidates = [{"score": s, "program": p} for s, p in ranked]
        else:
            program = self.ctx.student.deepcopy()
        setattr(program, "_compiled", True)  # noqa: B010
        self.result = program
        self.phase = "done"
        self.done = True

    # --------------------------------------------------------------- requests

    def _wanted(self, busy: Container[str], limit: int) -> list[WorkItem]:
        """The requests the plan needs now, most urgent first (at most ``limit``)."""
        if self.demo_sets is None:
            return self._teacher_items(busy, limit)
        if self.proposals is not None and not self.proposals.ready:
            return self.proposals.requests(busy, limit)
        search = self.search
        if search is None:
            return []
        evals = [e for e in (search.default, search.full) if e is not None] or search.pending
        items: list[WorkItem] = []
        taken: set[str] = set()
        for ev in evals:
            for j in ev.indices:
                key = f"e/{ev.hash}/{j}"
                if key in self.ctx.entries or key in busy or key in taken:
                    continue
                taken.add(key)
                example = self.settings.valset[j]
                items.append(
                    CountedItem.eval(key, ev.program, self.tp.metric, example, self.n_pred)
                )
                if len(items) >= limit:
                    return items
        return items

    def _teacher_items(self, busy: Container[str], limit: int) -> list[WorkItem]:
        taken: set[str] = set()
        items: list[WorkItem] = []
        for position, walk in enumerate(self.walks):
            if walk is None or walk.done or self.demo_programs[position] is not None:
                continue
            items.extend(walk.requests(self.teacher, busy, self.tp.max_concurrency, taken))
            if len(items) >= limit:
                break
        return items[:limit]

    def requests(self, busy: Container[str], limit: int) -> list[WorkItem]:
        if limit <= 0 or self.done:
            return []
        self._reconcile()
        items = []
        for item in self._wanted(busy, limit):
            cost = CountedItem.cost_of(item, self.n_pred)
            if not self._affordable(cost):
                break
            self.reserved[item.key] = cost
            items.append(item)
        return items

    def _affordable(self, cost: int) -> bool:
        cap = self.tp.max_lm_calls
        return cap is None or self.used + sum(self.reserved.values()) + cost <= cap

    def _wanted_unaffordable(self) -> bool:
        if self.tp.max_lm_calls is None:
            return False
        wanted = self._wanted((), 1)
        return bool(wanted) and not self._affordable(CountedItem.cost_of(wanted[0], self.n_pred))

    def _reconcile(self) -> None:
        """Move finished requests from reserved to used, at the calls they really made."""
        entries = self.ctx.entries
        for key in [k for k in self.reserved if k in entries]:
            cost = self.reserved.pop(key)
            self.used += calls_of(key, entries[key], default=cost)

    def progress(self) -> Progress:
        search = self.search
        trials = list(search.trials) if search is not None else []
        best = search.best_score if search is not None else None
        best_trial = search.best.number if search is not None and search.best is not None else None
        told = (search.asked - len(search.pending)) if search is not None else 0
        errors = sum(w.errors for w in self.walks if w is not None)
        details = {
            "trial": told,
            "num_trials": self.settings.num_trials,
            "best_trial": best_trial,
            "lm_calls": self.used,
            "lm_budget": self.tp.max_lm_calls,
            "budget_exhausted": self.budget_exhausted,
            "trials": trials,
        }
        total = self.settings.num_trials
        done = total if self.done else told
        return Progress(done, total, best, self.phase, errors, details)


def _with_lm(program: Module, lm: str | None) -> Module:
    """``program`` with ``lm`` on every predictor that names none (the task model)."""
    if lm is not None:
        for predictor in program.predictors():
            if predictor.lm is None:
                predictor.lm = lm
    return program
