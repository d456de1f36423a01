"""Loopback HTTP servers for wire tests: exact bodies the rule-based server cannot send.

:class:`ScriptedServer` (``http.server``) answers each POST with the next scripted
:class:`Reply` (then its default), records every request, and can drop the
connection or stay silent. :class:`DripServer` (raw sockets) sends a response one
byte at a time and records, server-side, when the client closed the connection.

Both run on daemon threads, wait on a stop event (so ``stop()`` returns promptly)
and are context managers.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass(frozen=True)
class Reply:
    """One scripted answer: ``status`` and ``body`` (bytes as is; anything else as
    JSON), extra ``headers``; ``action`` ``"drop"`` closes the connection without a
    response, ``"silent"`` says nothing for ``seconds`` then drops."""

    status: int = 200
    body: Any = b""
    headers: tuple[tuple[str, str], ...] = ()
    action: str = "reply"
    seconds: float = 30.0

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


Script = Reply | Callable[[dict[str, Any]], Reply]


def completion(content: Any = "ok", finish: str | None = "stop", **message: Any) -> dict[str, Any]:
    """A chat-completion body with one choice (index 0)."""
    return {
        "id": "cmpl-test",
        "object": "chat.completion",
        "model": "wire-test",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message},
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


@dataclass
class _State:
    script: deque[Script] = field(default_factory=deque)
    default: Script = field(default_factory=lambda: Reply(body=completion()))
    requests: list[dict[str, Any]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    state: _State

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0") or 0)
        raw = self.rfile.read(length)
        request: dict[str, Any] = {
            "path": self.path,
            "headers": dict(self.headers.items()),
            "body": raw,
        }
        try:
            request["json"] = json.loads(raw)
        except ValueError:
            request["json"] = None
        with self.state.lock:
            self.state.requests.append(request)
            item = self.state.script.popleft() if self.state.script else self.state.default
        reply = item(request) if callable(item) else item
        if reply.action == "silent":
            self.state.stop.wait(reply.seconds)
        if reply.action in ("drop", "silent"):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        body = reply.payload()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class ScriptedServer:
    """A chat-completions endpoint on 127.0.0.1 that answers from a script."""

    def __init__(self) -> None:
        self._state = _State()
        handler = type("Handler", (_Handler,), {"state": self._state})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._httpd.request_queue_size = 128
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), daemon=True, name="scripted-server"
        )

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._state.lock:
            return list(self._state.requests)

    def push(self, *items: Script) -> None:
        """Queue replies for the next requests, in order."""
        with self._state.lock:
            self._state.script.extend(items)

    def set_default(self, item: Script) -> None:
        with self._state.lock:
            self._state.default = item

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._state.stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class DripServer:
    """Answers each request one byte every ``interval`` seconds, ``drip_bytes`` of them
    (then it closes the connection: a client without a total limit waits that long).

    ``mode="body"`` sends complete headers (``Content-Length: 100000``) at once and
    drips the body; ``mode="headers"`` drips the status line itself. For each
    connection it records when the request arrived (``opened``) and when it saw the
    client close the connection (``closed``, monotonic seconds).
    """

    def __init__(self, mode: str = "body", interval: float = 1.0, drip_bytes: int = 12) -> None:
        self.mode = mode
        self.interval = interval
        self.drip_bytes = drip_bytes
        self.opened: list[float] = []
        self.closed: list[float] = []
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=16)
        self._listener.settimeout(0.05)
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True, name="drip-accept")

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._drip, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _read_request(self, conn: socket.socket) -> bool:
        data = b""
        conn.settimeout(5)
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            body += chunk
        return True

    def _client_closed(self, conn: socket.socket, wait: float) -> bool:
        readable, _, _ = select.select([conn], [], [], wait)
        if not readable:
            return False
        try:
            return conn.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            if not self._read_request(conn):
                return
            self.opened.append(time.monotonic())
            if self.mode == "body":
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100000\r\n\r\n"
                )
            data = (b"HTTP/1.1 200 OK\r\n" if self.mode == "headers" else b"") + b" " * 100000
            for byte in data[: self.drip_bytes]:
                if self._stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    self.closed.append(time.monotonic())
                    return
                if self._client_closed(conn, self.interval):
                    self.closed.append(time.monotonic())
                    return

    def start(self) -> Self:
        self._accept.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._accept.join(timeout=5)
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class FloodServer:
    """Answers each request with an endless chunked 200 body (64 KiB chunks, at most
    ``max_bytes``), as fast as the client takes it. Records the bytes it managed to
    send (``sent``) and whether it saw the client close (``closed``)."""

    def __init__(self, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.sent: list[int] = []
        self.closed: list[float] = []
        self._drip = DripServer()  # reuse its accept loop and request reader
        self._drip._drip = self._flood  # type: ignore[method-assign]

    @property
    def api_base(self) -> str:
        return self._drip.api_base

    def _flood(self, conn: socket.socket) -> None:
        with conn:
            if not self._drip._read_request(conn):
                return
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
            total = 0
            try:
                while total < self.max_bytes and not self._drip._stop.is_set():
                    conn.sendall(chunk)
                    total += 0x10000
            except OSError:
                self.closed.append(time.monotonic())
            self.sent.append(total)

    def start(self) -> Self:
        self._drip.start()
        return self

    def stop(self) -> None:
        self._drip.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
