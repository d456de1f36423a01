"""Whether an LM is serving, restarting or down: for the request path and for ``health()``.

Each LM's client runs under its own supervisor (``lm:<name>`` in the tree,
registered as ``<client name>.sup``), so a crash storm in one client escalates
only to that supervisor (docs/providers.md, "crash storms"). An LM is:

- ``"alive"``: its client runs;
- ``"restarting"``: its client crashed and waits out its restart backoff (or is
  starting), under a supervisor that is still up;
- ``"down"``: its supervisor gave up (more crashes than its intensity allows) and the
  system's root starts it again after the LM's ``down_backoff``.

Everything here reads the registry and child-table snapshots from the calling
thread; nothing messages an actor or waits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import supervisors as sv
from dspex_actors.lm import LM, RESTART_POLL, Refused, Wait
from dspex_actors.primitives import LMUnavailable

__all__ = ["LMStatus", "lm_status", "lm_supervisor_name", "unavailable"]

LMState = Literal["alive", "restarting", "down"]


def lm_supervisor_name(client_name: str) -> str:
    """The registered name of the supervisor of the LM client registered as ``client_name``."""
    return f"{client_name}.sup"


@dataclass(frozen=True)
class LMStatus:
    """One LM's state, why it is not alive, and in how many seconds it should be back."""

    state: LMState
    reason: str | None = None
    restart_in: float | None = None


def _back_in(seconds: float | None) -> str:
    return f" (back in {seconds:.2f} s)" if seconds is not None else ""


def lm_status(root: sv.TreeNode | None, lm_name: str) -> LMStatus:
    """The state of ``lm_name`` in a snapshot of the system's tree (``None``: no tree)."""
    node = root.find(f"lm:{lm_name}") if root is not None else None
    if node is None:
        return LMStatus("down", "the system's tree is not running")
    return _status_of(node)


def _status_of(node: sv.TreeNode) -> LMStatus:
    """The state of the LM whose supervisor's node (as its parent sees it) is ``node``."""
    if node.state != "alive":
        why = "its supervisor gave up after repeated crashes of its client; it is started again"
        return LMStatus("down", why + _back_in(node.restart_in), node.restart_in)
    client = node.children[0] if node.children else None
    if client is None or client.state != "alive":
        restart_in = client.restart_in if client is not None else None
        why = "its client crashed and waits out its restart backoff"
        return LMStatus("restarting", why + _back_in(restart_in), restart_in)
    return LMStatus("alive")


def unavailable(
    lm_name: str, lm: LM, client_name: str, remaining: float | None = None
) -> Wait | Refused:
    """What a call to ``lm_name`` gets when it finds no open admission (request path).

    ``Wait`` when the client is registered (it is starting: its admission comes in
    a moment), or when it waits out a restart backoff that ends within the request's
    ``remaining`` seconds (the call then goes once it is back: nothing is lost to one
    crash). Otherwise ``Refused(LMUnavailable)``, at once and without I/O, naming the
    LM and saying whether it restarts too late for this request or its supervisor
    gave up.
    """
    if sv.whereis(client_name) is not None:
        return Wait(RESTART_POLL)
    sup = sv.whereis(lm_supervisor_name(client_name))
    status: LMStatus
    if sup is None:
        status = LMStatus("down", "its supervisor gave up after repeated crashes of its client")
    else:
        try:
            status = _status_of(sv.tree(sup))
        except sv.NoProc:
            status = LMStatus("down", "its supervisor gave up after repeated crashes of its client")
    if status.state == "restarting" and remaining is not None:
        back_in = status.restart_in if status.restart_in is not None else RESTART_POLL
        if back_in < remaining:
            return Wait(min(max(back_in, 0.0) + RESTART_POLL, remaining))
    return Refused(
        LMUnavailable(
            f"LM {lm_name!r} ({lm.label}) is {status.state}: {status.reason}; "
            "calls fail fast until it is back",
            lm=lm_name,
        )
    )
