"""Task supervisors: async_nolink, Task handles and async_stream."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import supervisors as sv
from tests.supervisors.helpers import start_watcher


@pytest.fixture
def ts() -> Any:
    ref = sv.TaskSupervisor.start(name="tasks")
    yield ref
    sv.stop(ref)


def test_await_returns_the_task_value(ts: Any) -> None:
    task = sv.async_nolink(ts, lambda a, b: a + b, 2, b=3)
    assert task.await_(timeout=5) == 5


def test_await_raises_task_failed_with_the_crash_as_cause(ts: Any) -> None:
    task = sv.async_nolink(ts, lambda: 1 // 0)
    with pytest.raises(sv.TaskFailed) as info:
        task.await_(timeout=5)
    assert isinstance(info.value.reason, ZeroDivisionError)
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_a_task_can_be_awaited_only_once(ts: Any) -> None:
    task = sv.async_nolink(ts, lambda: 1)
    task.await_(timeout=5)
    with pytest.raises(RuntimeError, match="already awaited"):
        task.await_(timeout=5)


def test_owner_receives_task_result_on_success(ts: Any) -> None:
    wref, watcher = start_watcher()
    task = sv.async_nolink("tasks", lambda: "value", owner=wref)
    message = watcher.next()
    assert message == sv.TaskResult(task.ref, "value")
    sv.stop(wref)


def test_owner_receives_down_on_crash_and_is_not_linked(ts: Any) -> None:
    wref, watcher = start_watcher()

    def boom() -> None:
        raise KeyError("k")

    task = sv.async_nolink(ts, boom, owner=wref)
    message = watcher.next()
    assert isinstance(message, sv.Down)
    assert message.ref == task.ref
    assert isinstance(message.reason, KeyError)
    assert wref.is_alive()
    sv.stop(wref)


def test_yield_returns_none_until_done_and_is_repeatable(ts: Any) -> None:
    gate = threading.Event()
    task = sv.async_nolink(ts, lambda: gate.wait(5) and "done")
    assert task.yield_(timeout=0.01) is None
    gate.set()
    assert task.yield_(timeout=5) == sv.Ok("done")
    assert task.yield_(timeout=5) == sv.Ok("done")


def test_shutdown_kills_a_running_task_and_returns_none(ts: Any) -> None:
    gate = threading.Event()
    started = threading.Event()

    def slow() -> str:
        started.set()
        gate.wait(5)
        return "late"

    task = sv.async_nolink(ts, slow)
    assert started.wait(5)
    assert task.shutdown() is None
    assert task.yield_(timeout=0) == sv.Exit("shutdown")
    gate.set()
    assert sv.count_children(ts).active == 0


def test_shutdown_of_a_finished_task_returns_its_result(ts: Any) -> None:
    task = sv.async_nolink(ts, lambda: 7)
    task.yield_(timeout=5)
    assert task.shutdown() == sv.Ok(7)


def test_async_stream_yields_in_input_order(ts: Any) -> None:
    results = list(sv.async_stream(ts, lambda x: 10 // x, [1, 2, 0, 5], max_concurrency=2))
    assert results[0] == sv.Ok(10)
    assert results[1] == sv.Ok(5)
    assert isinstance(results[2], sv.Exit) and isinstance(results[2].reason, ZeroDivisionError)
    assert results[3] == sv.Ok(2)


def test_async_stream_never_exceeds_max_concurrency(ts: Any) -> None:
    lock = threading.Lock()
    running = 0
    peak = 0

    def work(x: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            return x * x
        finally:
            with lock:
                running -= 1

    results = list(sv.async_stream(ts, work, range(40), max_concurrency=3))
    assert [r.value for r in results if isinstance(r, sv.Ok)] == [x * x for x in range(40)]
    assert 1 <= peak <= 3


def test_async_stream_unordered_yields_everything(ts: Any) -> None:
    results = list(sv.async_stream(ts, lambda x: x, range(10), ordered=False))
    assert sorted(r.value for r in results if isinstance(r, sv.Ok)) == list(range(10))


def test_async_stream_kills_a_task_past_its_timeout(ts: Any) -> None:
    gate = threading.Event()

    def maybe_hang(x: int) -> int:
        if x == 1:
            gate.wait(5)
        return x

    results = list(sv.async_stream(ts, maybe_hang, [0, 1, 2], timeout=0.2, on_timeout="kill_task"))
    gate.set()
    assert results == [sv.Ok(0), sv.Exit("timeout"), sv.Ok(2)]


def test_async_stream_exit_mode_raises_timeout(ts: Any) -> None:
    gate = threading.Event()
    with pytest.raises(sv.Timeout):
        list(sv.async_stream(ts, lambda x: gate.wait(5), [1], timeout=0.1, on_timeout="exit"))
    gate.set()


def test_closing_a_stream_early_stops_its_running_tasks(ts: Any) -> None:
    gate = threading.Event()

    def work(x: int) -> int:
        if x > 0:
            gate.wait(5)
        return x

    stream = sv.async_stream(ts, work, range(5), max_concurrency=3)
    assert next(stream) == sv.Ok(0)
    stream.close()
    assert sv.count_children(ts).active == 0
    gate.set()


def test_async_stream_rejects_bad_arguments(ts: Any) -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        sv.async_stream(ts, abs, [1], max_concurrency=0)
    with pytest.raises(ValueError, match="on_timeout"):
        sv.async_stream(ts, abs, [1], on_timeout="ignore")  # type: ignore[arg-type]
