"""The HTTP layer: the threaded socket server and the per-connection request handler.

Routes ``POST /v1/chat/completions``, ``GET /v1/models`` and ``GET /health``,
applies the request's fault and latency, and writes each response in one send.
"""

from __future__ import annotations

import json
import logging
import socketserver
from collections.abc import Sequence
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from dspex_actors.testing._faults import STATUS_FAULTS, Fault
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
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
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
        if path not in _CHAT_PATHS:
            self._not_found("POST", path)
            return
        try:
            self._completion(state, raw)
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

    def _completion(self, state: ServerState, raw: bytes) -> None:
        body = self._parse_request(state, raw)
        if body is None:
            return
        seq = state.record(body, raw)
        if self._over_context_window(state, body):
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
        self._send_json(200, completion_body(body, content, seq, state.model))

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
