"""Retry policy (``dspex_actors.lm._retry``): backoff, jitter, Retry-After, deadline."""

from __future__ import annotations

import random
from typing import Any

import pydantic
import pytest

from dspex_actors.lm._retry import RetryPolicy
from dspex_actors.primitives._errors import (
    AdapterParseError,
    CircuitOpen,
    DeadlineExceeded,
    LMBadRequest,
    LMConnectionError,
    LMRateLimited,
    LMServerError,
    LMTimeout,
)

SERVER = LMServerError("boom", status=503)


class FixedRandom(random.Random):
    """A Random whose random() returns a fixed value."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value
        self.calls = 0

    def random(self) -> float:
        self.calls += 1
        return self.value


def test_defaults() -> None:
    policy = RetryPolicy()
    assert (
        policy.max_attempts,
        policy.base_delay,
        policy.max_delay,
        policy.jitter,
        policy.deadline,
    ) == (4, 0.25, 20.0, 0.5, 60.0)


def test_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=0.25, max_delay=2.0, jitter=0.0)
    rng = random.Random(1)
    assert [policy.delay(n, SERVER, rng) for n in range(1, 7)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


def test_huge_attempt_numbers_do_not_overflow() -> None:
    policy = RetryPolicy(max_delay=5.0, jitter=0.0)
    assert policy.delay(10_000, SERVER, random.Random(0)) == 5.0


def test_jitter_randomises_a_fraction_of_the_delay_downwards() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=100.0, jitter=0.5)
    assert policy.delay(3, SERVER, FixedRandom(0.0)) == 4.0
    assert policy.delay(3, SERVER, FixedRandom(0.5)) == 3.0
    assert policy.delay(3, SERVER, FixedRandom(0.999999)) == pytest.approx(2.0, abs=1e-5)
    rng = random.Random(42)
    delays = [policy.delay(3, SERVER, rng) for _ in range(500)]
    assert all(2.0 <= d <= 4.0 for d in delays)
    assert max(delays) - min(delays) > 1.5  # actually spread, not constant


def test_full_jitter_spans_zero_to_the_backoff() -> None:
    policy = RetryPolicy(base_delay=1.0, jitter=1.0)
    rng = random.Random(7)
    delays = [policy.delay(1, SERVER, rng) for _ in range(500)]
    assert all(0.0 <= d <= 1.0 for d in delays)
    assert min(delays) < 0.1
    assert max(delays) > 0.9


def test_seeded_rng_gives_reproducible_delays_and_one_draw_per_call() -> None:
    policy = RetryPolicy()
    a = [policy.delay(n, SERVER, random.Random(5)) for n in range(1, 5)]
    b = [policy.delay(n, SERVER, random.Random(5)) for n in range(1, 5)]
    assert a == b
    rng = FixedRandom(0.3)
    policy.delay(1, SERVER, rng)
    RetryPolicy(jitter=0.0).delay(1, LMRateLimited("x", retry_after=9.0), rng)
    assert rng.calls == 2


def test_retry_after_is_a_floor_not_capped_by_max_delay() -> None:
    policy = RetryPolicy(base_delay=0.25, max_delay=2.0, jitter=0.5)
    assert policy.delay(1, LMRateLimited("429", retry_after=5.0), FixedRandom(0.0)) == 5.0
    # a backoff longer than Retry-After wins
    policy = RetryPolicy(base_delay=8.0, max_delay=20.0, jitter=0.0)
    assert policy.delay(1, LMRateLimited("429", retry_after=1.0), FixedRandom(0.0)) == 8.0
    # no Retry-After: plain backoff
    assert policy.delay(1, LMRateLimited("429"), FixedRandom(0.0)) == 8.0


@pytest.mark.parametrize(
    "error",
    [LMRateLimited("429"), LMServerError("500"), LMTimeout("t"), LMConnectionError("c")],
)
def test_retryable_errors_are_retried_until_attempts_run_out(error: Exception) -> None:
    policy = RetryPolicy(max_attempts=3, deadline=None)
    assert policy.should_retry(1, error, elapsed=0.0)
    assert policy.should_retry(2, error, elapsed=0.0)
    assert not policy.should_retry(3, error, elapsed=0.0)


@pytest.mark.parametrize(
    "error",
    [
        LMBadRequest("400", status=400),
        CircuitOpen("open", retry_after=1.0),
        AdapterParseError("p", text="t"),
        DeadlineExceeded("d"),
        ValueError("not an LM error"),
    ],
)
def test_non_retryable_errors_are_never_retried(error: Exception) -> None:
    policy = RetryPolicy(max_attempts=10, deadline=None)
    assert not policy.should_retry(1, error, elapsed=0.0)
    assert policy.next_delay(1, error, 0.0, random.Random(0)) is None


def test_no_retry_whose_wait_would_reach_the_deadline() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=1.0, jitter=0.0, deadline=10.0)
    assert policy.should_retry(1, SERVER, elapsed=8.9)  # waits 1.0 -> 9.9
    assert not policy.should_retry(1, SERVER, elapsed=9.0)  # waits 1.0 -> 10.0
    assert not policy.should_retry(1, LMRateLimited("429", retry_after=30.0), elapsed=0.0)
    assert policy.should_retry(1, SERVER, elapsed=5.0, delay=4.0)
    assert not policy.should_retry(1, SERVER, elapsed=5.0, delay=5.0)


def test_without_a_deadline_only_attempts_limit_retries() -> None:
    policy = RetryPolicy(max_attempts=2, deadline=None)
    assert policy.should_retry(1, LMRateLimited("429", retry_after=3600.0), elapsed=1e6)
    assert policy.remaining(1e6) is None


def test_next_delay_combines_delay_and_decision() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=1.0, jitter=0.0, deadline=5.0)
    rng = random.Random(0)
    assert policy.next_delay(1, SERVER, 0.0, rng) == 1.0
    assert policy.next_delay(2, SERVER, 1.0, rng) == 2.0
    assert policy.next_delay(3, SERVER, 3.0, rng) is None  # attempts exhausted
    assert policy.next_delay(2, SERVER, 3.5, rng) is None  # 3.5 + 2.0 passes 5.0
    assert policy.remaining(3.5) == 1.5
    assert policy.remaining(9.0) == 0.0


def test_policy_is_frozen() -> None:
    policy = RetryPolicy()
    field = "max_attempts"
    with pytest.raises(pydantic.ValidationError):
        setattr(policy, field, 9)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"base_delay": -0.1},
        {"max_delay": -1.0},
        {"jitter": -0.1},
        {"jitter": 1.5},
        {"deadline": 0.0},
        {"deadline": -5.0},
        {"base_delay": float("inf")},
        {"deadline": float("nan")},
    ],
)
def test_rejects_invalid_numbers(kwargs: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        RetryPolicy(**kwargs)


def test_backoff_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError, match="attempt"):
        RetryPolicy().backoff(0)
