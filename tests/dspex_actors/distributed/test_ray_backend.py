"""dx.RayBackend: Evaluate and compile jobs on a local Ray cluster give the local results.

Marked ``ray``; plain ``pytest`` runs them. One Ray for the session (``conftest``);
each test starts its own system, whose coordinator starts two Ray workers, each
with its own local system whose LM is the rule-based server on 127.0.0.1.
"""

from __future__ import annotations

import functools
import json
import pickle
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dspex_actors as dx
import supervisors as sv
from dspex_actors.distributed._backend import worker_config
from dspex_actors.distributed._coordinator import GetWorkers
from dspex_actors.distributed._fanout import RayFanOut
from dspex_actors.testing import RuleBasedLMServer
from dspex_actors.testing._knowledge import DEFAULT_KNOWLEDGE
from tests.dspex_actors.distributed._programs import (
    POISON,
    QA,
    Doomed,
    FailFast,
    contains,
    exact,
    picky,
)
from tests.dspex_actors.distributed.conftest import KEY, KEY_VAR

pytestmark = pytest.mark.ray

CAPITALS = [
    (key.removeprefix("capital of "), answer)
    for key, answer in DEFAULT_KNOWLEDGE.items()
    if key.startswith("capital of ")
]


def capitals(n: int, *, marker: str = "") -> list[dx.Example]:
    return [
        dx.Example(
            question=f"What is the capital of {CAPITALS[i % len(CAPITALS)][0]}? (#{i}){marker}",
            answer=CAPITALS[i % len(CAPITALS)][1],
        ).with_inputs("question")
        for i in range(n)
    ]


@pytest.fixture
def server() -> Iterator[RuleBasedLMServer]:
    with RuleBasedLMServer() as srv:
        yield srv


@pytest.fixture
def system(server: RuleBasedLMServer) -> Iterator[dx.ActorSystem]:
    lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key=KEY)
    with dx.start(lm=lm, cache=False, configure_logs=False, name=f"ray-{time.monotonic_ns()}") as s:
        yield s


@pytest.fixture
def backend(ray_session: dict[str, Any]) -> Iterator[dx.RayBackend]:
    with dx.RayBackend(num_workers=2, max_concurrency_per_worker=8) as b:
        yield b


def coordinator_workers(system: dx.ActorSystem, backend: dx.RayBackend) -> list[Any]:
    workers: list[Any] = backend.coordinator(system).ask(GetWorkers(), timeout=30)
    return workers


def outcome_view(results: list[tuple[dx.Example, Any, float]]) -> list[tuple[Any, ...]]:
    """Per example: the score, and the prediction's fields or the error's type name."""
    view = []
    for example, outcome, score in results:
        if isinstance(outcome, BaseException):
            kind = getattr(outcome, "type_name", type(outcome).__name__)
            view.append((example.question, score, "error", kind))
        else:
            view.append((example.question, score, "ok", outcome.toDict()))
    return view


def asked(server: RuleBasedLMServer, marker: str) -> int:
    """How many requests the server received whose prompt holds ``marker``."""
    return sum(marker in json.dumps(body) for body in server.requests)


# ------------------------------------------------------------ before any request


def test_ray_backend_without_ray_raises_import_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"dspex-actors\[ray\]"):
        dx.RayBackend()


def test_a_lambda_or_local_metric_is_refused_before_any_request(
    system: dx.ActorSystem, server: RuleBasedLMServer
) -> None:
    backend = dx.RayBackend(num_workers=1)  # not started: nothing reaches Ray or the server

    def local_metric(example: dx.Example, prediction: Any) -> bool:
        return True

    for metric in (lambda e, p: True, local_metric):
        evaluate = dx.Evaluate(
            devset=capitals(3), metric=metric, backend=backend, display_progress=False
        )
        with pytest.raises(ValueError, match="module level"):
            evaluate(QA())
    with pytest.raises(TypeError, match="module-level function"):
        dx.Evaluate(
            devset=capitals(3),
            metric=functools.partial(exact),
            backend=backend,
            display_progress=False,
        )(QA())
    assert server.stats()["requests"] == 0
    assert not backend._coordinators


def test_lm_config_for_workers_carries_no_key_and_splits_rpm(
    server: RuleBasedLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key=KEY, rpm=600)
    with dx.start(lm=lm, cache=False, configure_logs=False, name="ray-config") as s:
        config = worker_config(s, 4)
        assert KEY.encode() not in pickle.dumps(config)
        assert KEY not in json.dumps(config.__dict__)
        assert config.key_env == {"default": KEY_VAR}
        assert config.lms["default"]["rpm"] == 150.0
        monkeypatch.delenv(KEY_VAR)
        with pytest.raises(ValueError, match="no environment variable") as info:
            worker_config(s, 4)
        assert KEY not in str(info.value)


# ------------------------------------------------------------ same results


def test_ray_evaluate_gives_the_local_scores_total_and_predictions(
    system: dx.ActorSystem,
    server: RuleBasedLMServer,
    backend: dx.RayBackend,
    ray_session: dict[str, Any],
) -> None:
    devset = capitals(10)
    local = dx.Evaluate(devset=devset, metric=picky, display_progress=False)(QA())
    on_ray = dx.Evaluate(devset=devset, metric=picky, backend=backend, display_progress=False)(QA())
    assert on_ray.score == local.score
    assert outcome_view(on_ray.results) == outcome_view(local.results)
    assert (on_ray.errors, on_ray.metric_errors, on_ray.partial) == (2, 2, False)
    assert server.stats()["requests"] == 20  # 10 local + 10 on the workers, cache off
    # the workers have the key from their environment; Ray's logs never saw it
    infos = [w.handle.ready.remote() for w in coordinator_workers(system, backend)]
    import ray

    assert all(i["lms"]["default"]["has_key"] for i in ray.get(infos, timeout=30))
    session = Path(ray_session["session_dir"])
    leaked = [
        p
        for p in session.rglob("*")
        if p.is_file() and p.stat().st_size < 50_000_000 and KEY.encode() in p.read_bytes()
    ]
    assert leaked == []


def test_results_file_and_resume_work_on_ray(
    system: dx.ActorSystem, server: RuleBasedLMServer, backend: dx.RayBackend, tmp_path: Path
) -> None:
    devset = capitals(8)
    path = tmp_path / "results.jsonl"
    full = dx.Evaluate(devset=devset, metric=exact, results_path=path, display_progress=False)(QA())
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3]))
    server.reset_stats()
    resumed = dx.Evaluate(
        devset=devset, metric=exact, results_path=path, backend=backend, display_progress=False
    )(QA(), resume=True)
    assert resumed.resumed == 3
    assert server.stats()["requests"] == 5
    assert resumed.score == full.score
    assert len(path.read_text().splitlines()) == 8


def test_never_more_than_max_concurrency_in_flight_across_workers(
    server: RuleBasedLMServer, backend: dx.RayBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.latency = 0.05
    lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key=KEY)
    peak = {"in_flight": 0, "held": 0}
    submit = RayFanOut._submit

    def counting_submit(self: RayFanOut[Any]) -> None:
        submit(self)
        with self._lock:
            peak["in_flight"] = max(peak["in_flight"], len(self._pending))
            peak["held"] = max(peak["held"], self._held())

    monkeypatch.setattr(RayFanOut, "_submit", counting_submit)
    with dx.start(lm=lm, cache=False, configure_logs=False, name="ray-bound") as s:
        result = dx.Evaluate(
            devset=capitals(24),
            metric=exact,
            max_concurrency=3,
            backend=backend,
            display_progress=False,
            system=s,
        )(QA())
    assert result.total == 24 and not result.partial
    assert peak["held"] <= 3
    assert peak["in_flight"] == 3  # the bound is reached, not just respected


# ------------------------------------------------------------ our supervision


def test_a_worker_killed_mid_evaluate_has_only_its_unfinished_shard_rerun(
    system: dx.ActorSystem, server: RuleBasedLMServer, backend: dx.RayBackend, tmp_path: Path
) -> None:
    import ray

    devset = capitals(40)
    local = dx.Evaluate(devset=devset, metric=picky, display_progress=False)(QA())
    server.reset_stats()
    server.latency = 0.1
    path = tmp_path / "results.jsonl"
    evaluate = dx.Evaluate(
        devset=devset,
        metric=picky,
        max_concurrency=8,
        backend=backend,
        results_path=path,
        display_progress=False,
    )
    victim = coordinator_workers(system, backend)[0]
    box: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: box.update(result=evaluate(QA())))
    runner.start()
    deadline = time.monotonic() + 60
    while (
        not path.exists() or len(path.read_text().splitlines()) < 8
    ) and time.monotonic() < deadline:
        time.sleep(0.02)
    done_before = [json.loads(line)["index"] for line in path.read_text().splitlines()]
    ray.kill(victim.handle)
    runner.join(timeout=120)
    assert not runner.is_alive()
    result = box["result"]
    assert not result.partial and len(result.results) == 40
    assert result.score == local.score
    assert outcome_view(result.results) == outcome_view(local.results)
    assert len(done_before) >= 8
    for index in done_before:  # finished before the kill: never asked again
        assert asked(server, f"(#{index})") == 1
    assert all(asked(server, f"(#{i})") >= 1 for i in range(40))
    state = sv.get_state(backend.coordinator(system))
    assert state["replaced"] == 1 and victim.id not in state["workers"]


def test_a_worker_that_keeps_dying_escalates_and_evaluate_returns_the_partial_result(
    system: dx.ActorSystem, server: RuleBasedLMServer, ray_session: dict[str, Any]
) -> None:
    poison = dx.Example(question=f"What is the capital of France? {POISON}", answer="Paris")
    devset = [*capitals(6), poison.with_inputs("question")]
    with dx.RayBackend(num_workers=1, max_concurrency_per_worker=2, max_restarts=1) as backend:
        coordinator = backend.coordinator(system)
        result = dx.Evaluate(
            devset=devset, metric=contains, backend=backend, display_progress=False
        )(Doomed())
        assert result.partial and not result.interrupted
        assert all(POISON not in example.question for example, _, _ in result.results)
        assert len(result.results) < len(devset)
        assert all(score == 1.0 for _, _, score in result.results)
        coordinator.actor_stopped.wait(10)
        assert not coordinator.is_alive()


# ------------------------------------------------------------ compile


def test_ray_compile_gives_the_local_program_for_the_same_seed(
    system: dx.ActorSystem, backend: dx.RayBackend
) -> None:
    import ray

    trainset, valset = capitals(6), capitals(10)[6:]

    def compiled(**options: Any) -> dx.Module:
        tp = dx.BootstrapFewShotWithRandomSearch(
            metric=exact,
            num_candidate_programs=3,
            max_bootstrapped_demos=3,
            max_labeled_demos=2,
            seed=7,
        )
        job = system.compile(tp, student=QA(), trainset=trainset, valset=valset, **options)
        return job.result(timeout=120, display_progress=False)

    local = compiled()
    on_ray = compiled(backend=backend)
    assert on_ray.dump_state() == local.dump_state()
    assert local.answer.demos  # the search picked a candidate with demos, not the zero-shot one
    scores = [c["score"] for c in on_ray._candidate_programs]  # type: ignore[attr-defined]
    assert scores == [c["score"] for c in local._candidate_programs]  # type: ignore[attr-defined]
    infos = ray.get(
        [w.handle.ready.remote() for w in coordinator_workers(system, backend)], timeout=30
    )
    assert sum(info["tasks"] for info in infos) >= 4 * 5  # the candidates' evaluations ran there


def test_the_coordinator_watch_replaces_an_idle_worker_and_workers_share_the_rpm(
    server: RuleBasedLMServer, backend: dx.RayBackend
) -> None:
    import ray

    lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key=KEY, rpm=600)
    with dx.start(lm=lm, cache=False, configure_logs=False, name="ray-watch") as s:
        coordinator = backend.coordinator(s)
        assert "ray-watch.ray" in str(s.tree())  # the coordinator is in the system's tree
        first = coordinator_workers(s, backend)
        infos = ray.get([w.handle.ready.remote() for w in first], timeout=30)
        assert [i["lms"]["default"]["rpm"] for i in infos] == [300.0, 300.0]
        ray.kill(first[0].handle)
        deadline = time.monotonic() + 30
        while sv.get_state(coordinator)["replaced"] < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        state = sv.get_state(coordinator)
        assert state["replaced"] == 1 and first[0].id not in state["workers"]
        assert len(state["workers"]) == 2
        result = dx.Evaluate(
            devset=capitals(4), metric=contains, backend=backend, display_progress=False
        )(QA())
        assert result.score == 100.0 and not result.partial


def test_max_errors_on_ray_stops_and_returns_the_partial_result(
    system: dx.ActorSystem, backend: dx.RayBackend
) -> None:
    result = dx.Evaluate(
        devset=capitals(30),
        metric=picky,
        max_errors=2,
        max_concurrency=2,
        backend=backend,
        display_progress=False,
    )(QA())
    assert result.max_errors_reached and result.partial
    assert result.errors == 2 and len(result.results) < 30


def test_stopping_an_evaluation_cancels_its_requests_on_the_workers(
    system: dx.ActorSystem, server: RuleBasedLMServer, backend: dx.RayBackend
) -> None:
    import ray

    workers = coordinator_workers(system, backend)
    server.latency = 5.0  # the first batch is still at the server when max_errors stops it
    devset = [dx.Example(question="Which?", answer="x").with_inputs("question"), *capitals(12)]
    started = time.monotonic()
    result = dx.Evaluate(
        devset=devset,
        metric=contains,
        max_errors=1,
        max_concurrency=6,
        backend=backend,
        display_progress=False,
        timeout=10,
    )(FailFast())
    assert result.max_errors_reached
    deadline = time.monotonic() + 3.0
    running = [1]
    while any(running) and time.monotonic() < deadline:
        running = [i["running"] for i in ray.get([w.handle.ready.remote() for w in workers])]
    assert running == [0, 0]
    assert time.monotonic() - started < 4.5  # cancelled, not waited for (latency 5 s)
