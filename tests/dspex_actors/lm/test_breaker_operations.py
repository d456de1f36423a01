"""Breaker operations: BreakerDisable/BreakerEnable, exponential reset, half-open threshold."""

from __future__ import annotations

import random

import pytest

import dspex_actors as dx
import supervisors as sv
from dspex_actors import messages as m
from dspex_actors.lm import CircuitBreaker
from dspex_actors.primitives import CircuitOpen, LMServerError
from dspex_actors.testing import RuleBasedLMServer

FAIL = LMServerError("500")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _open_once(breaker: CircuitBreaker) -> None:
    breaker.before_request()
    breaker.record_failure(FAIL)


def _fail_trial(breaker: CircuitBreaker, clock: FakeClock) -> float:
    """Wait out the cooldown, fail the half-open trial; return the new cooldown."""
    clock.now += breaker.retry_after() + 1e-9  # float sums: land just past the cooldown
    assert breaker.state == "half_open"
    breaker.before_request()
    assert breaker.record_failure(FAIL)
    return breaker.retry_after()


def test_each_failed_trial_doubles_the_cooldown_up_to_the_maximum_and_closing_resets_it() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        1, 1.0, clock, mode="consecutive", backoff=2.0, max_cooldown=5.0, jitter=0.0
    )
    _open_once(breaker)
    first = breaker.retry_after()

    grown = [_fail_trial(breaker, clock) for _ in range(4)]

    assert first == pytest.approx(1.0)
    assert grown == pytest.approx([2.0, 4.0, 5.0, 5.0])
    clock.now += breaker.retry_after()
    breaker.before_request()
    breaker.record_success()
    assert breaker.state == "closed"
    _open_once(breaker)
    assert breaker.retry_after() == pytest.approx(1.0)  # back to the first cooldown


def test_jitter_adds_up_to_its_fraction_to_grown_cooldowns() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        1,
        2.0,
        clock,
        mode="consecutive",
        backoff=1.0,
        max_cooldown=2.0,
        jitter=0.5,
        rng=random.Random(3),
    )
    _open_once(breaker)

    cooldowns = [_fail_trial(breaker, clock) for _ in range(20)]

    assert all(2.0 <= c <= 3.0 for c in cooldowns)
    assert max(cooldowns) - min(cooldowns) > 0.2


def test_a_half_open_breaker_closes_only_after_n_successful_trials_in_a_row() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 1.0, clock, mode="consecutive", success_threshold=3)
    _open_once(breaker)
    clock.now += 1.0
    for _ in range(2):
        breaker.before_request()
        with pytest.raises(CircuitOpen):
            breaker.before_request()  # still one trial at a time
        breaker.record_success()
        assert breaker.state == "half_open"
    breaker.before_request()
    breaker.record_failure(FAIL)  # the third fails: open again
    assert breaker.state == "open"
    clock.now += breaker.retry_after()
    for _ in range(3):
        breaker.before_request()
        breaker.record_success()
    assert breaker.state == "closed"


def test_a_disabled_breaker_refuses_everything_until_enabled_and_then_is_closed() -> None:
    breaker = CircuitBreaker(5, 1.0, FakeClock())
    breaker.disable()
    assert breaker.state == "disabled"
    with pytest.raises(CircuitOpen, match="disabled by an operator"):
        breaker.before_request()
    breaker.enable()
    assert breaker.state == "closed"
    breaker.before_request()


@pytest.mark.parametrize(
    "options",
    [
        {"success_threshold": 0},
        {"backoff": 0.5},
        {"max_cooldown": 0.5},
        {"jitter": 1.5},
    ],
)
def test_bad_breaker_growth_options_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        CircuitBreaker(1, 1.0, **options)  # type: ignore[arg-type]


def test_the_lm_options_have_documented_defaults_and_are_checked() -> None:
    lm = dx.LM("openai/m", api_base="http://127.0.0.1:1/v1", api_key="k")
    assert (
        lm.breaker_backoff,
        lm.breaker_max_cooldown,
        lm.breaker_jitter,
        lm.breaker_success_threshold,
    ) == (2.0, 300.0, 0.2, 1)
    for bad in ({"breaker_backoff": 0.5}, {"breaker_jitter": 2}, {"breaker_success_threshold": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            dx.LM("openai/m", api_base="http://127.0.0.1:1/v1", api_key="k", **bad)


def test_an_operator_disables_an_lms_breaker_and_its_calls_fail_fast_without_io() -> None:
    with (
        RuleBasedLMServer() as server,
        dx.start(
            lm=dx.LM("openai/rule-based", api_base=server.api_base, api_key="k"),
            cache=False,
            name="breaker-ops",
            configure_logs=False,
        ) as system,
    ):
        qa = dx.Predict("question -> answer")
        assert "2" in qa(question="What is 1 + 1?").answer
        system.lm("default").tell(m.BreakerDisable())
        assert system.lm().ask(m.GetState(), timeout=5)["breaker"] == "disabled"
        before = server.request_count

        with pytest.raises(dx.CircuitOpen, match="disabled by an operator"):
            qa(question="What is 2 + 2?")
        assert server.request_count == before  # refused before any I/O
        health = system.health()
        assert health["status"] == "degraded" and health["lms"]["default"]["breaker"] == "disabled"
        assert any("breaker disabled" in reason for reason in health["degraded"])

        # The operator's switch survives a restart of the client.
        sv.kill(system.lm().resolve(), reason="restart")
        sv.wait_for_name(system.lm().name, timeout=5)
        assert system.lm().ask(m.GetState(), timeout=5)["breaker"] == "disabled"

        system.lm().ask(m.BreakerEnable(), timeout=5)
        assert "6" in qa(question="What is 3 + 3?").answer
        assert system.health()["status"] == "healthy"
