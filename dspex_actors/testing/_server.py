"""RuleBasedLMServer: start, stop, configure, inject faults into and inspect the
rule-based loopback server. docs/testing.md is its guide.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, Self

from dspex_actors.testing._faults import Fault, FaultSchedule
from dspex_actors.testing._http import Handler, HTTPServer
from dspex_actors.testing._knowledge import DEFAULT_KNOWLEDGE
from dspex_actors.testing._rules import Rules
from dspex_actors.testing._state import ServerState, shutdown_socket

DEFAULT_MODEL: Final = "rule-based/echo-1"
"""The model id the server reports (it says so: there is no model)."""


class RuleBasedLMServer:
    """An OpenAI-compatible chat-completions server on a loopback port, with no model.

    docs/testing.md describes the rules and fault kinds. ``port=0`` picks a
    free port; :attr:`url` and :attr:`api_base` are valid after :meth:`start`.
    ``latency`` (seconds) is added to every chat-completions request and may be
    changed while running. ``seed`` seeds the RNG of :meth:`set_fault_rates`.
    ``knowledge`` extends (and overrides) :data:`DEFAULT_KNOWLEDGE`.
    ``follow_demos`` switches demo-following on or off. ``model`` is the id
    reported in responses. ``request_log_size`` bounds :attr:`requests`.

    Besides OpenAI's ``/v1/chat/completions`` it speaks Anthropic's ``/v1/messages``
    (:attr:`anthropic_base`) and Gemini's ``/v1beta/models/<m>:generateContent``
    (:attr:`gemini_base`), refusing what the real APIs refuse (a missing
    ``max_tokens``, a missing or wrong auth header...; docs/providers.md), and
    streams server-sent events in each format when asked to (``stream: true``,
    ``:streamGenerateContent?alt=sse``): ``stream_words`` words per chunk,
    ``stream_interval`` seconds apart. ``api_key``: if set, every format checks it.

    Threading: all methods may be called from any thread. :meth:`start` spawns
    a daemon serve thread; handler threads are daemonic too, and :meth:`stop`
    shuts them down and joins them. A server is started at most once.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: float = 0.0,
        seed: int = 0,
        knowledge: Mapping[str, str] | None = None,
        follow_demos: bool = True,
        model: str = DEFAULT_MODEL,
        request_log_size: int = 1000,
        api_key: str | None = None,
        stream_interval: float = 0.0,
        stream_words: int = 1,
    ) -> None:
        if request_log_size < 0:
            raise ValueError("request_log_size must be >= 0")
        self.host = host
        self.port = port
        self.seed = seed
        table = dict(DEFAULT_KNOWLEDGE)
        if knowledge:
            table.update(knowledge)
        self._state = ServerState(
            Rules(table, follow_demos), FaultSchedule(seed), model, request_log_size
        )
        self.latency = latency
        if not math.isfinite(stream_interval) or stream_interval < 0 or stream_words < 1:
            raise ValueError("stream_interval must be >= 0 and stream_words >= 1")
        self._state.api_key = api_key
        self._state.stream_interval = float(stream_interval)
        self._state.stream_words = int(stream_words)
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- configuration -----------------------------------------------------------------

    @property
    def model(self) -> str:
        """The model id reported in responses (settable while running)."""
        return self._state.model

    @model.setter
    def model(self, value: str) -> None:
        self._state.model = value

    @property
    def latency(self) -> float:
        """Seconds added to every chat-completions request (settable while running)."""
        return self._state.latency

    @latency.setter
    def latency(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"latency must be a finite number >= 0, got {value!r}")
        self._state.latency = value

    @property
    def context_window(self) -> int | None:
        """The most characters of message text a request may have (``None``: no limit).

        A longer prompt is answered 400 ``context_length_exceeded``, as OpenAI does
        (settable while running).
        """
        return self._state.context_window

    @context_window.setter
    def context_window(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or int(value) < 1):
            raise ValueError(f"context_window must be an int >= 1 or None, got {value!r}")
        self._state.context_window = None if value is None else int(value)

    @property
    def rate_limit(self) -> tuple[int, float] | None:
        """``(requests, seconds)``: at most that many chat-completions requests are answered
        in any window of ``seconds``; one more gets 429 ``rate_limit_exceeded`` with a
        ``Retry-After`` (counted as ``stats()["rate_limited"]``, not in the window).
        ``None`` (the default): no limit. Settable while running; ``ValueError`` for
        ``requests < 1`` or ``seconds <= 0``.
        """
        return self._state.rate_limit

    @rate_limit.setter
    def rate_limit(self, value: tuple[int, float] | None) -> None:
        if value is not None:
            requests, seconds = value
            if isinstance(requests, bool) or int(requests) < 1:
                raise ValueError(f"rate_limit requests must be an int >= 1, got {requests!r}")
            if not math.isfinite(float(seconds)) or float(seconds) <= 0:
                raise ValueError(f"rate_limit seconds must be > 0, got {seconds!r}")
            value = (int(requests), float(seconds))
        self._state.rate_limit = value

    @property
    def follow_demos(self) -> bool:
        """Whether answers imitate the demos' style (see docs/testing.md)."""
        return self._state.rules.follow_demos

    @follow_demos.setter
    def follow_demos(self, value: bool) -> None:
        self._state.rules.follow_demos = bool(value)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve on a daemon thread; returns ``self``.

        Raises :class:`RuntimeError` if already started (a stopped server cannot
        be restarted) and :class:`OSError` if the address cannot be bound.
        """
        state = self._state
        with state.lock:
            if state.started:
                raise RuntimeError("RuleBasedLMServer can be started only once")
            state.started = True
        httpd = HTTPServer((self.host, self.port), Handler, bind_and_activate=True)
        httpd.state = state
        self._httpd = httpd
        self.port = int(httpd.server_address[1])
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"dspex-rule-server:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, wake sleeping handlers, close connections, join threads.

        Idempotent, and a no-op on a server never started. Handlers waiting
        (latency, ``slow``, ``hang``) wake at once and drop their connection.
        Waits at most about ``timeout`` seconds for the threads; a thread still
        alive after that is daemonic and is left behind (never raises).
        """
        state = self._state
        with state.lock:
            if state.stopped:
                return
            state.stopped = True
            httpd, thread = self._httpd, self._thread
        state.stop_event.set()
        if httpd is None or thread is None:
            return
        deadline = time.monotonic() + max(timeout, 0.0)
        if thread.is_alive():
            httpd.shutdown()
        httpd.server_close()
        thread.join(max(deadline - time.monotonic(), 0.0))
        with state.lock:
            conns = list(state.connections.items())
        for sock, _ in conns:
            shutdown_socket(sock)
        for _, handler in conns:
            if handler is not threading.current_thread():
                handler.join(max(deadline - time.monotonic(), 0.0))

    def __enter__(self) -> Self:
        if not self._state.started:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://HOST:PORT``; raises :class:`RuntimeError` before :meth:`start`."""
        if self._httpd is None:
            raise RuntimeError("the server has not been started")
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        """``url + "/v1"``, what OpenAI-style clients take as their base URL."""
        return self.url + "/v1"

    @property
    def anthropic_base(self) -> str:
        """The base URL for ``dx.LM("anthropic/...", api_base=...)`` (the host root)."""
        return self.url

    @property
    def gemini_base(self) -> str:
        """The base URL for ``dx.LM("gemini/...", api_base=...)`` (``url + "/v1beta"``)."""
        return self.url + "/v1beta"

    # -- faults ------------------------------------------------------------------------

    def inject(self, *faults: str | Fault) -> None:
        """Queue faults: the next chat-completions requests get them, in order.

        A string is a kind with default parameters. Raises :class:`ValueError`
        (and queues nothing) if any kind is unknown.
        """
        self._state.faults.inject(*faults)

    def set_fault_rates(
        self,
        rates: Mapping[str, float],
        seed: int | None = None,
        *,
        templates: Mapping[str, Fault] | None = None,
    ) -> None:
        """Give each request a random fault: ``{"429": 0.1, "500": 0.05}``.

        Drawn from ``random.Random(seed)`` (the server's ``seed`` if None), so a
        sequence of requests sees a reproducible sequence of faults. Queued
        faults (:meth:`inject`) take precedence. ``templates`` give the
        parameters per kind (default: ``Fault(kind)``). Raises
        :class:`ValueError` on an unknown kind, a rate outside [0, 1], or rates
        summing to more than 1. An empty mapping turns random faults off.
        """
        chosen = self.seed if seed is None else seed
        self._state.faults.set_rates(rates, chosen, templates or {})

    def clear_faults(self) -> None:
        """Drop queued faults and turn random faults off."""
        self._state.faults.clear()

    # -- statistics --------------------------------------------------------------------

    @property
    def request_count(self) -> int:
        """Chat-completions requests received (valid or not) since start / reset."""
        return self._state.request_count

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A copy of the last received JSON request bodies (bounded, oldest first)."""
        return self._state.requests()

    def stats(self) -> dict[str, int]:
        """Counts by outcome: ``requests``, ``connections``, ``ok``, ``bad_request``,
        ``not_found``, ``aborted`` (stopped while waiting), ``internal_error`` and
        ``fault:<kind>`` for each fault served. Keys with a zero count may be absent
        except ``requests``, ``connections`` and ``ok``."""
        return self._state.stats()

    def reset_stats(self) -> None:
        """Zero the counters and empty the request log (faults are kept)."""
        self._state.reset_stats()
