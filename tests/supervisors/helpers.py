"""Test actors for the supervisors tests."""

from __future__ import annotations

import queue
import threading
from typing import Any

import supervisors as sv


class Events:
    """A thread-safe, append-only list of what the actors did, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[str, str]] = []

    def add(self, kind: str, tag: str) -> None:
        with self._lock:
            self._items.append((kind, tag))

    def take(self) -> list[tuple[str, str]]:
        with self._lock:
            items, self._items = self._items, []
        return items


class Recorder(sv.Actor):
    """Records its start and stop; ``"crash"`` raises, ``"exit:<reason>"`` exits."""

    def __init__(self, events: Events, tag: str, fail_start: threading.Event | None = None) -> None:
        super().__init__()
        self.events = events
        self.tag = tag
        self.fail_start = fail_start

    def on_start(self) -> None:
        if self.fail_start is not None and self.fail_start.is_set():
            self.events.add("start_failed", self.tag)
            raise RuntimeError(f"{self.tag} cannot start")
        self.events.add("start", self.tag)

    def on_stop(self) -> None:
        self.events.add("stop", self.tag)

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError(f"{self.tag} crashed")
        if isinstance(message, str) and message.startswith("exit:"):
            self.exit(message.split(":", 1)[1])
        return self.tag


class Watcher(sv.Actor):
    """Monitors or links to actors on request and queues every notice it receives."""

    trap_exits = True

    def __init__(self) -> None:
        super().__init__()
        self.inbox: queue.Queue[Any] = queue.Queue()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, tuple) and message[0] == "monitor":
            return self.monitor(message[1])
        if isinstance(message, tuple) and message[0] == "demonitor":
            return self.demonitor(message[1])
        if isinstance(message, tuple) and message[0] == "link":
            self.link(message[1])
            return None
        self.inbox.put(message)
        return None

    def next(self, timeout: float = 5.0) -> Any:
        return self.inbox.get(timeout=timeout)


def start_watcher() -> tuple[Any, Watcher]:
    ref = Watcher.start()
    actor = sv.actor_of(ref)
    assert isinstance(actor, Watcher)
    return ref, actor


def crash(ref: Any) -> None:
    """Crash ``ref`` with an ask: when this returns the actor is dead and its
    supervisor already has the exit notice in its mailbox."""
    try:
        ref.ask("crash", timeout=5.0)
    except RuntimeError:
        return
    raise AssertionError("the actor did not crash")


def sync(sup: Any) -> None:
    """Wait until ``sup`` handled everything already in its mailbox (restarts included)."""
    sv.get_state(sup, timeout=10.0)


def spec(events: Events, tag: str, **kw: Any) -> sv.ChildSpec:
    fail_start = kw.pop("fail_start", None)
    return sv.ChildSpec(id=tag, start=Recorder.start, args=(events, tag, fail_start), **kw)
