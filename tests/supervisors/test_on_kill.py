"""``Actor.on_kill``: a killed actor's hook, run in the killer's thread, unblocks its thread."""

from __future__ import annotations

import threading
from typing import Any

import pykka
from structlog.testing import capture_logs

import supervisors as sv


class Blocked(sv.Actor):
    """Blocks in a handler until ``gate`` is set; ``on_kill`` sets it."""

    def __init__(self, entered: threading.Event, gate: threading.Event, seen: list[str]) -> None:
        super().__init__()
        self.entered, self.gate, self.seen = entered, gate, seen

    def on_receive(self, message: Any) -> Any:
        self.entered.set()
        self.seen.append(f"released: {self.gate.wait(30)}")
        return None

    def on_kill(self) -> None:
        self.seen.append(f"on_kill in {threading.current_thread().name}")
        self.gate.set()

    def on_stop(self) -> None:
        self.seen.append("on_stop")


def _start_blocked() -> tuple[pykka.ActorRef[Any], threading.Thread, list[str]]:
    entered, gate, seen = threading.Event(), threading.Event(), []
    ref = Blocked.start(entered, gate, seen)
    ref.tell("work")
    assert entered.wait(5)
    thread = next(t for t in threading.enumerate() if t.name == "sv:Blocked" and t.is_alive())
    return ref, thread, seen


def test_a_kill_runs_on_kill_in_the_killers_thread_and_the_thread_is_released() -> None:
    ref, thread, seen = _start_blocked()
    assert sv.kill(ref, quiet=True) is True
    thread.join(5)
    assert not thread.is_alive()  # not the 30 s the handler would have waited
    assert seen == [f"on_kill in {threading.current_thread().name}", "released: True"]


def test_a_kill_by_link_runs_on_kill_too() -> None:
    class Owner(sv.Actor):
        def on_receive(self, message: Any) -> Any:
            self.link(message)
            return None

    ref, thread, seen = _start_blocked()
    owner = Owner.start()
    owner.ask(ref, timeout=5)
    sv.kill(owner, "boom", quiet=True)
    thread.join(5)
    assert not thread.is_alive()
    assert seen[-1] == "released: True"
    assert seen[0].startswith("on_kill in ")
    assert not ref.is_alive()


def test_on_kill_runs_once_and_not_on_an_orderly_stop() -> None:
    ref, thread, seen = _start_blocked()
    sv.kill(ref, quiet=True)
    sv.kill(ref, quiet=True)  # already dead: no second call
    thread.join(5)
    assert [s for s in seen if s.startswith("on_kill")] == seen[:1]
    idle = Blocked.start(threading.Event(), threading.Event(), calm := [])
    assert sv.stop(idle, timeout=5) is True
    assert calm == ["on_stop"]


def test_an_on_kill_that_raises_is_logged_and_the_kill_still_happens() -> None:
    class Raises(sv.Actor):
        def on_kill(self) -> None:
            raise RuntimeError("cannot unblock")

    ref = Raises.start()
    with capture_logs() as logs:
        assert sv.kill(ref, quiet=True) is True
    assert not ref.is_alive()
    (failed,) = [e for e in logs if e["event"] == "on_kill_failed"]
    assert "cannot unblock" in failed["error"]
