"""The LM admission: rate limit, breaker and counters behind a lock, used without an ask."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from structlog.testing import capture_logs

import dspex_actors as dx
import supervisors as sv
from dspex_actors.lm import (
    RESTART_POLL,
    Admission,
    AdmissionTable,
    LMClient,
    LMCounters,
    Outcome,
    Planned,
    PlanRequest,
    Refused,
    Wait,
)
from dspex_actors.primitives import CircuitOpen, GetStats, LMBadRequest, LMServerError

_names = itertools.count(1)


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_admission(clock: FakeClock, **lm_kw: Any) -> Admission:
    lm = dx.LM("openai/rule-based", api_base="http://127.0.0.1:9/v1", api_key="x", **lm_kw)
    return Admission("default", lm, requests.Session(), LMCounters(), clock=clock)


def admit_from_threads(admission: Admission, threads: int, per_thread: int) -> list[Any]:
    """Call ``admit`` from ``threads`` threads released together; every verdict."""
    verdicts: list[Any] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait(timeout=10)
        mine = [admission.admit() for _ in range(per_thread)]
        with lock:
            verdicts.extend(mine)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in workers)
    return verdicts


# ------------------------------------------------------------------ the object alone


def test_n_threads_never_take_more_tokens_than_the_bucket_holds() -> None:
    clock = FakeClock()
    admission = make_admission(clock, rpm=600)  # 10 per second, burst 10
    verdicts = admit_from_threads(admission, threads=16, per_thread=50)
    admitted = [v for v in verdicts if v is None]
    assert len(admitted) == 10
    assert all(isinstance(v, Wait) and v.seconds > 0 for v in verdicts if v is not None)
    clock.now += 0.5  # five more tokens
    verdicts = admit_from_threads(admission, threads=16, per_thread=20)
    assert sum(v is None for v in verdicts) == 5
    stats = admission.stats()
    assert stats["rate_limited_locally"] == 16 * 50 - 10 + 16 * 20 - 5


def test_a_half_open_breaker_lets_exactly_one_trial_through_under_contention() -> None:
    clock = FakeClock()
    admission = make_admission(
        clock, breaker_mode="consecutive", breaker_threshold=2, breaker_cooldown=5.0
    )
    for _ in range(2):
        admission.record(Outcome(ok=False, latency_s=0.01, error=LMServerError("500")))
    refused = admission.admit()
    assert isinstance(refused, Refused) and isinstance(refused.error, CircuitOpen)
    clock.now += 5.0
    verdicts = admit_from_threads(admission, threads=16, per_thread=10)
    assert sum(v is None for v in verdicts) == 1
    assert all(isinstance(v, Refused) for v in verdicts if v is not None)
    admission.record(Outcome(ok=True, latency_s=0.01))
    assert admission.breaker_state() == "closed"
    assert admission.admit() is None


def test_outcomes_recorded_from_many_threads_are_all_counted() -> None:
    admission = make_admission(FakeClock())
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait(timeout=10)
        for _ in range(500):
            admission.record(Outcome(ok=True, latency_s=0.001, usage={"prompt_tokens": 2}))

    workers = [threading.Thread(target=work) for _ in range(8)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=30)
    stats = admission.stats()
    assert stats["requests"] == stats["ok"] == 4000
    assert stats["prompt_tokens"] == 8000


def test_the_outcome_that_opens_the_breaker_logs_a_warning_once() -> None:
    admission = make_admission(
        FakeClock(), breaker_mode="consecutive", breaker_threshold=2, breaker_cooldown=5.0
    )
    with capture_logs() as logs:
        for _ in range(4):  # the last two arrive while open: ignored
            admission.record(Outcome(ok=False, latency_s=0.01, error=LMServerError("500")))
    opened = [e for e in logs if e["event"] == "lm.breaker_opened"]
    assert len(opened) == 1
    assert opened[0]["log_level"] == "warning" and opened[0]["failures"] == 2


def test_a_closed_admission_says_wait_and_the_table_forgets_it() -> None:
    table = AdmissionTable()
    admission = make_admission(FakeClock())
    table.publish(admission)
    assert table.get("default") is admission
    table.withdraw(admission)
    assert table.get("default") is None
    assert admission.closed
    assert admission.admit() == Wait(RESTART_POLL)


def test_withdrawing_a_replaced_admission_keeps_the_replacement() -> None:
    table = AdmissionTable()
    old, new = make_admission(FakeClock()), make_admission(FakeClock())
    table.publish(old)
    table.publish(new)
    table.withdraw(old)
    assert table.get("default") is new and not new.closed


def test_plan_refuses_bad_parameters_before_taking_a_token() -> None:
    admission = make_admission(FakeClock(), rpm=60)  # burst 1
    refused = admission.plan([{"role": "user", "content": "hi"}], {"api_key": "nope"})
    assert isinstance(refused, Refused) and isinstance(refused.error, LMBadRequest)
    planned = admission.plan([{"role": "user", "content": "hi"}], {})
    assert isinstance(planned, Planned)
    assert isinstance(admission.plan([{"role": "user", "content": "hi"}], {}), Wait)


# ------------------------------------------------------------ with the client actor


@pytest.fixture(scope="module")
def server() -> Iterator[dx.RuleBasedLMServer]:
    srv = dx.RuleBasedLMServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def lm_server(server: dx.RuleBasedLMServer) -> dx.RuleBasedLMServer:
    server.clear_faults()
    server.reset_stats()
    server.latency = 0.0
    return server


@pytest.fixture
def client_messages(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The type names of every message an LM client handles during the test."""
    seen: list[str] = []
    original = LMClient.on_receive

    def counting(self: LMClient, message: Any) -> Any:
        seen.append(type(message).__name__)
        return original(self, message)

    monkeypatch.setattr(LMClient, "on_receive", counting)
    return seen


def make_system(server: dx.RuleBasedLMServer, **lm_kw: Any) -> dx.ActorSystem:
    return dx.start(
        lm=dx.LM("openai/rule-based", api_base=server.api_base, api_key="x", **lm_kw),
        retry=dx.RetryPolicy(max_attempts=1, deadline=10.0),
        cache=False,
        name=f"adm{next(_names)}",
        configure_logs=False,
    )


def test_requests_are_admitted_and_counted_without_messaging_the_lm_client(
    lm_server: dx.RuleBasedLMServer, client_messages: list[str]
) -> None:
    with make_system(lm_server) as system:
        qa = dx.Predict("question -> answer")
        qa.batch([{"question": f"What is {n} + 1?"} for n in range(20)], max_concurrency=8)
        assert client_messages == []
        stats = system.stats()["lms"]["default"]
    assert client_messages == []  # not even for the stats: they are read, not asked
    assert stats["requests"] == stats["ok"] == 20
    assert lm_server.request_count == 20


def test_the_rate_limit_holds_without_an_ask(
    lm_server: dx.RuleBasedLMServer, client_messages: list[str]
) -> None:
    with make_system(lm_server, rpm=120) as system:  # burst 2, then 2 per second
        qa = dx.Predict("question -> answer")
        started = time.monotonic()
        qa.batch([{"question": f"What is {n} + 2?"} for n in range(4)], max_concurrency=4)
        elapsed = time.monotonic() - started
        stats = system.stats()["lms"]["default"]
    assert client_messages == []
    assert stats["ok"] == 4
    # The 4th token exists 1 s after the bucket was full: a lower bound, safe under load.
    assert elapsed >= 0.95


def test_an_open_breaker_refuses_without_http_and_without_an_ask(
    lm_server: dx.RuleBasedLMServer, client_messages: list[str]
) -> None:
    with make_system(
        lm_server, breaker_mode="consecutive", breaker_threshold=2, breaker_cooldown=30.0
    ) as system:
        qa = dx.Predict("question -> answer")
        lm_server.inject("500", "500")
        for _ in range(2):
            with pytest.raises(dx.LMServerError):
                qa(question="What is 1 + 1?")
        with pytest.raises(dx.CircuitOpen):
            qa(question="What is 2 + 2?")
        assert lm_server.request_count == 2
        assert client_messages == []
        stats = system.stats()["lms"]["default"]
    assert stats["circuit_open_refusals"] == 1
    assert stats["breaker"]["state"] == "open"


def test_a_restarted_client_publishes_a_fresh_admission_and_keeps_the_counts(
    lm_server: dx.RuleBasedLMServer,
) -> None:
    with make_system(
        lm_server, breaker_mode="consecutive", breaker_threshold=1, breaker_cooldown=30.0
    ) as system:
        qa = dx.Predict("question -> answer")
        qa(question="What is 3 + 3?")
        lm_server.inject("500")
        with pytest.raises(dx.LMServerError):
            qa(question="What is 4 + 4?")
        table = system.runtime.admissions
        assert table is not None
        old = table.get("default")
        assert old is not None and old.breaker_state() == "open"
        sv.kill(system.lm().resolve(), reason="chaos")
        assert old.closed  # it died with its owner, before any replacement
        assert old.admit() == Wait(RESTART_POLL)
        sv.wait_for_name(system.lm().name, timeout=5)
        system.lm().ask(GetStats(), timeout=5)  # answered once the replacement started
        new = table.get("default")
        assert new is not None and new is not old and not new.closed
        assert new.breaker_state() == "closed"  # reset: the open breaker is gone
        assert "5" in qa(question="What is 2 + 3?").answer
        stats = system.stats()["lms"]["default"]
    assert stats["client_restarts"] == 1
    assert stats["ok"] == 2 and stats["errors"] == 1  # counted across the restart


def test_the_client_still_answers_plan_requests_and_outcomes_by_message(
    lm_server: dx.RuleBasedLMServer,
) -> None:
    with make_system(lm_server) as system:
        messages = [{"role": "user", "content": "What is 1 + 1?"}]
        planned = system.lm().ask(PlanRequest(messages, {}), timeout=5)
        assert isinstance(planned, Planned) and planned.plan.json["messages"] == messages
        system.lm().tell(Outcome(ok=True, latency_s=0.01, usage={"completion_tokens": 3}))
        stats = system.lm().ask(GetStats(), timeout=5)
    assert stats["requests"] == 1 and stats["completion_tokens"] == 3
