"""Evaluate and compile jobs on the event bus: per-example scores, progress, candidates."""

from __future__ import annotations

from typing import Any

import dspex_actors as dx
from dspex_actors.optimize import BootstrapFewShot, BootstrapFewShotWithRandomSearch
from tests.dspex_actors.optimize.test_compile_jobs import exact, trainset


def contains(example: dx.Example, prediction: Any, trace: Any = None) -> bool:
    return str(example.answer) in str(prediction.answer)


def test_evaluate_publishes_each_example_and_its_progress(system: dx.ActorSystem) -> None:
    devset = trainset()
    evaluate = dx.Evaluate(devset=devset, metric=contains, display_progress=False)
    with system.events.recording(("evaluate",)) as seen:
        result = evaluate(dx.Predict("question -> answer"))
    examples = [e for e in seen if e.topic == ("evaluate", "example")]
    progress = [e for e in seen if e.topic == ("evaluate", "progress")]
    assert sorted(e.data["index"] for e in examples) == list(range(len(devset)))
    scores = {e.data["index"]: e.data["score"] for e in examples}
    assert sum(scores.values()) == 8  # two of ten examples fail the metric
    assert scores == {i: score for i, (_, _, score) in enumerate(result.results)}
    assert [e.data["done"] for e in progress] == list(range(1, len(devset) + 1))
    assert progress[-1].data["total"] == len(devset)
    assert progress[-1].data["score"] == result.score == 80.0
    assert len({e.data["run"] for e in seen}) == 1


def test_a_compile_job_publishes_started_demos_candidates_and_finished(
    system: dx.ActorSystem,
) -> None:
    with system.events.recording(("compile",)) as seen:
        job = system.compile(
            BootstrapFewShot(metric=exact, max_bootstrapped_demos=2),
            student=dx.Predict("question -> answer"),
            trainset=trainset(),
        )
        job.result(timeout=20, display_progress=False)
        search = system.compile(
            BootstrapFewShotWithRandomSearch(metric=exact, num_candidate_programs=1),
            student=dx.Predict("question -> answer"),
            trainset=trainset()[:4],
        )
        search.result(timeout=20, display_progress=False)

    def names(job_id: str) -> list[str]:
        return [e.topic[1] for e in seen if e.data["job"] == job_id]

    assert names(job.id)[0] == "started" and names(job.id)[-1] == "finished"
    assert names(job.id).count("demo.bootstrapped") == 2
    candidates: list[dict[str, Any]] = [
        dict(e.data) for e in seen if e.topic == ("compile", "candidate.evaluated")
    ]
    assert candidates and all(c["job"] == search.id for c in candidates)
    assert all(0 <= c["score"] <= 100 for c in candidates)
    assert candidates[-1]["best_score"] == max(c["score"] for c in candidates)
    finished = next(
        e for e in seen if e.topic == ("compile", "finished") and e.data["job"] == search.id
    )
    assert (
        finished.data["state"] == "done"
        and finished.data["best_score"] == search.status().best_score
    )
