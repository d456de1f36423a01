"""system.start_program: a composed module as a long-lived supervision subtree."""

from __future__ import annotations

import time
from typing import Any

import pytest

import dspex_actors as dx
import supervisors as sv


class Memory(dx.Module):
    """A part with state: remembers every input it was given."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.seen: list[str] = []

    def forward(self, **inputs: Any) -> dx.Prediction:
        self.seen.append(str(inputs["text"]))
        return dx.Prediction(text=f"{self.tag}{len(self.seen)}")


class ThreeParts(dx.Module):
    def __init__(self) -> None:
        self.first = Memory("a")
        self.middle = Memory("b")
        self.last = Memory("c")
        self.answer = dx.Predict("question, notes -> answer")

    def forward(self, question: str) -> dx.Prediction:
        a = self.first(text=question).text
        b = self.middle(text=a).text
        c = self.last(text=b).text
        pred = self.answer(question=question, notes=f"{a} {b} {c}")
        return dx.Prediction(answer=pred.answer, notes=f"{a} {b} {c}")


def wait_restarted(name: str, old: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ref = sv.whereis(name)
        if ref is not None and ref is not old and ref.is_alive():
            return
        time.sleep(0.01)
    raise AssertionError(f"{name} was not restarted")


def test_killing_the_middle_part_restarts_it_and_the_parts_after_it_only(
    system: dx.ActorSystem,
) -> None:
    prog = system.start_program(ThreeParts, name="three")
    assert prog(question="What is the capital of France?").notes == "a1 b1 c1"
    assert prog(question="again").notes == "a2 b2 c2"  # parts keep state across calls
    drawing = str(prog.tree())
    for part in ("three.first", "three.middle", "three.last", "three.answer"):
        assert part in drawing
    assert "three" in str(system.tree())

    first, middle, last = (sv.whereis(f"three.{p}") for p in ("first", "middle", "last"))
    sv.kill("three.middle")
    wait_restarted("three.middle", middle)
    wait_restarted("three.last", last)
    wait_restarted("three.coordinator", None)
    assert sv.whereis("three.first") is first  # before the crash: untouched
    # first keeps its state (3rd call); middle and last start over.
    assert prog(question="third").notes == "a3 b1 c1"

    assert prog.stop() is True
    assert sv.whereis("three") is None and sv.whereis("three.first") is None
    with pytest.raises(sv.NoProc):
        prog(question="after stop")


def test_an_error_in_a_part_reaches_the_caller_and_the_part_keeps_running(
    system: dx.ActorSystem, lm_server: Any
) -> None:
    prog = system.start_program(ThreeParts, name="errs")
    lm_server.inject(dx.Fault("400"))
    with pytest.raises(dx.LMBadRequest):
        prog(question="q")
    assert prog(question="q").notes == "a2 b2 c2"


def test_start_program_refuses_a_bad_name_before_starting_anything(
    system: dx.ActorSystem,
) -> None:
    with pytest.raises(ValueError, match="non-empty name"):
        system.start_program(ThreeParts, name="")
