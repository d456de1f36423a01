"""The :class:`NamedRef`: a reference that resolves a registered name on every send.

Callers address long-lived services by name, so a restart under a supervisor is
invisible to them. Names themselves live in the table in ``_registry``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Literal, cast, overload

from pykka import ActorRef, Future

from supervisors import _lifecycle, _registry
from supervisors._errors import NoProc
from supervisors._reply import ask as fast_ask

if TYPE_CHECKING:
    from pykka import ActorProxy

__all__ = ["DEFAULT_CALL_TIMEOUT", "NamedRef", "named"]

DEFAULT_CALL_TIMEOUT = 5.0
"""Default timeout of :meth:`NamedRef.ask`, in seconds (OTP's ``call`` default)."""

_lookup = _registry.lookup


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
        ref = _lookup(self.name)
        if ref is None or ref.actor_stopped.is_set():
            raise NoProc(self.name)
        return ref

    def whereis(self) -> ActorRef[Any] | None:
        """Return the live ref bound to the name now, or ``None``."""
        return _registry.whereis(self.name)

    def is_alive(self) -> bool:
        """``True`` if a live actor is bound to the name right now."""
        return _registry.whereis(self.name) is not None

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
        ref = _lookup(self.name)
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
        return _lifecycle.stop(self.resolve(), timeout=timeout)


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
