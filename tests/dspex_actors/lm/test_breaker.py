"""Circuit breaker (``dspex_actors.lm._breaker``), driven by an injected clock."""

from __future__ import annotations

import json

import pytest

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
    breaker = CircuitBreaker(threshold, cooldown, clock=clock)
    for _ in range(threshold):
        breaker.before_request()
        breaker.record_failure(LMServerError("boom", status=503))
    assert state(breaker) == "open"
    return breaker


def test_closed_breaker_lets_requests_through() -> None:
    breaker = CircuitBreaker(3, 10.0, clock=FakeClock())
    for _ in range(10):
        breaker.before_request()
        breaker.record_success()
    assert state(breaker) == "closed"


def test_threshold_consecutive_failures_open_it() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(3, 10.0, clock=clock)
    breaker.record_failure(LMTimeout("t"))
    breaker.record_failure(LMConnectionError("c"))
    assert state(breaker) == "closed"
    breaker.record_failure(LMServerError("s", status=500))
    assert state(breaker) == "open"


def test_a_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(3, 10.0, clock=FakeClock())
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
    breaker = CircuitBreaker(2, 10.0, clock=FakeClock())
    assert not counts_as_failure(error)
    for _ in range(10):
        breaker.record_failure(error)
    assert state(breaker) == "closed"


def test_non_counting_errors_do_not_reset_the_count() -> None:
    breaker = CircuitBreaker(3, 10.0, clock=FakeClock())
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
    breaker = CircuitBreaker(1, 10.0, clock=FakeClock())
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
    breaker = CircuitBreaker(1, 1.0, clock=clock, trial_timeout=30.0)
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
    breaker = CircuitBreaker(1, 0.0, clock=clock)
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
        "consecutive_failures": 2,
        "threshold": 2,
        "cooldown": 10.0,
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
