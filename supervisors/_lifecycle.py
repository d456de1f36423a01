"""Stopping and killing actors: :func:`stop` and :func:`kill`."""

from __future__ import annotations

import threading
import time
from typing import Any

from pykka import ActorDeadError, ActorRef

from supervisors import _registry
from supervisors._actor import Actor, _StopWith, actor_of
from supervisors._log import logger
from supervisors._messages import Reason

__all__ = ["kill", "stop"]

DEFAULT_STOP_TIMEOUT = 60.0
"""Seconds :func:`stop` waits when ``timeout`` is ``None``, before killing."""


def _target(ref_or_name: ActorRef[Any] | str | Any) -> tuple[ActorRef[Any], Actor | None]:
    if isinstance(ref_or_name, Actor):
        return ref_or_name.actor_ref, ref_or_name
    ref = _registry.resolve(ref_or_name)
    return ref, actor_of(ref)


def stop(
    ref_or_name: ActorRef[Any] | str | Any,
    timeout: float | None = None,
    *,
    reason: Reason = "normal",
) -> bool:
    """Stop an actor in an orderly way and wait until it and its thread are gone.

    For a supervisor this is an ordered shutdown of its whole subtree: its
    children are stopped in reverse start order, each within its own shutdown
    time, grandchildren first. The actor's pending messages are handled first
    (the stop request is queued behind them), then ``on_stop`` runs.

    ``timeout`` (default ``None`` = 60 s) bounds the wait; past it the actor is
    killed (see :func:`kill`) and ``False`` is returned. Returns ``True`` when the
    actor stopped by itself. Stopping an actor that is already dead returns
    ``True`` at once; an unregistered name raises :class:`NoProc`.

    Note: a ``permanent`` child stopped this way behind its supervisor's back is
    restarted by the supervisor (as in OTP); use :func:`terminate_child` to stop a
    child for good.
    """
    ref, actor = _target(ref_or_name)
    wait = DEFAULT_STOP_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + wait
    if actor is None:
        try:
            return bool(ref.stop(block=True, timeout=wait))
        except ActorDeadError:
            return True
    try:
        ref.tell(_StopWith(reason))
    except ActorDeadError:
        pass
    # Until its on_stop has run and its exit was announced, not only until is_alive() is False.
    if not actor._sv_wait_exit(max(0.0, deadline - time.monotonic())):
        logger.error("stop_timeout", actor=str(actor), timeout=wait)
        actor._kill("killed")
        return False
    thread = actor._sv_thread
    if not actor.reuse_threads and thread is not None and thread is not threading.current_thread():
        thread.join(max(0.0, deadline - time.monotonic()))  # the OS thread itself is gone too
    return True


def kill(
    ref_or_name: ActorRef[Any] | str | Any, reason: Reason = "killed", *, quiet: bool = False
) -> bool:
    """End an actor at once with an untrappable exit (OTP's ``exit(pid, :kill)``).

    From any thread, at any time: the actor is unregistered and marked dead,
    every pending and later ``ask`` is answered with
    :class:`pykka.ActorDeadError`, and its monitors, links and supervisor are told
    ``reason`` (default ``"killed"``). No hook of the actor runs. Python cannot
    stop a thread: if the actor is busy in a handler, its (daemon) thread is
    abandoned and exits at the next message boundary. Split long work into
    messages so a killed actor stops promptly.

    ``quiet=True`` skips the ``actor_killed`` warning: for owners that kill their
    own helpers and report the outcome themselves. Monitors and links are told
    either way.

    Returns ``False`` if the actor was already dead.

    Raises:
        NoProc: an unregistered name.
        TypeError: the actor is a plain pykka actor (it cannot be killed).
    """
    ref, actor = _target(ref_or_name)
    if actor is None:
        if not ref.is_alive():
            return False
        raise TypeError(f"{ref!r} is not a supervisors.Actor; only those can be killed")
    return actor._kill(reason, quiet=quiet)
