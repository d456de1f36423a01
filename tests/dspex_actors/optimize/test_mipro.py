"""dx.MIPROv2 against the rule-based server: the instruction decides the answer format."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors.testing import RuleBasedLMServer

QUESTIONS = [
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is 17 + 25?", "42"),
    ("What is 3 + 4?", "7"),
    ("What is the capital of Italy?", "Rome"),
    ("What is 6 * 7?", "42"),
    ("What is 10 - 3?", "7"),
    ("What is the capital of Spain?", "Madrid"),
]


def _examples(times: int) -> list[dx.Example]:
    return [dx.Example(question=q, answer=a).with_inputs("question") for q, a in QUESTIONS * times]


TRAIN, VAL = _examples(3), _examples(4)


def exact(example: Any, prediction: Any, trace: Any = None) -> bool:
    return bool(prediction.answer == example.answer)


def _optimizer(**overrides: Any) -> dx.MIPROv2:
    args: dict[str, Any] = {
        "metric": exact,
        "auto": None,
        "num_candidates": 6,
        "num_trials": 8,
        "minibatch_size": 10,
        "max_bootstrapped_demos": 2,
        "max_labeled_demos": 2,
    }
    args.update(overrides)
    return dx.MIPROv2(**args)


def _seed_with_simple_tip() -> int:
    """A seed whose proposals include DSPy's "simple" tip (the rules answer it with the
    instruction that gets bare answers); found by the seed's own settings, no LM call."""
    for seed in range(100):
        settings = _optimizer(seed=seed).settings(dx.Predict("question -> answer"), TRAIN, VAL)
        if "simple" in settings.tips[0][1:]:
            return seed
    raise AssertionError("no seed in 0..99 draws the simple tip")


@pytest.fixture
def server() -> Iterator[RuleBasedLMServer]:
    with RuleBasedLMServer(follow_demos=False) as srv:
        yield srv


@pytest.fixture
def system(server: RuleBasedLMServer) -> Iterator[dx.ActorSystem]:
    lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key="sk-test")
    with dx.start(lm=lm, cache=False, name=f"mipro{time.monotonic_ns()}") as sys_:
        yield sys_


def _compile(system: dx.ActorSystem, opt: dx.MIPROv2, **kw: Any) -> tuple[dx.Module, dx.Job]:
    job = system.compile(
        opt, student=dx.Predict("question -> answer"), trainset=TRAIN, valset=VAL, **kw
    )
    return job.result(timeout=120, display_progress=False), job


def _state(program: dx.Module) -> list[tuple[str, list[dict[str, Any]]]]:
    return [(p.signature.instructions, [d.toDict() for d in p.demos]) for p in program.predictors()]


def test_the_compiled_program_beats_the_uncompiled_one_with_a_proposed_instruction(
    system: dx.ActorSystem, server: RuleBasedLMServer
) -> None:
    seed = _seed_with_simple_tip()
    program, job = _compile(system, _optimizer(seed=seed))
    compile_requests = server.request_count
    before = dx.Evaluate(devset=VAL, metric=exact, display_progress=False)(
        dx.Predict("question -> answer")
    )
    after = dx.Evaluate(devset=VAL, metric=exact, display_progress=False)(program)
    assert after.score > before.score
    instruction = program.predictors()[0].signature.instructions
    trials = job.trials()
    best = next(t for t in trials if t.number == job.status().best_trial)
    assert best.full_eval and best.instructions[0] != 0  # not the original instruction
    proposed = {body["messages"][-1]["content"] for body in server.requests}
    assert instruction != dx.Predict("question -> answer").signature.instructions
    assert "bare answer" in instruction
    assert any("proposed_instruction" in text for text in proposed)
    status = job.status()
    assert status.state == "done" and status.phase == "done"
    assert status.trial == status.num_trials == 8
    assert status.lm_calls == compile_requests  # the cache is off: one request per call


def test_a_fixed_seed_gives_the_same_program_and_trials(system: dx.ActorSystem) -> None:
    first, job1 = _compile(system, _optimizer(seed=3))
    second, job2 = _compile(system, _optimizer(seed=3))
    assert _state(first) == _state(second)
    assert job1.trials() == job2.trials()


def test_parallel_trials_are_deterministic_and_run_all_trials(system: dx.ActorSystem) -> None:
    first, job1 = _compile(system, _optimizer(seed=3, parallel_trials=4, max_concurrency=8))
    second, job2 = _compile(system, _optimizer(seed=3, parallel_trials=4, max_concurrency=3))
    assert _state(first) == _state(second)
    assert job1.trials() == job2.trials()
    assert sum(1 for t in job1.trials() if t.minibatch) == 8


def test_the_budget_stops_the_job_with_the_best_program_so_far(
    system: dx.ActorSystem, server: RuleBasedLMServer
) -> None:
    opt = _optimizer(seed=3, max_lm_calls=90)
    program, job = _compile(system, opt)
    status = job.status()
    assert status.state == "done" and status.budget_exhausted
    assert server.request_count <= 90
    assert status.lm_calls == server.request_count and status.lm_budget == 90
    assert status.trial is not None and status.trial < 8
    assert isinstance(program, dx.Predict)


def test_estimate_makes_no_call_and_bounds_the_calls_made(
    system: dx.ActorSystem, server: RuleBasedLMServer
) -> None:
    opt = _optimizer(seed=3)
    estimate = opt.estimate(dx.Predict("question -> answer"), TRAIN, VAL)
    assert server.request_count == 0
    assert set(estimate.by_phase) == {"bootstrap", "propose", "search"}
    assert estimate.lm_calls == sum(estimate.by_phase.values())
    _compile(system, opt)
    assert 0 < server.request_count <= estimate.lm_calls


def test_a_killed_job_resumes_from_its_checkpoint_to_the_same_program(
    system: dx.ActorSystem, server: RuleBasedLMServer, tmp_path: Path
) -> None:
    whole, _ = _compile(system, _optimizer(seed=3))
    uninterrupted = server.request_count
    job = system.compile(
        _optimizer(seed=3),
        student=dx.Predict("question -> answer"),
        trainset=TRAIN,
        valset=VAL,
        checkpoint_dir=tmp_path,
    )
    deadline = time.monotonic() + 60
    while (job.status().trial or 0) < 3 and not job.done():
        assert time.monotonic() < deadline, job.status()
        time.sleep(0.002)
    assert job.cancel(), "the job finished before it could be killed mid-search"
    killed_at = server.request_count
    resumed, job2 = _compile(system, _optimizer(seed=3), checkpoint_dir=tmp_path)
    after = server.request_count - killed_at
    assert _state(resumed) == _state(whole)
    assert after < uninterrupted - 100  # the finished phases and trials were not redone
    assert [t.number for t in job2.trials()] == list(range(1, len(job2.trials()) + 1))


def test_auto_presets_and_settings_follow_dspy() -> None:
    opt = dx.MIPROv2(metric=exact, auto="light")
    settings = opt.settings(dx.Predict("question -> answer"), TRAIN, _examples(20))
    assert settings.num_fewshot == 6 and settings.num_instruct == 3
    assert settings.num_trials == 10  # int(max(2 * 2 * log2(6), 9))
    assert len(settings.valset) == 100 and settings.minibatch
    with pytest.raises(ValueError, match="auto"):
        dx.MIPROv2(metric=exact, auto="light", num_trials=5)
    with pytest.raises(ValueError, match="num_candidates"):
        dx.MIPROv2(metric=exact, auto=None)


def test_a_missing_optuna_is_an_import_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ImportError, match=r"dspex-actors\[mipro\]"):
        dx.MIPROv2(metric=exact)


def _rate_limited_run(rpm: float | None) -> tuple[RuleBasedLMServer, dx.Job, float]:
    """A small MIPROv2 compile against a server answering at most 50 requests a second."""
    with RuleBasedLMServer(follow_demos=False) as server:
        server.rate_limit = (50, 1.0)
        lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key="sk-test", rpm=rpm)
        with dx.start(lm=lm, cache=False, name=f"mipro-rl{time.monotonic_ns()}") as system:
            opt = _optimizer(seed=3, num_candidates=3, num_trials=4)
            job = system.compile(
                opt, student=dx.Predict("question -> answer"), trainset=TRAIN, valset=VAL
            )
            started = time.monotonic()
            try:
                job.result(timeout=180, display_progress=False)
            except Exception:  # the control run may fail on 429s; the caller asserts
                pass
            return server, job, time.monotonic() - started


def test_an_lm_rate_limit_keeps_a_mipro_run_under_a_rate_limiting_servers_limit() -> None:
    # 1200 rpm: 20 a second, bursts of 20, so at most 40 in any second: under the 50.
    server, job, _ = _rate_limited_run(rpm=1200)
    stats = server.stats()
    assert stats.get("rate_limited", 0) == 0  # no request beyond the limit
    assert job.status().state == "done" and job.status().phase == "done"
    assert stats["ok"] == job.status().lm_calls >= 100  # enough calls for the limit to bind
    # The control: the same run without the LM's limit goes over the server's.
    control, _, _ = _rate_limited_run(rpm=None)
    assert control.stats().get("rate_limited", 0) > 0


def test_every_told_trial_is_recorded_once_through_the_one_trial_seam(
    system: dx.ActorSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dspex_actors.optimize import _events

    recorded: list[tuple[str, dict[str, Any]]] = []
    inner = _events.record_trial

    def spy(job_id: str, fields: Any) -> None:
        recorded.append((job_id, dict(fields)))
        inner(job_id, fields)

    monkeypatch.setattr(_events, "record_trial", spy)
    _, job = _compile(system, _optimizer(seed=3, parallel_trials=2))
    assert {job_id for job_id, _ in recorded} == {job.id}
    assert [{k: v for k, v in f.items() if k != "best_score"} for _, f in recorded] == [
        t.as_json() for t in job.trials()
    ]
    assert recorded[-1][1]["best_score"] == job.status().best_score


def test_every_trial_is_a_compile_trial_event_on_the_bus_and_charted_by_the_dashboard(
    system: dx.ActorSystem,
) -> None:
    from dspex_actors.dashboard._state import DashboardState

    with system.events.recording(("compile",)) as seen:
        _, job = _compile(system, _optimizer(seed=3))
    trials = [e for e in seen if e.topic == ("compile", "trial")]
    assert [e.data["number"] for e in trials] == [t.number for t in job.trials()]
    assert [e.data["score"] for e in trials] == [t.score for t in job.trials()]
    assert all(e.data["job"] == job.id for e in trials)
    state = DashboardState()
    for event in seen:
        state.on_event(event)
    (charted,) = state.snapshot()["jobs"]
    assert [row["score"] for row in charted["trials"]] == [t.score for t in job.trials()]
    assert charted["trials"][0]["label"].startswith("trial ")
