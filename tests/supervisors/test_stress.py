"""Races, leaks and chaos: the guarantees that only show under load."""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

import supervisors as sv
from tests.supervisors.helpers import Events, spec, sync


class Echo(sv.Actor):
    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("chaos")
        return message


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def _all_answered(futures: list[Any]) -> tuple[int, int]:
    answered = dead = 0
    for future in futures:
        try:
            future.get(timeout=5)
            answered += 1
        except pykka.ActorDeadError:
            dead += 1
    return answered, dead


@pytest.mark.parametrize("ending", ["stop", "kill", "crash"])
def test_no_ask_is_left_hanging_when_asks_race_the_actor_ending(
    tiny_switch_interval: None, ending: str
) -> None:
    futures: list[Any] = []
    lock = threading.Lock()
    for _round in range(20):
        ref = Echo.start()
        go = threading.Event()

        def asker(ref: Any = ref, go: threading.Event = go) -> None:
            go.wait(5)
            mine = [ref.ask(i, block=False) for i in range(100)]
            with lock:
                futures.extend(mine)

        threads = [threading.Thread(target=asker, daemon=True) for _ in range(3)]
        for t in threads:
            t.start()
        go.set()
        if ending == "stop":
            ref.stop(block=False)
        elif ending == "kill":
            sv.kill(ref)
        else:
            ref.tell("crash")
        for t in threads:
            t.join(10)
        sv.stop(ref) if ref.is_alive() else None
    answered, dead = _all_answered(futures)  # a hang would raise pykka.Timeout here
    assert answered + dead == 20 * 300


def _sv_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("sv:") and t.is_alive()}


def test_no_thread_is_left_running_after_stop_of_the_root() -> None:
    before = _sv_threads()
    events = Events()
    inner = sv.ChildSpec(
        id="inner",
        start=sv.Supervisor.start,
        args=([spec(events, "leaf1"), spec(events, "leaf2")],),
        kwargs={"strategy": "rest_for_one"},
        type="supervisor",
    )
    pool = sv.ChildSpec(
        id="pool", start=sv.DynamicSupervisor.start, kwargs={"name": "leak_pool"}, type="supervisor"
    )
    tasks = sv.ChildSpec(
        id="tasks", start=sv.TaskSupervisor.start, kwargs={"name": "leak_tasks"}, type="supervisor"
    )
    root = sv.Supervisor.start([spec(events, "w"), inner, pool, tasks])
    for i in range(20):
        sv.start_child("leak_pool", spec(events, f"d{i}"))
    done = [sv.async_nolink("leak_tasks", lambda x: x, i) for i in range(5)]
    assert [t.await_(5) for t in done] == list(range(5))
    assert len(_sv_threads() - before) >= 25
    assert sv.stop(root) is True
    assert _sv_threads() - before == set()
    assert [r for r in pykka.ActorRegistry.get_all() if r.is_alive()] == []


def test_chaos_under_nested_supervisors_keeps_the_invariants() -> None:
    rng = random.Random(1234)
    before = _sv_threads()
    names = [f"chaos{i}" for i in range(9)]

    def worker(name: str) -> sv.ChildSpec:
        return sv.ChildSpec(id=name, start=Echo.start, name=name, shutdown=1.0)

    branch_a = sv.ChildSpec(
        id="a",
        start=sv.Supervisor.start,
        args=([worker(n) for n in names[0:3]],),
        kwargs={"strategy": "one_for_all", "max_restarts": 10_000, "max_seconds": 1, "name": "a"},
        type="supervisor",
    )
    branch_b = sv.ChildSpec(
        id="b",
        start=sv.Supervisor.start,
        args=([worker(n) for n in names[3:6]],),
        kwargs={"strategy": "rest_for_one", "max_restarts": 10_000, "max_seconds": 1, "name": "b"},
        type="supervisor",
    )
    # A fragile branch that escalates often; the root restarts it every time.
    branch_c = sv.ChildSpec(
        id="c",
        start=sv.Supervisor.start,
        args=([worker(n) for n in names[6:9]],),
        kwargs={"strategy": "one_for_one", "max_restarts": 2, "max_seconds": 1, "name": "c"},
        type="supervisor",
    )
    root = sv.Supervisor.start(
        [branch_a, branch_b, branch_c], max_restarts=100_000, max_seconds=1, name="chaos_root"
    )

    asks = 0
    failures: list[BaseException] = []
    stop_clients = threading.Event()

    def client(seed: int) -> None:
        nonlocal asks
        local = random.Random(seed)
        while not stop_clients.is_set():
            name = local.choice(names)
            try:
                assert sv.named(name).ask("ping", timeout=5) == "ping"
            except (sv.NoProc, pykka.ActorDeadError, RuntimeError):
                pass  # the target was restarting or crashed by chaos: expected
            except BaseException as exc:  # a hang (Timeout) or a wrong answer
                failures.append(exc)
            asks += 1

    clients = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(4)]
    for t in clients:
        t.start()
    # A fixed number of injections (not a fixed time): how fast a crash is logged
    # (rich tracebacks, a loaded machine) must not decide how much chaos there is.
    deadline = time.monotonic() + 20.0
    injected = 0
    while injected < 120 and time.monotonic() < deadline:
        target = sv.whereis(rng.choice(names))
        if target is None:
            continue
        if rng.random() < 0.7:
            target.tell("crash") if target.is_alive() else None
        else:
            sv.kill(target)
        injected += 1
        # Pace the chaos by a round trip, not a sleep.
        sv.named(rng.choice(["a", "b"])).ask(
            pykka.messages.ProxyCall(attr_path=("get_state",), args=(), kwargs={}), timeout=10
        ) if sv.whereis("a") and sv.whereis("b") else None
    stop_clients.set()
    for t in clients:
        t.join(10)
    assert not failures, failures[:3]
    assert injected > 50 and asks > 100

    # Let every restart settle: a "crash" told just before the loop ended may still
    # sit in a worker's mailbox, so ping every worker (FIFO: the ping comes after
    # it), sync every supervisor, and repeat until a whole pass changes nothing.
    for _attempt in range(50):
        refs: dict[str, Any] = {}
        for name in names:
            ref = sv.wait_for_name(name, timeout=10)
            try:
                ref.ask("ping", timeout=5)
                refs[name] = ref
            except (pykka.ActorDeadError, RuntimeError):
                pass
        for sup in ("a", "b", "c"):
            sync(sv.wait_for_name(sup, timeout=10))
        sync(root)
        if len(refs) == len(names) and all(sv.whereis(n) is refs[n] for n in names):
            break
    else:
        raise AssertionError("the tree did not settle")
    tree = sv.tree(root)
    assert [n.id for n in tree.children] == ["a", "b", "c"]
    for node in tree.walk():
        assert node.state == "alive", sv.format_tree(tree)
    for name in names:
        ref = sv.whereis(name)
        assert ref is not None and ref.ask("ping", timeout=5) == "ping"
    leaves = [n.ref for n in tree.walk() if n.kind == "worker"]
    assert len(leaves) == 9 and len({r.actor_urn for r in leaves}) == 9

    assert sv.stop(root) is True
    # Killed actors' threads were idle in get(): woken and gone, like the others.
    leftover = {t for t in _sv_threads() - before if t.is_alive()}
    for t in leftover:
        t.join(2)
    assert {t for t in leftover if t.is_alive()} == set()
    assert sv.registered() == []
