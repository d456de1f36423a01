"""Circuit breaker (``dspex_actors.lm._breaker``), driven by an injected clock."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors.lm._breaker import CircuitBreaker, counts_as_failure
from dspex_actors.primitives._errors import (
    AdapterParseError,
    CircuitOpen,
    LMBadRequest,
    LMConnectionError,
    LMRateLimited,
    LMServerError,
    LMTimeout,
)


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def state(breaker: CircuitBreaker) -> str:
    """The breaker's state, typed as str so mypy does not narrow it between checks."""
    return breaker.state


def opened(clock: FakeClock, threshold: int = 3, cooldown: float = 10.0) -> CircuitBreaker:
    breaker = CircuitBreaker(threshold, cooldown, clock=clock, mode="consecutive")
    for _ in range(threshold):
        breaker.before_request()
        breaker.record_failure(LMServerError("boom", status=503))
    assert state(breaker) == "open"
    return breaker


def test_closed_breaker_lets_requests_through() -> None:
    breaker = CircuitBreaker(3, 10.0, clock=FakeClock(), mode="consecutive")
    for _ in range(10):
        breaker.before_request()
        breaker.record_success()
    assert state(breaker) == "closed"


def test_threshold_consecutive_failures_open_it() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(3, 10.0, clock=clock, mode="consecutive")
    breaker.record_failure(LMTimeout("t"))
    breaker.record_failure(LMConnectionError("c"))
    assert state(breaker) == "closed"
    breaker.record_failure(LMServerError("s", status=500))
    assert state(breaker) == "open"


def test_a_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(3, 10.0, clock=FakeClock(), mode="consecutive")
    for _ in range(5):
        breaker.record_failure(LMTimeout("t"))
        breaker.record_failure(LMTimeout("t"))
        breaker.record_success()
    assert state(breaker) == "closed"


def test_open_circuit_fails_fast_with_retry_after() -> None:
    clock = FakeClock()
    breaker = opened(clock, cooldown=10.0)
    clock.now += 4.0
    with pytest.raises(CircuitOpen) as info:
        breaker.before_request()
    assert info.value.retry_after == pytest.approx(6.0)
    assert not info.value.retryable


def test_after_cooldown_exactly_one_trial_goes_through() -> None:
    clock = FakeClock()
    breaker = opened(clock)
    clock.now += 10.0
    assert state(breaker) == "half_open"
    breaker.before_request()  # the trial
    for _ in range(3):
        with pytest.raises(CircuitOpen, match="trial"):
            breaker.before_request()
    assert breaker.snapshot()["trial_in_flight"] is True


def test_successful_trial_closes_the_breaker() -> None:
    clock = FakeClock()
    breaker = opened(clock)
    clock.now += 10.0
    breaker.before_request()
    breaker.record_success()
    assert state(breaker) == "closed"
    breaker.before_request()
    breaker.before_request()
    assert breaker.snapshot()["consecutive_failures"] == 0


def test_failed_trial_reopens_for_a_full_cooldown() -> None:
    clock = FakeClock()
    breaker = opened(clock)
    clock.now += 10.0
    breaker.before_request()
    clock.now += 1.0
    breaker.record_failure(LMTimeout("t"))
    assert state(breaker) == "open"
    with pytest.raises(CircuitOpen) as info:
        breaker.before_request()
    assert info.value.retry_after == pytest.approx(10.0)
    assert breaker.snapshot()["times_opened"] == 2


@pytest.mark.parametrize(
    "error",
    [
        LMRateLimited("429", retry_after=1.0),
        LMBadRequest("400", status=400),
        LMBadRequest("401", status=401),
        AdapterParseError("parse", text="x"),
        CircuitOpen("open", retry_after=1.0),
        RuntimeError("bug"),
    ],
)
def test_rate_limits_client_errors_and_parse_errors_never_open_it(error: BaseException) -> None:
    breaker = CircuitBreaker(2, 10.0, clock=FakeClock(), mode="consecutive")
    assert not counts_as_failure(error)
    for _ in range(10):
        breaker.record_failure(error)
    assert state(breaker) == "closed"


def test_non_counting_errors_do_not_reset_the_count() -> None:
    breaker = CircuitBreaker(3, 10.0, clock=FakeClock(), mode="consecutive")
    breaker.record_failure(LMServerError("s"))
    breaker.record_failure(LMServerError("s"))
    breaker.record_failure(LMBadRequest("b"))
    breaker.record_failure(LMServerError("s"))
    assert state(breaker) == "open"


def test_non_counting_trial_result_frees_the_trial_slot() -> None:
    clock = FakeClock()
    breaker = opened(clock)
    clock.now += 10.0
    breaker.before_request()
    breaker.record_failure(LMRateLimited("429"))
    assert state(breaker) == "half_open"
    breaker.before_request()  # a new trial may go


def test_record_failure_without_error_counts() -> None:
    breaker = CircuitBreaker(1, 10.0, clock=FakeClock(), mode="consecutive")
    assert counts_as_failure(None)
    breaker.record_failure()
    assert state(breaker) == "open"


def test_late_results_while_open_are_ignored() -> None:
    clock = FakeClock()
    breaker = opened(clock, cooldown=10.0)
    clock.now += 5.0
    breaker.record_success()
    assert state(breaker) == "open"
    breaker.record_failure(LMTimeout("t"))  # does not extend the cooldown
    clock.now += 5.0
    assert state(breaker) == "half_open"


def test_a_trial_that_never_reports_releases_its_slot_after_trial_timeout() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 1.0, clock=clock, trial_timeout=30.0, mode="consecutive")
    breaker.record_failure()
    clock.now += 1.0
    breaker.before_request()
    clock.now += 29.0
    with pytest.raises(CircuitOpen) as info:
        breaker.before_request()
    assert info.value.retry_after == pytest.approx(1.0)
    clock.now += 1.0
    breaker.before_request()


def test_zero_cooldown_goes_straight_to_half_open() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 0.0, clock=clock, mode="consecutive")
    breaker.record_failure()
    assert state(breaker) == "half_open"
    breaker.before_request()
    with pytest.raises(CircuitOpen):
        breaker.before_request()


def test_snapshot_is_json_serialisable_and_reports_state() -> None:
    clock = FakeClock()
    breaker = opened(clock, threshold=2, cooldown=10.0)
    clock.now += 3.0
    with pytest.raises(CircuitOpen):
        breaker.before_request()
    snap = json.loads(json.dumps(breaker.snapshot()))
    assert snap == {
        "state": "open",
        "mode": "consecutive",
        "consecutive_failures": 2,
        "threshold": 2,
        "window_calls": 0,  # the rate window starts afresh when the breaker opens
        "window_failures": 0,
        "failure_rate": 0.5,
        "cooldown": 10.0,
        "current_cooldown": 10.0,  # the first opening: exactly the cooldown
        "max_cooldown": None,
        "reopened": 0,
        "half_open_successes": 0,
        "success_threshold": 1,
        "disabled": False,
        "retry_after": 7.0,
        "trial_in_flight": False,
        "times_opened": 1,
        "rejected": 1,
    }


@pytest.mark.parametrize(
    ("threshold", "cooldown", "trial_timeout"),
    [(0, 1.0, 1.0), (True, 1.0, 1.0), (1, -1.0, 1.0), (1, float("inf"), 1.0), (1, 1.0, 0.0)],
)
def test_rejects_invalid_parameters(threshold: int, cooldown: float, trial_timeout: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        CircuitBreaker(threshold, cooldown, trial_timeout=trial_timeout)


# -- failure-rate mode (the default) -------------------------------------------


def _run_random(breaker: CircuitBreaker, rng: random.Random, calls: int, p_fail: float) -> bool:
    """Feed ``calls`` outcomes failing with probability ``p_fail``; whether it ever opened."""
    for _ in range(calls):
        if breaker.state != "closed":
            return True
        if rng.random() < p_fail:
            breaker.record_failure(LMServerError("boom"))
        else:
            breaker.record_success()
    return breaker.state != "closed"


def test_thirty_percent_random_failures_never_open_the_default_breaker() -> None:
    opened_runs = [
        seed
        for seed in range(20)
        if _run_random(CircuitBreaker(5, 10.0, clock=FakeClock()), random.Random(seed), 2000, 0.3)
    ]
    assert opened_runs == []


def test_the_same_flaky_stream_opens_a_consecutive_breaker() -> None:
    # What the rate mode fixes: five failures in a row happen in a flaky stream.
    opened_runs = [
        seed
        for seed in range(20)
        if _run_random(
            CircuitBreaker(5, 10.0, clock=FakeClock(), mode="consecutive"),
            random.Random(seed),
            2000,
            0.3,
        )
    ]
    assert len(opened_runs) >= 15


def test_an_endpoint_failing_every_call_opens_the_default_breaker_within_the_window() -> None:
    breaker = CircuitBreaker(5, 10.0, clock=FakeClock())
    calls = 0
    while breaker.state == "closed":
        breaker.record_failure(LMTimeout("t"))
        calls += 1
        assert calls <= breaker.window
    assert calls == breaker.min_calls
    with pytest.raises(CircuitOpen, match="50 failures in the last 50 calls"):
        breaker.before_request()


def test_the_rate_counts_only_counted_failures_and_slides() -> None:
    breaker = CircuitBreaker(5, 10.0, clock=FakeClock(), window=10, min_calls=4, failure_rate=0.5)
    for _ in range(10):
        breaker.record_success()
    for _ in range(4):
        breaker.record_failure(LMBadRequest("neutral"))  # not counted: no trip
    assert breaker.state == "closed"
    for _ in range(4):
        breaker.record_failure(LMServerError("counted"))  # 4 of the last 10
    assert breaker.state == "closed"
    breaker.record_failure(LMServerError("counted"))  # 5 of the last 10: 50%
    assert breaker.state == "open"


def test_reset_closes_an_open_breaker_and_forgets_its_history() -> None:
    clock = FakeClock()
    breaker = opened(clock, threshold=2, cooldown=60.0)
    breaker.reset()
    assert breaker.state == "closed"
    breaker.before_request()
    assert breaker.snapshot()["consecutive_failures"] == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window": 0},
        {"min_calls": 0},
        {"window": 5, "min_calls": 6},
        {"failure_rate": 0.0},
        {"failure_rate": 1.5},
        {"mode": "sometimes"},
    ],
)
def test_bad_rate_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        CircuitBreaker(5, 10.0, **kwargs)


def test_a_flaky_upstream_under_sixteen_callers_never_trips_the_default_breaker(
    lm_server: Any, start_system: Any
) -> None:
    # The scenario: ~27% of attempts fail at random (500, drop, garbage);
    # retries absorb them, the breaker stays closed, every request succeeds.
    lm_server.set_fault_rates({"500": 0.12, "drop": 0.08, "garbage": 0.07}, seed=6)
    retry = dx.RetryPolicy(max_attempts=6, base_delay=0.001, max_delay=0.01, deadline=30)
    system = start_system(lm_server, retry=retry)
    qa = dx.Predict("question -> answer")
    questions = [{"question": f"What is {i} + {i}?"} for i in range(192)]

    results = qa.batch(questions, max_concurrency=16, return_exceptions=True)

    # A request may still exhaust its 6 attempts (0.27**6 each); none may be refused.
    assert not any(isinstance(r, dx.CircuitOpen) for r in results)
    assert sum(isinstance(r, dx.Prediction) for r in results) >= 188
    stats = system.stats()["lms"]["default"]
    assert stats["circuit_open_refusals"] == 0
    assert stats["errors"] > 20  # the faults did happen
