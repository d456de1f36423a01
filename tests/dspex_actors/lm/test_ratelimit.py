"""Token bucket (``dspex_actors.lm._ratelimit``), driven by an injected clock."""

from __future__ import annotations

import pytest

from dspex_actors.lm._ratelimit import TokenBucket


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_full_bucket_allows_a_burst_then_asks_to_wait() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60, burst=3, clock=clock)  # 1 token/s
    assert [bucket.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_acquire() == pytest.approx(1.0)


def test_wait_shrinks_as_time_passes_and_waiting_it_exactly_succeeds() -> None:
    clock = FakeClock()
    bucket = TokenBucket(120, burst=1, clock=clock)  # 2 tokens/s
    assert bucket.try_acquire() == 0.0
    wait = bucket.try_acquire()
    assert wait == pytest.approx(0.5)
    clock.now += 0.2
    assert bucket.try_acquire() == pytest.approx(0.3)
    clock.now += 0.3
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(0.5)


def test_waiting_the_returned_delay_always_succeeds_despite_float_rounding() -> None:
    clock = FakeClock(0.1)
    bucket = TokenBucket(7, burst=1, clock=clock)  # awkward rate
    assert bucket.try_acquire() == 0.0
    for _ in range(200):
        wait = bucket.try_acquire()
        assert wait > 0
        clock.now += wait
        assert bucket.try_acquire() == 0.0


def test_rate_is_respected_over_a_long_run() -> None:
    clock = FakeClock()
    bucket = TokenBucket(600, burst=10, clock=clock)  # 10/s
    granted = 0
    for _ in range(10_000):  # poll every 10 ms for 100 s
        if bucket.try_acquire() == 0.0:
            granted += 1
        clock.now += 0.01
    assert 1000 <= granted <= 1010  # 100 s * 10/s + initial burst of 10


def test_idle_time_refills_only_up_to_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60, burst=2, clock=clock)
    bucket.try_acquire()
    bucket.try_acquire()
    clock.now += 3600
    assert bucket.available() == 2.0
    assert [bucket.try_acquire() for _ in range(3)][-1] > 0


def test_default_burst_is_one_second_of_tokens_at_least_one() -> None:
    assert TokenBucket(600).burst == 10.0
    assert TokenBucket(30).burst == 1.0


def test_explicit_now_overrides_the_clock_and_backwards_time_takes_nothing() -> None:
    clock = FakeClock(50.0)
    bucket = TokenBucket(60, burst=1, clock=clock)
    assert bucket.try_acquire(now=50.0) == 0.0
    assert bucket.try_acquire(now=49.0) == pytest.approx(1.0)  # clock went back
    assert bucket.try_acquire(now=51.0) == 0.0


def test_never_sleeps() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1, burst=1, clock=clock)  # one per minute
    bucket.try_acquire()
    assert bucket.try_acquire() == pytest.approx(60.0)  # returns at once with the wait


@pytest.mark.parametrize(
    ("rate", "burst"), [(0, None), (-5, None), (float("inf"), None), (60, 0.5), (60, float("nan"))]
)
def test_rejects_invalid_parameters(rate: float, burst: float | None) -> None:
    with pytest.raises(ValueError, match="must be"):
        TokenBucket(rate, burst=burst)
