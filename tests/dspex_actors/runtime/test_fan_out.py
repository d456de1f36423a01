"""Many program calls through the one fan-out engine: ``system.fan_out``, ``batch``.

Against a real RuleBasedLMServer on 127.0.0.1 (cache off). Items that must hang
wait on an event in the module's ``forward`` (user code, which the program's own
deadline cannot interrupt): only the engine's kill ends them.
"""

from __future__ import annotations

import _thread
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import dspex_actors as dx
import supervisors as sv
from dspex_actors.runtime import call_result
from dspex_actors.runtime._fanout import GRACE
from tests.dspex_actors.sigint import ctrl_c_delivered


@pytest.fixture
def server() -> Iterator[dx.RuleBasedLMServer]:
    with dx.RuleBasedLMServer() as running:
        yield running


@pytest.fixture
def system(server: dx.RuleBasedLMServer) -> Iterator[dx.ActorSystem]:
    lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key="sk-test")
    with dx.start(
        lm=lm, name=f"fo-{uuid.uuid4().hex[:8]}", cache=False, configure_logs=False
    ) as running:
        yield running


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


class Stuck(dx.Module):
    """Answers, except for questions containing ``marker``: those wait on ``gate``."""

    def __init__(self, gate: threading.Event, marker: str = "stuck") -> None:
        self.qa = dx.Predict("question -> answer")
        self.gate = gate
        self.marker = marker
        self.lock = threading.Lock()
        self.entered = 0
        self.entries = threading.Semaphore(0)

    def forward(self, question: str) -> Any:  # type: ignore[override]
        with self.lock:
            self.entered += 1
        self.entries.release()
        if self.marker in question:
            self.gate.wait(10)
        return self.qa(question=question)


def live_programs(system: dx.ActorSystem) -> int:
    return sv.count_children(system.programs.name).active


def test_a_program_stuck_past_its_deadline_is_killed_and_fails_its_item(
    system: dx.ActorSystem, gate: threading.Event
) -> None:
    inputs = [{"question": f"What is {n} + 1?"} for n in range(4)]
    inputs[1] = {"question": "stuck forever"}
    started = time.monotonic()

    results = Stuck(gate).batch(inputs, max_concurrency=4, timeout=1.5, return_exceptions=True)

    assert time.monotonic() - started < 1.5 + GRACE + 3.0
    assert isinstance(results[1], dx.DeadlineExceeded)
    assert [r.answer for i, r in enumerate(results) if i != 1] == [
        "The answer is 1.",
        "The answer is 3.",
        "The answer is 4.",
    ]
    assert live_programs(system) == 0


def test_ctrl_c_during_a_batch_kills_its_programs(
    system: dx.ActorSystem, gate: threading.Event
) -> None:
    program = Stuck(gate, marker="?")

    def interrupt() -> None:  # Ctrl-C once three programs are stuck in their forward
        for _ in range(3):
            assert program.entries.acquire(timeout=5)
        _thread.interrupt_main()

    interrupter = threading.Thread(target=interrupt)
    with ctrl_c_delivered():  # also when the test run started with SIGINT ignored
        interrupter.start()
        with pytest.raises(KeyboardInterrupt):
            program.batch([{"question": f"q{n}?"} for n in range(20)], max_concurrency=3)
    interrupter.join()
    assert program.entered == 3  # the other 17 never started
    assert live_programs(system) == 0


def test_system_fan_out_is_bounded_ordered_and_its_slow_consumer_holds_the_producers(
    system: dx.ActorSystem, server: dx.RuleBasedLMServer
) -> None:
    qa = dx.Predict("question -> answer")
    taken: list[int] = []
    with system.fan_out(
        range(30), lambda n: (qa, {"question": f"What is {n} + 1?"}), max_concurrency=4
    ) as calls:
        for settled in calls:
            taken.append(settled.index)
            answer = call_result(settled.outcome, 10.0)
            assert answer.answer == f"The answer is {settled.item + 1}."
            assert server.request_count - len(taken) <= 4  # sent, but not taken yet
            time.sleep(0.002)  # a slow consumer
    assert taken == list(range(30))
    assert server.request_count == 30


def test_fan_out_refuses_a_shut_down_system(server: dx.RuleBasedLMServer) -> None:
    lm = dx.LM("openai/rule-based", api_base=server.api_base, api_key="sk-test")
    system = dx.start(lm=lm, name=f"fo-{uuid.uuid4().hex[:8]}", configure_logs=False)
    system.shutdown()
    assert system.closed
    with pytest.raises(RuntimeError, match="shut down"):
        system.fan_out([1], lambda n: (dx.Predict("q -> a"), {"q": n}))
