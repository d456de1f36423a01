"""sv.Backoff: exponential delays with jitter, capped, and a count that resets."""

from __future__ import annotations

import random

import pytest

import supervisors as sv


def test_delays_double_from_min_up_to_max_without_jitter() -> None:
    backoff = sv.Backoff(min_s=0.1, max_s=1.0, jitter=0.0)

    delays = [backoff.delay(n) for n in range(6)]

    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_jitter_adds_at_most_its_fraction_and_varies() -> None:
    backoff = sv.Backoff(min_s=1.0, max_s=1.0, jitter=0.5)
    rng = random.Random(7)

    delays = [backoff.delay(0, rng) for _ in range(200)]

    assert all(1.0 <= d < 1.5 for d in delays)
    assert max(delays) - min(delays) > 0.3  # spread over the range, not one value


def test_a_huge_count_does_not_overflow() -> None:
    assert sv.Backoff(min_s=0.5, max_s=3.0).base_delay(10_000) == 3.0


def test_the_count_resets_after_the_quiet_period() -> None:
    backoff = sv.Backoff(reset_after_s=30.0)

    assert backoff.next_count(4, up_for_s=1.0) == 5
    assert backoff.next_count(4, up_for_s=30.0) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_s": 0},
        {"min_s": 2.0, "max_s": 1.0},
        {"jitter": 1.5},
        {"jitter": -0.1},
        {"reset_after_s": 0},
        {"min_s": float("nan")},
    ],
)
def test_out_of_range_settings_are_refused_at_construction(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Backoff"):
        sv.Backoff(**kwargs)


def test_a_non_number_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"Backoff\.min_s"):
        sv.Backoff(min_s="1")  # type: ignore[arg-type]
