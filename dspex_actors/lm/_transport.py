"""A wall-clock limit on one HTTP attempt, enforced on every socket read.

``requests`` and urllib3 apply their read timeout to each ``recv``: a server that
drips one byte a second never trips it and keeps the connection (and the worker
thread) for as long as it likes. Here every read of a response received while an
:class:`AttemptClock` is active in the calling thread (status line, headers and body)
waits at most the read timeout *and* at most until the attempt's deadline. At the
deadline the socket is shut down, so the server sees the connection close at once,
the clock is marked ``expired`` and the read raises :class:`AttemptExpired` (a
``TimeoutError``, which urllib3 reports as a read timeout).

The hook is a connection class (``response_class``) installed in the pools of the
:class:`BoundedAdapter` that :func:`dspex_actors.lm.make_session` mounts; no thread
is started. Reads made with no active clock behave exactly as urllib3's own.

Another thread may cut an attempt short with an :class:`AttemptAbort` handed to the
clock (a cancelled request's program does): :meth:`AttemptAbort.abort` shuts the
attempt's socket down at once, so the blocked read returns and the server sees the close.

Threading: the active clock is thread-local (:func:`activate`); one attempt runs in
one thread, as ``requests`` does. An :class:`AttemptClock` is used by that thread only;
its :class:`AttemptAbort` is the one part any thread may call.
"""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time
from typing import Any, NoReturn

from requests.adapters import HTTPAdapter
from urllib3 import PoolManager, ProxyManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ["AttemptAbort", "AttemptClock", "AttemptExpired", "BoundedAdapter", "activate"]

_local = threading.local()


class AttemptExpired(TimeoutError):
    """The attempt's total time passed during a read; the socket was shut down."""


class AttemptAbort:
    """A handle another thread uses to end an attempt now: :meth:`abort` shuts down
    every socket the attempt has read from, and any it opens later. Idempotent, never
    raises; the attempt's read then fails (a connection error)."""

    __slots__ = ("_aborted", "_lock", "_socks")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socks: list[Any] = []
        self._aborted = False

    @property
    def aborted(self) -> bool:
        """Whether :meth:`abort` was called."""
        return self._aborted

    def abort(self) -> None:
        """Shut the attempt's sockets down (from any thread)."""
        with self._lock:
            self._aborted = True
            socks, self._socks = self._socks, []
        for sock in socks:
            _shutdown(sock)

    def attach(self, sock: Any) -> None:
        """Called by the attempt's thread for each socket it reads a response from."""
        with self._lock:
            if not self._aborted:
                self._socks.append(sock)
                return
        _shutdown(sock)


class AttemptClock:
    """The time limits of one attempt: ``seconds`` in total from now (``None``: no
    total limit) and ``read_timeout`` for each read. ``expired`` becomes true when the
    total limit cut a read short. ``abort``, if given, lets another thread end the
    attempt. Owned by the attempt's thread."""

    __slots__ = ("abort", "deadline", "expired", "read_timeout")

    def __init__(
        self, seconds: float | None, read_timeout: float, abort: AttemptAbort | None = None
    ) -> None:
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.read_timeout = read_timeout
        self.expired = False
        self.abort = abort

    def left(self) -> float | None:
        """Seconds left before the total limit (may be negative), or ``None``."""
        return None if self.deadline is None else self.deadline - time.monotonic()


def activate(clock: AttemptClock | None) -> AttemptClock | None:
    """Make ``clock`` the active one for responses received in this thread (``None``
    for none); returns the previous one, to restore afterwards."""
    previous: AttemptClock | None = getattr(_local, "clock", None)
    _local.clock = clock
    return previous


def _shutdown(sock: Any) -> None:
    """Shut ``sock`` down both ways (the peer sees the close even if other references
    keep the descriptor open). The base-class call also works on an ``SSLSocket``."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, TypeError):
        pass  # already closed, or not a real socket (nothing to shut down)


class _BoundedReader(io.RawIOBase):
    """A raw reader over the socket's own ``SocketIO`` (made by ``makefile``, so the
    socket's reference counting of its files is kept) whose every read honours an
    :class:`AttemptClock`."""

    def __init__(self, sock: Any, clock: AttemptClock) -> None:
        super().__init__()
        self._raw = sock.makefile("rb", buffering=0)
        self._sock = sock
        self._clock = clock
        if clock.abort is not None:
            clock.abort.attach(sock)

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return int(self._raw.fileno())

    def readinto(self, b: Any) -> int | None:
        clock = self._clock
        if clock.deadline is not None:
            left = clock.deadline - time.monotonic()
            if left <= 0:
                self._expire()
            self._sock.settimeout(min(clock.read_timeout, left))
        try:
            count: int | None = self._raw.readinto(b)
        except TimeoutError:
            left_now = clock.left()
            if left_now is not None and left_now <= 0:
                self._expire()
            _shutdown(self._sock)  # a timed-out connection is never reused
            raise
        return count

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()

    def _expire(self) -> NoReturn:
        self._clock.expired = True
        _shutdown(self._sock)
        raise AttemptExpired("the attempt's time limit passed; connection closed")


class _SocketWithClock:
    """What :class:`http.client.HTTPResponse` needs of a socket: ``makefile("rb")``."""

    def __init__(self, sock: socket.socket, clock: AttemptClock) -> None:
        self._sock = sock
        self._clock = clock

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_BoundedReader(self._sock, self._clock))


class _BoundedResponse(http.client.HTTPResponse):
    """An ``http.client`` response that reads through the active clock, if any."""

    def __init__(
        self, sock: Any, debuglevel: int = 0, method: str | None = None, url: str | None = None
    ) -> None:
        clock: AttemptClock | None = getattr(_local, "clock", None)
        if clock is not None:
            sock = _SocketWithClock(sock, clock)
        super().__init__(sock, debuglevel, method, url)


class _HTTPConnection(HTTPConnection):
    response_class = _BoundedResponse


class _HTTPSConnection(HTTPSConnection):
    response_class = _BoundedResponse


class _HTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOL_CLASSES: dict[str, type[HTTPConnectionPool]] = {
    "http": _HTTPConnectionPool,
    "https": _HTTPSConnectionPool,
}


class BoundedAdapter(HTTPAdapter):
    """An :class:`~requests.adapters.HTTPAdapter` whose connections (direct or through
    an HTTP(S) proxy; not SOCKS) read responses through the active
    :class:`AttemptClock`. Otherwise it is ``HTTPAdapter`` unchanged."""

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        manager: PoolManager = self.poolmanager
        manager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):
            manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager
