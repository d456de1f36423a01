"""What a server and its handler threads share: counters, the request log, open
connections, the stop event, and the rules and faults that answer requests.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter, deque
from typing import Any

from dspex_actors.testing._faults import FaultSchedule
from dspex_actors.testing._rules import Rules

#: Largest request body kept whole in the request log; a larger one is summarised.
LOG_FULL_BODY_BYTES = 64 * 1024
#: How much of a summarised body's text the log keeps.
LOG_HEAD_BYTES = 4096


def body_summary(body: dict[str, Any], raw: bytes) -> dict[str, Any]:
    """What the request log keeps of a large body: its model, message count, size and head."""
    messages = body.get("messages")
    model = body.get("model")
    return {
        "summary": True,
        "model": model if isinstance(model, str) else None,
        "message_count": len(messages) if isinstance(messages, list) else None,
        "body_bytes": len(raw),
        "head": raw[:LOG_HEAD_BYTES].decode("utf-8", errors="replace"),
    }


def shutdown_socket(sock: socket.socket) -> None:
    """Shut ``sock`` down both ways, ignoring a socket that is already gone."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class ServerState:
    """The state of one server, shared by its public methods and handler threads.

    Threading: counters, the request log, the connection table and the
    started/stopped flags are guarded by :attr:`lock`; :attr:`rules` is
    stateless and :attr:`faults` has its own lock. Every wait a handler makes
    is a wait on :attr:`stop_event`, so stopping wakes them all.
    """

    def __init__(
        self, rules: Rules, faults: FaultSchedule, model: str, request_log_size: int
    ) -> None:
        self.rules = rules
        self.faults = faults
        self.model = model
        self.latency = 0.0
        self.context_window: int | None = None  # characters of message text, or no limit
        self.api_key: str | None = None  # when set, every wire format checks it
        self.stream_interval = 0.0  # seconds between two events of a stream
        self.stream_words = 1  # words per stream chunk
        self.rate_limit: tuple[int, float] | None = None  # (requests, per seconds), or none
        self._admitted: deque[float] = deque()  # monotonic times of admitted requests
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.started = False
        self.stopped = False
        self.connections: dict[socket.socket, threading.Thread] = {}
        self._request_count = 0
        self._outcomes: Counter[str] = Counter()
        self._log: deque[dict[str, Any]] = deque(maxlen=request_log_size)

    # -- called by handler threads -------------------------------------------------------

    def register(self, sock: socket.socket) -> None:
        """Track a new connection (shut it down at once if the server is stopping)."""
        with self.lock:
            stopping = self.stopped
            if not stopping:
                self.connections[sock] = threading.current_thread()
                self._outcomes["connections"] += 1
        if stopping:
            shutdown_socket(sock)

    def unregister(self, sock: socket.socket) -> None:
        """Forget a closed connection."""
        with self.lock:
            self.connections.pop(sock, None)

    def count(self, outcome: str) -> None:
        """Count one request outcome (``"ok"``, ``"fault:500"``, ...)."""
        with self.lock:
            self._outcomes[outcome] += 1

    def record(self, body: dict[str, Any] | None, raw: bytes = b"") -> int:
        """Count a chat-completions request and log its body; returns its number (from 1).

        A body over :data:`LOG_FULL_BODY_BYTES` (``raw``'s length) is logged as a bounded
        summary (:func:`body_summary`), so the log stays small whatever clients send.
        """
        if body is not None and len(raw) > LOG_FULL_BODY_BYTES:
            body = body_summary(body, raw)
        with self.lock:
            self._request_count += 1
            if body is not None:
                self._log.append(body)
            return self._request_count

    def admit(self) -> float | None:
        """Whether a request fits the rate limit: ``None`` if admitted (and counted in the
        window), else the seconds until the oldest admitted request leaves the window."""
        with self.lock:
            if self.rate_limit is None:
                return None
            limit, per = self.rate_limit
            now = time.monotonic()
            while self._admitted and self._admitted[0] <= now - per:
                self._admitted.popleft()
            if len(self._admitted) >= limit:
                return self._admitted[0] + per - now
            self._admitted.append(now)
            return None

    def wait(self, seconds: float) -> bool:
        """Wait on the stop event; False if the server is stopping."""
        if seconds > 0:
            return not self.stop_event.wait(seconds)
        return not self.stop_event.is_set()

    # -- read and reset from any thread ----------------------------------------------------

    @property
    def request_count(self) -> int:
        """Chat-completions requests received since start / reset."""
        with self.lock:
            return self._request_count

    def requests(self) -> list[dict[str, Any]]:
        """A copy of the logged request bodies, oldest first."""
        with self.lock:
            return list(self._log)

    def stats(self) -> dict[str, int]:
        """Counts by outcome, with ``requests``, ``connections`` and ``ok`` always present."""
        with self.lock:
            out = {"requests": self._request_count, "connections": 0, "ok": 0}
            out.update(self._outcomes)
            return out

    def reset_stats(self) -> None:
        """Zero the counters and empty the request log."""
        with self.lock:
            self._request_count = 0
            self._outcomes.clear()
            self._log.clear()
