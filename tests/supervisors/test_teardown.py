"""The end of an actor: dead to the world before its last hook, announced after it."""

from __future__ import annotations

import queue
import random
import threading
import uuid
from typing import Any

import pykka
import pytest

import supervisors as sv
from tests.supervisors.helpers import start_watcher


class LastWords(sv.Actor):
    """Records what the world looks like from inside on_stop / on_failure, then waits."""

    def __init__(self, release: threading.Event, fail_stop: bool = False) -> None:
        super().__init__()
        self.release = release
        self.fail_stop = fail_stop
        self.in_hook = threading.Event()
        self.seen: dict[str, Any] = {}

    def _look(self) -> None:
        self.seen = {
            "alive": self.actor_ref.is_alive(),
            "whereis": sv.whereis("last_words"),
            "in_pykka_registry": pykka.ActorRegistry.get_by_urn(self.actor_urn) is not None,
        }
        self.in_hook.set()
        self.release.wait(10)

    def on_stop(self) -> None:
        self._look()
        if self.fail_stop:
            raise RuntimeError("on_stop failed")

    def on_failure(self, *exc_info: Any) -> None:
        self._look()

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise ValueError("crash")
        return message


def _start_named(release: threading.Event, **kwargs: Any) -> tuple[Any, LastWords]:
    with sv.spawn_options(name="last_words"):
        ref = LastWords.start(release, **kwargs)
    actor = sv.actor_of(ref)
    assert isinstance(actor, LastWords)
    return ref, actor


@pytest.mark.parametrize("ending", ["stop", "crash"])
def test_the_actor_is_dead_and_unregistered_before_its_hook_and_announced_after(
    ending: str,
) -> None:
    release = threading.Event()
    ref, actor = _start_named(release)
    wref, watcher = start_watcher()
    wref.ask(("monitor", ref))
    if ending == "stop":
        ref.tell("irrelevant")
        sv.named("last_words").tell("queued")
        ref.stop(block=False)
    else:
        ref.tell("crash")
    assert actor.in_hook.wait(5)
    assert actor.seen == {"alive": False, "whereis": None, "in_pykka_registry": False}
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("too late", timeout=5)  # rejected at once, not left to the hook
    with pytest.raises(queue.Empty):
        watcher.next(timeout=0.2)  # not told yet: the hook is still running
    release.set()
    down = watcher.next()
    assert isinstance(down, sv.Down)
    assert down.reason == "normal" if ending == "stop" else isinstance(down.reason, ValueError)
    sv.stop(wref)


def test_an_exception_in_on_stop_is_the_reason_monitors_hear() -> None:
    release = threading.Event()
    release.set()
    ref, actor = _start_named(release, fail_stop=True)
    wref, watcher = start_watcher()
    wref.ask(("monitor", ref))
    ref.stop(block=False)
    down = watcher.next()
    assert isinstance(down.reason, RuntimeError) and str(down.reason) == "on_stop failed"
    assert actor.exit_reason is down.reason
    sv.stop(wref)


def test_a_monitor_set_during_the_last_hook_gets_the_real_reason_not_noproc() -> None:
    release = threading.Event()
    ref, actor = _start_named(release)
    ref.stop(block=False)
    assert actor.in_hook.wait(5)
    wref, watcher = start_watcher()
    wref.ask(("monitor", ref))
    release.set()
    assert watcher.next().reason == "normal"
    sv.stop(wref)


def test_a_kill_during_the_last_hook_announces_at_once_and_answers_the_stopper() -> None:
    release = threading.Event()
    ref, actor = _start_named(release)
    wref, watcher = start_watcher()
    wref.ask(("monitor", ref))
    stopped = ref.stop(block=False)
    assert actor.in_hook.wait(5)
    assert sv.kill(ref, quiet=True) is True
    assert watcher.next().reason == "killed"
    assert stopped.get(timeout=5) is True  # answered now, not after the hook
    release.set()
    with pytest.raises(queue.Empty):
        watcher.next(timeout=0.2)  # one exit only: the hook's return announces nothing
    sv.stop(wref)


def test_a_kill_during_on_failure_gives_the_crashing_asker_its_exception_at_once() -> None:
    release = threading.Event()
    ref, actor = _start_named(release)
    answer = ref.ask("crash", block=False)
    assert actor.in_hook.wait(5)
    sv.kill(ref, quiet=True)
    with pytest.raises(ValueError, match="crash"):
        answer.get(timeout=5)  # not left waiting for the hook
    release.set()


def test_stop_waits_for_on_stop_and_kills_past_its_timeout() -> None:
    release = threading.Event()
    ref, actor = _start_named(release)
    wref, watcher = start_watcher()
    wref.ask(("monitor", ref))
    assert sv.stop(ref, timeout=0.3) is False  # on_stop still running: killed
    assert actor.in_hook.is_set()
    assert watcher.next().reason == "killed"
    release.set()
    sv.stop(wref)


def test_actor_urns_are_random_version_4_uuid_urns() -> None:
    refs = [sv.Actor.start() for _ in range(200)]
    urns = {r.actor_urn for r in refs}
    for r in refs:
        sv.stop(r)
    assert len(urns) == 200
    for urn in urns:
        parsed = uuid.UUID(urn)
        assert urn == parsed.urn
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_seeding_the_global_random_does_not_repeat_urns() -> None:
    urns = []
    for _ in range(2):
        random.seed(1234)
        ref = sv.Actor.start()
        urns.append(ref.actor_urn)
        sv.stop(ref)
    assert urns[0] != urns[1]
