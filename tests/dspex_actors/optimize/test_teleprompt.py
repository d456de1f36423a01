"""Teleprompter semantics (DSPy 3.x's LabeledFewShot, BootstrapFewShot, random search),
their independence from concurrency and completion order, and that compiling helps.

Against a real RuleBasedLMServer (the shared ``lm_server`` and ``system`` fixtures,
cache off). The server's demo-following rule makes demos matter: without demos it
answers "The answer is Paris.", with short demos just "Paris", so an exact-match
metric fails zero-shot and passes few-shot.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors.optimize import (
    BootstrapFewShot,
    BootstrapFewShotWithRandomSearch,
    Evaluate,
    LabeledFewShot,
)
from dspex_actors.testing._rule_server import DEFAULT_KNOWLEDGE, Fault, RuleBasedLMServer

CAPITALS = [
    (key.removeprefix("capital of "), answer)
    for key, answer in DEFAULT_KNOWLEDGE.items()
    if key.startswith("capital of ")
]


def qa(country: str, answer: str) -> dx.Example:
    return dx.Example(question=f"What is the capital of {country}?", answer=answer).with_inputs(
        "question"
    )


def capitals(n: int, start: int = 0) -> list[dx.Example]:
    return [qa(*CAPITALS[(start + i) % len(CAPITALS)]) for i in range(n)]


UNKNOWN = [qa("Atlantis", "Poseidonia"), qa("Narnia", "Cair Paravel"), qa("Oz", "Emerald City")]


def exact(example: dx.Example, prediction: Any, trace: Any = None) -> bool:
    return bool(prediction.answer == example.answer)


def only(program: dx.Module) -> dx.Predict:
    """The single predictor of a one-predictor program."""
    (predictor,) = program.predictors()
    return predictor


def demos_of(program: dx.Module) -> dict[str, list[dict[str, Any]]]:
    return {name: [d.toDict() for d in p.demos] for name, p in program.named_predictors()}


class TwoStep(dx.Module):
    def __init__(self) -> None:
        self.rewrite = dx.Predict("question -> query")
        self.answer = dx.Predict("question, query -> answer")

    def forward(self, question: str) -> Any:  # type: ignore[override]
        query = self.rewrite(question=question).query
        return self.answer(question=question, query=query)


# ------------------------------------------------------------------ LabeledFewShot


def test_labeled_few_shot_samples_k_demos_with_its_seed_into_every_predictor(
    system: dx.ActorSystem, lm_server: RuleBasedLMServer
) -> None:
    trainset = capitals(10)

    program = system.compile(LabeledFewShot(k=3, seed=7), student=TwoStep(), trainset=trainset)
    compiled = program.result(timeout=10)

    rng = random.Random(7)
    expected = [rng.sample(trainset, 3), rng.sample(trainset, 3)]
    assert [p.demos for p in compiled.predictors()] == expected
    assert lm_server.request_count == 0
    small = LabeledFewShot(k=16).apply(dx.Predict("question -> answer"), trainset[:2])
    assert only(small).demos == random.Random(0).sample(trainset[:2], 2)
    assert only(LabeledFewShot(k=4, sample=False).apply(small, trainset)).demos == trainset[:4]


# ----------------------------------------------------------------- BootstrapFewShot


def test_bootstrap_keeps_passing_traces_then_fills_up_with_labeled_demos(
    system: dx.ActorSystem,
) -> None:
    a, b, c, d, e = capitals(5)
    x = UNKNOWN[0]
    trainset = [a, x, b, c, d, e]
    tp = BootstrapFewShot(metric=exact, max_bootstrapped_demos=2, max_labeled_demos=4)

    compiled = tp.compile(dx.Predict("question -> answer"), trainset=trainset, system=system)

    augmented = [{"augmented": True, "question": ex.question, "answer": ex.answer} for ex in (a, b)]
    validation = [x, c, d, e]  # not bootstrapped, in trainset order, then shuffled as DSPy
    random.Random(0).shuffle(validation)
    labeled = random.Random(0).sample(validation, 2)
    assert [demo.toDict() for demo in only(compiled).demos] == augmented + [
        ex.toDict() for ex in labeled
    ]
    assert getattr(compiled, "_compiled", False) is True


def test_bootstrap_records_a_demo_per_predictor_of_a_composed_program(
    system: dx.ActorSystem,
) -> None:
    trainset = capitals(3)
    tp = BootstrapFewShot(metric=exact, max_bootstrapped_demos=2, max_labeled_demos=2)

    compiled = tp.compile(TwoStep(), trainset=trainset, system=system)

    demos = demos_of(compiled)
    assert [sorted(d) for d in demos["rewrite"][:2]] == [["augmented", "query", "question"]] * 2
    assert [sorted(d) for d in demos["answer"][:2]] == [
        ["answer", "augmented", "query", "question"]
    ] * 2
    assert [d["answer"] for d in demos["answer"][:2]] == [trainset[0].answer, trainset[1].answer]
    assert demos["rewrite"][0]["question"] == trainset[0].question


def test_bootstrap_demos_do_not_depend_on_concurrency_or_completion_order(
    system: dx.ActorSystem, lm_server: RuleBasedLMServer
) -> None:
    trainset = capitals(14)
    trainset[2:2] = UNKNOWN  # some examples fail the metric
    slow = {"slow": Fault("slow", delay=0.01)}
    results = []
    for concurrency, fault_seed in ((1, None), (16, 1), (16, 2), (5, 3)):
        lm_server.clear_faults()
        if fault_seed is not None:  # random slow requests: a different completion order
            lm_server.set_fault_rates({"slow": 0.4}, seed=fault_seed, templates=slow)
        tp = BootstrapFewShot(
            metric=exact, max_bootstrapped_demos=6, max_labeled_demos=9, max_concurrency=concurrency
        )
        compiled = tp.compile(dx.Predict("question -> answer"), trainset=trainset, system=system)
        results.append(compiled.dump_state())
    assert all(state == results[0] for state in results[1:])
    assert sum(1 for d in results[0]["demos"] if d.get("augmented")) == 6


def test_bootstrap_runs_more_rounds_for_a_failing_example(
    system: dx.ActorSystem, lm_server: RuleBasedLMServer
) -> None:
    trainset = [UNKNOWN[0], *capitals(2)]
    tp = BootstrapFewShot(metric=exact, max_bootstrapped_demos=2, max_rounds=3)

    compiled = tp.compile(dx.Predict("question -> answer"), trainset=trainset, system=system)

    teacher_requests = [r for r in lm_server.requests if "Atlantis" in str(r["messages"][-1])]
    assert [r.get("temperature") for r in teacher_requests] == [0.0, 1.0, 1.0]
    assert [d.get("augmented", False) for d in only(compiled).demos] == [True, True, False]


def test_metric_threshold_decides_which_traces_pass(system: dx.ActorSystem) -> None:
    trainset = capitals(4)

    def graded(example: dx.Example, prediction: Any, trace: Any = None) -> float:
        return 1.0 if example.answer in ("Paris", "Rome") else 0.5

    tp = BootstrapFewShot(
        metric=graded, metric_threshold=0.75, max_bootstrapped_demos=4, max_labeled_demos=4
    )
    compiled = tp.compile(dx.Predict("question -> answer"), trainset=trainset, system=system)

    assert [d.answer for d in only(compiled).demos if d.get("augmented")] == ["Paris", "Rome"]


def test_too_many_errors_fail_the_bootstrap_with_the_error(
    system: dx.ActorSystem, lm_server: RuleBasedLMServer
) -> None:
    lm_server.set_fault_rates({"400": 1.0})
    tp = BootstrapFewShot(metric=exact, max_errors=3, max_concurrency=2)

    job = system.compile(tp, student=dx.Predict("question -> answer"), trainset=capitals(8))

    with pytest.raises(dx.LMBadRequest):
        job.result(timeout=10)
    assert job.status().state == "failed" and job.status().errors == 3


def test_a_compiled_program_beats_the_uncompiled_one(system: dx.ActorSystem) -> None:
    trainset, devset = capitals(10), capitals(12, start=10)
    student = dx.Predict("question -> answer")
    evaluate = Evaluate(devset=devset, metric=exact)
    before = evaluate(student)

    compiled = BootstrapFewShot(
        metric=exact, max_bootstrapped_demos=4, max_labeled_demos=4
    ).compile(student, trainset=trainset, system=system)
    after = evaluate(compiled)

    assert before.score == 0.0  # verbose answers: "The answer is Paris."
    assert after.score == 100.0
    assert after.score > before.score
    assert student.demos == []  # the student itself is untouched


def test_bad_inputs_are_rejected_when_the_job_starts(
    system: dx.ActorSystem, lm_server: RuleBasedLMServer
) -> None:
    student = dx.Predict("question -> answer")
    tp = BootstrapFewShot(metric=exact)
    with pytest.raises(ValueError, match="same program structure"):
        system.compile(tp, student=student, trainset=capitals(2), teacher=TwoStep())
    with pytest.raises(ValueError, match="signatures differ"):
        system.compile(
            tp, student=student, trainset=capitals(2), teacher=dx.Predict("question -> reply")
        )
    compiled = tp.compile(student, trainset=capitals(2), system=system)
    with pytest.raises(ValueError, match="uncompiled"):
        system.compile(tp, student=compiled, trainset=capitals(2))
    with pytest.raises(ValueError, match="with_inputs"):
        system.compile(tp, student=student, trainset=[dx.Example(question="q", answer="a")])
    with pytest.raises(ValueError, match="at least one"):
        system.compile(tp, student=student, trainset=[])
    with pytest.raises(ValueError, match="max_rounds"):
        BootstrapFewShot(metric=exact, max_rounds=0)


# ------------------------------------------------------------------ random search


def test_random_search_scores_every_candidate_and_keeps_the_first_best(
    system: dx.ActorSystem,
) -> None:
    trainset = [*capitals(8), UNKNOWN[0]]
    valset = [*capitals(6, start=8), UNKNOWN[1]]
    tp = BootstrapFewShotWithRandomSearch(
        metric=exact, num_candidate_programs=3, max_bootstrapped_demos=3, max_labeled_demos=4
    )

    job = system.compile(
        tp, student=dx.Predict("question -> answer"), trainset=trainset, valset=valset
    )
    best = job.result(timeout=20)

    candidates = job.candidate_programs
    assert candidates is not None
    assert sorted(c["seed"] for c in candidates) == [-3, -2, -1, 0, 1, 2]
    scores = {c["seed"]: c["score"] for c in candidates}
    assert scores[-3] == 0.0  # zero-shot: verbose answers
    assert scores[-2] == round(100 * 6 / 7, 2)  # few-shot: bare answers; Narnia unknown
    assert max(scores.values()) == scores[-2]
    assert best is next(c["program"] for c in candidates if c["seed"] == -2)  # first best
    assert [c["score"] for c in candidates] == sorted(scores.values(), reverse=True)
    assert len(candidates[0]["subscores"]) == len(valset)
    status = job.status()
    assert status.best_score == scores[-2] and status.done == status.total == 6


def test_random_search_candidates_follow_dspy_seeds(system: dx.ActorSystem) -> None:
    trainset = capitals(10)
    tp = BootstrapFewShotWithRandomSearch(
        metric=exact, num_candidate_programs=3, max_bootstrapped_demos=4, max_labeled_demos=5
    )

    job = system.compile(tp, student=dx.Predict("question -> answer"), trainset=trainset)
    job.result(timeout=20)

    by_seed = {c["seed"]: c["program"] for c in job.candidate_programs or []}
    assert by_seed[-3].demos == []
    assert by_seed[-2].demos == random.Random(0).sample(trainset, 5)
    assert [d.question for d in by_seed[-1].demos[:4]] == [ex.question for ex in trainset[:4]]
    for seed in (0, 1, 2):
        order = list(trainset)
        random.Random(seed).shuffle(order)
        size = random.Random(seed).randint(1, 4)
        augmented = [d for d in by_seed[seed].demos if d.get("augmented")]
        assert [d.question for d in augmented] == [ex.question for ex in order[:size]]
        assert len(by_seed[seed].demos) == 5


def test_random_search_runs_the_teacher_once_per_example_for_all_candidates(
    system: dx.ActorSystem,
) -> None:
    trainset = capitals(12)
    tp = BootstrapFewShotWithRandomSearch(
        metric=exact, num_candidate_programs=6, max_bootstrapped_demos=4, max_concurrency=8
    )

    job = system.compile(tp, student=dx.Predict("question -> answer"), trainset=trainset)
    job.result(timeout=20)

    entries = job._run.checkpoint.load()
    teacher_runs = [key for key in entries if key.startswith("t/")]
    assert len(teacher_runs) <= len(trainset)
    assert len(set(teacher_runs)) == len(teacher_runs)


def test_random_search_stops_at_the_first_candidate_reaching_stop_at_score(
    system: dx.ActorSystem,
) -> None:
    tp = BootstrapFewShotWithRandomSearch(
        metric=exact, num_candidate_programs=4, stop_at_score=100.0
    )

    job = system.compile(tp, student=dx.Predict("question -> answer"), trainset=capitals(6))
    best = job.result(timeout=20)

    assert [c["seed"] for c in job.candidate_programs or []] == [-2, -3]
    assert only(best).demos != []
