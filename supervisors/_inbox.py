"""The actor's mailbox: a FIFO that is closed, atomically, when the actor dies.

Closing and sending share one lock, so every message is either drained (and
answered) by the dying actor or rejected at send: no ``ask`` is left hanging.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from pykka import ActorDeadError
from pykka._envelope import Envelope
from pykka.messages import _ActorStop

__all__ = ["Inbox", "Wake", "dead_error", "fail"]


class Wake:
    """Sentinel put straight into a closed inbox to wake an actor thread that was killed."""


def dead_error(ref_text: str) -> BaseException:
    """The error an ask gets when its actor ended before handling it."""
    return ActorDeadError(f"{ref_text} stopped before handling the message")


def fail(envelope: Envelope[Any], error: BaseException) -> None:
    """Answer ``envelope``'s asker with ``error``; a no-op if it was answered already."""
    future = envelope.reply_to
    if future is None:
        return
    try:
        if isinstance(envelope.message, _ActorStop):
            future.set(None)  # ``ref.stop()`` on a stopping actor: it is stopped.
        else:
            future.set_exception(exc_info=(type(error), error, error.__traceback__))
    except queue.Full:
        pass


class Inbox:
    """The mailbox: ``put`` and ``close_and_drain`` share one lock. Thread-safe.

    ``owner`` names the actor in the ``ActorDeadError`` a send to a closed inbox
    gets: a string, or ``(class name, urn)`` formatted only when needed.
    """

    __slots__ = ("_lock", "_q", "closed", "owner")

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.closed = False
        self.owner: str | tuple[str, str] = "actor"

    def put(self, envelope: Envelope[Any], /) -> None:
        with self._lock:
            if not self.closed:
                self._q.put(envelope)
                return
        owner = self.owner
        text = owner if isinstance(owner, str) else f"{owner[0]} ({owner[1]})"
        fail(envelope, dead_error(text))

    def get(self, timeout: float | None = None) -> Any:
        """Next envelope, or the ``Wake`` class when a kill woke the thread."""
        return self._q.get(timeout=timeout)

    def empty(self) -> bool:
        return self._q.empty()

    def qsize(self) -> int:
        return self._q.qsize()

    def wake(self) -> None:
        """Unblock a thread waiting in ``get`` even when closed (used by kill)."""
        self._q.put(Wake)

    def close_and_drain(self) -> list[Envelope[Any]]:
        """Close the inbox and return what was in it (the caller answers them)."""
        with self._lock:
            self.closed = True
        drained: list[Envelope[Any]] = []
        q = self._q
        while not q.empty():  # most inboxes are empty here: no queue.Empty raised
            try:
                item = q.get_nowait()
            except queue.Empty:  # the actor's own thread took the last one meanwhile
                break
            if item is not Wake:
                drained.append(item)
        return drained
