"""Restart backoff (``sv.ChildSpec(backoff=sv.Backoff(...))``), Akka's restartWithBackoff.

Timing bounds: a delay is asserted to be *at least* its computed value (the timer
never fires early) and at most that plus a generous slack, since the shared
2-core test machine can be slow; the exact delays are read from the
``child_restart_delayed`` events, which are deterministic with ``jitter=0``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

import supervisors as sv
from tests.supervisors.helpers import Events, Recorder

SLACK = 1.0  # seconds a loaded machine may add to a timer


def _crash(name: str) -> float:
    """Crash the child registered as ``name``; return when it died (monotonic)."""
    ref = sv.wait_for_name(name, timeout=5)
    try:
        ref.ask("crash", timeout=5)
    except RuntimeError:
        pass
    return time.monotonic()


def _time_until_bound(name: str, limit: float = 10.0) -> float:
    deadline = time.monotonic() + limit
    while sv.whereis(name) is None:
        assert time.monotonic() < deadline, f"{name} never came back"
        time.sleep(0.002)
    return time.monotonic()


def _spec(events: Events, backoff: sv.Backoff | None, **kw: Any) -> sv.ChildSpec:
    return sv.ChildSpec(
        id="w", start=Recorder.start, args=(events, "w"), name="w", backoff=backoff, **kw
    )


def test_each_restart_in_a_row_waits_twice_as_long_as_the_last() -> None:
    backoff = sv.Backoff(min_s=0.1, max_s=0.4, jitter=0.0, reset_after_s=30.0)
    root = sv.Supervisor.start([_spec(Events(), backoff)], max_restarts=10, max_seconds=30)
    waits = []
    with capture_logs() as logs:
        for _ in range(4):
            died = _crash("w")
            waits.append(_time_until_bound("w") - died)
    sv.stop(root)

    delays = [e["delay_s"] for e in logs if e["event"] == "child_restart_delayed"]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.4])
    for waited, delay in zip(waits, delays, strict=True):
        assert delay <= waited < delay + SLACK


def test_jitter_adds_up_to_its_fraction_to_each_delay() -> None:
    backoff = sv.Backoff(min_s=0.05, max_s=0.05, jitter=0.5)
    root = sv.Supervisor.start([_spec(Events(), backoff)], max_restarts=20, max_seconds=30)
    with capture_logs() as logs:
        for _ in range(6):
            _crash("w")
            _time_until_bound("w")
    sv.stop(root)

    delays = [e["delay_s"] for e in logs if e["event"] == "child_restart_delayed"]
    assert len(delays) == 6
    assert all(0.05 <= d <= 0.075 for d in delays)
    assert len(set(delays)) > 1  # random, not one fixed value


def test_the_count_starts_again_after_the_child_stayed_up_reset_after_s() -> None:
    backoff = sv.Backoff(min_s=0.05, max_s=5.0, jitter=0.0, reset_after_s=0.3)
    root = sv.Supervisor.start([_spec(Events(), backoff)], max_restarts=10, max_seconds=30)
    with capture_logs() as logs:
        _crash("w")
        _time_until_bound("w")
        _crash("w")  # at once: the second in a row
        _time_until_bound("w")
        time.sleep(0.4)  # up longer than reset_after_s
        _crash("w")
        _time_until_bound("w")
    sv.stop(root)

    delays = [e["delay_s"] for e in logs if e["event"] == "child_restart_delayed"]
    assert delays == pytest.approx([0.05, 0.1, 0.05])


def test_while_a_child_waits_its_name_fails_fast_with_noproc_and_the_supervisor_answers() -> None:
    backoff = sv.Backoff(min_s=1.0, max_s=1.0, jitter=0.0)
    events = Events()
    root = sv.Supervisor.start([_spec(events, backoff)], max_restarts=5, name="sup")
    _crash("w")

    started = time.monotonic()
    with pytest.raises(sv.NoProc):
        sv.named("w").ask("hello", timeout=5)
    assert time.monotonic() - started < 0.5  # no waiting for the restart
    # The supervisor's mailbox is not blocked by the wait: it handles requests now.
    other = sv.start_child(
        "sup", sv.ChildSpec(id="other", start=Recorder.start, args=(events, "o")), timeout=0.5
    )
    assert other.ask("x", timeout=5) == "o"
    assert sv.which_children("sup")[0].ref is None
    node = sv.tree("sup").find("w")
    assert node is not None and node.state == "restarting"
    assert node.restart_in is not None and 0.0 < node.restart_in <= 1.0
    assert "backoff: starts in" in sv.format_tree("sup")
    assert time.monotonic() - started < 1.0  # all of it answered within the wait

    assert sv.wait_for_name("w", timeout=5).ask("x", timeout=5) == "w"
    assert sv.tree("sup").find("w").restart_in is None  # type: ignore[union-attr]
    sv.stop(root)


def test_restarts_with_backoff_still_count_against_the_intensity() -> None:
    backoff = sv.Backoff(min_s=0.02, max_s=0.02, jitter=0.0)
    root = sv.Supervisor.start([_spec(Events(), backoff)], max_restarts=2, max_seconds=30)
    actor = sv.actor_of(root)
    _crash("w")
    _time_until_bound("w")
    _crash("w")
    _time_until_bound("w")
    _crash("w")  # the third in 30 s: one too many

    assert root.actor_stopped.wait(5)
    assert "needed more than 2 restarts" in (getattr(actor, "gave_up", None) or "")


def test_a_child_that_fails_to_start_is_retried_by_the_backoff_not_in_a_tight_loop() -> None:
    backoff = sv.Backoff(min_s=0.05, max_s=0.2, jitter=0.0)
    events = Events()
    broken = threading.Event()
    spec = sv.ChildSpec(
        id="w", start=Recorder.start, args=(events, "w", broken), name="w", backoff=backoff
    )
    root = sv.Supervisor.start([spec], max_restarts=1000, max_seconds=60)
    events.take()
    broken.set()  # from now on every start fails
    _crash("w")
    time.sleep(1.0)
    attempts = sum(1 for kind, _ in events.take() if kind == "start_failed")
    broken.clear()
    sv.wait_for_name("w", timeout=5)  # it comes back once starting works again
    sv.stop(root)

    # 0.05 + 0.1 + 0.2 + 0.2 + ... : about 6 tries in a second, not thousands.
    assert 2 <= attempts <= 8


def test_a_child_terminated_while_it_waits_stays_down() -> None:
    backoff = sv.Backoff(min_s=0.2, max_s=0.2, jitter=0.0)
    events = Events()
    root = sv.Supervisor.start([_spec(events, backoff)], name="sup2")
    _crash("w")
    sv.terminate_child("sup2", "w")
    time.sleep(0.5)

    assert sv.whereis("w") is None
    assert sv.which_children("sup2")[0].ref is None
    assert sv.restart_child("sup2", "w").ask("x", timeout=5) == "w"
    sv.stop(root)


def test_stopping_a_supervisor_while_a_child_waits_cancels_the_restart() -> None:
    backoff = sv.Backoff(min_s=5.0, max_s=5.0, jitter=0.0)
    events = Events()
    root = sv.Supervisor.start([_spec(events, backoff)])
    events.take()
    _crash("w")

    started = time.monotonic()
    sv.stop(root)

    assert time.monotonic() - started < 2.0
    assert not any(kind == "start" for kind, _ in events.take())


def test_one_for_all_stops_the_others_at_once_and_restarts_the_group_after_the_delay() -> None:
    backoff = sv.Backoff(min_s=0.3, max_s=0.3, jitter=0.0)
    events = Events()
    specs = [
        sv.ChildSpec(id=t, start=Recorder.start, args=(events, t), name=t, backoff=backoff)
        for t in "ab"
    ]
    root = sv.Supervisor.start(specs, strategy="one_for_all")
    events.take()
    died = _crash("a")
    time.sleep(0.1)
    assert events.take() == [("stop", "b")]  # stopped at once
    assert sv.whereis("a") is None and sv.whereis("b") is None
    back = _time_until_bound("b")

    assert back - died >= 0.3
    assert ("start", "a") in events.take()
    sv.stop(root)


def test_a_backoff_must_be_an_sv_backoff() -> None:
    with pytest.raises(TypeError, match=r"sv\.Backoff"):
        sv.ChildSpec(id="w", start=Recorder.start, backoff=0.5)  # type: ignore[arg-type]
