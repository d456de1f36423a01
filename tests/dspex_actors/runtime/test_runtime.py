"""The request path end to end, against a real rule-based server on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from typing import Any

import pykka
import pytest
from structlog.testing import capture_logs

import dspex_actors as dx
import supervisors as sv
from tests.dspex_actors.fixture_types import SystemFactory


@pytest.fixture
def system_options() -> dict[str, Any]:
    """Retries here back off in milliseconds, within a 10 s deadline."""
    return {"retry": dx.RetryPolicy(base_delay=0.01, max_delay=0.05, deadline=10.0)}


class QA(dx.Signature):
    """Answer questions with short factoid answers."""

    question: str = dx.InputField()
    answer: str = dx.OutputField(desc="often between 1 and 5 words")


def test_predict_returns_a_prediction_from_the_lm(
    start_system: SystemFactory, lm_server: dx.RuleBasedLMServer
) -> None:
    with start_system():
        pred = dx.Predict(QA)(question="What is the capital of France?")
    assert isinstance(pred, dx.Prediction)
    assert "Paris" in pred.answer
    assert lm_server.request_count == 1


def test_chain_of_thought_adds_reasoning(
    start_system: SystemFactory, lm_server: dx.RuleBasedLMServer
) -> None:
    with start_system():
        pred = dx.ChainOfThought("question -> answer")(question="What is 17 + 25?")
    assert "42" in pred.answer
    assert pred.reasoning
    prompt = lm_server.requests[-1]["messages"][0]["content"]
    assert "`reasoning`" in prompt


def test_outputs_are_converted_to_their_annotated_types(start_system: SystemFactory) -> None:
    with start_system():
        pred = dx.Predict("question -> total: int, words: list[str], ok: bool")(
            question="What is 2 + 3?"
        )
    assert pred.total == 5
    assert isinstance(pred.words, list)
    assert isinstance(pred.ok, bool)


def test_missing_or_unknown_inputs_fail_before_any_io(
    start_system: SystemFactory, lm_server: dx.RuleBasedLMServer
) -> None:
    with start_system():
        qa = dx.Predict(QA)
        with pytest.raises(dx.SignatureError, match="question"):
            qa()
        with pytest.raises(dx.SignatureError, match="colour"):
            qa(question="q", colour="red")
        with pytest.raises(dx.SignatureError):
            qa.batch([{"question": "ok"}, {"nope": 1}])
    assert lm_server.request_count == 0


def test_a_malformed_signature_string_is_a_clear_error() -> None:
    with pytest.raises(dx.SignatureError, match="->"):
        dx.Predict("question answer")


def test_calling_a_module_without_a_system_says_what_to_do() -> None:
    with pytest.raises(dx.NoSystemError, match=r"dx\.start"):
        dx.Predict(QA)(question="q")


def test_second_identical_call_is_served_by_the_cache_with_a_fresh_copy(
    start_system: SystemFactory, lm_server: dx.RuleBasedLMServer
) -> None:
    with start_system() as system:
        qa = dx.Predict("question -> words: list[str]")
        first = qa(question="What is the capital of France?")
        first.words.append("MUTATED")
        second = qa(question="What is the capital of France?")
        assert "MUTATED" not in second.words
        assert lm_server.request_count == 1
        assert system.stats()["cache"]["hits"] == 1


def test_cache_file_survives_a_cache_actor_crash(
    start_system: SystemFactory, lm_server: dx.RuleBasedLMServer, tmp_path: Any
) -> None:
    config = dx.CacheConfig(path=tmp_path / "cache.sqlite3")
    with start_system(cache=config) as system:
        qa = dx.Predict(QA)
        qa(question="What is the capital of Japan?")
        # The file write is a tell: let the cache handle it before the crash.
        system.cache.ask(dx.messages.GetStats(), timeout=5)
        old = system.cache.resolve()
        sv.kill(old)
        sv.wait_for_name(system.cache.name, timeout=5)
        qa(question="What is the capital of Japan?")
        assert lm_server.request_count == 1  # the file answered after the restart
        stats = system.stats()["cache"]
        assert stats["hits"] == 1


def test_a_dead_cache_is_a_miss_not_a_failure(start_system: SystemFactory) -> None:
    with start_system() as system:
        sv.terminate_child(system.root, "cache")
        pred = dx.Predict(QA)(question="What is the capital of Italy?")
        assert "Rome" in pred.answer


def test_retryable_faults_are_retried_and_the_lm_client_never_restarts(
    start_system: SystemFactory, lm_server: dx.RuleBasedLMServer
) -> None:
    retry = dx.RetryPolicy(max_attempts=6, base_delay=0.001, max_delay=0.01, deadline=10)
    with start_system(retry=retry) as system:
        lm_server.inject("500", dx.Fault("429", retry_after=0.01), "drop", "garbage", "503")
        with capture_logs() as logs:
            pred = dx.Predict(QA)(question="What is the capital of Spain?")
        assert "Madrid" in pred.answer
        assert lm_server.request_count == 6
        retries = [e for e in logs if e["event"] == "request.retry"]
        assert len(retries) == 5
        crashed = [e for e in logs if e["event"] == "worker_crashed"]
        assert len(crashed) == 5
        node = system.tree().find("lm:default")
        assert node is not None and node.restarts == 0
        stats = system.stats()["lms"]["default"]
        assert stats["errors"] == 5 and stats["ok"] == 1


def test_a_bad_request_is_not_retried(
    start_system: SystemFactory, lm_server: dx.RuleBasedLMServer
) -> None:
    with start_system():
        lm_server.inject("400")
        with pytest.raises(dx.LMBadRequest) as info:
            dx.Predict(QA)(question="What is the capital of Peru?")
    assert info.value.attempts == 1
    assert lm_server.request_count == 1


def test_retries_stop_at_max_attempts_with_the_last_typed_error(
    start_system: SystemFactory, lm_server: dx.RuleBasedLMServer
) -> None:
    retry = dx.RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.002, deadline=10)
    with start_system(retry=retry):
        lm_server.inject("500", "500", "500", "500")
        with pytest.raises(dx.LMServerError) as info:
            dx.Predict(QA)(question="What is the capital of Chile?")
    assert info.value.attempts == 3
    assert lm_server.request_count == 3


def test_open_circuit_fails_fast_without_io(
    start_system: SystemFactory, lm_server: dx.RuleBasedLMServer
) -> None:
    retry = dx.RetryPolicy(max_attempts=1, deadline=10)
    lm_kw = {"breaker_mode": "consecutive", "breaker_threshold": 2, "breaker_cooldown": 60.0}
    with start_system(retry=retry, lm_options=lm_kw, cache=False):
        qa = dx.Predict(QA)
        lm_server.inject("500", "500")
        for _ in range(2):
            with pytest.raises(dx.LMServerError):
                qa(question="What is the capital of Kenya?")
        before = lm_server.request_count
        with pytest.raises(dx.CircuitOpen):
            qa(question="What is the capital of Kenya?")
        assert lm_server.request_count == before


def test_a_hung_server_ends_in_deadline_exceeded_and_leaves_no_worker(
    start_system: SystemFactory, lm_server: dx.RuleBasedLMServer
) -> None:
    retry = dx.RetryPolicy(max_attempts=4, base_delay=0.01, deadline=0.3)
    with start_system(retry=retry) as system:
        lm_server.inject(dx.Fault("hang", hang_seconds=5))
        with pytest.raises(dx.DeadlineExceeded):
            dx.Predict(QA)(question="What is the capital of Egypt?")
        assert sv.count_children(system.programs.name).active == 0


def test_unparsable_output_falls_back_to_json_then_reports_the_raw_text(
    start_system: SystemFactory, lm_server: dx.RuleBasedLMServer
) -> None:
    with start_system(cache=False):
        qa = dx.Predict(QA)
        lm_server.inject("bad_format")
        pred = qa(question="What is the capital of Canada?")  # JSON fallback succeeds
        assert "Ottawa" in pred.answer
        assert lm_server.request_count == 2
        lm_server.inject("bad_format", "bad_format")
        with pytest.raises(dx.AdapterParseError) as info:
            qa(question="What is the capital of Canada?")
        assert info.value.text


class RAG(dx.Module):
    def __init__(self) -> None:
        self.rewrite = dx.Predict("question -> query")
        self.answer = dx.ChainOfThought("context: list[str], question -> answer")

    def forward(self, question: str) -> dx.Prediction:
        query = self.rewrite(question=question).query
        return self.answer(context=[query], question=question)


def test_a_composed_module_runs_in_one_program_actor(
    start_system: SystemFactory, lm_server: dx.RuleBasedLMServer
) -> None:
    with start_system(), capture_logs() as logs:
        pred = RAG()(question="What is the capital of France?")
    assert pred.answer
    stops = [e for e in logs if e["event"] == "request.stop"]
    assert len(stops) == 1
    assert stops[0]["lm_calls"] == 2
    assert lm_server.request_count == 2
    assert [name for name, _ in RAG().named_predictors()] == ["rewrite", "answer.predict"]


def test_batch_keeps_input_order(start_system: SystemFactory) -> None:
    with start_system():
        qa = dx.Predict("question -> answer")
        inputs = [{"question": f"What is {n} + 1?"} for n in range(40)]
        results = qa.batch(inputs, max_concurrency=8)
    assert [r.answer for r in results] == [f"The answer is {n + 1}." for n in range(40)]


def test_batch_reports_failures_without_losing_the_successes(
    start_system: SystemFactory, lm_server: dx.RuleBasedLMServer
) -> None:
    with start_system(cache=False):
        qa = dx.Predict(QA)
        lm_server.inject("400")
        with pytest.raises(dx.BatchError) as info:
            qa.batch([{"question": f"What is {n} + 1?"} for n in range(5)], max_concurrency=1)
    results = info.value.results
    assert len(info.value.errors) == 1
    assert isinstance(results[0], dx.LMBadRequest)
    assert all(isinstance(r, dx.Prediction) for r in results[1:])


def test_the_api_key_never_appears_in_logs_tree_stats_or_cache(
    start_system: SystemFactory, lm_server: dx.RuleBasedLMServer, tmp_path: Any
) -> None:
    config = dx.CacheConfig(path=tmp_path / "c.sqlite3")
    with capture_logs() as logs, start_system(api_key="sk-SECRET-KEY", cache=config) as system:
        lm_server.inject("500")
        dx.Predict(QA)(question="What is the capital of Norway?")
        text = repr(logs) + repr(system.tree()) + repr(system.stats()) + repr(system.lms)
    text += (tmp_path / "c.sqlite3").read_bytes().decode("latin-1")
    assert "SECRET" not in text


def test_the_lm_client_is_restarted_and_callers_keep_working(start_system: SystemFactory) -> None:
    with start_system() as system:
        qa = dx.Predict(QA)
        qa(question="What is the capital of France?")
        system.stats()  # outcomes are tells: let the client count the first call
        sv.kill(system.lm().resolve(), reason="chaos")
        sv.wait_for_name(system.lm().name, timeout=5)
        assert "Rome" in qa(question="What is the capital of Italy?").answer
        stats = system.stats()["lms"]["default"]
        assert stats["client_restarts"] == 1
        assert stats["ok"] == 2  # counters survive the restart


def test_tree_shows_a_program_waiting_on_its_worker(
    start_system: SystemFactory, lm_server: dx.RuleBasedLMServer
) -> None:
    with start_system() as system:
        lm_server.inject(dx.Fault("hang", hang_seconds=5))
        entered = threading.Event()
        failure: list[BaseException] = []

        def call() -> None:
            entered.set()
            try:
                dx.Predict(QA)(question="What is the capital of Ghana?")
            except BaseException as exc:  # collected for the assert below
                failure.append(exc)

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        entered.wait(5)
        programs = sv.wait_for_name(system.programs.name)
        node = None
        for _ in range(2000):  # bounded poll of a snapshot, no sleep
            tree = system.tree()
            programs_node = tree.find("programs")
            assert programs_node is not None
            waiting = [c for c in programs_node.children if "waiting on 1 worker" in (c.info or "")]
            if waiting:
                node = waiting[0]
                break
            threading.Event().wait(0.005)
        assert node is not None, system.tree()
        assert node.actor_class == "ProgramActor"
        assert "Predict(QA)" in (node.info or "")
        system.shutdown()
        caller.join(10)
        assert programs is not None


def test_shutdown_leaves_no_thread_running(start_system: SystemFactory) -> None:
    before = {t for t in threading.enumerate() if t.name.startswith("sv:")}
    system = start_system()
    dx.Predict(QA).batch([{"question": f"What is {n} * 3?"} for n in range(20)], max_concurrency=4)
    system.shutdown()
    left = {t for t in threading.enumerate() if t.name.startswith(("sv:", "dspex:"))} - before
    assert {t for t in left if t.is_alive()} == set()


def test_shutdown_after_every_actor_was_stopped_from_outside_does_not_raise(
    start_system: SystemFactory,
) -> None:
    system = start_system()
    pykka.ActorRegistry.stop_all(block=True, timeout=10.0)  # as a test fixture would
    system.shutdown()
    assert system.state == "stopped"


def test_current_system_is_the_last_started_and_shutdown_is_idempotent(
    start_system: SystemFactory,
) -> None:
    first = start_system()
    second = start_system()
    assert dx.current_system() is second
    second.shutdown()
    second.shutdown()
    assert dx.current_system() is first
    first.shutdown()
    with pytest.raises(dx.NoSystemError):
        dx.current_system()


def test_programs_follow_their_supervisor_when_it_dies(
    start_system: SystemFactory, lm_server: dx.RuleBasedLMServer
) -> None:
    retry = dx.RetryPolicy(deadline=20.0)
    with start_system(retry=retry) as system:
        lm_server.inject(dx.Fault("hang", hang_seconds=10))
        outcome: list[BaseException] = []

        def call() -> None:
            try:
                dx.Predict(QA)(question="What is the capital of Mali?")
            except BaseException as exc:  # collected for the asserts below
                outcome.append(exc)

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        programs = system.programs.name
        for _ in range(2000):  # bounded poll of a snapshot, no sleep
            if sv.count_children(programs).active == 1:
                break
            threading.Event().wait(0.005)
        started = time.monotonic()
        sv.kill(programs, reason="chaos")
        caller.join(5)
        assert not caller.is_alive()
        assert time.monotonic() - started < 2.0  # not the 20 s deadline
        assert isinstance(outcome[0], dx.DeadlineExceeded)  # Cancelled is one
        sv.wait_for_name(programs, timeout=5)
        assert sv.count_children(programs).active == 0
