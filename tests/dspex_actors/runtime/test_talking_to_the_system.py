"""Talking to a running system: messages, services, and a state that tells the truth.

The users: code that sends ask/tell messages to the runtime's actors, services that
put their own actors in the tree, and people at a REPL reading ``repr``, ``tree()``,
``stats()`` and ``health()``, including after the root supervisor gave up.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import dspex_actors as dx
import supervisors as sv
from dspex_actors import messages as m
from tests.dspex_actors.fixture_types import SystemFactory


def _kill_until_down(system: dx.ActorSystem, limit: float = 20.0) -> int:
    """Kill the cache as fast as it comes back, until the root gives up.

    (Not an LM client: a crash storm in a client stays inside its own supervisor,
    see tests/dspex_actors/runtime/test_crash_storm.py; the cache is the root's own child.)
    """
    kills = 0
    deadline = time.monotonic() + limit
    assert system.cache is not None
    while system.root.is_alive():
        assert time.monotonic() < deadline, "the root never gave up"
        ref = sv.whereis(system.cache.name)
        if ref is not None and ref.is_alive():
            sv.kill(ref, reason="storm")
            kills += 1
        else:
            time.sleep(0.001)
    return kills


# -- messages -------------------------------------------------------------------------


def test_runtime_actors_answer_the_public_messages(start_system: SystemFactory) -> None:
    system = start_system()
    qa = dx.Predict("question -> answer")
    qa(question="What is the capital of France?")

    lm_stats = system.lm.ask(m.GetStats(), timeout=5)
    lm_state = system.lm("default").ask(m.GetState(), timeout=5)
    cache_stats = system.cache.ask(m.GetStats(), timeout=5)  # type: ignore[union-attr]
    cache_state = system.cache.ask(m.GetState(), timeout=5)  # type: ignore[union-attr]

    assert lm_stats["requests"] == 1 and lm_stats["ok"] == 1
    assert lm_state["model"] == "openai/rule-based" and lm_state["breaker"] == "closed"
    assert "sk-test" not in repr(lm_state)
    assert cache_stats["size"] == 1 and cache_state["entries"] == 1
    system.cache.ask(m.ClearCache(), timeout=5)  # type: ignore[union-attr]
    assert system.cache.ask(m.GetState(), timeout=5)["entries"] == 0  # type: ignore[union-attr]


def test_reset_closes_an_open_breaker(start_system: SystemFactory, lm_server: Any) -> None:
    system = start_system(
        lm_options={"breaker_mode": "consecutive", "breaker_threshold": 1, "breaker_cooldown": 60},
        retry=dx.RetryPolicy(max_attempts=1),
    )
    lm_server.inject("500")
    with pytest.raises(dx.LMServerError):
        dx.Predict("question -> answer")(question="What is 1 + 1?")
    assert system.lm.ask(m.GetState(), timeout=5)["breaker"] == "open"
    assert system.state == "degraded"

    system.lm.ask(m.Reset(), timeout=5)

    assert system.lm.ask(m.GetState(), timeout=5)["breaker"] == "closed"
    assert system.state == "running"
    assert "2" in dx.Predict("question -> answer")(question="What is 1 + 1?").answer


@pytest.mark.parametrize("target", ["lm", "cache"])
def test_an_unknown_message_raises_unknown_message_and_the_actor_lives(
    start_system: SystemFactory, target: str
) -> None:
    system = start_system()
    ref = system.lm if target == "lm" else system.cache
    assert ref is not None
    before = ref.resolve()

    with pytest.raises(dx.UnknownMessage, match=r"accepts: .*GetStats") as caught:
        ref.ask("hello", timeout=5)
    ref.tell("hello")  # a told one is logged, not a crash

    assert caught.value.message == "str"
    assert ref.resolve() is before and before.is_alive()
    assert all(node.restarts == 0 for node in system.tree().walk())


def test_every_accessor_is_a_named_ref_that_ask_and_tell_work_on(
    start_system: SystemFactory,
) -> None:
    system = start_system()
    refs = [
        system.lm,
        system.lm(),
        system.lm("default"),
        system.cache,
        system.programs,
        system.teleprompters,
        system.services,
    ]

    assert all(isinstance(r, sv.NamedRef) for r in refs)
    assert all(r.resolve().is_alive() for r in refs if r is not None)
    assert system.lm.name == system.lm().name == system.lm("default").name
    with pytest.raises(KeyError, match="no LM named 'nope'"):
        system.lm("nope")


# -- services ---------------------------------------------------------------------------


class Retriever(sv.Actor):
    """A service: a tiny in-memory index that modules ask."""

    def __init__(self, corpus: dict[str, str]) -> None:
        super().__init__()
        self.corpus = corpus

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("index corrupted")
        return [text for key, text in self.corpus.items() if key in str(message).lower()]


class RAG(dx.Module):
    def __init__(self) -> None:
        super().__init__()
        self.generate = dx.Predict("context: list[str], question -> answer")

    def forward(self, question: str) -> Any:
        context = sv.named("kb").ask(question, timeout=5)
        return self.generate(context=context, question=question)


def test_a_service_lives_in_the_tree_and_a_module_asks_it(
    start_system: SystemFactory, lm_server: Any
) -> None:
    system = start_system()
    ref = system.start_service(Retriever, {"peru": "Lima is the capital of Peru."}, name="kb")

    pred = RAG()(question="What is the capital of Peru?")

    assert sv.named("kb").resolve() is ref
    assert pred.answer
    prompt = str(lm_server.requests[-1])
    assert "Lima is the capital of Peru." in prompt  # the service's answer reached the LM
    node = system.tree().find("kb")
    assert node is not None and node.state == "alive"
    assert system.health()["services"]["kb"]["alive"] is True


def test_a_crashed_service_is_restarted_under_its_name(start_system: SystemFactory) -> None:
    system = start_system()
    first = system.start_service(Retriever, {"x": "y"}, name="kb2")

    first.tell("crash")
    second = sv.wait_for_name("kb2", timeout=5)
    deadline = time.monotonic() + 5
    while second is first or not second.is_alive():
        assert time.monotonic() < deadline
        time.sleep(0.01)
        second = sv.wait_for_name("kb2", timeout=5)

    assert sv.named("kb2").ask("x", timeout=5) == ["y"]
    assert system.tree().find("kb2").restarts == 1  # type: ignore[union-attr]


def test_services_stop_after_the_programs_and_before_the_lm_clients(
    start_system: SystemFactory,
) -> None:
    system = start_system()
    ids = [child.id for child in system.tree().children]
    assert ids.index("services") > ids.index("lm:default")  # started later: stopped earlier
    assert ids.index("services") < ids.index("programs")  # started earlier: stopped later
    system.start_service(Retriever, {}, name="kb3")

    system.shutdown()

    assert sv.whereis("kb3") is None


def test_start_service_refuses_what_is_not_an_actor(start_system: SystemFactory) -> None:
    system = start_system()
    with pytest.raises(TypeError, match=r"sv\.Actor subclass or an sv\.ChildSpec"):
        system.start_service(dict)  # type: ignore[arg-type]


# -- a truthful REPL ---------------------------------------------------------------------


def test_a_running_system_says_so_everywhere(start_system: SystemFactory) -> None:
    system = start_system()

    health = system.health()

    assert system.state == "running" and "running" in repr(system)
    assert health["status"] == "healthy"
    assert health["lms"]["default"] == {
        "alive": True,
        "restarts": 0,
        "state": "alive",
        "breaker": "closed",
    }
    assert health["programs_in_flight"] == 0
    assert health["threads"] > 0 and health["rss_bytes"] > 1_000_000
    assert abs(health["timestamp"] - time.time()) < 60


def test_after_the_root_gives_up_everything_says_down_without_raising(
    start_system: SystemFactory,
) -> None:
    system = start_system()
    dx.Predict("question -> answer")(question="What is 2 + 2?")

    kills = _kill_until_down(system)

    assert kills >= 11  # more than 10 restarts in 5 s
    assert system.state == "down"
    assert "down" in repr(system) and "'cache'" in repr(system)
    tree = system.tree()
    assert tree.state == "down" and "gave up" in (tree.info or "")
    stats = system.stats()
    assert stats["state"] == "down"
    assert stats["lms"]["default"]["ok"] == 1  # the history is kept
    assert system.health()["status"] == "down"


def test_calls_after_the_root_gave_up_fail_fast_with_system_down(
    start_system: SystemFactory,
) -> None:
    system = start_system()
    _kill_until_down(system)
    qa = dx.Predict("question -> answer")

    started = time.monotonic()
    with pytest.raises(dx.SystemDown, match="'cache'") as caught:
        qa(question="What is 3 + 3?")
    with pytest.raises(dx.SystemDown):
        qa.batch([{"question": "What is 1 + 1?"}], max_concurrency=1, return_exceptions=True)

    assert time.monotonic() - started < 1.0
    assert caught.value.system == system.name


def test_restart_brings_a_down_system_back_with_its_services(
    start_system: SystemFactory,
) -> None:
    system = start_system()
    system.start_service(Retriever, {"a": "b"}, name="kb4")
    _kill_until_down(system)

    system.restart()

    assert system.state == "running"
    assert "4" in dx.Predict("question -> answer")(question="What is 2 + 2?").answer
    assert sv.named("kb4").ask("a", timeout=5) == ["b"]
    assert system.health()["system_restarts"] == 1


def test_on_down_restart_comes_back_by_itself_after_the_backoff(
    start_system: SystemFactory,
) -> None:
    backoff = sv.Backoff(min_s=0.3, max_s=1.0, jitter=0.0)
    system = start_system(on_down="restart", down_backoff=backoff)
    _kill_until_down(system)

    with pytest.raises(dx.SystemDown):  # during the delay: fail fast
        dx.Predict("question -> answer")(question="What is 5 + 5?")
    deadline = time.monotonic() + 10
    while system.state != "running":
        assert time.monotonic() < deadline, "the system never came back"
        time.sleep(0.02)

    assert "10" in dx.Predict("question -> answer")(question="What is 5 + 5?").answer
    assert system.health()["system_restarts"] == 1


def test_after_shutdown_the_system_says_stopped_and_with_refuses_it(
    start_system: SystemFactory,
) -> None:
    system = start_system()
    dx.Predict("question -> answer")(question="What is 2 + 2?")
    system.shutdown()

    assert system.state == "stopped" and "stopped" in repr(system)
    assert system.stats()["state"] == "stopped"
    assert system.stats()["lms"]["default"]["ok"] == 1
    assert system.tree().state == "stopped"
    with pytest.raises(RuntimeError, match="shut down"), system:
        pass


def test_p95_latency_is_never_below_p50(start_system: SystemFactory, lm_server: Any) -> None:
    system = start_system(cache=False)
    qa = dx.Predict("question -> answer")
    for i in range(7):
        lm_server.latency = 0.002 * (i % 3)
        qa(question=f"What is {i} + {i}?")

    latency = system.stats()["lms"]["default"]["latency_ms"]

    assert latency["p95"] >= latency["p50"] > 0


def test_a_second_start_with_the_same_name_says_to_pass_name(
    start_system: SystemFactory,
) -> None:
    start_system(name="twice")
    with pytest.raises(sv.AlreadyStarted, match=r"name='other'"):
        start_system(name="twice")
