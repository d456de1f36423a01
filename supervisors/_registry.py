"""Registered names: ``whereis``, ``register`` and :class:`NamedRef`.

A name is bound to one live actor at a time. The runtime releases an actor's name
*before* it tells monitors, links and supervisors that the actor ended, so a
restarted child can take the same name at once and callers that resolve the name on
every send (:class:`NamedRef`) never see a stale ref.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Literal, cast, overload

from pykka import ActorRef, Future

from supervisors._errors import AlreadyStarted, NoProc
from supervisors._reply import ask as fast_ask

if TYPE_CHECKING:
    from pykka import ActorProxy

__all__ = [
    "NamedRef",
    "named",
    "register",
    "registered",
    "unregister",
    "wait_for_name",
    "whereis",
]

_lock = threading.Lock()
_bound = threading.Condition(_lock)
_names: dict[str, ActorRef[Any]] = {}

DEFAULT_CALL_TIMEOUT = 5.0
"""Default timeout of :meth:`NamedRef.ask`, in seconds (OTP's ``call`` default)."""


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


def resolve(target: str | ActorRef[Any] | NamedRef) -> ActorRef[Any]:
    """Turn a name, :class:`NamedRef` or ref into a ref.

    Raises:
        NoProc: the name is not bound to a live actor.
        TypeError: ``target`` is none of those.
    """
    if isinstance(target, ActorRef):
        return target
    if isinstance(target, NamedRef):
        return target.resolve()
    if isinstance(target, str):
        ref = whereis(target)
        if ref is None:
            raise NoProc(target)
        return ref
    raise TypeError(f"expected an ActorRef, a NamedRef or a registered name, got {target!r}")


class NamedRef:
    """A reference that resolves a registered name on every send.

    This is how callers address long-lived services: when the service restarts
    under its supervisor, the new instance takes the same name and the next send
    reaches it. An unbound name fails at once with :class:`NoProc`.

    Thread-safe: any thread may use a ``NamedRef``; it holds no state but the name.

    Example::

        cache = sv.named("cache")
        cache.tell(Put("k", 1))
        cache.ask(Get("k"), timeout=1.0)
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"an actor name must be a non-empty string, got {name!r}")
        self.name = name

    def __repr__(self) -> str:
        return f"NamedRef({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NamedRef) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("NamedRef", self.name))

    def resolve(self) -> ActorRef[Any]:
        """Return the live ref bound to the name now. Raises :class:`NoProc` if none."""
        ref = _names.get(self.name)
        if ref is None or ref.actor_stopped.is_set():
            raise NoProc(self.name)
        return ref

    def whereis(self) -> ActorRef[Any] | None:
        """Return the live ref bound to the name now, or ``None``."""
        return whereis(self.name)

    def is_alive(self) -> bool:
        """``True`` if a live actor is bound to the name right now."""
        return whereis(self.name) is not None

    def tell(self, message: Any) -> None:
        """Send ``message`` without waiting. Raises :class:`NoProc` if the name is unbound."""
        self.resolve().tell(message)

    @overload
    def ask(
        self, message: Any, *, block: Literal[False], timeout: float | None = ...
    ) -> Future[Any]: ...

    @overload
    def ask(
        self, message: Any, *, block: Literal[True] = ..., timeout: float | None = ...
    ) -> Any: ...

    def ask(
        self, message: Any, *, block: bool = True, timeout: float | None = DEFAULT_CALL_TIMEOUT
    ) -> Any:
        """Send ``message`` and wait for the reply (``block=True``) or return a future.

        The default timeout is 5 s, as OTP's ``call``; on timeout :class:`pykka.Timeout`
        is raised and the actor still handles the message.

        Raises:
            NoProc: the name is unbound.
            pykka.ActorDeadError: the actor died before answering.
            Exception: whatever the actor's handler raised (which also crashed it).
        """
        ref = _names.get(self.name)
        if ref is None or ref.actor_stopped.is_set():
            raise NoProc(self.name)
        if block:
            return fast_ask(ref, message, timeout)
        return ref.ask(message, block=False)

    def proxy(self) -> ActorProxy[Any]:
        """Return a pykka proxy for the actor bound *now* (cached per actor).

        A proxy is bound to one actor instance; call ``proxy()`` again after a
        restart (it is cheap: proxies are cached per actor).
        """
        return _proxy_for(self.resolve())

    def stop(self, timeout: float | None = None) -> bool:
        """Stop the actor bound to the name; see :func:`supervisors.stop`."""
        from supervisors._lifecycle import stop

        return stop(self.resolve(), timeout=timeout)


_proxies: dict[str, Any] = {}
_proxies_lock = threading.Lock()


def _proxy_for(ref: ActorRef[Any]) -> ActorProxy[Any]:
    with _proxies_lock:
        proxy = _proxies.get(ref.actor_urn)
        if proxy is None:
            # Drop proxies of dead actors so the cache does not grow without bound.
            for urn in [u for u, p in _proxies.items() if not p.actor_ref.is_alive()]:
                del _proxies[urn]
            proxy = ref.proxy()
            _proxies[ref.actor_urn] = proxy
        return cast("ActorProxy[Any]", proxy)


def named(name: str) -> NamedRef:
    """Return a :class:`NamedRef` for ``name`` (the name need not be bound yet)."""
    return NamedRef(name)
