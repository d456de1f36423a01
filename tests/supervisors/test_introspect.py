"""Introspection: tree, format_tree, get_state, get_status."""

from __future__ import annotations

import threading

import supervisors as sv
from tests.supervisors.helpers import Events, crash, spec, sync


def test_format_tree_draws_ids_classes_state_and_restart_counts() -> None:
    events = Events()
    pool = sv.ChildSpec(
        id="pool", start=sv.DynamicSupervisor.start, kwargs={"name": "pool"}, type="supervisor"
    )
    root = sv.Supervisor.start([spec(events, "cache"), pool], name="root")
    sv.start_child("pool", spec(events, "w1"))
    sv.start_child("pool", spec(events, "w2"))
    crash(sv.which_children(root)[0].ref)
    sync(root)
    text = sv.format_tree("root")
    lines = text.splitlines()
    assert lines[0] == "root  Supervisor one_for_one  restarts 1/3 in 5s"
    assert lines[1].startswith("├── cache")
    assert "Recorder" in lines[1] and "alive  restarts=1" in lines[1]
    assert lines[2].startswith("└── pool") and "DynamicSupervisor" in lines[2]
    assert lines[2].endswith("2 children")
    assert lines[3].startswith("    ├── <1>") and "Recorder" in lines[3] and "alive" in lines[3]
    assert lines[4].startswith("    └── <2>")
    assert repr(sv.tree(root)) == text
    sv.stop(root)


def test_tree_nodes_are_searchable() -> None:
    events = Events()
    root = sv.Supervisor.start([spec(events, "a", name="alpha")])
    node = sv.tree(root)
    found = node.find("alpha")
    assert found is not None and found.id == "a" and found.state == "alive"
    assert [n.id for n in node.walk()][1:] == ["a"]
    sv.stop(root)


def test_tree_shows_a_stopped_child() -> None:
    events = Events()
    root = sv.Supervisor.start([spec(events, "a")])
    sv.terminate_child(root, "a")
    assert "stopped" in sv.format_tree(root).splitlines()[1]
    sv.stop(root)


def test_get_status_reports_name_mailbox_restarts_and_state() -> None:
    events = Events()
    root = sv.Supervisor.start([spec(events, "a", name="alpha")])
    crash(sv.whereis("alpha"))
    sync(root)
    status = sv.get_status("alpha")
    assert status.actor_class == "Recorder"
    assert status.name == "alpha"
    assert status.alive is True
    assert status.restarts == 1
    assert status.mailbox_size == 0
    assert status.state["tag"] == "a"
    sv.stop(root)


class Busy(sv.Actor):
    def __init__(self, gate: threading.Event, entered: threading.Event) -> None:
        super().__init__()
        self.gate = gate
        self.entered = entered

    def on_receive(self, message: object) -> None:
        self.entered.set()
        self.gate.wait(5)


def test_get_status_of_a_busy_actor_does_not_block() -> None:
    gate, entered = threading.Event(), threading.Event()
    ref = Busy.start(gate, entered)
    ref.tell("work")
    assert entered.wait(5)
    ref.tell("more")
    status = sv.get_status(ref, timeout=0.05)
    assert status.state == "<busy>"
    assert status.mailbox_size >= 1
    gate.set()
    sv.stop(ref)
