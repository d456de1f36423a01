"""The name table: ``register``, ``whereis``, ``wait_for_name`` and friends.

A name is bound to one live actor at a time. The runtime releases an actor's name
*before* it tells monitors, links and supervisors that the actor ended, so a
restarted child can take the same name at once. :class:`~supervisors.NamedRef`
(in ``_named_ref``) resolves names through this table on every send.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from pykka import ActorRef

from supervisors._errors import AlreadyStarted, NoProc

__all__ = [
    "lookup",
    "register",
    "registered",
    "resolve",
    "unregister",
    "wait_for_name",
    "whereis",
]

_lock = threading.Lock()
_bound = threading.Condition(_lock)
_names: dict[str, ActorRef[Any]] = {}

lookup: Callable[[str], ActorRef[Any] | None] = _names.get
"""The ref bound to a name, dead or alive, or ``None``: the raw read for hot paths."""


class Resolvable(Protocol):
    """Anything that turns into a ref on demand (a :class:`~supervisors.NamedRef`)."""

    def resolve(self) -> ActorRef[Any]: ...


def register(name: str, ref: ActorRef[Any]) -> None:
    """Bind ``name`` to the live actor ``ref``.

    Raises:
        AlreadyStarted: the name is bound to another live actor.
        NoProc: ``ref`` is not alive.
        TypeError: ``name`` is not a non-empty string.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"an actor name must be a non-empty string, got {name!r}")
    with _lock:
        holder = _names.get(name)
        if holder is not None and holder is not ref and holder.is_alive():
            raise AlreadyStarted(name, holder)
        if not ref.is_alive():
            raise NoProc(ref)
        _names[name] = ref
        _bound.notify_all()
    actor = ref._actor_weakref()
    if actor is not None:
        actor._sv_name = name


def unregister(name: str) -> None:
    """Release ``name``. Releasing an unbound name is a no-op."""
    with _lock:
        _names.pop(name, None)


def _release(name: str, ref: ActorRef[Any]) -> None:
    """Release ``name`` only if it is still bound to ``ref`` (called by a dying actor)."""
    with _lock:
        if _names.get(name) is ref:
            del _names[name]


def whereis(name: str) -> ActorRef[Any] | None:
    """Return the live actor registered as ``name``, or ``None``. Never blocks."""
    ref = _names.get(name)
    if ref is None or not ref.is_alive():
        return None
    return ref


def wait_for_name(name: str, timeout: float = 5.0) -> ActorRef[Any]:
    """Block until a live actor is registered as ``name`` and return it.

    For callers that know a service is restarting (tests, health checks) and
    want its replacement rather than :class:`NoProc`. Plain sends through
    :class:`NamedRef` never wait.

    Raises:
        NoProc: nothing live was bound to ``name`` within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    with _bound:
        while True:
            ref = _names.get(name)
            if ref is not None and ref.is_alive():
                return ref
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NoProc(name)
            # A dying holder never notifies, so wake up now and then to re-check.
            _bound.wait(min(remaining, 0.05))


def registered() -> list[str]:
    """Return the names bound right now, sorted."""
    with _lock:
        return sorted(n for n, r in _names.items() if r.is_alive())


def resolve(target: str | ActorRef[Any] | Resolvable) -> ActorRef[Any]:
    """Turn a name, a :class:`~supervisors.NamedRef` (any ``resolve()``-r) or a ref into a ref.

    Raises:
        NoProc: the name is not bound to a live actor.
        TypeError: ``target`` is none of those.
    """
    if isinstance(target, ActorRef):
        return target
    if isinstance(target, str):
        ref = whereis(target)
        if ref is None:
            raise NoProc(target)
        return ref
    resolver = getattr(type(target), "resolve", None)
    if callable(resolver):
        ref = resolver(target)
        if isinstance(ref, ActorRef):
            return ref
    raise TypeError(f"expected an ActorRef, a NamedRef or a registered name, got {target!r}")
