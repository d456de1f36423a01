"""Tools as services: a stateful tool is an actor under the system's ``services``
supervisor, shared by programs and restarted (fresh) by its supervisor."""

from __future__ import annotations

import time

import dspex_actors as dx
import supervisors as sv


class Session(sv.Actor):
    """A stateful tool: counts the notes it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.notes: list[str] = []

    def note(self, text: str) -> str:
        """Keep a note; says how many notes are kept."""
        self.notes.append(text)
        return f"{len(self.notes)} note(s) kept"


def wait_for_restart(name: str, old: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ref = sv.whereis(name)
        if ref is not None and ref is not old and ref.is_alive():
            return
        time.sleep(0.01)
    raise AssertionError(f"{name} was not restarted")


def test_a_tool_from_a_service_actor_keeps_state_across_programs_and_restarts_fresh(
    system: dx.ActorSystem,
) -> None:
    system.start_service(Session, name="session")
    tool = dx.Tool.from_actor("session", "note", timeout=5.0)
    assert tool.name == "note"
    assert tool.desc == "Keep a note; says how many notes are kept."
    assert tool.args == {"text": {"type": "string"}}
    agent = dx.ReAct("question -> answer", tools=[tool])

    assert agent(question="note this").trajectory["observation_0"] == "1 note(s) kept"
    assert agent(question="note that").trajectory["observation_0"] == "2 note(s) kept"

    old = sv.whereis("session")
    sv.kill("session")  # killed between calls: its supervisor starts a fresh one
    wait_for_restart("session", old)
    assert agent(question="note again").trajectory["observation_0"] == "1 note(s) kept"
    assert "session" in str(system.tree())


def test_a_dead_service_tool_is_observed_as_an_error_not_a_crash(system: dx.ActorSystem) -> None:
    system.start_service(Session, name="gone", restart="temporary")
    tool = dx.Tool.from_actor("gone", "note", timeout=5.0)
    sv.kill("gone")
    agent = dx.ReAct("question -> answer", tools=[tool])
    pred = agent(question="note this")
    assert pred.trajectory["observation_0"].startswith("Execution error in note: \nTraceback")
    assert "NoProc" in pred.trajectory["observation_0"]
