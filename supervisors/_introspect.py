"""Looking at a running system: :func:`tree`, :func:`format_tree`, :func:`get_status`...

Everything here reads snapshots from the calling thread and never waits on a
busy actor, except :func:`get_state`, which asks the actor (with a timeout).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pykka import ActorDeadError, ActorRef, Timeout
from pykka.messages import ProxyCall

from supervisors import _registry
from supervisors._actor import Actor, actor_of
from supervisors._errors import NoProc
from supervisors._log import describe_reason
from supervisors._supervisor import _SupervisorBase

__all__ = ["Status", "TreeNode", "format_tree", "get_state", "get_status", "tree"]


@dataclass
class TreeNode:
    """One node of a supervision tree snapshot, as returned by :func:`tree`.

    ``state`` is ``"alive"``, ``"restarting"`` (its supervisor is starting a
    replacement), ``"stopped"`` (spec kept, not running) or ``"dead"``.
    ``kind`` is ``"supervisor"``, ``"dynamic_supervisor"``, ``"task_supervisor"``
    or ``"worker"``. ``info`` is the actor's own one-line ``describe()``.
    ``restart_in`` is, for a child waiting out its restart backoff, the seconds
    until it starts again (``None`` otherwise).
    A ``TreeNode`` prints as the drawn tree, so a REPL shows it readably.
    """

    id: Any
    name: str | None
    actor_class: str
    kind: str
    state: str
    restarts: int = 0
    ref: ActorRef[Any] | None = field(default=None, repr=False)
    strategy: str | None = None
    intensity: tuple[int, int, float] | None = None
    info: str | None = None
    dynamic_child: bool = False
    children: list[TreeNode] = field(default_factory=list)
    restart_in: float | None = None

    def __repr__(self) -> str:
        return format_tree(self)

    def walk(self) -> list[TreeNode]:
        """This node and all its descendants, depth first."""
        nodes = [self]
        for child in self.children:
            nodes.extend(child.walk())
        return nodes

    def find(self, id_or_name: Any) -> TreeNode | None:
        """The first node whose id or name equals ``id_or_name``, or ``None``."""
        for node in self.walk():
            if node.id == id_or_name or (node.name is not None and node.name == id_or_name):
                return node
        return None


def _node_for(
    key: Any,
    actor: Actor | None,
    ref: ActorRef[Any] | None,
    actor_class: str,
    state: str,
    restarts: int,
    name: str | None,
    dynamic_child: bool,
    depth: int,
) -> TreeNode:
    kind = "worker"
    node = TreeNode(
        id=key,
        name=name,
        actor_class=actor_class,
        kind=kind,
        state=state,
        restarts=restarts,
        ref=ref,
        dynamic_child=dynamic_child,
    )
    if actor is None:
        return node
    try:
        node.info = actor.describe()
    except Exception as exc:
        node.info = f"<describe failed: {exc!r}>"
    if isinstance(actor, _SupervisorBase):
        node.kind = actor.kind
        if actor.kind == "supervisor":
            node.strategy = actor.strategy
        node.intensity = (actor.restarts_in_window(), actor.max_restarts, actor.max_seconds)
        if depth < 64:
            pending = actor.pending_restarts()
            for c_key, spec, c_ref, c_actor, c_state, c_restarts in actor.snapshot():
                c_class = type(c_actor).__name__ if c_actor is not None else _spec_class(spec.start)
                shown = "alive" if c_state == "running" else c_state
                if c_ref is not None and not c_ref.is_alive():
                    shown = "dead"
                node.children.append(
                    _node_for(
                        c_key,
                        c_actor,
                        c_ref,
                        c_class,
                        shown,
                        c_restarts,
                        spec.name,
                        actor.kind != "supervisor",
                        depth + 1,
                    )
                )
                node.children[-1].restart_in = pending.get(c_key)
    return node


def _spec_class(start: Any) -> str:
    owner = getattr(start, "__self__", None)
    if isinstance(owner, type):
        return owner.__name__
    return getattr(start, "__qualname__", type(start).__name__)


def tree(root: ActorRef[Any] | str | Any) -> TreeNode:
    """Snapshot the supervision tree under ``root`` (a ref or a registered name).

    Reads each supervisor's child table directly: it never blocks, even while a
    supervisor is busy restarting children.

    Raises:
        NoProc: ``root`` is dead or not registered.
    """
    ref = _registry.resolve(root)
    actor = actor_of(ref)
    if actor is None or not ref.is_alive():
        raise NoProc(root)
    return _node_for(
        actor.name or type(actor).__name__,
        actor,
        ref,
        type(actor).__name__,
        "alive",
        actor._sv_restarts,
        actor.name,
        False,
        0,
    )


def format_tree(root: TreeNode | ActorRef[Any] | str | Any) -> str:
    """Draw the tree under ``root`` (a :class:`TreeNode`, ref or name) as text.

    Example output::

        root  Supervisor one_for_one  restarts 1/3 in 5s
        ├── cache  CacheActor         alive  restarts=1
        └── pool   DynamicSupervisor  2 children
            ├── <1>  Worker  alive
            └── <2>  Worker  alive
    """
    node = root if isinstance(root, TreeNode) else tree(root)
    lines = [_root_line(node)]
    _draw_children(node, "", lines)
    return "\n".join(lines)


def _root_line(node: TreeNode) -> str:
    label = node.name or str(node.id)
    if node.kind == "worker":
        return "  ".join([label, node.actor_class, node.state, *([node.info] if node.info else [])])
    head = f"{label}  {node.actor_class}"
    if node.strategy:
        head += f" {node.strategy}"
    if node.intensity is not None:
        used, most, secs = node.intensity
        head += f"  restarts {used}/{most} in {secs:g}s"
    if node.kind != "supervisor":
        head += f"  {sum(1 for c in node.children if c.state == 'alive')} children"
    return head


def _draw_children(node: TreeNode, prefix: str, lines: list[str]) -> None:
    rows = [_child_cols(c) for c in node.children]
    widths: list[int] = []
    for cols in rows:
        for i, col in enumerate(cols[:-1]):
            if i >= len(widths):
                widths.append(0)
            widths[i] = max(widths[i], len(col))
    for index, (child, cols) in enumerate(zip(node.children, rows, strict=True)):
        last = index == len(node.children) - 1
        padded = [col.ljust(widths[i]) for i, col in enumerate(cols[:-1])] + [cols[-1]]
        lines.append(f"{prefix}{'└── ' if last else '├── '}{'  '.join(padded).rstrip()}")
        _draw_children(child, prefix + ("    " if last else "│   "), lines)


def _child_cols(node: TreeNode) -> list[str]:
    label = f"<{node.id}>" if node.dynamic_child else str(node.id)
    if node.name is not None and node.name != str(node.id):
        label += f" ({node.name})"
    cls = node.actor_class
    if node.kind == "supervisor" and node.strategy:
        cls = f"{cls} {node.strategy}"
    cols = [label, cls]
    if node.kind != "worker" and node.state == "alive":
        alive = sum(1 for c in node.children if c.state == "alive")
        detail = (
            f"{alive} children" if node.kind != "supervisor" else f"alive  restarts={node.restarts}"
        )
    else:
        detail = node.state
        if not node.dynamic_child or node.restarts:
            detail += f"  restarts={node.restarts}"
        if node.restart_in is not None:
            detail += f"  backoff: starts in {node.restart_in:.2f}s"
    if node.info and node.kind == "worker":
        detail += f"  {node.info}"
    cols.append(detail)
    return cols


@dataclass(frozen=True)
class Status:
    """What :func:`get_status` reports about one actor (OTP's ``:sys.get_status``)."""

    actor_class: str
    urn: str
    name: str | None
    alive: bool
    mailbox_size: int
    restarts: int
    state: Any
    exit_reason: str | None = None
    info: str | None = None


def get_state(ref_or_name: ActorRef[Any] | str | Any, timeout: float = 5.0) -> Any:
    """Ask the actor for its state (its ``get_state()``), like OTP's ``:sys.get_state``.

    The request is a message, handled after those already queued.

    Raises:
        NoProc: the actor is dead or the name unbound.
        pykka.Timeout: no answer within ``timeout`` s.
    """
    ref = _registry.resolve(ref_or_name)
    try:
        return ref.ask(ProxyCall(attr_path=("get_state",), args=(), kwargs={}), timeout=timeout)
    except ActorDeadError:
        raise NoProc(ref_or_name) from None


def get_status(ref_or_name: ActorRef[Any] | str | Any, timeout: float = 1.0) -> Status:
    """Report class, urn, name, liveness, mailbox size, restart count and state.

    ``state`` comes from :func:`get_state`; if the actor is too busy to answer
    within ``timeout`` it is the string ``"<busy>"``, and ``None`` once it is dead.
    Works on dead actors (through their ref) too.
    """
    ref = ref_or_name if isinstance(ref_or_name, ActorRef) else _registry.resolve(ref_or_name)
    actor = actor_of(ref)
    alive = ref.is_alive()
    state: Any = None
    if alive:
        try:
            state = get_state(ref, timeout=timeout)
        except Timeout:
            state = "<busy>"
        except NoProc:
            alive = False
    if actor is None:
        reason, name = getattr(ref, "_sv_exit", (None, None))
        return Status(
            ref.actor_class.__name__,
            ref.actor_urn,
            name,
            alive,
            0,
            0,
            state,
            exit_reason=None if reason is None else describe_reason(reason),
        )
    reason = actor.exit_reason
    return Status(
        actor_class=type(actor).__name__,
        urn=actor.actor_urn,
        name=actor.name,
        alive=alive,
        mailbox_size=actor.mailbox_size(),
        restarts=actor._sv_restarts,
        state=state,
        exit_reason=None if reason is None else describe_reason(reason),
        info=actor.describe(),
    )
