"""Compile jobs: a supervised actor per compile, a handle returned at once, status
that never waits on the job, cancel, crash/kill and resume from checkpoints without
redoing finished work, log events.

Against a real RuleBasedLMServer (the shared ``lm_server``/``system``/``start_system``
fixtures; cache off: the server's request count is the LM work done).
Synchronisation is by events set inside metrics and programs, never by sleeping.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

import dspex_actors as dx
import supervisors as sv
from dspex_actors.optimize import (
    BootstrapFewShot,
    BootstrapFewShotWithRandomSearch,
    CheckpointError,
    CompileError,
    JobCancelled,
)
from dspex_actors.optimize._compile import MAX_METRIC_CRASHES
from dspex_actors.testing._rule_server import DEFAULT_KNOWLEDGE, RuleBasedLMServer
from tests.dspex_actors.fixture_types import SystemFactory
from tests.dspex_actors.optimize.screen import FakeTTY, terminal_rows

CAPITALS = [
    (key.removeprefix("capital of "), answer)
    for key, answer in DEFAULT_KNOWLEDGE.items()
    if key.startswith("capital of ")
]


def qa(country: str, answer: str) -> dx.Example:
    return dx.Example(question=f"What is the capital of {country}?", answer=answer).with_inputs(
        "question"
    )


def trainset() -> list[dx.Example]:
    """Ten examples, two of which fail the metric: a bootstrap with room for 10 demos
    visits every one of them exactly once (no speculative work is thrown away)."""
    examples = [qa(*pair) for pair in CAPITALS[:8]]
    examples[2:2] = [qa("Atlantis", "Poseidonia")]
    examples[6:6] = [qa("Narnia", "Cair Paravel")]
    return examples


def exact(example: dx.Example, prediction: Any, trace: Any = None) -> bool:
    return bool(prediction.answer == example.answer)


def bootstrap(metric: Callable[..., Any] = exact, **kwargs: Any) -> BootstrapFewShot:
    options: dict[str, Any] = {"max_bootstrapped_demos": 10, "max_labeled_demos": 12}
    options.update(kwargs)
    return BootstrapFewShot(metric=metric, **options)


class Blocking:
    """A metric that, on call number ``at``, signals ``entered`` and waits for ``release``."""

    def __init__(self, at: int, *, raises: bool = False) -> None:
        self.at = at
        self.raises = raises
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()
        self.__qualname__ = "Blocking"

    def __call__(self, example: dx.Example, prediction: Any, trace: Any = None) -> bool:
        with self._lock:
            self.calls += 1
            call = self.calls
        if call == self.at:
            if self.raises:
                raise RuntimeError("metric failed once")
            self.entered.set()
            assert self.release.wait(10), "test never released the metric"
        return exact(example, prediction)


def job_threads(job_id: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"dspex:job-{job_id}"]


def wait_threads_gone(threads: list[threading.Thread], timeout: float = 5.0) -> None:
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), thread.name


def live_programs(system: dx.ActorSystem, count: int) -> list[Any]:
    """The program actors running under ``system``, once there are ``count`` (5 s at most:
    a program may already run its forward a moment before its supervisor records it)."""
    deadline = time.monotonic() + 5.0
    while True:
        refs = [c.ref for c in sv.which_children(system.programs.name) if c.ref is not None]
        if len(refs) >= count or time.monotonic() > deadline:
            return refs
        time.sleep(0.01)


def uninterrupted(
    system: dx.ActorSystem, lm_server: RuleBasedLMServer, **kwargs: Any
) -> tuple[Any, int]:
    """The dump_state and server request count of an undisturbed compile."""
    lm_server.reset_stats()
    job = system.compile(
        bootstrap(**kwargs), student=dx.Predict("question -> answer"), trainset=trainset()
    )
    state = job.result(timeout=10).dump_state()
    count = lm_server.request_count
    lm_server.reset_stats()
    return state, count


# ------------------------------------------------------------------ the handle


def test_compile_returns_at_once_and_status_never_waits_for_the_job(
    system: dx.ActorSystem,
) -> None:
    metric = Blocking(at=1)
    job = system.compile(
        bootstrap(metric), student=dx.Predict("question -> answer"), trainset=trainset()
    )
    assert metric.entered.wait(5)  # the job actor is now stuck inside the metric

    started = time.monotonic()
    status = job.status()
    assert time.monotonic() - started < 0.5
    assert status.state == "running" and not status.finished
    assert status.phase == "bootstrapping" and status.total == 10
    assert status.id == job.id and status.teleprompter == "BootstrapFewShot"
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        job.result(timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 2.0

    metric.release.set()
    compiled = job.result(timeout=10)
    status = job.status()
    assert status.state == "done" and status.done == status.total == 10
    assert len([d for d in compiled.predictors()[0].demos if d.get("augmented")]) == 8
    assert job.result(timeout=0) is compiled


def test_the_job_is_a_transient_child_of_teleprompters_that_ends_normally(
    system: dx.ActorSystem,
) -> None:
    metric = Blocking(at=1)
    job = system.compile(
        bootstrap(metric), student=dx.Predict("question -> answer"), trainset=trainset()
    )
    assert metric.entered.wait(5)
    ref = job.ref
    assert ref is not None

    children = sv.which_children(system.teleprompters.name)
    assert [(c.ref, c.restart) for c in children] == [(ref, "transient")]
    assert "CompileJob" in str(system.tree())

    metric.release.set()
    job.result(timeout=10)
    assert ref.actor_stopped.wait(5)
    actor = sv.actor_of(ref)
    assert actor is None or actor.exit_reason == "normal"  # normal: not restarted
    assert job.status().restarts == 0
    wait_threads_gone(job_threads(job.id))


def test_cancel_stops_the_job_and_its_requests_in_flight(
    system: dx.ActorSystem, lm_server: RuleBasedLMServer
) -> None:
    lm_server.latency = 30.0  # requests would hang until cancelled
    entered = threading.Semaphore(0)

    class Entering(dx.Module):
        def __init__(self) -> None:
            self.qa = dx.Predict("question -> answer")

        def forward(self, question: str) -> Any:  # type: ignore[override]
            entered.release()
            return self.qa(question=question)

    job = system.compile(bootstrap(max_concurrency=4), student=Entering(), trainset=trainset())
    for _ in range(4):  # four teacher runs in flight, the most max_concurrency allows
        assert entered.acquire(timeout=5)
    ref = job.ref
    assert ref is not None
    programs = live_programs(system, 4)
    assert len(programs) == job.status().in_flight == 4
    assert job_threads(job.id) == []  # requests fan out with no thread of their own

    started = time.monotonic()
    assert job.cancel() is True
    with pytest.raises(JobCancelled):
        job.result(timeout=5)
    assert job.status().state == "cancelled" and job.status().in_flight == 0
    assert ref.actor_stopped.wait(5)
    for program in programs:
        assert not program.is_alive()  # killed by the cancel, not left to time out
    assert sv.count_children(system.programs.name).active == 0
    assert time.monotonic() - started < 5
    assert job.cancel() is False


def test_a_system_shutdown_fails_a_running_job(
    start_system: SystemFactory, lm_server: RuleBasedLMServer
) -> None:
    lm_server.latency = 30.0
    system = start_system(cache=False)
    job = system.compile(bootstrap(), student=dx.Predict("question -> answer"), trainset=trainset())
    system.shutdown()
    with pytest.raises(CompileError, match=r"shut down|stopped before it finished"):
        job.result(timeout=5)


# ------------------------------------------------------------- crash and resume


def test_a_metric_that_raises_once_crashes_the_job_which_resumes_without_redoing_work(
    system: dx.ActorSystem, lm_server: RuleBasedLMServer
) -> None:
    expected_state, expected_requests = uninterrupted(system, lm_server, max_concurrency=2)
    metric = Blocking(at=4, raises=True)

    job = system.compile(
        bootstrap(metric, max_concurrency=2),
        student=dx.Predict("question -> answer"),
        trainset=trainset(),
    )
    compiled = job.result(timeout=10)

    assert job.status().restarts == 1
    assert compiled.dump_state() == expected_state
    assert lm_server.request_count == expected_requests == 10


def test_killing_the_job_actor_mid_run_resumes_without_redoing_work(
    system: dx.ActorSystem, lm_server: RuleBasedLMServer
) -> None:
    expected_state, expected_requests = uninterrupted(system, lm_server, max_concurrency=2)
    metric = Blocking(at=4)
    job = system.compile(
        bootstrap(metric, max_concurrency=2),
        student=dx.Predict("question -> answer"),
        trainset=trainset(),
    )
    assert metric.entered.wait(5)
    old = job.ref
    assert old is not None

    assert sv.kill(old) is True
    new = sv.wait_for_name(job.actor_name, timeout=5)  # restarted by teleprompters
    assert new is not old
    metric.release.set()  # the abandoned thread of the killed actor finishes its metric call
    compiled = job.result(timeout=10)

    assert job.status().restarts == 1
    assert compiled.dump_state() == expected_state
    assert lm_server.request_count == expected_requests


def test_a_metric_that_keeps_raising_is_counted_as_errors_after_limited_crashes(
    system: dx.ActorSystem,
) -> None:
    def broken(example: dx.Example, prediction: Any, trace: Any = None) -> bool:
        raise ZeroDivisionError("metric bug")

    job = system.compile(
        bootstrap(broken, max_errors=3),
        student=dx.Predict("question -> answer"),
        trainset=trainset(),
    )

    with pytest.raises(ZeroDivisionError, match="metric bug"):
        job.result(timeout=10)
    status = job.status()
    assert status.state == "failed" and status.restarts == MAX_METRIC_CRASHES
    assert status.errors == 3 and "ZeroDivisionError" in (status.error or "")


def test_a_checkpoint_file_resumes_a_stopped_compile_in_a_new_system(
    start_system: SystemFactory, lm_server: RuleBasedLMServer, tmp_path: Path
) -> None:
    with start_system(cache=False) as system:
        expected_state, expected_requests = uninterrupted(system, lm_server)
        metric = Blocking(at=5)
        job = system.compile(
            bootstrap(metric, max_concurrency=1),
            student=dx.Predict("question -> answer"),
            trainset=trainset(),
            checkpoint_dir=tmp_path,
        )
        assert metric.entered.wait(5)
        job.cancel()
        metric.release.set()
        with pytest.raises(JobCancelled):
            job.result(timeout=5)
        path = job.checkpoint_path
        assert path is not None and path.parent == tmp_path.resolve()
        wait_threads_gone(job_threads(job.id))

    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["teleprompter"] == "BootstrapFewShot"
    finished = [key for key in data["entries"] if key.startswith("t/")]
    assert 4 <= len(finished) < 10
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left

    with start_system(cache=False) as system:
        # Same teleprompter (the metric is named "Blocking" again), student and
        # trainset: the same fingerprint, so the same checkpoint file.
        job = system.compile(
            bootstrap(Blocking(at=0), max_concurrency=1),
            student=dx.Predict("question -> answer"),
            trainset=trainset(),
            checkpoint_dir=tmp_path,
        )
        assert job.checkpoint_path == path
        compiled = job.result(timeout=10)
        assert compiled.dump_state() == expected_state
        assert job.status().requests == expected_requests - len(finished)


def test_a_checkpoint_file_cannot_be_shared_or_corrupt(
    system: dx.ActorSystem, lm_server: RuleBasedLMServer, tmp_path: Path
) -> None:
    lm_server.latency = 30.0
    tp = bootstrap()
    first = system.compile(
        tp, student=dx.Predict("question -> answer"), trainset=trainset(), checkpoint_dir=tmp_path
    )
    with pytest.raises(CheckpointError, match="in use"):
        system.compile(
            tp,
            student=dx.Predict("question -> answer"),
            trainset=trainset(),
            checkpoint_dir=tmp_path,
        )
    first.cancel()
    path = first.checkpoint_path
    assert path is not None
    path.write_text("{not json")
    with pytest.raises(CheckpointError, match="not JSON"):
        system.compile(
            tp,
            student=dx.Predict("question -> answer"),
            trainset=trainset(),
            checkpoint_dir=tmp_path,
        )


def test_without_checkpoint_dir_the_checkpoint_lives_in_the_job_handle(
    system: dx.ActorSystem,
) -> None:
    job = system.compile(bootstrap(), student=dx.Predict("question -> answer"), trainset=trainset())
    job.result(timeout=10)
    assert job.checkpoint_path is None
    entries = job._run.checkpoint.load()
    assert sorted(k for k in entries if k.startswith("v/")) == sorted(f"v/{i}/0" for i in range(10))


# ------------------------------------------------------------------------ events


def test_progress_is_logged_as_structlog_events(system: dx.ActorSystem) -> None:
    with capture_logs() as logs:
        job = system.compile(
            bootstrap(max_bootstrapped_demos=2),
            student=dx.Predict("question -> answer"),
            trainset=trainset(),
        )
        job.result(timeout=10)
        search = system.compile(
            BootstrapFewShotWithRandomSearch(metric=exact, num_candidate_programs=1),
            student=dx.Predict("question -> answer"),
            trainset=trainset()[:4],
        )
        search.result(timeout=10)

    def events(job_id: str) -> list[dict[str, Any]]:
        return [dict(e) for e in logs if e.get("job") == job_id]

    names = [e["event"] for e in events(job.id)]
    assert names[0] == "compile.started" and names[-1] == "compile.finished"
    assert names.count("demo.bootstrapped") == 2
    assert [e["example"] for e in events(job.id) if e["event"] == "demo.bootstrapped"] == [0, 1]
    assert events(job.id)[-1]["state"] == "done"
    evaluated = [e for e in events(search.id) if e["event"] == "candidate.evaluated"]
    assert sorted(e["seed"] for e in evaluated) == [-3, -2, -1, 0]
    assert max(e["best_score"] for e in evaluated) == 75.0  # Atlantis is unknown


# ---------------------------------------------------------------- deadlines

_HANG = threading.Event()
"""Module-level (a compile deep-copies its programs, and an Event cannot be copied)."""


class HangsOnAtlantis(dx.Module):
    def __init__(self) -> None:
        self.qa = dx.Predict("question -> answer")

    def forward(self, question: str) -> Any:  # type: ignore[override]
        if "Atlantis" in question:
            _HANG.wait(10)  # user code: the program's own deadline cannot end it
        return self.qa(question=question)


def test_a_teacher_run_stuck_past_its_deadline_is_killed_and_counted_as_an_error(
    start_system: SystemFactory,
) -> None:
    retry = dx.RetryPolicy(deadline=1.5)  # generous: only the stuck run may pass it
    _HANG.clear()
    try:
        with start_system(cache=False, retry=retry) as system:
            job = system.compile(bootstrap(), student=HangsOnAtlantis(), trainset=trainset())
            compiled = job.result(timeout=10)  # the job's deadline timer woke it
            status = job.status()
            entries = job._run.checkpoint.load()
            assert sv.count_children(system.programs.name).active == 0
    finally:
        _HANG.set()
    assert status.state == "done" and status.errors == 1
    assert entries["t/2/0"]["error"]["type"] == "DeadlineExceeded"  # trainset[2] is Atlantis
    assert len([d for d in compiled.predictors()[0].demos if d.get("augmented")]) == 8


# ------------------------------------------------------------ metric errors


def always_raises(example: dx.Example, prediction: Any, trace: Any = None) -> bool:
    raise ZeroDivisionError("metric bug")


def test_a_bootstrap_whose_metric_raises_on_every_example_ends_failed_with_that_error(
    system: dx.ActorSystem,
) -> None:
    with capture_logs() as logs:
        job = system.compile(  # the defaults: max_errors=10 is never reached by 4 examples
            BootstrapFewShot(metric=always_raises),
            student=dx.Predict("question -> answer"),
            trainset=trainset()[:4],
        )
        with pytest.raises(ZeroDivisionError, match="metric bug"):
            job.result(timeout=10)

    status = job.status()
    assert status.state == "failed" and "ZeroDivisionError: metric bug" in (status.error or "")
    assert status.errors == 4 and status.restarts == MAX_METRIC_CRASHES
    logged = [e for e in logs if e["event"] == "compile.metric_error"]
    assert len(logged) == 1 and logged[0]["log_level"] == "warning"
    assert isinstance(logged[0]["exc_info"], ZeroDivisionError)
    assert logged[0]["exc_info"].__traceback__ is not None


def test_a_random_search_whose_metric_raises_on_every_example_ends_failed_with_that_error(
    system: dx.ActorSystem,
) -> None:
    with capture_logs() as logs:
        job = system.compile(
            BootstrapFewShotWithRandomSearch(metric=always_raises, num_candidate_programs=1),
            student=dx.Predict("question -> answer"),
            trainset=trainset()[:4],
        )
        with pytest.raises(ZeroDivisionError, match="metric bug"):
            job.result(timeout=20)

    assert job.status().state == "failed"
    assert len([e for e in logs if e["event"] == "compile.metric_error"]) == 1


def test_a_metric_that_raises_on_some_examples_still_compiles(system: dx.ActorSystem) -> None:
    def picky(example: dx.Example, prediction: Any, trace: Any = None) -> bool:
        if "Atlantis" in example.question or "Narnia" in example.question:
            raise KeyError("no such city")
        return exact(example, prediction)

    job = system.compile(
        bootstrap(picky), student=dx.Predict("question -> answer"), trainset=trainset()
    )
    compiled = job.result(timeout=10)

    assert job.status().state == "done" and job.status().errors == 2
    assert len([d for d in compiled.predictors()[0].demos if d.get("augmented")]) == 8


# -------------------------------------------------------- damaged checkpoints


def finished_checkpoint(system: dx.ActorSystem, directory: Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint file of a finished bootstrap of ``trainset()``, and its JSON."""
    job = system.compile(
        bootstrap(),
        student=dx.Predict("question -> answer"),
        trainset=trainset(),
        checkpoint_dir=directory,
    )
    job.result(timeout=10)
    assert job.checkpoint_path is not None
    return job.checkpoint_path, json.loads(job.checkpoint_path.read_text())


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("t/0/0", "x", "entry 't/0/0': the entry must be an object"),
        ("t/0/0", {"ok": True, "prediction": {}, "trace": "x"}, "field 'trace' must be a list"),
        ("t/1/0", {"ok": True, "prediction": [], "trace": []}, "'prediction' must be an object"),
        ("t/1/0", {"ok": False, "error": "boom"}, "field 'error' must be an object"),
        ("v/0/0", {"ok": "yes"}, "entry 'v/0/0': field 'ok' must be a bool"),
        ("v/0/0", {"ok": True, "error": None, "demos": {"self": "bad"}}, "demos['self']"),
        ("v/0/0", {"ok": True, "error": None, "demos": {"self": [1]}}, "demos['self'][0]"),
        ("e/abc/0", {"score": 1.0, "error": None}, "not an entry this teleprompter writes"),
        ("x", 1, "entry 'x': not an entry this teleprompter writes"),
    ],
)
def test_a_checkpoint_with_wrong_typed_entries_is_refused_before_the_job_starts(
    system: dx.ActorSystem,
    lm_server: RuleBasedLMServer,
    tmp_path: Path,
    key: str,
    value: Any,
    message: str,
) -> None:
    path, data = finished_checkpoint(system, tmp_path)
    data["entries"][key] = value  # the fingerprint is still right
    path.write_text(json.dumps(data))
    lm_server.reset_stats()
    jobs_before = {c.ref for c in sv.which_children(system.teleprompters.name)}

    with pytest.raises(CheckpointError, match=re.escape(message)) as raised:
        system.compile(
            bootstrap(),
            student=dx.Predict("question -> answer"),
            trainset=trainset(),
            checkpoint_dir=tmp_path,
        )

    assert str(path) in str(raised.value)
    jobs_after = {c.ref for c in sv.which_children(system.teleprompters.name)}
    assert jobs_after <= jobs_before  # no job started, so no crash loop
    assert lm_server.request_count == 0


def test_a_checkpoint_cut_inside_a_utf8_character_is_a_checkpoint_error(
    system: dx.ActorSystem, tmp_path: Path
) -> None:
    path, data = finished_checkpoint(system, tmp_path)
    data["entries"]["t/0/0"]["prediction"]["answer"] = "Zürich"
    raw = json.dumps(data, ensure_ascii=False).encode()
    path.write_bytes(raw[: raw.index("ü".encode()) + 1])

    with pytest.raises(CheckpointError, match="is not JSON: UnicodeDecodeError"):
        system.compile(
            bootstrap(),
            student=dx.Predict("question -> answer"),
            trainset=trainset(),
            checkpoint_dir=tmp_path,
        )


# ------------------------------------------------------------ names and progress


class QA(dx.Module):
    def __init__(self) -> None:
        self.qa = dx.Predict("question -> answer")

    def forward(self, question: str) -> Any:  # type: ignore[override]
        return self.qa(question=question)


def test_compile_requests_and_events_name_the_users_program_not_internal_wrappers(
    system: dx.ActorSystem,
) -> None:
    with capture_logs() as logs:
        system.compile(bootstrap(), student=QA(), trainset=trainset()[:3]).result(timeout=10)
        system.compile(
            bootstrap(), student=dx.Predict("question -> answer"), trainset=trainset()[:3]
        ).result(timeout=10)

    assert {e["program"] for e in logs if e["event"] == "request.stop"} == {
        "QA",
        "Predict(question -> answer)",  # a bare Predict, named by its signature
    }
    shown = [e["predictors"] for e in logs if e["event"] == "demo.bootstrapped"]
    assert shown == [["qa"]] * 2 + [["Predict(question -> answer)"]] * 2  # Atlantis fails
    assert not any("TracedRun" in str(v) or "'self'" in str(v) for e in logs for v in e.values())


def test_job_result_shows_progress_on_stderr_while_it_waits(
    system: dx.ActorSystem, capsys: pytest.CaptureFixture[str]
) -> None:
    job = system.compile(bootstrap(), student=dx.Predict("question -> answer"), trainset=trainset())
    job.result(timeout=10)
    lines = capsys.readouterr().err.splitlines()
    finals = [line for line in lines if line.startswith("BootstrapFewShot: 10/10 (100%)")]
    assert len(finals) == 1 and "done, errors 0" in finals[0] and "unit/s" in finals[0]

    tp = bootstrap()
    tp.compile(
        dx.Predict("question -> answer"), trainset=trainset(), system=system, display_progress=False
    )
    assert "BootstrapFewShot:" not in capsys.readouterr().err


def test_job_progress_bar_is_cleared_on_a_timeout_and_left_when_the_job_ends(
    system: dx.ActorSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = FakeTTY()
    monkeypatch.setattr(sys, "stderr", screen)
    metric = Blocking(at=3)
    job = system.compile(
        bootstrap(metric), student=dx.Predict("question -> answer"), trainset=trainset()
    )
    assert metric.entered.wait(5)

    with pytest.raises(TimeoutError):
        job.result(timeout=0.3)
    assert "BootstrapFewShot" in screen.getvalue()
    assert terminal_rows(screen.getvalue()) == [""]  # drawn, then cleared
    metric.release.set()
    job.result(timeout=10)

    rows = terminal_rows(screen.getvalue())
    assert len(rows) == 2 and rows[1] == ""  # one bar row, left in place, then a newline
    assert rows[0].startswith("BootstrapFewShot: 100%|") and "| 10/10 [" in rows[0]
