"""Supervisor semantics mirrored from OTP: strategies, restart types, intensity, API."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from structlog.testing import capture_logs

import supervisors as sv
from tests.supervisors.helpers import Events, Recorder, crash, spec, start_watcher, sync


def child(sup: Any, child_id: Any) -> Any:
    for info in sv.which_children(sup):
        if info.id == child_id:
            return info.ref
    raise KeyError(child_id)


def test_children_start_in_order_and_stop_in_reverse() -> None:
    events = Events()
    root = sv.Supervisor.start([spec(events, t) for t in "abc"])
    assert events.take() == [("start", "a"), ("start", "b"), ("start", "c")]
    sv.stop(root)
    assert events.take() == [("stop", "c"), ("stop", "b"), ("stop", "a")]


def test_start_child_appends_so_newest_child_stops_first() -> None:
    events = Events()
    root = sv.Supervisor.start([spec(events, "a")])
    sv.start_child(root, spec(events, "z"))
    assert [c.id for c in sv.which_children(root)] == ["a", "z"]
    events.take()
    sv.stop(root)
    assert events.take() == [("stop", "z"), ("stop", "a")]


def test_one_for_one_restarts_only_the_failed_child() -> None:
    events = Events()
    root = sv.Supervisor.start([spec(events, t) for t in "abc"], strategy="one_for_one")
    events.take()
    before = {c.id: c.ref for c in sv.which_children(root)}
    crash(child(root, "b"))
    sync(root)
    assert events.take() == [("start", "b")]
    after = {c.id: c.ref for c in sv.which_children(root)}
    assert after["a"] is before["a"] and after["c"] is before["c"]
    assert after["b"] is not before["b"] and after["b"].is_alive()
    sv.stop(root)


def test_one_for_all_stops_others_in_reverse_then_restarts_all_in_order() -> None:
    events = Events()
    root = sv.Supervisor.start([spec(events, t) for t in "abcd"], strategy="one_for_all")
    events.take()
    crash(child(root, "b"))
    sync(root)
    assert events.take() == [
        ("stop", "d"),
        ("stop", "c"),
        ("stop", "a"),
        ("start", "a"),
        ("start", "b"),
        ("start", "c"),
        ("start", "d"),
    ]
    sv.stop(root)


def test_one_for_all_drops_temporary_siblings_instead_of_restarting_them() -> None:
    events = Events()
    root = sv.Supervisor.start(
        [spec(events, "a"), spec(events, "tmp", restart="temporary"), spec(events, "c")],
        strategy="one_for_all",
    )
    events.take()
    crash(child(root, "a"))
    sync(root)
    assert [c.id for c in sv.which_children(root)] == ["a", "c"]
    assert ("start", "tmp") not in events.take()
    sv.stop(root)


def test_rest_for_one_restarts_the_failed_child_and_those_after_it() -> None:
    events = Events()
    root = sv.Supervisor.start([spec(events, t) for t in "abcd"], strategy="rest_for_one")
    events.take()
    a_ref = child(root, "a")
    crash(child(root, "b"))
    sync(root)
    assert events.take() == [
        ("stop", "d"),
        ("stop", "c"),
        ("start", "b"),
        ("start", "c"),
        ("start", "d"),
    ]
    assert child(root, "a") is a_ref
    sv.stop(root)


@pytest.mark.parametrize(
    ("restart", "reason", "restarted"),
    [
        ("permanent", "normal", True),
        ("permanent", "crash", True),
        ("transient", "normal", False),
        ("transient", "shutdown", False),
        ("transient", "crash", True),
        ("temporary", "crash", False),
    ],
)
def test_restart_type_decides_whether_a_child_comes_back(
    restart: str, reason: str, restarted: bool
) -> None:
    events = Events()
    root = sv.Supervisor.start([spec(events, "w", restart=restart)])
    events.take()
    ref = child(root, "w")
    if reason == "crash":
        crash(ref)
    else:
        with pytest.raises(sv.ActorDeadError):
            ref.ask(f"exit:{reason}", timeout=5)
    sync(root)
    rows = sv.which_children(root)
    if restarted:
        assert rows[0].ref is not None and rows[0].ref.is_alive()
    elif restart == "temporary":
        assert rows == []
    else:
        assert rows[0].ref is None  # transient: spec kept, not running
    sv.stop(root)


def test_exactly_max_restarts_in_the_window_is_survived() -> None:
    events = Events()
    root = sv.Supervisor.start([spec(events, "w")], max_restarts=3, max_seconds=60)
    for _ in range(3):
        crash(child(root, "w"))
        sync(root)
    assert root.is_alive()
    assert child(root, "w").is_alive()
    sv.stop(root)


def test_one_restart_more_than_max_restarts_shuts_the_supervisor_down() -> None:
    events = Events()
    wref, watcher = start_watcher()
    root = sv.Supervisor.start(
        [spec(events, "w"), spec(events, "other")], max_restarts=3, max_seconds=60
    )
    wref.ask(("monitor", root))
    with capture_logs() as logs:
        for _ in range(4):
            crash(child(root, "w"))
            if root.is_alive():
                try:
                    sync(root)
                except sv.NoProc:
                    break
        down = watcher.next()
    assert down.reason == "shutdown"
    assert ("stop", "other") in events.take()
    assert any(
        e["event"] == "shutdown" and e["reason"] == "reached_max_restart_intensity" for e in logs
    )
    sv.stop(wref)


def test_restarts_outside_the_window_do_not_count() -> None:
    events = Events()
    root = sv.Supervisor.start([spec(events, "w")], max_restarts=1, max_seconds=60)
    actor = sv.actor_of(root)
    assert actor is not None
    crash(child(root, "w"))
    sync(root)
    # Age the recorded restart past the window instead of sleeping through it.
    actor._restart_times[0] -= 61  # type: ignore[attr-defined]
    crash(child(root, "w"))
    sync(root)
    assert root.is_alive()
    sv.stop(root)


def _nested(events: Events, restart: str) -> Any:
    inner = sv.ChildSpec(
        id="inner",
        start=sv.Supervisor.start,
        args=([spec(events, "leaf")],),
        kwargs={"max_restarts": 0, "max_seconds": 60, "name": "inner"},
        type="supervisor",
        restart=restart,
    )
    return sv.Supervisor.start([inner], max_restarts=3, max_seconds=60)


def test_escalation_restarts_a_permanent_child_supervisor() -> None:
    events = Events()
    wref, watcher = start_watcher()
    root = _nested(events, "permanent")
    old_inner = sv.whereis("inner")
    wref.ask(("monitor", old_inner))
    crash(sv.which_children("inner")[0].ref)
    assert watcher.next().reason == "shutdown"
    new_inner = sv.wait_for_name("inner", timeout=5)
    sync(root)
    assert new_inner is not old_inner
    assert sv.which_children(new_inner)[0].ref.is_alive()
    sv.stop(root)
    sv.stop(wref)


def test_escalation_does_not_restart_a_transient_child_supervisor() -> None:
    events = Events()
    wref, watcher = start_watcher()
    root = _nested(events, "transient")
    inner = sv.whereis("inner")
    wref.ask(("monitor", inner))
    crash(sv.which_children(inner)[0].ref)
    assert watcher.next().reason == "shutdown"
    sync(root)
    assert sv.which_children(root)[0].ref is None
    assert root.is_alive()
    sv.stop(root)
    sv.stop(wref)


def test_failed_restarts_count_against_intensity() -> None:
    events = Events()
    fail = threading.Event()
    wref, watcher = start_watcher()
    root = sv.Supervisor.start([spec(events, "w", fail_start=fail)], max_restarts=3, max_seconds=60)
    wref.ask(("monitor", root))
    fail.set()
    with capture_logs() as logs:
        crash(child(root, "w"))
        down = watcher.next()
    assert down.reason == "shutdown"
    attempts = [e for e in events.take() if e[0] == "start_failed"]
    assert len(attempts) == 3  # restarts 1..3 fail; the 4th would exceed intensity
    assert sum(1 for e in logs if e["event"] == "start_error") == 3
    sv.stop(wref)


def test_supervisor_start_fails_and_stops_started_children_when_a_child_fails_at_boot() -> None:
    events = Events()
    fail = threading.Event()
    fail.set()
    with pytest.raises(sv.StartError):
        sv.Supervisor.start(
            [spec(events, "a"), spec(events, "b", fail_start=fail), spec(events, "c")]
        )
    assert events.take() == [("start", "a"), ("start_failed", "b"), ("stop", "a")]


def test_dynamic_children_are_lost_when_their_supervisor_restarts() -> None:
    events = Events()
    pool_spec = sv.ChildSpec(
        id="pool", start=sv.DynamicSupervisor.start, kwargs={"name": "pool"}, type="supervisor"
    )
    root = sv.Supervisor.start([pool_spec])
    sv.start_child("pool", spec(events, "d1"))
    sv.start_child("pool", spec(events, "d2"))
    assert sv.count_children("pool").active == 2
    sv.kill("pool")
    sv.wait_for_name("pool", timeout=5)
    sync(root)
    assert sv.count_children("pool") == sv.ChildCounts(0, 0, 0, 0)
    sv.stop(root)


def test_dynamic_supervisor_enforces_max_children() -> None:
    events = Events()
    pool = sv.DynamicSupervisor.start(max_children=1)
    sv.start_child(pool, spec(events, "a"))
    with pytest.raises(sv.SupervisorError, match="max_children"):
        sv.start_child(pool, spec(events, "b"))
    sv.stop(pool)


def test_dynamic_supervisor_restarts_a_crashed_permanent_child() -> None:
    events = Events()
    pool = sv.DynamicSupervisor.start()
    ref = sv.start_child(pool, spec(events, "a"))
    crash(ref)
    sync(pool)
    rows = sv.which_children(pool)
    assert len(rows) == 1 and rows[0].ref is not ref and rows[0].ref.is_alive()
    sv.stop(pool)


def test_dynamic_supervisor_stops_all_children_at_once_on_shutdown() -> None:
    events = Events()
    pool = sv.DynamicSupervisor.start()
    for t in "abc":
        sv.start_child(pool, spec(events, t))
    events.take()
    sv.stop(pool)
    assert sorted(events.take()) == [("stop", "a"), ("stop", "b"), ("stop", "c")]


def test_names_are_rebound_to_the_restarted_child() -> None:
    events = Events()
    root = sv.Supervisor.start([spec(events, "w", name="worker")])
    named = sv.named("worker")
    first = named.resolve()
    crash(first)
    sync(root)
    assert named.ask("hello") == "w"
    assert named.resolve() is not first
    sv.stop(root)


def test_terminate_restart_and_delete_child() -> None:
    events = Events()
    root = sv.Supervisor.start([spec(events, "a"), spec(events, "b")])
    events.take()
    sv.terminate_child(root, "a")
    assert events.take() == [("stop", "a")]
    assert sv.count_children(root) == sv.ChildCounts(specs=2, active=1, supervisors=0, workers=2)
    with pytest.raises(sv.SupervisorError, match="running"):
        sv.delete_child(root, "b")
    ref = sv.restart_child(root, "a")
    assert ref.is_alive()
    sv.terminate_child(root, "a")
    sv.delete_child(root, "a")
    assert [c.id for c in sv.which_children(root)] == ["b"]
    with pytest.raises(sv.SupervisorError, match="no child"):
        sv.restart_child(root, "a")
    sv.stop(root)


def test_terminated_child_stays_down() -> None:
    events = Events()
    root = sv.Supervisor.start([spec(events, "a")])
    sv.terminate_child(root, "a")
    sync(root)
    assert sv.which_children(root)[0].ref is None
    sv.stop(root)


def test_bad_input_is_rejected_at_the_call_site() -> None:
    events = Events()
    with pytest.raises(ValueError, match="duplicate child id"):
        sv.Supervisor.start([spec(events, "a"), spec(events, "a")])
    with pytest.raises(ValueError, match="unknown strategy"):
        sv.Supervisor.start([], strategy="one_for_some")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown restart type"):
        spec(events, "a", restart="sometimes")
    with pytest.raises(ValueError, match="must not be negative"):
        spec(events, "a", shutdown=-1)
    with pytest.raises(ValueError, match="shutdown must be"):
        spec(events, "a", shutdown="soon")
    with pytest.raises(ValueError, match="max_restarts"):
        sv.Supervisor.start([], max_restarts=-1)
    root = sv.Supervisor.start([spec(events, "a")])
    with pytest.raises(sv.SupervisorError, match="already started"):
        sv.start_child(root, spec(events, "a"))
    sv.stop(root)
    with pytest.raises(sv.NoProc):
        sv.start_child(root, spec(events, "b"))
    with pytest.raises(sv.NoProc):
        sv.start_child("no-such-supervisor", spec(events, "b"))
    ref = Recorder.start(events, "x")
    with pytest.raises(TypeError, match="not a supervisor"):
        sv.which_children(ref)
    sv.stop(ref)


def test_start_child_reports_a_start_error_and_keeps_no_spec() -> None:
    events = Events()
    fail = threading.Event()
    fail.set()
    root = sv.Supervisor.start([])
    with pytest.raises(sv.StartError) as info:
        sv.start_child(root, spec(events, "bad", fail_start=fail))
    assert isinstance(info.value.reason, RuntimeError)
    assert sv.which_children(root) == []
    sv.stop(root)


def test_start_function_must_return_a_supervisors_actor() -> None:
    root = sv.Supervisor.start([])
    with pytest.raises(sv.StartError, match="ActorRef"):
        sv.start_child(root, sv.ChildSpec(id="x", start=lambda: 42))
    sv.stop(root)


class Stubborn(sv.Actor):
    """Never finishes on_stop quickly: used to show the shutdown timeout kills it."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.release = release

    def on_stop(self) -> None:
        self.release.wait(10)


def test_child_that_overruns_its_shutdown_time_is_killed() -> None:
    release = threading.Event()
    root = sv.Supervisor.start(
        [sv.ChildSpec(id="s", start=Stubborn.start, args=(release,), shutdown=0.05)]
    )
    with capture_logs() as logs:
        sv.stop(root)
    release.set()
    assert any(e["event"] == "shutdown_error" and e["reason"] == "killed" for e in logs)


def test_brutal_kill_child_is_killed_without_on_stop() -> None:
    events = Events()
    root = sv.Supervisor.start([spec(events, "a", shutdown="brutal_kill")])
    events.take()
    sv.stop(root)
    assert events.take() == []


def test_supervisor_reports_go_through_structlog() -> None:
    events = Events()
    with capture_logs() as logs:
        root = sv.Supervisor.start([spec(events, "a")], name="reporting")
        crash(child(root, "a"))
        sync(root)
        sv.stop(root)
    kinds = [e["event"] for e in logs]
    for kind in ("child_started", "child_terminated", "child_restarted", "actor_crashed"):
        assert kind in kinds
    terminated = next(e for e in logs if e["event"] == "child_terminated")
    assert terminated["supervisor"] == "reporting"
    assert terminated["child_id"] == "a"
    assert terminated["restart"] == "permanent"
    assert "RuntimeError" in terminated["reason"]


def test_killing_a_supervisor_takes_its_children_down() -> None:
    events = Events()
    wref, watcher = start_watcher()
    root = sv.Supervisor.start([spec(events, "a")])
    a = child(root, "a")
    wref.ask(("monitor", a))
    sv.kill(root)
    assert watcher.next().reason == "killed"
    assert not a.is_alive()
    sv.stop(wref)
