"""The HTTP layer: the threaded socket server and the per-connection request handler.

Routes ``POST /v1/chat/completions``, ``GET /v1/models`` and ``GET /health``,
applies the request's fault and latency, and writes each response in one send.
"""

from __future__ import annotations

import json
import logging
import socketserver
import urllib.parse
from collections.abc import Iterable, Sequence
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from dspex_actors.testing._faults import STATUS_FAULTS, Fault
from dspex_actors.testing._native import (
    GEMINI_PATH,
    Problem,
    anthropic_as_chat,
    anthropic_check,
    anthropic_events,
    anthropic_message,
    gemini_as_chat,
    gemini_check,
    gemini_events,
    gemini_response,
    native_fault,
    openai_chunks,
    sse_bytes,
)
from dspex_actors.testing._prompt import content_text
from dspex_actors.testing._responses import (
    completion_body,
    error_body,
    fault_error,
    models_body,
)
from dspex_actors.testing._state import ServerState, shutdown_socket

logger = logging.getLogger("dspex_actors.testing")

_MAX_BODY_BYTES: Final = 32 * 1024 * 1024
_CHAT_PATHS: Final = ("/v1/chat/completions", "/chat/completions")
_ANTHROPIC_PATHS: Final = ("/v1/messages",)
_GARBAGE: Final = b"<html>502 upstream garbage \x00\xff not json"


def _non_empty_list(value: object) -> bool:
    return isinstance(value, list) and bool(value)


class HTTPServer(ThreadingHTTPServer):
    """The socket server: threaded, daemonic, deep accept queue, quiet.

    ``state`` is set by the owner before serving; handlers read it.
    """

    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    allow_reuse_address = True
    state: ServerState

    def server_bind(self) -> None:
        # Skip HTTPServer.server_bind's socket.getfqdn(), which may do a slow DNS lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Transport errors (client went away, shutdown during stop) are normal here.
        logger.debug("rule server connection error from %s", client_address, exc_info=True)


class Handler(BaseHTTPRequestHandler):
    """One connection (HTTP/1.1 keep-alive); runs on its own daemon thread.

    Failure: an exception while answering a chat request is logged and
    answered with a 500; transport errors end the connection quietly.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "dspex-rule-server/1"
    sys_version = ""
    server: HTTPServer

    # -- lifecycle -------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.server.state.register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.state.unregister(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Per-request logging is off (the base class would write to stderr)."""

    # -- responses -------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Write status line, headers and body in one ``send`` (Content-Length always set)."""
        lines = [
            f"HTTP/1.1 {status} {_phrase(status)}",
            f"Server: {self.server_version}",
            f"Date: {formatdate(usegmt=True)}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            "x-dspex-rule-based: true",
            "Connection: close" if self.close_connection else "Connection: keep-alive",
        ]
        lines.extend(f"{k}: {v}" for k, v in headers)
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + body)

    def _send_json(self, status: int, obj: object, headers: Sequence[tuple[str, str]] = ()) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), headers=headers)

    def _send_error_json(
        self, status: int, message: str, err_type: str, code: str | None = None
    ) -> None:
        self._send_json(status, error_body(message, err_type, code))

    def _drop(self) -> None:
        """Close the connection without writing any response."""
        self.close_connection = True
        shutdown_socket(self.connection)

    # -- request body ----------------------------------------------------------------------

    def _read_chunked(self) -> bytes | None:
        """A chunked request body; None after an error was sent."""
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(65537)
            try:
                size = int(size_line.split(b";", 1)[0].strip() or b"x", 16)
            except ValueError:
                self.close_connection = True
                self._send_error_json(400, "bad chunked encoding", "invalid_request_error")
                return None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > _MAX_BODY_BYTES:
                self.close_connection = True
                self._send_error_json(413, "request body too large", "invalid_request_error")
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline(65537)

    def _read_body(self) -> bytes | None:
        """The request body (Content-Length or chunked); None after an error was sent."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if length < 0 or length > _MAX_BODY_BYTES:
            self.close_connection = True
            self._send_error_json(
                400 if length < 0 else 413, "bad Content-Length", "invalid_request_error"
            )
            return None
        return self.rfile.read(length) if length else b""

    # -- routing ---------------------------------------------------------------------------

    def _path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/") or "/"

    def _not_found(self, method: str, path: str) -> None:
        self.server.state.count("not_found")
        self._send_error_json(
            404, f"no route for {method} {path}", "invalid_request_error", "not_found"
        )

    def do_GET(self) -> None:
        state = self.server.state
        path = self._path()
        if path == "/health":
            self._send_json(200, {"status": "ok", "rule_based": True, "model": state.model})
        elif path in ("/v1/models", "/models"):
            self._send_json(200, models_body(state.model))
        else:
            self._not_found("GET", path)

    def do_POST(self) -> None:
        state = self.server.state
        raw = self._read_body()
        if raw is None:
            state.count("bad_request")
            return
        path = self._path()
        gemini = GEMINI_PATH.match(path)
        try:
            if path in _CHAT_PATHS:
                self._completion(state, raw)
            elif path in _ANTHROPIC_PATHS:
                self._anthropic(state, raw)
            elif gemini is not None:
                self._gemini(state, raw, gemini.group(2), gemini.group(3))
            else:
                self._not_found("POST", path)
        except OSError:
            raise
        except RecursionError:  # parsable JSON the rules cannot walk: the client's fault
            state.count("bad_request")
            self._send_error_json(400, "request body is nested too deeply", "invalid_request_error")
        except Exception:
            logger.exception("rule server: internal error while answering a request")
            state.count("internal_error")
            self._send_error_json(500, "internal error in the rule-based server", "server_error")

    # -- chat completions ------------------------------------------------------------------

    def _parse_request(self, state: ServerState, raw: bytes) -> dict[str, Any] | None:
        """The request body as a JSON object with messages; None after a 400 was sent."""
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else "not valid JSON"
            state.record(None)
            state.count("bad_request")
            self._send_error_json(400, f"request body is {why}", "invalid_request_error")
            return None
        if not isinstance(body, dict) or not _non_empty_list(body.get("messages")):
            state.record(body if isinstance(body, dict) else None, raw)
            state.count("bad_request")
            self._send_error_json(
                400,
                "'messages' must be a non-empty list",
                "invalid_request_error",
                "invalid_messages",
            )
            return None
        return body

    def _openai_auth(self, state: ServerState) -> bool:
        """With a server key: a wrong or missing bearer is answered with a 401 (False)."""
        if state.api_key is None:
            return True
        if self.headers.get("Authorization", "") == f"Bearer {state.api_key}":
            return True
        state.count("bad_request")
        self._send_error_json(
            401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"
        )
        return False

    def _completion(self, state: ServerState, raw: bytes) -> None:
        if not self._openai_auth(state):
            return
        body = self._parse_request(state, raw)
        if body is None:
            return
        seq = state.record(body, raw)
        if self._over_context_window(state, body) or self._over_rate_limit(state):
            return
        fault = state.faults.next()
        if not state.wait(state.latency):
            state.count("aborted")
            self._drop()
            return
        if fault is None:
            state.count("ok")
        else:
            state.count(f"fault:{fault.kind}")
            if self._serve_fault(state, fault):
                return
        bad_format = fault is not None and fault.kind == "bad_format"
        content = state.rules.complete(body, bad_format=bad_format)
        completion = completion_body(body, content, seq, state.model)
        if body.get("stream") is True:
            options = body.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            events: list[tuple[str | None, Any]] = [
                (None, c) for c in openai_chunks(completion, state.stream_words, usage)
            ]
            events.append((None, "[DONE]"))
            self._send_events(state, events, fault)
        else:
            self._send_json(200, completion)

    # -- native providers ------------------------------------------------------------------

    def _refuse(self, state: ServerState, body: Any, raw: bytes, problem: Problem) -> None:
        state.record(body if isinstance(body, dict) else None, raw)
        state.count("bad_request")
        self._send_json(*problem)

    def _native_fault(self, state: ServerState, provider: str) -> tuple[bool, Fault | None]:
        """Latency and the next fault, in the provider's error format; (False, _) if answered."""
        fault = state.faults.next()
        if not state.wait(state.latency):
            state.count("aborted")
            self._drop()
            return False, fault
        if fault is None:
            state.count("ok")
            return True, None
        state.count(f"fault:{fault.kind}")
        if fault.kind in STATUS_FAULTS:
            status, error, headers = native_fault(provider, fault.kind, fault.retry_after)
            self._send_json(status, error, headers)
            return False, fault
        return not self._serve_fault(state, fault), fault

    def _anthropic(self, state: ServerState, raw: bytes) -> None:
        body = _loads(raw)
        problem = anthropic_check(self.headers, body, state.api_key)
        if problem is not None:
            self._refuse(state, body, raw, problem)
            return
        seq = state.record(body, raw)
        go, fault = self._native_fault(state, "anthropic")
        if not go:
            return
        bad_format = fault is not None and fault.kind == "bad_format"
        content = state.rules.complete(anthropic_as_chat(body), bad_format=bad_format)
        if body.get("stream") is True:
            events = list(anthropic_events(body, content, seq, state.stream_words))
            self._send_events(state, events, fault)
        else:
            self._send_json(200, anthropic_message(body, content, seq))

    def _gemini(self, state: ServerState, raw: bytes, model: str, method: str) -> None:
        body = _loads(raw)
        query = dict(urllib.parse.parse_qsl(self.path.partition("?")[2]))
        problem = gemini_check(self.headers, query, body, state.api_key)
        if problem is not None:
            self._refuse(state, body, raw, problem)
            return
        state.record(body, raw)
        go, fault = self._native_fault(state, "gemini")
        if not go:
            return
        bad_format = fault is not None and fault.kind == "bad_format"
        content = state.rules.complete(gemini_as_chat(body), bad_format=bad_format)
        if method == "streamGenerateContent":
            if query.get("alt") == "sse":
                events = [
                    (None, e) for _, e in gemini_events(body, content, model, state.stream_words)
                ]
                self._send_events(state, events, fault)
            else:  # without alt=sse the API streams one JSON array: sent whole here
                chunks = [e for _, e in gemini_events(body, content, model, state.stream_words)]
                self._send_json(200, chunks)
        else:
            self._send_json(200, gemini_response(body, content, model))

    # -- server-sent events ----------------------------------------------------------------

    def _send_events(
        self, state: ServerState, events: Iterable[tuple[str | None, Any]], fault: Fault | None
    ) -> None:
        """Stream ``events`` (chunked ``text/event-stream``), ``stream_interval`` apart.

        A ``stream_cut`` fault drops the connection halfway (after at least one chunk).
        """
        items = list(events)
        cut = fault is not None and fault.kind == "stream_cut"
        cut_at = max(len(items) // 2, 1) if cut else None
        head = "\r\n".join(
            [
                "HTTP/1.1 200 OK",
                f"Server: {self.server_version}",
                f"Date: {formatdate(usegmt=True)}",
                "Content-Type: text/event-stream; charset=utf-8",
                "Cache-Control: no-cache",
                "Transfer-Encoding: chunked",
                "x-dspex-rule-based: true",
                "Connection: keep-alive",
            ]
        )
        self.wfile.write((head + "\r\n\r\n").encode("latin-1"))
        self.wfile.write(_chunk(b": keep-alive\n\n"))  # a comment first, as proxies send
        for position, (name, data) in enumerate(items):
            if cut_at is not None and position == cut_at:
                self._drop()
                return
            if position and not state.wait(state.stream_interval):
                self._drop()
                return
            self.wfile.write(_chunk(sse_bytes(data, name)))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _over_context_window(self, state: ServerState, body: dict[str, Any]) -> bool:
        """Answer 400 ``context_length_exceeded`` if the prompt is over the window."""
        limit = state.context_window
        if limit is None:
            return False
        size = sum(
            len(content_text(m.get("content")))
            for m in body.get("messages", ())
            if isinstance(m, dict)
        )
        if size <= limit:
            return False
        state.count("context_window")
        message = (
            f"This model's maximum context length is {limit} characters, "
            f"but the messages have {size}."
        )
        self._send_json(
            400, error_body(message, "invalid_request_error", "context_length_exceeded")
        )
        return True

    def _over_rate_limit(self, state: ServerState) -> bool:
        """Over the server's rate limit: answer 429 with ``Retry-After`` (True)."""
        wait = state.admit()
        if wait is None:
            return False
        state.count("rate_limited")
        message = "Rate limit reached for requests (rule-based server's rate_limit)"
        retry = f"{max(wait, 0.001):.3f}"
        body = error_body(message, "requests", "rate_limit_exceeded")
        self._send_json(429, body, [("Retry-After", retry)])
        return True

    def _serve_fault(self, state: ServerState, fault: Fault) -> bool:
        """Apply ``fault``; True if it answered (or dropped) the request itself."""
        kind = fault.kind
        if kind == "drop":
            self._drop()
            return True
        wait = {"hang": fault.hang_seconds, "slow": fault.delay}.get(kind)
        if wait is not None and not state.wait(wait):
            self._drop()
            return True
        if kind in STATUS_FAULTS:
            status, error, headers = fault_error(fault)
            self._send_json(status, error, headers)
            return True
        if kind == "garbage":
            self._send(200, _GARBAGE)
            return True
        return False


def _chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk of ``data``."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _loads(raw: bytes) -> Any:
    """The request body as JSON, or None if it is not JSON."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _phrase(status: int) -> str:
    """The reason phrase of ``status`` (Anthropic's 529 is not in the registry)."""
    if status == 529:
        return "Overloaded"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
