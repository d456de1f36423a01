"""Composed programs as supervision subtrees (``system.start_program``).

``start_program(RAG, *args, name="rag")`` builds ``RAG(*args)`` once, then starts,
under the system's ``services`` supervisor, a ``rest_for_one`` supervisor named
``name`` whose children are one :class:`PartActor` per sub-module attribute of the
module (in attribute order) and the program's :class:`Coordinator` last. Each part
actor owns a fresh copy of its sub-module and its state (a retriever's index, a
memory) and runs the calls to it one at a time. The coordinator owns a copy of the
module whose sub-modules are :class:`PartProxy` objects, so ``prog(**inputs)`` runs
the module's ``forward`` in a program actor as usual and every sub-module call goes
to that part's actor. A crashed part is restarted from the pristine copy made at
start (as are the parts after it, and the coordinator); the others keep their state.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import supervisors as sv
from dspex_actors.primitives import DeadlineExceeded
from dspex_actors.runtime._messages import Failed
from dspex_actors.runtime._program import current_program

__all__ = ["Coordinator", "PartActor", "PartProxy", "ProgramTree", "start_program_tree"]

Runner = Callable[[Any, dict[str, Any], float], Any]
"""How a part runs its sub-module: ``run(module, inputs, timeout)`` (``system.run``)."""

PART_TIMEOUT = 60.0
"""Seconds a part call may take when it is not made inside a request (no deadline)."""


@dataclass(frozen=True, slots=True)
class CallPart:
    """Coordinator's request -> part actor (ask): run the sub-module on ``inputs``."""

    inputs: dict[str, Any]
    timeout: float


@dataclass(frozen=True, slots=True)
class GetModule:
    """Caller -> coordinator (ask): the module whose parts are proxies."""


def _is_module(value: Any) -> bool:
    return callable(getattr(value, "forward", None)) and hasattr(value, "named_predictors")


class PartActor(sv.Actor):
    """Owns one sub-module of a program tree and its state; runs its calls in turn.

    Threading: the sub-module runs only in this actor's thread, so its state needs no
    lock. A call's error (an ``LMError``, a bug) goes back to the caller; the part
    keeps running. Killed or crashed, it is restarted with a fresh copy.
    """

    def __init__(self, template: Any, run: Runner, label: str) -> None:
        super().__init__()
        self.part = copy.deepcopy(template)
        self.calls = 0
        self._run = run
        self._label = label

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, CallPart):
            return None
        self.calls += 1
        try:
            return self._run(self.part, message.inputs, message.timeout)
        except Exception as exc:
            return Failed(exc)

    def describe(self) -> str | None:
        return f"{self._label}  {self.calls} call(s)"


class PartProxy:
    """Stands for a sub-module inside the coordinator's module: calls go to its actor."""

    def __init__(self, actor_name: str, label: str) -> None:
        self.actor_name = actor_name
        self.label = label

    def __repr__(self) -> str:
        return f"PartProxy({self.actor_name!r})"

    def __call__(self, **inputs: Any) -> Any:
        program = current_program()
        timeout = program.remaining() if program is not None else PART_TIMEOUT
        if timeout <= 0:
            raise DeadlineExceeded(f"request deadline passed before calling {self.label}")
        result = sv.named(self.actor_name).ask(CallPart(inputs, timeout), timeout=timeout + 1.0)
        if isinstance(result, Failed):
            raise result.error
        return result

    forward = __call__


class Coordinator(sv.Actor):
    """The program tree's own actor: owns the module whose sub-modules are proxies."""

    def __init__(self, module: Any) -> None:
        super().__init__()
        self.module = module

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, GetModule):
            return self.module
        return None


class ProgramTree:
    """Handle of a started program tree: call it like the module; ``tree()``, ``stop()``.

    Threading: callable from many threads at once (each call is one request in its
    own program actor; calls to one part are served in turn by that part's actor).
    """

    def __init__(
        self,
        name: str,
        run: Runner,
        default_timeout: Callable[[], float],
        terminate: Callable[[str], None],
    ) -> None:
        self.name = name
        self._run = run
        self._default_timeout = default_timeout
        self._terminate = terminate

    def __repr__(self) -> str:
        return f"ProgramTree({self.name!r})"

    def part_names(self) -> list[str]:
        """The registered names of the part actors, in start order."""
        return [
            str(row.id)
            for row in sv.which_children(self.name)
            if str(row.id) != f"{self.name}.coordinator"
        ]

    def __call__(self, *, timeout: float | None = None, **inputs: Any) -> Any:
        """Run the module's ``forward`` on ``inputs`` through the tree's actors.

        Raises: as ``system.run``; ``sv.NoProc`` after :meth:`stop`.
        """
        wait = self._default_timeout() if timeout is None else timeout
        module = sv.named(f"{self.name}.coordinator").ask(GetModule(), timeout=wait)
        started = time.monotonic()
        return self._run(module, inputs, max(wait - (time.monotonic() - started), 0.001))

    def tree(self) -> sv.TreeNode:
        """A snapshot of this program's subtree (prints as a drawing)."""
        return sv.tree(self.name)

    def stop(self) -> bool:
        """Stop the subtree (parts and coordinator); ``False`` if it was not running."""
        ref = sv.whereis(self.name)
        if ref is None or not ref.is_alive():
            return False
        self._terminate(self.name)  # through its supervisor: it stays stopped
        return True


def start_program_tree(
    start_child: Callable[[sv.ChildSpec], Any],
    terminate: Callable[[str], None],
    run: Runner,
    default_timeout: Callable[[], float],
    module_class: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    name: str,
) -> ProgramTree:
    """Build the module, start its subtree with ``start_child`` (under ``services``)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"start_program needs a non-empty name, got {name!r}")
    module = module_class(*args, **kwargs)
    if not callable(getattr(module, "forward", None)):
        raise TypeError(f"start_program needs a module class, got {module_class!r}")
    parts = [(attr, value) for attr, value in vars(module).items() if _is_module(value)]
    coordinator_module = copy.copy(module)
    specs: list[sv.ChildSpec] = []
    for attr, part in parts:
        actor_name = f"{name}.{attr}"
        label = f"{type(part).__name__} {attr}"
        setattr(coordinator_module, attr, PartProxy(actor_name, label))
        specs.append(
            sv.ChildSpec(
                id=actor_name, start=PartActor.start, args=(part, run, label), name=actor_name
            )
        )
    specs.append(
        sv.ChildSpec(
            id=f"{name}.coordinator",
            start=Coordinator.start,
            args=(coordinator_module,),
            name=f"{name}.coordinator",
        )
    )
    start_child(
        sv.ChildSpec(
            id=name,
            start=sv.Supervisor.start,
            args=(specs,),
            kwargs={"strategy": "rest_for_one", "max_restarts": 10, "max_seconds": 5.0},
            type="supervisor",
            name=name,
        )
    )
    return ProgramTree(name, run, default_timeout, terminate)
