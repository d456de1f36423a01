"""The event bus (``system.events``): delivery, bounds, overflow, crashes, cancel, cost."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import dspex_actors as dx
import supervisors as sv
from dspex_actors.primitives import _events
from tests.dspex_actors.fixture_types import SystemFactory

WAIT = 10.0


def _wait_for(predicate: Any, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def _events_node(system: dx.ActorSystem) -> sv.TreeNode:
    return next(c for c in system.tree().children if c.id == "events")


def test_a_handler_runs_in_its_subscription_actor_not_in_the_publishers_thread(
    system: dx.ActorSystem,
) -> None:
    threads: list[str] = []
    sub = system.events.subscribe(
        ("app",), lambda e: threads.append(threading.current_thread().name)
    )
    system.events.publish(("app", "thing"), {"k": 1})
    assert sub.flush()
    assert len(threads) == 1
    assert threads[0] != threading.current_thread().name
    sub.cancel()


def test_a_subscription_gets_only_topics_under_its_prefix_in_publish_order(
    system: dx.ActorSystem,
) -> None:
    with system.events.recording(("app", "a")) as seen:
        for i in range(300):
            system.events.publish(("app", "a", "x"), {"i": i})
            system.events.publish(("app", "b"), {"i": i})
            system.events.publish(("apple",), {"i": i})
        system.events.publish(("app", "a"), {"i": -1})
    assert [e.data["i"] for e in seen] == [*range(300), -1]
    assert {e.topic for e in seen} == {("app", "a", "x"), ("app", "a")}
    assert all(isinstance(e, dx.Event) and e.time > 0 for e in seen)


def _blocked_subscription(
    system: dx.ActorSystem, overflow: str
) -> tuple[dx.Subscription, list[int], threading.Event, threading.Event]:
    entered, release = threading.Event(), threading.Event()
    got: list[int] = []

    def handler(event: dx.Event) -> None:
        got.append(event.data["i"])
        entered.set()
        release.wait(WAIT)

    sub = system.events.subscribe(("load",), handler, max_queue=5, overflow=overflow)  # type: ignore[arg-type]
    return sub, got, entered, release


@pytest.mark.parametrize(
    ("overflow", "expected"),
    [("drop_oldest", [0, 15, 16, 17, 18, 19]), ("drop_newest", [0, 1, 2, 3, 4, 5])],
)
def test_a_stuck_handler_costs_the_publisher_nothing_and_overflow_drops_by_policy(
    system: dx.ActorSystem, overflow: str, expected: list[int]
) -> None:
    sub, got, entered, release = _blocked_subscription(system, overflow)
    system.events.publish(("load",), {"i": 0})
    assert entered.wait(WAIT)  # the handler now holds event 0 and is stuck
    started = time.perf_counter()
    for i in range(1, 20):
        system.events.publish(("load",), {"i": i})
    publish_s = time.perf_counter() - started
    assert sub.dropped == 14  # 19 offered, 5 kept while the handler is stuck
    assert got == [0]  # nothing more ran while it was stuck
    release.set()
    assert sub.flush()
    assert got == expected
    assert publish_s < 1.0  # 19 publishes never waited for the stuck handler (generous bound)
    sub.cancel()


def test_a_handler_that_raises_is_restarted_under_events_and_the_subscription_goes_on(
    system: dx.ActorSystem,
) -> None:
    got: list[int] = []

    def handler(event: dx.Event) -> None:
        if event.data["i"] == 1:
            raise RuntimeError("handler bug")
        got.append(event.data["i"])

    sub = system.events.subscribe(("x",), handler)
    for i in range(4):
        system.events.publish(("x",), {"i": i})
    _wait_for(lambda: got == [0, 2, 3])
    node = _events_node(system)
    assert len(node.children) == 1
    assert node.children[0].restarts == 1
    assert sub.active
    sub.cancel()
    _wait_for(lambda: not _events_node(system).children)


def test_a_subscribed_actor_gets_events_and_is_unsubscribed_when_it_dies(
    system: dx.ActorSystem,
) -> None:
    got: list[dx.Event] = []

    class Listener(sv.Actor):
        def on_receive(self, message: Any) -> Any:
            got.append(message)

    ref = Listener.start()
    sub = system.events.subscribe(("x",), ref)
    system.events.publish(("x", "y"), {"n": 1})
    _wait_for(lambda: len(got) == 1)
    assert isinstance(got[0], dx.Event) and got[0].topic == ("x", "y")
    sv.kill(ref, quiet=True)
    _wait_for(lambda: not sub.active)
    assert sub not in system.events.subscriptions()
    _wait_for(lambda: not _events_node(system).children)


def test_cancel_stops_delivery_and_removes_the_actor_from_the_tree(
    system: dx.ActorSystem,
) -> None:
    got: list[dx.Event] = []
    sub = system.events.subscribe((), got.append)
    assert len(_events_node(system).children) == 1
    system.events.publish(("a",))
    assert sub.flush()
    sub.cancel()
    sub.cancel()  # idempotent
    system.events.publish(("a",))
    time.sleep(0.05)
    assert len(got) == 1
    _wait_for(lambda: not _events_node(system).children)


def test_publishing_with_no_subscriber_for_the_topic_allocates_no_event(
    system: dx.ActorSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Any] = []
    real = _events.Event

    def counting(*args: Any) -> Any:
        made.append(args)
        return real(*args)

    monkeypatch.setattr(_events, "Event", counting)
    system.events.publish(("nobody",), {"k": 1})
    sub = system.events.subscribe(("other",), lambda e: None)
    for _ in range(100):
        system.events.publish(("nobody", "here"), {"k": 1})
    dx.Predict("question -> answer")(question="Capital of France?")  # spans nobody hears
    assert made == []
    system.events.publish(("other", "x"))
    assert len(made) == 1
    sub.cancel()


def test_bad_subscriptions_and_topics_are_refused_before_anything_starts(
    system: dx.ActorSystem,
) -> None:
    bus = system.events
    with pytest.raises(TypeError, match="tuple of non-empty strings"):
        bus.subscribe("lm", print)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable or an ActorRef"):
        bus.subscribe(("lm",), 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_queue"):
        bus.subscribe(("lm",), print, max_queue=0)
    with pytest.raises(ValueError, match="overflow"):
        bus.subscribe(("lm",), print, overflow="block")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one part"):
        bus.publish(())
    with pytest.raises(TypeError, match="mapping"):
        bus.publish(("a",), [1])  # type: ignore[arg-type]
    assert bus.subscriptions() == []
    assert not _events_node(system).children


def test_subscriptions_survive_a_restart_of_the_whole_tree_and_hear_why_it_went_down(
    start_system: SystemFactory,
) -> None:
    system = start_system(cache=dx.CacheConfig(path=None))
    got: list[dx.Event] = []
    sub = system.events.subscribe(("supervisor",), got.append)
    deadline = time.monotonic() + 20.0
    assert system.cache is not None
    # Kill the cache as fast as it comes back (a storm in an LM client stays inside
    # that LM's own supervisor; the cache is the root's own child).
    while system.root.is_alive():
        assert time.monotonic() < deadline, "the root never gave up"
        ref = sv.whereis(system.cache.name)
        if ref is not None and ref.is_alive():
            sv.kill(ref, reason="storm", quiet=True)
        else:
            time.sleep(0.001)
    system.restart()
    system.events.publish(("supervisor", "app"), {"after": True})
    _wait_for(lambda: any(e.data.get("after") for e in got))
    shutdowns = [e for e in got if e.topic == ("supervisor", "shutdown")]
    assert [e.data["supervisor"] for e in shutdowns] == [system.name]
    assert "needed more than 10 restarts" in shutdowns[0].data["reason"]
    restarted = [e for e in got if e.topic == ("supervisor", "child_restarted")]
    assert restarted and all(e.data["child_id"] == "cache" for e in restarted)
    assert [e.data["restarts"] for e in restarted[:3]] == [1, 2, 3]
    sub.cancel()
