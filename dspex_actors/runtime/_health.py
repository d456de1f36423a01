"""What a system tells about itself: its state, ``health()``, ``stats()`` and its tree.

Everything here reads snapshots (the supervision tree's child tables, the LM
admissions, the cache's view, counters that outlive restarts) from the calling
thread, without messaging any actor, so it answers at once even while the tree is
restarting or down, and never raises for the system's sake.
"""

from __future__ import annotations

import datetime
import os
import resource
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pykka

import supervisors as sv
from dspex_actors.cache import view_of
from dspex_actors.lm import Admission, AdmissionTable, LMCounters
from dspex_actors.runtime._lm_status import lm_status

__all__ = ["SystemState", "TreeFacts", "health_report", "process_rss_bytes", "stats_report"]

SystemState = Literal["running", "degraded", "down", "stopped"]


@dataclass(frozen=True)
class TreeFacts:
    """What :func:`health_report` and :func:`stats_report` need to know of one system."""

    name: str
    state: SystemState
    down_reason: str | None
    root: pykka.ActorRef[Any]
    lm_names: Mapping[str, str]  # lm name -> registered actor name
    counters: Mapping[str, LMCounters]
    models: Mapping[str, str]  # lm name -> model name
    admissions: AdmissionTable
    cache_name: str | None
    programs_name: str
    services_name: str
    system_restarts: int


def process_rss_bytes() -> int | None:
    """The process's resident memory now (Linux ``/proc``), else its peak; ``None`` if unknown."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    except (OSError, ValueError):
        return None


def _tree(facts: TreeFacts) -> sv.TreeNode | None:
    try:
        return sv.tree(facts.root) if facts.root.is_alive() else None
    except sv.NoProc:
        return None


def degraded_reasons(facts: TreeFacts) -> list[str]:
    """Why a live system is not fully healthy (empty: it is)."""
    reasons: list[str] = []
    tree = _tree(facts)
    if tree is not None:
        reasons += [
            f"{c.id} is {c.state}"
            for c in tree.children
            if c.state != "alive" and not str(c.id).startswith("lm:")
        ]
    for lm_name in facts.lm_names:
        status = lm_status(tree, lm_name)
        if status.state != "alive":
            reasons.append(f"LM {lm_name!r} is {status.state}: {status.reason}")
        admission = _open_admission(facts, lm_name)
        if admission is not None and admission.breaker_state() != "closed":
            reasons.append(f"LM {lm_name!r}: breaker {admission.breaker_state()}")
    cache = _cache_view(facts)
    if cache is not None and cache.store.storage_state == "degraded":
        reasons.append("cache storage degraded (serving from memory)")
    return reasons


def _open_admission(facts: TreeFacts, lm_name: str) -> Admission | None:
    """The LM's current admission if its client still owns it (``None`` while it is down)."""
    admission = facts.admissions.get(lm_name)
    return admission if admission is not None and not admission.closed else None


def _lm_health(facts: TreeFacts, tree: sv.TreeNode | None, lm_name: str) -> dict[str, Any]:
    """``alive``, ``restarts`` (of its client), ``state`` and ``breaker``; when it is not
    alive also ``reason`` and ``restart_in`` (seconds, ``None`` if unknown)."""
    status = lm_status(tree, lm_name)
    admission = _open_admission(facts, lm_name)
    out: dict[str, Any] = {
        "alive": status.state == "alive",
        "restarts": facts.counters[lm_name].restarts,
        "state": status.state,
        "breaker": admission.breaker_state() if admission is not None else None,
    }
    if status.state != "alive":
        out["reason"] = status.reason
        out["restart_in"] = status.restart_in
    return out


def _cache_view(facts: TreeFacts) -> Any:
    ref = sv.whereis(facts.cache_name) if facts.cache_name else None
    view = view_of(ref) if ref is not None else None
    return view if view is not None and not view.closed else None


def _node_health(node: sv.TreeNode | None) -> dict[str, Any]:
    if node is None:
        return {"alive": False, "restarts": None}
    return {"alive": node.state == "alive", "restarts": node.restarts, "state": node.state}


def health_report(facts: TreeFacts) -> dict[str, Any]:
    """The seeds' health check: overall status, each part alive or not, breakers, load."""
    tree = _tree(facts)
    lms: dict[str, Any] = {}
    for lm_name in facts.lm_names:
        lms[lm_name] = _lm_health(facts, tree, lm_name)
    services = {}
    services_node = tree.find("services") if tree is not None else None
    for child in services_node.children if services_node is not None else []:
        services[str(child.name or child.id)] = _node_health(child)
    cache: dict[str, Any] | None = None
    if facts.cache_name is not None:
        view = _cache_view(facts)
        cache = {
            **_node_health(tree.find("cache") if tree is not None else None),
            "storage": view.store.storage_state if view is not None else None,
        }
    programs = tree.find("programs") if tree is not None else None
    status = {"running": "healthy", "degraded": "degraded"}.get(facts.state, "down")
    return {
        "status": status,
        "system": facts.name,
        "state": facts.state,
        "reason": facts.down_reason,
        "degraded": degraded_reasons(facts) if facts.state == "degraded" else [],
        "lms": lms,
        "cache": cache,
        "services": services,
        "programs_in_flight": len(programs.children) if programs is not None else 0,
        "system_restarts": facts.system_restarts,
        "threads": threading.active_count(),
        "rss_bytes": process_rss_bytes(),
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
        "timestamp": time.time(),
    }


def stats_report(facts: TreeFacts) -> dict[str, Any]:
    """Per-LM counters (kept across restarts, so also when down or stopped), cache, programs."""
    lms: dict[str, Any] = {}
    tree = _tree(facts)
    for lm_name, counters in facts.counters.items():
        admission = _open_admission(facts, lm_name)
        if admission is not None and facts.state not in ("down", "stopped"):
            lms[lm_name] = {**admission.stats(), "state": "alive"}
            continue
        stats = counters.stats(facts.models[lm_name])
        state = _part_state(facts)
        if state == "restarting" and lm_status(tree, lm_name).state == "down":
            state = "down"  # this LM alone: its supervisor gave up
        lms[lm_name] = {**stats, "breaker": None, "state": state}
    out: dict[str, Any] = {"state": facts.state, "lms": lms, "cache": None, "programs": 0}
    if facts.cache_name is not None:
        view = _cache_view(facts)
        if view is not None:
            with view.lock:
                out["cache"] = {**view.store.stats(), "state": "alive"}
        else:
            out["cache"] = {"state": _part_state(facts)}
    programs = tree.find("programs") if tree is not None else None
    out["programs"] = len(programs.children) if programs is not None else 0
    return out


def _part_state(facts: TreeFacts) -> str:
    return facts.state if facts.state in ("down", "stopped") else "restarting"


def down_tree(name: str, state: SystemState, reason: str | None) -> sv.TreeNode:
    """The drawing of a system whose tree is not running: one node saying why."""
    info = f"gave up: {reason}" if state == "down" and reason else state
    return sv.TreeNode(
        id=name, name=name, actor_class="Supervisor", kind="supervisor", state=state, info=info
    )
