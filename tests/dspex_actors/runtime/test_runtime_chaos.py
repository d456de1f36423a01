"""Containment under chaos: many faulty requests never restart the LM client or cache."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dspex_actors as dx
import supervisors as sv
from tests.dspex_actors.fixture_types import SystemFactory

REQUESTS = 500
CALLERS = 16
DEADLINE = 5.0


def test_500_requests_with_30_percent_faults_end_correctly_and_nothing_leaks(
    lm_server: dx.RuleBasedLMServer, start_system: SystemFactory
) -> None:
    before = {t for t in threading.enumerate() if t.is_alive()}
    lm_server.set_fault_rates(
        {"500": 0.08, "429": 0.06, "drop": 0.05, "garbage": 0.04, "hang": 0.03, "400": 0.04},
        seed=7,
        templates={
            "429": dx.Fault("429", retry_after=0.01),
            "hang": dx.Fault("hang", hang_seconds=3),
        },
    )
    system = start_system(
        # The breaker would rightly open on a run of 5 failures (likely at a 30% fault
        # rate) and fail the rest fast; it has its own tests, here it stays closed.
        lm_options={"timeout": 0.25, "breaker_threshold": 50},
        retry=dx.RetryPolicy(max_attempts=5, base_delay=0.005, max_delay=0.05, deadline=DEADLINE),
        cache=False,
        name="chaos",
    )
    qa = dx.Predict("question -> answer")
    outcomes: list[Any] = [None] * REQUESTS
    durations: list[float] = [0.0] * REQUESTS

    def one(i: int) -> None:
        started = time.monotonic()
        try:
            outcomes[i] = qa(question=f"What is {i} + 1?")
        except dx.LMError as exc:
            outcomes[i] = exc
        durations[i] = time.monotonic() - started

    try:
        with ThreadPoolExecutor(CALLERS) as pool:
            list(pool.map(one, range(REQUESTS)))
        ok = [i for i, o in enumerate(outcomes) if isinstance(o, dx.Prediction)]
        errors = [o for o in outcomes if isinstance(o, dx.LMError)]
        assert len(ok) + len(errors) == REQUESTS  # every request ended, typed
        for i in ok:
            assert outcomes[i].answer == f"The answer is {i + 1}."
        assert max(durations) < DEADLINE + 1.0
        assert len(ok) > REQUESTS * 0.8
        # Containment: the shared actors never crashed.
        tree = system.tree()
        for child in tree.children:
            assert child.restarts == 0, sv.format_tree(tree)
        assert sv.count_children(system.programs.name).active == 0
        stats = system.stats()["lms"]["default"]
        assert stats["errors"] > REQUESTS * 0.15  # the faults really happened
    finally:
        system.shutdown()
        lm_server.stop()
    left = {t for t in threading.enumerate() if t.is_alive()} - before
    # Hung server handlers are woken by stop(); nothing of ours may remain.
    assert {t.name for t in left if t.name.startswith(("sv:", "dspex:"))} == set()
