"""The cheap per-actor event (``supervisors._flag.Flag``) behaves as ``threading.Event``."""

from __future__ import annotations

import threading
import time

from supervisors._flag import Flag


def test_a_new_flag_is_unset_and_a_wait_on_it_times_out() -> None:
    flag = Flag()
    started = time.monotonic()
    assert not flag.is_set()
    assert flag.wait(0.05) is False
    assert time.monotonic() - started >= 0.04


def test_a_set_flag_answers_wait_at_once_even_with_zero_timeout() -> None:
    flag = Flag()
    flag.set()
    assert flag.is_set()
    assert flag.wait() is True
    assert flag.wait(0) is True
    assert flag.wait(-1) is True


def test_zero_and_negative_timeouts_never_block() -> None:
    flag = Flag()
    started = time.monotonic()
    assert flag.wait(0) is False
    assert flag.wait(-5) is False
    assert time.monotonic() - started < 0.5


def test_set_from_another_thread_wakes_every_waiter() -> None:
    flag = Flag()
    results: list[bool] = []
    lock = threading.Lock()

    def waiter() -> None:
        got = flag.wait(10)
        with lock:
            results.append(got)

    threads = [threading.Thread(target=waiter, daemon=True) for _ in range(5)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    flag.set()
    for thread in threads:
        thread.join(5)
    assert results == [True] * 5


def test_a_waiter_that_timed_out_leaves_no_trace_and_a_later_wait_still_works() -> None:
    flag = Flag()
    assert flag.wait(0.01) is False
    assert not flag._waiters
    threading.Timer(0.05, flag.set).start()
    assert flag.wait(5) is True


def test_clear_makes_waits_block_again_until_the_next_set() -> None:
    flag = Flag()
    flag.set()
    flag.clear()
    assert not flag.is_set()
    assert flag.wait(0.01) is False
    flag.set()
    assert flag.wait(0.01) is True


def test_a_flag_is_a_threading_event_for_code_typed_against_one() -> None:
    flag = Flag()
    assert isinstance(flag, threading.Event)
    assert "unset" in repr(flag)
    flag.set()
    assert "set" in repr(flag)
    assert flag.isSet()
