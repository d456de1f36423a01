"""Bulkheads: each LM its own slots and queue, so a hung provider starves nobody else."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors.lm import Bulkhead
from dspex_actors.primitives import LMQueueFull, LMQueueTimeout
from dspex_actors.testing import Fault, RuleBasedLMServer

QUESTION = {"question": "What is the capital of France?"}


def test_a_bulkhead_refuses_past_its_queue_at_once_and_times_out_a_waiter() -> None:
    bulkhead = Bulkhead("lm", max_in_flight=1, max_queue=1, queue_timeout=0.2)
    held = bulkhead.acquire()
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            bulkhead.acquire()
        except LMQueueFull as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    deadline = time.monotonic() + 5
    while bulkhead.stats()["waiting"] != 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    started = time.monotonic()
    with pytest.raises(LMQueueFull) as full:
        bulkhead.acquire()
    assert time.monotonic() - started < 0.1 and not isinstance(full.value, LMQueueTimeout)
    waiter.join(5)
    assert len(errors) == 1 and isinstance(errors[0], LMQueueTimeout)
    held.release()
    held.release()  # idempotent: the count does not go negative
    assert bulkhead.stats()["in_flight"] == 0
    bulkhead.acquire().release()


@pytest.fixture
def servers() -> Iterator[tuple[RuleBasedLMServer, RuleBasedLMServer]]:
    hung = RuleBasedLMServer()
    hung.set_fault_rates({"hang": 1.0}, templates={"hang": Fault("hang", hang_seconds=30)})
    healthy = RuleBasedLMServer(latency=0.02)
    with hung, healthy:
        yield hung, healthy


def _call(lm: str, question: str, out: list[tuple[str, float]]) -> None:
    started = time.monotonic()
    try:
        dx.Predict("question -> answer", lm=lm)(question=question)
        outcome = "ok"
    except dx.LMError as exc:
        outcome = type(exc).__name__
    out.append((outcome, time.monotonic() - started))


def _run_all(lm: str, n: int, tag: str) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    threads = [
        threading.Thread(target=_call, args=(lm, f"{tag} question {i}?", out)) for i in range(n)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def _until(check: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_a_hung_provider_fills_only_its_own_bulkhead_and_another_keeps_its_latency(
    servers: tuple[RuleBasedLMServer, RuleBasedLMServer],
) -> None:
    hung, healthy = servers
    lms = {
        "default": dx.LM("openai/ok", api_base=healthy.api_base, api_key=None),
        "slow": dx.LM(
            "anthropic/claude-hung",
            api_base=hung.anthropic_base,
            api_key="k",
            max_in_flight=2,
            max_queue=2,
            queue_timeout=0.5,
            timeout=4.0,
        ),
    }
    retry = dx.RetryPolicy(max_attempts=1, deadline=20.0)
    with dx.start(lms=lms, retry=retry, cache=None, name="bulkhead") as system:
        baseline = _run_all("default", 16, "baseline")
        slow_out: list[tuple[str, float]] = []
        slow_threads = [
            threading.Thread(target=_call, args=("slow", f"slow {i}?", slow_out)) for i in range(8)
        ]
        for t in slow_threads[:2]:  # these two take both slots and hang on the server
            t.start()
        _until(lambda: hung.request_count == 2)
        for t in slow_threads[2:4]:  # these two wait in the queue
            t.start()
        stats = lambda: system.lm("slow").ask(dx.messages.GetStats(), timeout=5)  # noqa: E731
        _until(lambda: stats()["bulkhead"]["waiting"] == 2)
        for t in slow_threads[4:]:  # the queue is full: these fail at once
            t.start()
        loaded = _run_all("default", 16, "loaded")
        for t in slow_threads:
            t.join(30)
    assert [o for o, _ in baseline] == ["ok"] * 16
    assert [o for o, _ in loaded] == ["ok"] * 16
    base_p50 = statistics.median(s for _, s in baseline)
    loaded_p50 = statistics.median(s for _, s in loaded)
    # Generous under a shared 2-core machine: the point is "not behind a 4 s hang".
    assert loaded_p50 < 3 * base_p50 + 0.25, (base_p50, loaded_p50)
    assert max(s for _, s in loaded) < 2.0
    by_kind: dict[str, list[float]] = {}
    for outcome, seconds in slow_out:
        by_kind.setdefault(outcome, []).append(seconds)
    assert sorted(by_kind) == ["LMQueueFull", "LMQueueTimeout", "LMTimeout"], by_kind
    assert len(by_kind["LMQueueFull"]) == 4 and max(by_kind["LMQueueFull"]) < 0.5
    assert len(by_kind["LMQueueTimeout"]) == 2
    assert all(0.45 <= s < 3.0 for s in by_kind["LMQueueTimeout"])
    assert len(by_kind["LMTimeout"]) == 2  # the two in flight end at the read timeout
    assert hung.request_count == 2  # nothing past the bulkhead reached the server
