"""The fan-out engine: bounded, ordered or not, per-item deadlines, cancel, back-pressure.

Items run in short-lived actors (one :class:`Job` per item) started by a test
launcher that counts what it started; the synchronisation is by events that the
items wait on, never by sleeping for the engine.
"""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

import supervisors as sv


class Job(sv.Actor):
    """Runs ``fn(item)`` for its first message, answers, then stops."""

    def __init__(self, fn: Callable[[Any], Any], item: Any) -> None:
        super().__init__()
        self.fn = fn
        self.item = item

    def on_receive(self, message: Any) -> Any:
        if message != "run":
            return None
        try:
            return self.fn(self.item)
        finally:
            self.actor_ref.stop(block=False)  # queued behind the answer


class Launcher:
    """A ``launch`` callable: one Job per item; counts and keeps what it started."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn
        self.refs: list[pykka.ActorRef[Any]] = []
        self.lock = threading.Lock()

    def __call__(self, item: Any, slot: sv.Slot[Any]) -> pykka.ActorRef[Any]:
        with sv.spawn_options(first_message="run", first_reply_to=slot):  # type: ignore[arg-type]
            ref = Job.start(self.fn, item)
        with self.lock:
            self.refs.append(ref)
        return ref

    @property
    def started(self) -> int:
        with self.lock:
            return len(self.refs)

    def alive(self) -> list[pykka.ActorRef[Any]]:
        return [ref for ref in self.refs if ref.is_alive()]


class Gauge:
    """Counts the items running right now and the peak."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (bounded) for ``condition``: items run in their own threads, on a loaded machine."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def job_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sv:Job"]


def wait_gone(threads: list[threading.Thread], timeout: float = 5.0) -> None:
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), thread.name


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # whatever happened, let abandoned item threads finish


# ----------------------------------------------------------------- the bound


def test_never_more_than_max_concurrency_items_run_at_once(gate: threading.Event) -> None:
    gauge = Gauge()

    def work(x: int) -> int:
        with gauge:
            assert gate.wait(5)
            return x * x

    launcher = Launcher(work)
    with sv.fan_out(range(20), launcher, max_concurrency=3) as fan:
        assert fan.get(timeout=0) is None  # starts the first three; they stick on the gate
        wait_until(lambda: gauge.now == 3)
        assert fan.get(timeout=0.2) is None
        assert launcher.started == 3 and fan.in_flight == 3 and gauge.now == 3
        gate.set()
        results = list(fan)
    assert [r.outcome for r in results] == [sv.Ok(x * x) for x in range(20)]
    assert gauge.peak == 3
    assert launcher.started == 20


def test_results_come_in_input_order_and_wait_holding_their_slot(gate: threading.Event) -> None:
    def work(x: int) -> int:
        if x == 0:
            assert gate.wait(5)
        return x

    launcher = Launcher(work)
    with sv.fan_out(range(6), launcher, max_concurrency=3, ordered=True) as fan:
        assert fan.get(timeout=0) is None
        wait_until(lambda: fan.buffered == 2)  # 1 and 2 finished, but 0 comes first
        assert fan.get(timeout=0.1) is None
        assert launcher.started == 3  # their finished results still hold their slots
        assert fan.in_flight == 1 and fan.buffered == 2
        gate.set()
        assert [r.index for r in fan] == [0, 1, 2, 3, 4, 5]


def test_unordered_results_come_as_they_finish(gate: threading.Event) -> None:
    def work(x: int) -> int:
        if x == 0:
            assert gate.wait(5)
        return x

    seen: list[int] = []
    with sv.fan_out(range(6), Launcher(work), max_concurrency=3, ordered=False) as fan:
        for result in fan:
            seen.append(result.index)
            assert result.outcome == sv.Ok(result.index) and result.item == result.index
            if len(seen) == 5:
                gate.set()
    assert seen[-1] == 0 and sorted(seen) == list(range(6))


def test_a_slow_consumer_slows_the_producers_and_bounds_the_results_held() -> None:
    n = 4
    launcher = Launcher(lambda x: x)
    held: list[int] = []
    consumed = 0
    with sv.fan_out(range(60), launcher, max_concurrency=n, ordered=False) as fan:
        for _result in fan:
            consumed += 1
            held.append(fan.in_flight + fan.buffered)
            assert launcher.started - consumed <= n  # started but not yet taken
            time.sleep(0.005)  # the slow consumer
    assert consumed == 60
    assert max(held) <= n
    assert max(held) == n  # the items are instant: a freed slot is refilled at once


# -------------------------------------------------------------- failures


def test_an_item_past_its_deadline_is_killed_and_reported_as_timeout(
    gate: threading.Event,
) -> None:
    def work(x: int) -> int:
        if x == 1:
            assert gate.wait(5)
        return x

    launcher = Launcher(work)
    with sv.fan_out(range(3), launcher, max_concurrency=3, timeout=1.0) as fan:
        results = [r.outcome for r in fan]
    assert results == [sv.Ok(0), sv.Exit("timeout"), sv.Ok(2)]
    late = sv.actor_of(launcher.refs[1])
    assert late is not None and late.exit_reason == "timeout"
    threads = job_threads()
    gate.set()
    wait_gone(threads)


def test_on_timeout_raise_kills_everything_and_raises(gate: threading.Event) -> None:
    launcher = Launcher(lambda x: gate.wait(5))
    fan = sv.fan_out(range(5), launcher, max_concurrency=2, timeout=0.1, on_timeout="raise")
    with pytest.raises(sv.Timeout):
        list(fan)
    assert launcher.started == 2 and launcher.alive() == []
    assert fan.cancelled


def test_a_crash_and_a_failed_launch_are_exits_of_their_items() -> None:
    def work(x: int) -> int:
        if x == 1:
            raise KeyError("boom")
        return x

    inner = Launcher(work)

    def launch(item: int, slot: sv.Slot[int]) -> pykka.ActorRef[Any]:
        if item == 2:
            raise sv.SupervisorError("full")
        return inner(item, slot)

    with sv.fan_out(range(4), launch, max_concurrency=2) as fan:
        results = list(fan)
    assert [r.ok for r in results] == [True, False, False, True]
    assert isinstance(results[1].outcome, sv.Exit)
    assert isinstance(results[1].outcome.reason, KeyError)
    assert isinstance(results[2].outcome, sv.Exit)
    assert isinstance(results[2].outcome.reason, sv.SupervisorError)


# ---------------------------------------------------------------- cancel


def test_cancel_kills_everything_outstanding_and_leaves_no_actor_or_thread(
    gate: threading.Event,
) -> None:
    launcher = Launcher(lambda x: gate.wait(5))
    fan = sv.fan_out(range(10), launcher, max_concurrency=3)
    assert fan.get(timeout=0.2) is None
    threads = job_threads()
    assert len(threads) == 3

    assert fan.cancel() == []
    assert launcher.started == 3 and launcher.alive() == []  # the other 7 never started
    assert fan.get(timeout=0.1) is None and fan.exhausted and list(fan) == []
    gate.set()
    wait_gone(threads)


def test_cancel_returns_the_results_that_finished_but_were_not_taken(
    gate: threading.Event,
) -> None:
    def work(x: int) -> int:
        if x == 0:
            assert gate.wait(5)
        return x

    launcher = Launcher(work)
    fan = sv.fan_out(range(5), launcher, max_concurrency=3, ordered=True)
    assert fan.get(timeout=0) is None
    wait_until(lambda: fan.buffered == 2)
    leftover = fan.cancel()
    assert [(r.index, r.outcome) for r in leftover] == [(1, sv.Ok(1)), (2, sv.Ok(2))]
    assert fan.cancel() == []  # each is handed out once
    assert launcher.alive() == []


def test_cancel_from_another_thread_stops_a_consumer_that_waits(gate: threading.Event) -> None:
    launcher = Launcher(lambda x: gate.wait(5))
    fan = sv.fan_out(range(10), launcher, max_concurrency=2)
    timer = threading.Timer(0.2, fan.cancel)
    timer.start()
    started = time.monotonic()
    assert list(fan) == []
    assert time.monotonic() - started < 3.0
    timer.join()
    assert launcher.alive() == []


def test_leaving_the_with_block_early_cancels_the_rest(gate: threading.Event) -> None:
    launcher = Launcher(lambda x: x if x == 0 else gate.wait(5))
    with sv.fan_out(range(10), launcher, max_concurrency=3) as fan:
        assert next(fan).outcome == sv.Ok(0)
    assert launcher.started == 4 and launcher.alive() == []


def test_keyboard_interrupt_in_the_consumer_loop_cancels_the_rest(gate: threading.Event) -> None:
    launcher = Launcher(lambda x: x if x < 2 else gate.wait(5))
    taken: list[int] = []

    def consume() -> None:
        with sv.fan_out(range(20), launcher, max_concurrency=4) as fan:
            for result in fan:
                taken.append(result.index)
                if len(taken) == 2:
                    raise KeyboardInterrupt  # Ctrl-C while the consumer works on a result

    with pytest.raises(KeyboardInterrupt):
        consume()
    assert taken == [0, 1]
    assert launcher.started <= 6 and launcher.alive() == []


def test_ctrl_c_while_the_consumer_waits_cancels_the_rest(gate: threading.Event) -> None:
    launcher = Launcher(lambda x: x if x == 1 else gate.wait(5))
    fan = sv.fan_out(range(20), launcher, max_concurrency=4, ordered=True)

    def interrupt() -> None:  # Ctrl-C once item 1 has finished (it waits behind item 0)
        # ... and all four slots were launched: an interrupt during the consumer's
        # fill would otherwise land before the fourth launch (started == 3).
        wait_until(lambda: fan.buffered == 1 and launcher.started == 4)
        _thread.interrupt_main()

    interrupter = threading.Thread(target=interrupt)
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        list(fan)  # no `with`: the engine cancels on the interrupt by itself
    interrupter.join()
    assert fan.cancelled and launcher.started == 4 and launcher.alive() == []
    # Item 1 had finished (waiting behind item 0): the consumer may still keep it.
    assert [(r.index, r.outcome) for r in fan.cancel()] == [(1, sv.Ok(1))]


def test_ctrl_c_inside_a_launch_is_raised_once_its_actor_can_be_killed(
    gate: threading.Event,
) -> None:
    inner = Launcher(lambda x: gate.wait(5))

    def launch(item: int, slot: sv.Slot[int]) -> pykka.ActorRef[Any]:
        ref = inner(item, slot)
        if item == 1:
            _thread.interrupt_main()  # lands after the actor started, before its ref is back
        return ref

    with pytest.raises(KeyboardInterrupt):
        list(sv.fan_out(range(5), launch, max_concurrency=3))
    assert inner.started == 2 and inner.alive() == []  # the actor of item 1 was killed too


# ---------------------------------------------------------- actor consumers


def test_notify_tells_a_consumer_that_cannot_block_when_to_pull(gate: threading.Event) -> None:
    rung = threading.Semaphore(0)

    def work(x: int) -> int:
        if x == 1:
            assert gate.wait(5)
        return x

    fan = sv.fan_out([], Launcher(work), max_concurrency=2, timeout=0.3, notify=rung.release)
    fan.extend([0, 1])
    assert fan.fill() == 2 and fan.free == 0
    assert rung.acquire(timeout=5)  # item 0 answered
    first = fan.get(0)
    assert first is not None and first.outcome == sv.Ok(0)
    assert fan.get(0) is None  # item 1 is still running: nothing to take, no wait
    started = time.monotonic()
    assert rung.acquire(timeout=5)  # the timer rang at item 1's deadline
    assert time.monotonic() - started >= 0.2
    late = fan.get(0)
    assert late is not None and late.outcome == sv.Exit("timeout")
    assert fan.exhausted


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        sv.fan_out([1], Launcher(abs), max_concurrency=0)
    with pytest.raises(ValueError, match="timeout"):
        sv.fan_out([1], Launcher(abs), max_concurrency=1, timeout=0)
    with pytest.raises(ValueError, match="on_timeout"):
        sv.fan_out([1], Launcher(abs), max_concurrency=1, on_timeout="ignore")  # type: ignore[arg-type]
