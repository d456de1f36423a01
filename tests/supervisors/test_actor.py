"""Actor semantics: crashes, start, links, monitors, kill, selective receive."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

import supervisors as sv
from tests.supervisors.helpers import Events, Recorder, crash, start_watcher


class Echo(sv.Actor):
    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise ValueError("bad message")
        if message == "system_exit":
            raise SystemExit(3)
        return message


def test_exception_in_ask_reaches_asker_and_crashes_actor() -> None:
    ref = Echo.start()
    with pytest.raises(ValueError, match="bad message"):
        ref.ask("crash", timeout=5)
    assert not ref.is_alive()
    actor = sv.actor_of(ref)
    assert actor is not None
    assert isinstance(actor.exit_reason, ValueError)


def test_exception_in_tell_crashes_actor_and_monitor_gets_exception_as_reason() -> None:
    wref, watcher = start_watcher()
    ref = Echo.start()
    mref = wref.ask(("monitor", ref))
    ref.tell("crash")
    down = watcher.next()
    assert isinstance(down, sv.Down)
    assert down.ref == mref
    assert down.actor is ref
    assert isinstance(down.reason, ValueError)
    sv.stop(wref)


def test_asks_after_a_crash_are_answered_with_actor_dead_error() -> None:
    ref = Echo.start()
    futures = [ref.ask("crash", block=False)] + [ref.ask(i, block=False) for i in range(5)]
    with pytest.raises(ValueError, match="bad message"):
        futures[0].get(timeout=5)
    for future in futures[1:]:
        with pytest.raises(pykka.ActorDeadError):
            future.get(timeout=5)
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("late", timeout=5)


def test_start_returns_only_after_on_start_finished() -> None:
    events = Events()
    ref = Recorder.start(events, "a")
    assert events.take() == [("start", "a")]
    sv.stop(ref)


def test_on_start_failure_raises_start_error_and_actor_is_dead() -> None:
    events = Events()
    fail = threading.Event()
    fail.set()
    with pytest.raises(sv.StartError) as info:
        Recorder.start(events, "a", fail)
    assert isinstance(info.value.reason, RuntimeError)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert not [a for a in pykka.ActorRegistry.get_all() if a.is_alive()]


def test_system_exit_in_one_actor_does_not_stop_other_actors() -> None:
    bystander = Echo.start()
    victim = Echo.start()
    with pytest.raises(SystemExit):
        victim.ask("system_exit", timeout=5)
    assert not victim.is_alive()
    assert bystander.ask("still here", timeout=5) == "still here"
    sv.stop(bystander)


def test_monitoring_a_dead_actor_delivers_noproc_at_once() -> None:
    wref, watcher = start_watcher()
    ref = Echo.start()
    sv.stop(ref)
    wref.ask(("monitor", ref))
    down = watcher.next()
    assert down.reason == "noproc"
    sv.stop(wref)


def test_demonitor_means_no_down_message() -> None:
    wref, watcher = start_watcher()
    ref = Echo.start()
    mref = wref.ask(("monitor", ref))
    assert wref.ask(("demonitor", mref)) is True
    sv.stop(ref)
    wref.ask("marker")
    assert watcher.next() == "marker"
    sv.stop(wref)


def test_normal_stop_reports_reason_normal() -> None:
    wref, watcher = start_watcher()
    ref = Echo.start()
    wref.ask(("monitor", ref))
    sv.stop(ref)
    assert watcher.next().reason == "normal"
    sv.stop(wref)


class Linker(sv.Actor):
    def on_receive(self, message: Any) -> Any:
        if isinstance(message, tuple) and message[0] == "link":
            self.link(message[1])
            return None
        if message == "crash":
            raise RuntimeError("linked crash")
        return message


def test_abnormal_exit_kills_linked_actor_that_does_not_trap_exits() -> None:
    wref, watcher = start_watcher()
    a = Linker.start()
    b = Linker.start()
    a.ask(("link", b))
    wref.ask(("monitor", a))
    crash(b)
    assert not a.is_alive()
    down = watcher.next()
    assert down.actor is a
    assert isinstance(down.reason, RuntimeError)
    sv.stop(wref)


def test_normal_exit_does_not_kill_linked_actor() -> None:
    a = Linker.start()
    b = Linker.start()
    a.ask(("link", b))
    sv.stop(b)
    assert a.ask("ping", timeout=5) == "ping"
    sv.stop(a)


def test_trapping_actor_receives_exit_signal_as_message() -> None:
    wref, watcher = start_watcher()
    b = Linker.start()
    wref.ask(("link", b))
    crash(b)
    signal = watcher.next()
    assert isinstance(signal, sv.ExitSignal)
    assert signal.actor is b
    assert isinstance(signal.reason, RuntimeError)
    assert wref.is_alive()
    sv.stop(wref)


class Blocker(sv.Actor):
    def __init__(self, entered: threading.Event, release: threading.Event) -> None:
        super().__init__()
        self.entered = entered
        self.release = release
        self.handled_after_release = 0

    def on_receive(self, message: Any) -> Any:
        if message == "block":
            self.entered.set()
            self.release.wait(10)
            return "unblocked"
        self.handled_after_release += 1
        return message


def test_kill_answers_pending_asks_and_abandons_the_busy_thread() -> None:
    entered, release = threading.Event(), threading.Event()
    wref, watcher = start_watcher()
    ref = Blocker.start(entered, release)
    wref.ask(("monitor", ref))
    busy = ref.ask("block", block=False)
    assert entered.wait(5)
    queued = ref.ask("queued", block=False)
    assert sv.kill(ref) is True
    with pytest.raises(pykka.ActorDeadError):
        busy.get(timeout=5)
    with pytest.raises(pykka.ActorDeadError):
        queued.get(timeout=5)
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("later", timeout=5)
    assert watcher.next().reason == "killed"
    actor = sv.actor_of(ref)
    assert actor is not None
    thread = actor._sv_thread
    assert thread is not None and thread.daemon
    release.set()
    thread.join(5)
    assert not thread.is_alive()
    assert actor.handled_after_release == 0
    sv.stop(wref)


def test_kill_releases_the_name_before_monitors_hear() -> None:
    wref, watcher = start_watcher()
    with sv.spawn_options(name="victim"):
        ref = Echo.start()
    assert sv.whereis("victim") is ref
    wref.ask(("monitor", ref))
    sv.kill("victim")
    watcher.next()
    assert sv.whereis("victim") is None
    sv.stop(wref)


class Receiver(sv.Actor):
    """Waits inside a handler for a "go" message while other messages queue up."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "wait_for_go":
            got = self.receive(lambda m: m == "go", timeout=5)
            self.seen.append(got)
            return "done"
        if message == "wait_briefly":
            try:
                self.receive(lambda m: m == "never", timeout=0.05)
            except sv.Timeout:
                return "timed out"
        self.seen.append(message)
        return list(self.seen)


def test_selective_receive_takes_the_matching_message_and_keeps_the_rest_in_order() -> None:
    ref = Receiver.start()
    done = ref.ask("wait_for_go", block=False)
    ref.tell("first")
    ref.tell("second")
    ref.tell("go")
    assert done.get(timeout=5) == "done"
    assert ref.ask("third", timeout=5) == ["go", "first", "second", "third"]
    sv.stop(ref)


def test_selective_receive_times_out() -> None:
    ref = Receiver.start()
    assert ref.ask("wait_briefly", timeout=5) == "timed out"
    sv.stop(ref)


def test_exit_with_a_crash_reason_is_reported_to_monitors() -> None:
    events = Events()
    wref, watcher = start_watcher()
    ref = Recorder.start(events, "x")
    wref.ask(("monitor", ref))
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("exit:boom", timeout=5)
    assert watcher.next().reason == "boom"
    sv.stop(wref)


def test_stop_joins_the_actor_thread() -> None:
    ref = Echo.start()
    actor = sv.actor_of(ref)
    assert actor is not None and actor._sv_thread is not None
    assert sv.stop(ref) is True
    assert not actor._sv_thread.is_alive()


def test_named_ref_resolves_on_every_send_and_fails_fast_when_unbound() -> None:
    named = sv.named("svc")
    with pytest.raises(sv.NoProc):
        named.ask("x")
    with sv.spawn_options(name="svc"):
        first = Echo.start()
    assert named.ask("x") == "x"
    sv.stop(first)
    with pytest.raises(sv.NoProc):
        named.tell("x")
    with sv.spawn_options(name="svc"):
        second = Echo.start()
    assert named.ask("y") == "y"
    assert named.resolve() is second
    sv.stop(second)


def test_registering_a_taken_name_raises_already_started() -> None:
    with sv.spawn_options(name="dup"):
        first = Echo.start()
    with pytest.raises(sv.AlreadyStarted), sv.spawn_options(name="dup"):
        Echo.start()
    assert sv.whereis("dup") is first
    sv.stop(first)


def test_unregistered_name_gives_noproc_for_stop_and_kill() -> None:
    with pytest.raises(sv.NoProc):
        sv.stop("nobody")
    with pytest.raises(sv.NoProc):
        sv.kill("nobody")


class Finisher(sv.Actor):
    """``("finish", reply, reason)`` ends it with ``reply_and_exit``; records what it saw."""

    def __init__(self, events: Events, watcher: Any) -> None:
        super().__init__()
        self.events = events
        self.watcher = watcher

    def on_stop(self) -> None:
        self.events.add("on_stop", "finisher")

    def on_failure(self, *exc_info: Any) -> None:
        self.events.add("on_failure", "finisher")

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, tuple) and message[0] == "finish":
            self.reply_and_exit(message[1], message[2])
        if message == "finish-told":
            self.reply_and_exit("nobody hears this")
        return message


def test_reply_and_exit_answers_the_asker_only_once_the_actor_has_ended() -> None:
    events = Events()
    wref, watcher = start_watcher()
    ref = Finisher.start(events, wref)
    mref = wref.ask(("monitor", ref))
    assert ref.ask(("finish", "the answer", "normal"), timeout=5) == "the answer"
    # By the time the answer arrives the actor is dead, its on_stop ran and its
    # monitors were told: nothing of it competes with the asker any more.
    assert not ref.is_alive()
    assert events.take() == [("on_stop", "finisher")]
    down = watcher.next(timeout=0.5)
    assert isinstance(down, sv.Down) and down.ref == mref and down.reason == "normal"
    sv.stop(wref)


def test_reply_and_exit_with_an_abnormal_reason_still_answers_and_is_a_crash_for_links() -> None:
    events = Events()
    wref, watcher = start_watcher()
    ref = Finisher.start(events, wref)
    wref.ask(("link", ref))
    assert ref.ask(("finish", 42, "gave_up"), timeout=5) == 42
    signal = watcher.next(timeout=0.5)
    assert isinstance(signal, sv.ExitSignal) and signal.reason == "gave_up"
    actor = sv.actor_of(ref)
    assert actor is None or actor.exit_reason == "gave_up"
    assert events.take() == []  # an exit with a reason runs neither hook (as exit())
    sv.stop(wref)


def test_reply_and_exit_in_a_told_message_just_ends_the_actor() -> None:
    events = Events()
    wref, watcher = start_watcher()
    ref = Finisher.start(events, wref)
    mref = wref.ask(("monitor", ref))
    ref.tell("finish-told")
    down = watcher.next()
    assert isinstance(down, sv.Down) and down.ref == mref and down.reason == "normal"
    assert events.take() == [("on_stop", "finisher")]
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("after", timeout=1)
    sv.stop(wref)
