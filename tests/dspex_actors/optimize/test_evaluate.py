"""Evaluate: fan-out through program actors, bounded concurrency, errors kept, partial
results on max_errors and Ctrl-C, JSONL results with resume, and the progress line.

Every test runs against a real RuleBasedLMServer on 127.0.0.1 (cache off, so the
server's request count is the work done).
"""

from __future__ import annotations

import _thread
import io
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

import dspex_actors as dx
import supervisors as sv
from dspex_actors.optimize._evaluate import (
    Evaluate,
    EvaluationResult,
    RecordedError,
    ResultsFileError,
    input_hash,
)
from dspex_actors.testing._rule_server import DEFAULT_KNOWLEDGE, RuleBasedLMServer

CAPITALS = [
    (key.removeprefix("capital of "), answer)
    for key, answer in DEFAULT_KNOWLEDGE.items()
    if key.startswith("capital of ")
]


def capitals(n: int) -> list[dx.Example]:
    """``n`` capital questions (cycling through the server's table)."""
    return [
        dx.Example(
            question=f"What is the capital of {CAPITALS[i % len(CAPITALS)][0]}? (#{i})",
            answer=CAPITALS[i % len(CAPITALS)][1],
        ).with_inputs("question")
        for i in range(n)
    ]


def exact(example: dx.Example, prediction: Any, trace: Any = None) -> bool:
    return bool(prediction.answer == example.answer)


def contains(example: dx.Example, prediction: Any, trace: Any = None) -> bool:
    return example.answer in prediction.answer


@pytest.fixture
def server() -> Iterator[RuleBasedLMServer]:
    with RuleBasedLMServer() as running:
        yield running


@pytest.fixture
def system(server: RuleBasedLMServer) -> Iterator[dx.ActorSystem]:
    lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key="sk-test")
    with dx.start(lm=lm, name=f"ev-{uuid.uuid4().hex[:8]}", cache=False) as running:
        yield running


def eval_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("dspex:eval-")]


class Gauge(dx.Module):
    """Wraps a predictor; counts its calls and how many run at once (the peak)."""

    def __init__(self) -> None:
        self.qa = dx.Predict("question -> answer")
        self._lock = threading.Lock()
        self._now = 0
        self.peak = 0
        self.calls = 0

    def forward(self, question: str) -> Any:  # type: ignore[override]
        with self._lock:
            self._now += 1
            self.calls += 1
            self.peak = max(self.peak, self._now)
        try:
            return self.qa(question=question)
        finally:
            with self._lock:
                self._now -= 1


class FailOn(dx.Module):
    """A program whose forward raises for questions containing ``marker``."""

    def __init__(self, marker: str) -> None:
        self.qa = dx.Predict("question -> answer")
        self.marker = marker

    def forward(self, question: str) -> Any:  # type: ignore[override]
        if self.marker in question:
            raise ValueError(f"cannot answer {question!r}")
        return self.qa(question=question)


# ------------------------------------------------------------------------ scoring


def test_score_is_a_percentage_and_results_follow_devset_order(
    system: dx.ActorSystem, server: RuleBasedLMServer
) -> None:
    devset = capitals(12)
    devset[3] = dx.Example(question="What is the capital of Atlantis?", answer="Poseidonia")
    devset[3] = devset[3].with_inputs("question")

    result = Evaluate(devset=devset, metric=contains, max_concurrency=4)(
        dx.Predict("question -> answer")
    )

    assert isinstance(result, EvaluationResult)
    assert result.score == round(100 * 11 / 12, 2)
    assert [example for example, _, _ in result.results] == devset
    assert [score for _, _, score in result.results] == [1.0] * 3 + [0.0] + [1.0] * 8
    assert result.results[0][1].answer == "The answer is Paris."
    assert not result.partial and result.errors == 0 and result.total == 12
    assert server.request_count == 12


def test_a_failing_example_scores_failure_score_and_keeps_its_error(
    system: dx.ActorSystem,
) -> None:
    devset = capitals(6)

    def metric(example: dx.Example, prediction: Any) -> float:
        if "Italy" in example.question:
            raise KeyError("metric bug")
        return 1.0

    result = Evaluate(devset=devset, metric=metric, failure_score=-1.0)(FailOn("Germany"))

    outcomes = {
        example.question.split("?")[0][-7:]: (pred, score)
        for example, pred, score in result.results
    }
    errors = [(pred, score) for pred, score in outcomes.values() if isinstance(pred, Exception)]
    assert len(result.results) == 6 and result.errors == 2 and not result.partial
    assert sorted(type(pred).__name__ for pred, _ in errors) == ["KeyError", "ValueError"]
    assert all(score == -1.0 for _, score in errors)
    assert result.score == round(100 * (4 - 2) / 6, 2)


def test_never_more_than_max_concurrency_requests_in_flight(
    system: dx.ActorSystem, server: RuleBasedLMServer
) -> None:
    server.latency = 0.01
    program = Gauge()

    result = Evaluate(devset=capitals(40), metric=contains, max_concurrency=3)(program)

    assert len(result.results) == 40 and result.score == 100.0
    assert 1 <= program.peak <= 3
    assert server.request_count == 40


def test_reaching_max_errors_returns_what_finished_marked_partial(
    system: dx.ActorSystem, server: RuleBasedLMServer
) -> None:
    devset = capitals(30)

    result = Evaluate(devset=devset, metric=contains, max_concurrency=2, max_errors=3)(
        FailOn("capital")
    )

    assert result.partial and not result.interrupted
    assert result.errors >= 3
    assert 3 <= len(result.results) < 30
    assert all(isinstance(pred, ValueError) for _, pred, _ in result.results)
    indexes = [devset.index(example) for example, _, _ in result.results]
    assert indexes == sorted(indexes)


# --------------------------------------------------------------- file and resume


def test_results_file_gets_one_line_per_finished_example(
    system: dx.ActorSystem, tmp_path: Path
) -> None:
    path = tmp_path / "out" / "results.jsonl"
    devset = capitals(8)

    result = Evaluate(devset=devset, metric=contains, results_path=path)(FailOn("Italy"))

    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(r["index"] for r in records) == list(range(8))
    by_index = {r["index"]: r for r in records}
    assert by_index[0]["input_hash"] == input_hash(devset[0])
    assert by_index[0]["prediction"] == {"answer": "The answer is Paris."}
    assert by_index[0]["score"] == 1.0 and by_index[0]["error"] is None
    italy = next(r for r in records if "Italy" in r["example"]["question"])
    assert italy["error"]["type"] == "ValueError" and italy["prediction"] is None
    assert result.score == round(100 * 7 / 8, 2)


def test_resume_skips_examples_already_in_the_results_file(
    system: dx.ActorSystem, tmp_path: Path
) -> None:
    path = tmp_path / "results.jsonl"
    devset = capitals(20)
    full = Evaluate(devset=devset, metric=contains)(dx.Predict("question -> answer"))
    first = Evaluate(
        devset=devset, metric=contains, max_concurrency=1, max_errors=1, results_path=path
    )(FailOn("Ireland"))  # devset[7] fails: the run stops around it
    done_first = len(first.results)
    assert first.partial and done_first < 20
    assert len(path.read_text().splitlines()) == done_first

    # Counted by the program, not the server: the request cancelled when the first
    # run stopped may still reach the server during the second.
    counting = Gauge()
    resumed = Evaluate(devset=devset, metric=contains, results_path=path)(counting, resume=True)

    assert counting.calls == 20 - done_first
    assert resumed.resumed == done_first and len(resumed.results) == 20
    assert not resumed.partial
    recorded = [pred for ex, pred, _ in resumed.results if "Ireland" in ex.question]
    assert isinstance(recorded[0], RecordedError) and recorded[0].type_name == "ValueError"
    assert resumed.score == round(full.score - 100 / 20, 2)
    assert sorted(json.loads(line)["index"] for line in path.read_text().splitlines()) == list(
        range(20)
    )


def test_resume_on_a_changed_devset_raises_a_clear_error(
    system: dx.ActorSystem, server: RuleBasedLMServer, tmp_path: Path
) -> None:
    path = tmp_path / "results.jsonl"
    devset = capitals(5)
    Evaluate(devset=devset, metric=contains, results_path=path)(dx.Predict("question -> answer"))
    changed = [*devset[:2], capitals(9)[8], *devset[3:]]
    server.reset_stats()

    with pytest.raises(ResultsFileError, match=r"devset\[2\] changed"):
        Evaluate(devset=changed, metric=contains, results_path=path)(
            dx.Predict("question -> answer"), resume=True
        )
    with pytest.raises(ResultsFileError, match="different devset"):
        Evaluate(devset=devset[:3], metric=contains, results_path=path)(
            dx.Predict("question -> answer"), resume=True
        )
    assert server.request_count == 0


def test_resume_ignores_a_last_line_cut_short_by_a_crash(
    system: dx.ActorSystem, server: RuleBasedLMServer, tmp_path: Path
) -> None:
    path = tmp_path / "results.jsonl"
    devset = capitals(4)
    Evaluate(devset=devset, metric=contains, results_path=path, max_concurrency=1)(
        dx.Predict("question -> answer")
    )
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])  # the third line half-written
    server.reset_stats()

    result = Evaluate(devset=devset, metric=contains, results_path=path)(
        dx.Predict("question -> answer"), resume=True
    )

    assert server.request_count == 2
    assert result.resumed == 2 and result.score == 100.0
    assert len([json.loads(line) for line in path.read_text().splitlines()]) == 4


def test_resume_needs_a_results_path(system: dx.ActorSystem) -> None:
    with pytest.raises(ValueError, match="results_path"):
        Evaluate(devset=capitals(2), metric=contains)(dx.Predict("q -> a"), resume=True)


def test_examples_without_inputs_are_rejected_before_any_request(
    system: dx.ActorSystem, server: RuleBasedLMServer
) -> None:
    with pytest.raises(ValueError, match="with_inputs"):
        Evaluate(devset=[dx.Example(question="q", answer="a")], metric=contains)
    assert server.request_count == 0


# ------------------------------------------------------------------------ Ctrl-C


def test_ctrl_c_returns_the_partial_result_and_stops_the_work_in_flight(
    system: dx.ActorSystem, server: RuleBasedLMServer, tmp_path: Path
) -> None:
    server.latency = 0.01
    path = tmp_path / "results.jsonl"
    calls = 0
    lock = threading.Lock()

    def metric(example: dx.Example, prediction: Any) -> bool:
        nonlocal calls
        with lock:
            calls += 1
            if calls == 5:
                _thread.interrupt_main()  # Ctrl-C, delivered to the calling (main) thread
        return contains(example, prediction)

    evaluate = Evaluate(devset=capitals(200), metric=metric, max_concurrency=4, results_path=path)
    result = evaluate(dx.Predict("question -> answer"))

    assert result.interrupted and result.partial
    assert 5 <= len(result.results) < 200
    assert len(path.read_text().splitlines()) == len(result.results)
    assert eval_threads() == []
    assert sv.count_children(system.programs.name).active == 0
    assert server.request_count < 200

    counting = Gauge()
    rest = evaluate(counting, resume=True)
    assert not rest.partial and rest.score == 100.0
    assert counting.calls == 200 - len(result.results)


# ----------------------------------------------------------------------- progress


def test_progress_off_a_tty_prints_a_line_every_ten_percent(system: dx.ActorSystem) -> None:
    evaluate = Evaluate(devset=capitals(50), metric=contains, display_progress=True)
    evaluate.progress_stream = io.StringIO()

    evaluate(FailOn("Egypt"))

    lines = evaluate.progress_stream.getvalue().splitlines()
    assert 10 <= len(lines) <= 11
    assert lines[-1].startswith("Evaluate: 50/50  score 96.0%")
    assert lines[-1].endswith("errors 2")
    assert "/s" in lines[-1]


class _FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_tty_redraws_a_single_line(system: dx.ActorSystem) -> None:
    evaluate = Evaluate(devset=capitals(20), metric=contains, display_progress=True)
    evaluate.progress_stream = _FakeTTY()

    evaluate(dx.Predict("question -> answer"))

    text = evaluate.progress_stream.getvalue()
    assert text.startswith("\r") and text.endswith("\n") and text.count("\n") == 1
    assert text.rstrip().split("\r")[-1].startswith("Evaluate: 20/20  score 100.0%")


# ------------------------------------------------------- metric in the program


def test_a_metric_that_calls_an_lm_runs_in_the_examples_program_actor(
    system: dx.ActorSystem, server: RuleBasedLMServer
) -> None:
    judge = dx.Predict("question -> answer")
    seen: list[tuple[bool, str]] = []
    lock = threading.Lock()

    def judged(example: dx.Example, prediction: Any) -> bool:
        verdict = judge(question=example.question)  # an LM call from inside the metric
        with lock:
            seen.append((dx.runtime.current_program() is not None, threading.current_thread().name))
        return verdict.answer == prediction.answer

    with capture_logs() as logs:
        result = Evaluate(devset=capitals(12), metric=judged, max_concurrency=4)(
            dx.Predict("question -> answer")
        )

    assert result.score == 100.0 and server.request_count == 24
    assert all(in_program for in_program, _ in seen) and len(seen) == 12
    assert not any(name.startswith("dspex:eval-") for _, name in seen)
    stops = [e for e in logs if e["event"] == "request.stop"]
    assert len(stops) == 12 and all(e["lm_calls"] == 2 for e in stops)  # one request each


def test_an_example_stuck_past_its_deadline_is_killed_and_fails(
    system: dx.ActorSystem, server: RuleBasedLMServer
) -> None:
    gate = threading.Event()

    class StuckOnItaly(dx.Module):
        def __init__(self) -> None:
            self.qa = dx.Predict("question -> answer")

        def forward(self, question: str) -> Any:  # type: ignore[override]
            if "Italy" in question:
                gate.wait(10)  # user code: only a kill ends it
            return self.qa(question=question)

    try:
        result = Evaluate(devset=capitals(6), metric=contains, timeout=1.5)(StuckOnItaly())
    finally:
        gate.set()

    errors = [pred for _, pred, _ in result.results if isinstance(pred, Exception)]
    assert len(result.results) == 6 and result.errors == 1 and not result.partial
    assert isinstance(errors[0], dx.DeadlineExceeded)
    assert sv.count_children(system.programs.name).active == 0
