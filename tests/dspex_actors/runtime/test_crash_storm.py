"""A crash storm stays inside its bulkhead: each LM client under its own supervisor.

The storm kills one LM's client as fast as it comes back until that LM's own
supervisor gives up; the other LM's callers, the cache and the root carry on, the
stormed LM fails fast with ``LMUnavailable`` naming it, ``health()``/``stats()``/
``tree()`` say so, and it comes back by its ``down_backoff``. Timing bounds are
generous (a shared 2-core machine); the counts are exact.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import dspex_actors as dx
import supervisors as sv
from dspex_actors import messages as m
from dspex_actors.testing import RuleBasedLMServer

CALLERS = 16
CALLS_EACH = 4


@pytest.fixture
def servers() -> Iterator[tuple[RuleBasedLMServer, RuleBasedLMServer]]:
    with RuleBasedLMServer(latency=0.02) as steady, RuleBasedLMServer() as stormy:
        yield steady, stormy


def _system(
    steady: RuleBasedLMServer,
    stormy: RuleBasedLMServer,
    name: str,
    *,
    restart_backoff: sv.Backoff,
    down_backoff: sv.Backoff,
    deadline: float = 30.0,
) -> dx.ActorSystem:
    lms = {
        "default": dx.LM("openai/steady", api_base=steady.api_base, api_key="k"),
        "flaky": dx.LM(
            "openai/flaky",
            api_base=stormy.api_base,
            api_key="k",
            restart_backoff=restart_backoff,
            client_max_restarts=3,
            client_max_seconds=30.0,
            down_backoff=down_backoff,
        ),
    }
    retry = dx.RetryPolicy(max_attempts=2, base_delay=0.01, deadline=deadline)
    return dx.start(lms=lms, retry=retry, name=name, configure_logs=False)


def _until(check: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def _storm(system: dx.ActorSystem, lm: str, stop: threading.Event) -> int:
    """Kill ``lm``'s client each time it is back, until its LM is down (or ``stop``)."""
    kills = 0
    name = system.lm(lm).name
    deadline = time.monotonic() + 20
    while not stop.is_set() and system.health()["lms"][lm]["state"] != "down":
        assert time.monotonic() < deadline, "the LM's supervisor never gave up"
        ref = sv.whereis(name)
        if ref is not None and ref.is_alive():
            sv.kill(ref, reason="storm")
            kills += 1
        else:
            time.sleep(0.001)
    return kills


def _start_callers() -> tuple[list[str], list[threading.Thread]]:
    """CALLERS threads, each making CALLS_EACH calls to the default LM; their outcomes."""
    outcomes: list[str] = []
    lock = threading.Lock()

    def caller(index: int) -> None:
        for call in range(CALLS_EACH):
            try:
                pred = dx.Predict("question -> answer")(question=f"What is {index} + {call}?")
                outcome = "ok" if str(index + call) in pred.answer else f"wrong: {pred}"
            except Exception as exc:  # collected for the assert below
                outcome = repr(exc)
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(CALLERS)]
    for t in threads:
        t.start()
    return outcomes, threads


def test_a_storm_in_one_lm_client_leaves_the_other_lm_the_cache_and_the_root_serving(
    servers: tuple[RuleBasedLMServer, RuleBasedLMServer],
) -> None:
    steady, stormy = servers
    with _system(
        steady,
        stormy,
        "storm1",
        restart_backoff=sv.Backoff(min_s=0.02, max_s=0.05, jitter=0.0),
        down_backoff=sv.Backoff(min_s=1.0, max_s=1.0, jitter=0.0),
    ) as system:
        assert "5" in dx.Predict("question -> answer", lm="flaky")(question="What is 2 + 3?").answer
        outcomes, threads = _start_callers()
        kills = _storm(system, "flaky", threading.Event())
        for t in threads:
            t.join(30)

        # The other LM's callers all succeeded, through the whole storm.
        assert outcomes == ["ok"] * (CALLERS * CALLS_EACH)
        assert kills == 4  # 3 restarts allowed, the 4th crash makes its supervisor give up
        # The root, the cache and the other LM were never touched.
        assert system.root.is_alive() and system.state == "degraded"
        tree = system.tree()
        assert tree.find("cache").restarts == 0  # type: ignore[union-attr]
        assert tree.find("lm:default").restarts == 0  # type: ignore[union-attr]
        assert tree.find(system.lm().name).restarts == 0  # type: ignore[union-attr]
        assert tree.find("lm:flaky").state == "restarting"  # type: ignore[union-attr]
        assert system.cache is not None and system.cache.ask(m.GetStats(), timeout=5)["size"] > 0
        health = system.health()
        assert health["status"] == "degraded"
        assert health["lms"]["default"] == {
            "alive": True,
            "restarts": 0,
            "state": "alive",
            "breaker": "closed",
        }
        flaky = health["lms"]["flaky"]
        assert flaky["alive"] is False and flaky["state"] == "down"
        assert "gave up" in flaky["reason"] and flaky["restarts"] == 3
        assert 0 < flaky["restart_in"] <= 1.0
        assert any("'flaky' is down" in r for r in health["degraded"])
        assert system.stats()["lms"]["flaky"]["state"] == "down"

        # The down LM fails fast, typed and named, without I/O.
        before = stormy.request_count
        started = time.monotonic()
        with pytest.raises(dx.LMUnavailable, match="'flaky'") as caught:
            dx.Predict("question -> answer", lm="flaky")(question="What is 1 + 1?")
        with pytest.raises(sv.NoProc):
            system.lm("flaky").ask(m.GetStats(), timeout=5)
        assert time.monotonic() - started < 0.5
        assert caught.value.lm == "flaky" and "down" in str(caught.value)
        assert stormy.request_count == before

        # It comes back by its down_backoff, with its counters.
        _until(lambda: system.health()["lms"]["flaky"]["state"] == "alive")
        assert "9" in dx.Predict("question -> answer", lm="flaky")(question="What is 4 + 5?").answer
        assert system.state == "running"
        assert system.tree().find("lm:flaky").restarts == 1  # type: ignore[union-attr]
        stats = system.stats()["lms"]["flaky"]
        assert stats["ok"] == 2 and stats["client_restarts"] == 4


def test_a_backoff_longer_than_the_request_deadline_fails_the_call_fast(
    servers: tuple[RuleBasedLMServer, RuleBasedLMServer],
) -> None:
    steady, stormy = servers
    with _system(
        steady,
        stormy,
        "storm2",
        restart_backoff=sv.Backoff(min_s=4.0, max_s=4.0, jitter=0.0),
        down_backoff=sv.Backoff(min_s=1.0, max_s=1.0, jitter=0.0),
        deadline=2.0,
    ) as system:
        sv.kill(system.lm("flaky").resolve(), reason="one crash")
        _until(lambda: system.health()["lms"]["flaky"]["state"] == "restarting")

        started = time.monotonic()
        with pytest.raises(dx.LMUnavailable, match="restart backoff") as caught:
            dx.Predict("question -> answer", lm="flaky")(question="What is 1 + 1?")
        assert time.monotonic() - started < 0.5  # not the 2 s deadline: it cannot be back
        assert caught.value.lm == "flaky" and not caught.value.retryable
        flaky = system.health()["lms"]["flaky"]
        assert flaky["restart_in"] is not None and 0 < flaky["restart_in"] <= 4.0
        assert "backoff: starts in" in repr(system.tree())
        assert "2" in dx.Predict("question -> answer")(question="What is 1 + 1?").answer

        sv.wait_for_name(system.lm("flaky").name, timeout=10)
        assert "3" in dx.Predict("question -> answer", lm="flaky")(question="What is 1 + 2?").answer
        assert system.health()["lms"]["flaky"]["restarts"] == 1


def test_a_call_during_a_short_restart_backoff_waits_for_the_client_and_succeeds(
    servers: tuple[RuleBasedLMServer, RuleBasedLMServer],
) -> None:
    steady, stormy = servers
    with _system(
        steady,
        stormy,
        "storm3",
        restart_backoff=sv.Backoff(min_s=1.0, max_s=1.0, jitter=0.0),
        down_backoff=sv.Backoff(min_s=1.0, max_s=1.0, jitter=0.0),
    ) as system:
        sv.kill(system.lm("flaky").resolve(), reason="one crash")
        _until(lambda: system.health()["lms"]["flaky"]["state"] == "restarting")

        started = time.monotonic()
        pred = dx.Predict("question -> answer", lm="flaky")(question="What is 1 + 1?")
        waited = time.monotonic() - started
        assert "2" in pred.answer  # one crash loses no request that can wait for it
        assert 0.3 < waited < 5.0  # it waited for the restart (1 s backoff), not the deadline
        assert system.health()["lms"]["flaky"]["restarts"] == 1
