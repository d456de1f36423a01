"""Evaluate: fan-out through program actors, bounded concurrency, errors kept, partial
results on max_errors and Ctrl-C, JSONL results with resume, and the progress line.

Every test runs against a real RuleBasedLMServer on 127.0.0.1 (the shared
``lm_server`` and ``system`` fixtures: cache off, so the server's request count is
the work done).
"""

from __future__ import annotations

import _thread
import contextlib
import io
import itertools
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
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
from tests.dspex_actors.fixture_types import SystemFactory
from tests.dspex_actors.optimize.screen import FakeTTY, terminal_rows
from tests.dspex_actors.sigint import ctrl_c_delivered

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
def ctrl_c() -> Iterator[None]:
    """Ctrl-C reaches the test even when the run started with SIGINT ignored."""
    with ctrl_c_delivered():
        yield


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
    system: dx.ActorSystem, lm_server: RuleBasedLMServer
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
    assert lm_server.request_count == 12


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
    system: dx.ActorSystem, lm_server: RuleBasedLMServer
) -> None:
    lm_server.latency = 0.01
    program = Gauge()

    result = Evaluate(devset=capitals(40), metric=contains, max_concurrency=3)(program)

    assert len(result.results) == 40 and result.score == 100.0
    assert 1 <= program.peak <= 3
    assert lm_server.request_count == 40


def test_reaching_max_errors_returns_what_finished_marked_partial(
    system: dx.ActorSystem, lm_server: RuleBasedLMServer
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
    system: dx.ActorSystem, lm_server: RuleBasedLMServer, tmp_path: Path
) -> None:
    path = tmp_path / "results.jsonl"
    devset = capitals(5)
    Evaluate(devset=devset, metric=contains, results_path=path)(dx.Predict("question -> answer"))
    changed = [*devset[:2], capitals(9)[8], *devset[3:]]
    lm_server.reset_stats()

    with pytest.raises(ResultsFileError, match=r"devset\[2\] changed"):
        Evaluate(devset=changed, metric=contains, results_path=path)(
            dx.Predict("question -> answer"), resume=True
        )
    with pytest.raises(ResultsFileError, match="different devset"):
        Evaluate(devset=devset[:3], metric=contains, results_path=path)(
            dx.Predict("question -> answer"), resume=True
        )
    assert lm_server.request_count == 0


def test_resume_ignores_a_last_line_cut_short_by_a_crash(
    system: dx.ActorSystem, lm_server: RuleBasedLMServer, tmp_path: Path
) -> None:
    path = tmp_path / "results.jsonl"
    devset = capitals(4)
    Evaluate(devset=devset, metric=contains, results_path=path, max_concurrency=1)(
        dx.Predict("question -> answer")
    )
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])  # the third line half-written
    lm_server.reset_stats()

    with capture_logs() as logs:
        result = Evaluate(devset=devset, metric=contains, results_path=path)(
            dx.Predict("question -> answer"), resume=True
        )

    assert lm_server.request_count == 2
    assert result.resumed == 2 and result.score == 100.0
    assert len([json.loads(line) for line in path.read_text().splitlines()]) == 4
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [(e["event"], e["path"], e["line"]) for e in warnings] == [
        ("results_file.truncated_line", str(path), 3)
    ]


def test_resume_needs_a_results_path(system: dx.ActorSystem) -> None:
    with pytest.raises(ValueError, match="results_path"):
        Evaluate(devset=capitals(2), metric=contains)(dx.Predict("q -> a"), resume=True)


def test_examples_without_inputs_are_rejected_before_any_request(
    system: dx.ActorSystem, lm_server: RuleBasedLMServer
) -> None:
    with pytest.raises(ValueError, match="with_inputs"):
        Evaluate(devset=[dx.Example(question="q", answer="a")], metric=contains)
    assert lm_server.request_count == 0


# ------------------------------------------------------------------------ Ctrl-C


def test_ctrl_c_returns_the_partial_result_and_stops_the_work_in_flight(
    system: dx.ActorSystem,
    lm_server: RuleBasedLMServer,
    tmp_path: Path,
    ctrl_c: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lm_server.latency = 0.01
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
    notices = [line for line in capsys.readouterr().err.splitlines() if "interrupted" in line]
    assert notices == [
        f"Evaluate interrupted (Ctrl-C): kept {len(result.results)} of 200 examples; "
        f"results in {path} (resume=True runs the rest)"
    ]
    assert eval_threads() == []
    assert sv.count_children(system.programs.name).active == 0
    assert lm_server.request_count < 200

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
    assert "\r" not in evaluate.progress_stream.getvalue()  # a log file gets whole lines
    assert lines[-1].startswith("Evaluate: 50/50 (100%)")
    assert lines[-1].endswith("score 96.0%, errors 2]")
    assert "ex/s" in lines[-1]


def test_progress_on_a_tty_is_a_tqdm_bar_redrawn_in_place(system: dx.ActorSystem) -> None:
    evaluate = Evaluate(devset=capitals(20), metric=contains, display_progress=True)
    evaluate.progress_stream = FakeTTY()

    evaluate(dx.Predict("question -> answer"))

    text = evaluate.progress_stream.getvalue()
    assert text.startswith("\r") and text.endswith("\n") and text.count("\n") == 1
    final = text.rstrip().split("\r")[-1]
    assert final.startswith("Evaluate: 100%|") and "| 20/20 [" in final
    assert final.endswith("ex/s, score 100.0%, errors 0]")
    assert [t for t in threading.enumerate() if t.name == "tqdm_monitor"] == []  # none left


def test_display_progress_false_draws_nothing(
    system: dx.ActorSystem, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluate = Evaluate(devset=capitals(5), metric=contains, display_progress=False)

    assert evaluate(dx.Predict("question -> answer")).score == 100.0
    assert "Evaluate" not in capsys.readouterr().err


@contextlib.contextmanager
def structlog_defaults_reset() -> Iterator[None]:
    """Let ``dx.start(configure_logs=True)`` configure structlog; restore the setup after."""
    was_configured, saved = structlog.is_configured(), structlog.get_config()
    structlog.reset_defaults()
    try:
        yield
    finally:
        structlog.reset_defaults()
        if was_configured:
            structlog.configure(**saved)


def test_a_log_line_during_evaluate_lands_above_the_progress_bar_not_inside_it(
    start_system: SystemFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = FakeTTY()
    monkeypatch.setattr(sys, "stderr", screen)  # the terminal: the bar and the logs
    calls = itertools.count(1)

    def noisy(example: dx.Example, prediction: Any) -> bool:
        # Runs in the example's program actor: log lines come from many threads.
        structlog.get_logger("test").warning("metric.says", call=next(calls))
        return contains(example, prediction)

    with structlog_defaults_reset():
        system = start_system(cache=False, configure_logs=True)  # dx's own log setup
        result = Evaluate(devset=capitals(30), metric=noisy, max_concurrency=2, system=system)(
            dx.Predict("question -> answer")
        )
        system.shutdown()

    assert result.score == 100.0
    rows = terminal_rows(screen.getvalue())
    said = [row for row in rows if "metric.says" in row]
    assert len(said) == 30  # every log line, each on a row of its own ...
    assert not any("Evaluate" in row or "ex/s" in row for row in said)  # ... none in the bar
    assert sorted(int(row.rsplit("call=", 1)[1]) for row in said) == list(range(1, 31))
    bars = [row for row in rows if row.startswith("Evaluate:")]
    assert bars and "| 30/30 [" in bars[-1]


# ------------------------------------------------------- metric in the program


def test_a_metric_that_calls_an_lm_runs_in_the_examples_program_actor(
    system: dx.ActorSystem, lm_server: RuleBasedLMServer
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

    assert result.score == 100.0 and lm_server.request_count == 24
    assert all(in_program for in_program, _ in seen) and len(seen) == 12
    assert not any(name.startswith("dspex:eval-") for _, name in seen)
    stops = [e for e in logs if e["event"] == "request.stop"]
    assert len(stops) == 12 and all(e["lm_calls"] == 2 for e in stops)  # one request each


def test_an_example_stuck_past_its_deadline_is_killed_and_fails(
    system: dx.ActorSystem, lm_server: RuleBasedLMServer
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


# ---------------------------------------------------------- metric errors, limits


def test_a_metric_that_raises_is_logged_once_per_error_type_with_its_traceback(
    system: dx.ActorSystem,
) -> None:
    def shaky(example: dx.Example, prediction: Any) -> bool:
        if "France" in example.question or "Japan" in example.question:
            raise KeyError("no such field")
        if "Italy" in example.question:
            raise ZeroDivisionError("metric bug")
        return True

    devset = capitals(75)  # the 25 capitals three times: 9 metric errors
    with capture_logs() as logs:
        result = Evaluate(devset=devset, metric=shaky, max_concurrency=4)(FailOn("Egypt"))

    logged = [e for e in logs if e["event"] == "evaluate.metric_error"]
    assert sorted(type(e["exc_info"]).__name__ for e in logged) == ["KeyError", "ZeroDivisionError"]
    assert all(e["log_level"] == "warning" for e in logged)
    assert all(e["exc_info"].__traceback__ is not None for e in logged)
    assert all(e["program"] == "FailOn" for e in logged)
    egypt = sum(1 for ex in devset if "Egypt" in ex.question)
    assert result.metric_errors == 9 and result.errors == 9 + egypt
    kept = [pred for _, pred, _ in result.results if isinstance(pred, KeyError | ZeroDivisionError)]
    assert len(kept) == 9  # every error record is kept
    assert "metric_errors=9" in repr(result)


def test_a_metric_error_traceback_reaches_stderr_through_the_default_log_setup(
    start_system: SystemFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken_metric(example: dx.Example, prediction: Any) -> bool:
        raise ZeroDivisionError("metric bug")

    with structlog_defaults_reset():
        system = start_system(cache=False, configure_logs=True)
        result = Evaluate(devset=capitals(4), metric=broken_metric, system=system)(
            dx.Predict("question -> answer")
        )
        system.shutdown()

    err = capsys.readouterr().err
    assert result.errors == result.metric_errors == 4 and result.score == 0.0
    assert err.count("evaluate.metric_error") == 1
    assert "Traceback" in err and "broken_metric" in err and "ZeroDivisionError: metric bug" in err


def test_max_errors_stops_at_the_limit_and_reports_the_errors_that_stopped_it(
    system: dx.ActorSystem, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "results.jsonl"
    evaluate = Evaluate(
        devset=capitals(20), metric=contains, max_errors=5, max_concurrency=16, results_path=path
    )

    result = evaluate(FailOn("capital"))  # all 20 fail, most of them at once

    assert result.max_errors_reached and result.partial and not result.interrupted
    assert result.errors == 5 and len(result.results) == 5 and result.total == 20
    assert len(path.read_text().splitlines()) == 5  # the rest runs again on resume
    assert "max_errors_reached" in repr(result) and "<5 of 20>" in repr(result)
    notices = [line for line in capsys.readouterr().err.splitlines() if "max_errors" in line]
    assert notices == [
        f"Evaluate stopped at max_errors=5: 5 examples failed; kept 5 of 20 examples; "
        f"results in {path} (resume=True runs the rest)"
    ]


def test_errors_read_back_by_resume_do_not_count_towards_max_errors(
    system: dx.ActorSystem, tmp_path: Path
) -> None:
    path = tmp_path / "results.jsonl"
    devset = capitals(12)
    evaluate = Evaluate(
        devset=devset, metric=contains, max_errors=2, max_concurrency=1, results_path=path
    )
    first = evaluate(FailOn("capital of"))  # every example fails: it stops after two
    assert first.errors == 2 and len(first.results) == 2

    again = evaluate(FailOn("Spain"), resume=True)  # one error in this run: under the limit

    assert not again.max_errors_reached and not again.partial
    assert again.resumed == 2 and again.errors == 2 + 1


def test_evaluate_requests_are_named_after_the_users_program(system: dx.ActorSystem) -> None:
    class QA(dx.Module):
        def __init__(self) -> None:
            self.qa = dx.Predict("question -> answer")

        def forward(self, question: str) -> Any:  # type: ignore[override]
            return self.qa(question=question)

    with capture_logs() as logs:
        Evaluate(devset=capitals(4), metric=contains)(QA())

    programs = [e["program"] for e in logs if e["event"] == "request.stop"]
    assert programs == ["QA"] * 4
    assert not any("ScoredRun" in str(value) for e in logs for value in e.values())


# --------------------------------------------------------------- damaged results


def write_results(system: dx.ActorSystem, path: Path, n: int = 4) -> list[dx.Example]:
    devset = capitals(n)
    Evaluate(devset=devset, metric=contains, results_path=path, max_concurrency=1)(
        dx.Predict("question -> answer")
    )
    return devset


def resume(devset: list[dx.Example], path: Path) -> EvaluationResult:
    return Evaluate(devset=devset, metric=contains, results_path=path)(
        dx.Predict("question -> answer"), resume=True
    )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: [1, 2, 3], "not a results record (a JSON object expected, got list)"),
        (lambda r: {**r, "error": "boom"}, "'error' must be null or an object"),
        (lambda r: {**r, "error": {"type": 1}}, "'error' must be an object with string"),
        (lambda r: {**r, "prediction": "Paris"}, "'prediction' must be an object"),
        (lambda r: {**r, "score": "nan"}, "'score' must be a finite number, got 'nan'"),
        (lambda r: {**r, "score": float("nan")}, "'score' must be a finite number, got nan"),
        (lambda r: {**r, "score": True}, "'score' must be a finite number"),
        (lambda r: {**r, "index": "1"}, "'index' must be an int"),
        (lambda r: {k: v for k, v in r.items() if k != "input_hash"}, "no 'input_hash'"),
    ],
    ids=[
        "list",
        "error-str",
        "error-type",
        "prediction",
        "nan-str",
        "nan",
        "bool",
        "index",
        "hash",
    ],
)
def test_a_wrong_typed_results_line_raises_results_file_error_naming_the_line(
    system: dx.ActorSystem,
    lm_server: RuleBasedLMServer,
    tmp_path: Path,
    damage: Any,
    message: str,
) -> None:
    path = tmp_path / "results.jsonl"
    devset = write_results(system, path)
    lines = path.read_text().splitlines()
    lines[1] = json.dumps(damage(json.loads(lines[1])))
    path.write_text("\n".join(lines) + "\n")
    lm_server.reset_stats()

    with pytest.raises(ResultsFileError) as raised:
        resume(devset, path)

    assert str(raised.value).startswith(f"{path}:2: ")
    assert message in str(raised.value)
    assert lm_server.request_count == 0  # raised before anything ran


def test_a_results_line_cut_inside_a_utf8_character_is_a_results_file_error(
    system: dx.ActorSystem, tmp_path: Path
) -> None:
    path = tmp_path / "results.jsonl"
    devset = write_results(system, path)
    data = path.read_bytes().split(b"\n")
    data[1] = data[1][:20] + "é".encode()[:1] + data[1][20:]  # half a character
    path.write_bytes(b"\n".join(data))

    with pytest.raises(ResultsFileError, match=rf"^{path}:2: not a results record \(Unicode"):
        resume(devset, path)


def test_a_last_line_cut_inside_a_utf8_character_is_dropped_with_one_warning(
    system: dx.ActorSystem, lm_server: RuleBasedLMServer, tmp_path: Path
) -> None:
    path = tmp_path / "results.jsonl"
    devset = write_results(system, path)
    lines = path.read_bytes().split(b"\n")[:4]
    lines[3] = lines[3][:30] + "é".encode()[:1]  # a crash in the middle of a character
    path.write_bytes(b"\n".join(lines))
    lm_server.reset_stats()

    with capture_logs() as logs:
        result = resume(devset, path)

    assert result.resumed == 3 and result.score == 100.0 and lm_server.request_count == 1
    assert [e["line"] for e in logs if e["event"] == "results_file.truncated_line"] == [4]


def test_a_complete_but_corrupt_last_line_is_an_error_not_a_crash_mid_write(
    system: dx.ActorSystem, tmp_path: Path
) -> None:
    path = tmp_path / "results.jsonl"
    devset = write_results(system, path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:3], lines[3][:30]]) + "\n")  # ends with a newline

    with pytest.raises(ResultsFileError, match=rf"^{path}:4: not a results record"):
        resume(devset, path)
