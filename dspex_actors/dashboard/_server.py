"""The dashboard's web server: Starlette on uvicorn, in one daemon thread of its own.

Routes: ``/`` (the page), ``/api/state`` (tree, LM metrics, programs, services, jobs;
computed in a worker thread, never on the event loop), ``/api/events`` (server-sent
events: the recent history, then live events from the bus), ``/api/kill`` (POST,
only with ``allow_control=True``). Anything but loopback needs ``token=``, checked on
every request (``?token=`` or ``Authorization: Bearer``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import supervisors as sv
from dspex_actors.dashboard._page import PAGE
from dspex_actors.dashboard._state import DashboardState
from dspex_actors.runtime import ActorSystem

__all__ = ["Dashboard", "serve"]

START_TIMEOUT = 10.0
"""Seconds to wait for the server to listen before giving up."""

_QUEUE = 1000  # events a slow browser may lag behind before it misses some


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _node_json(node: sv.TreeNode, path: list[str], crashes: dict[str, str]) -> dict[str, Any]:
    here = [*path, str(node.id)]
    key = "/".join(here)
    return {
        "id": str(node.id),
        "path": here,
        "name": node.name,
        "class": node.actor_class,
        "kind": node.kind,
        "state": node.state,
        "restarts": node.restarts,
        "info": node.info,
        "last_crash": crashes.get(key),
        "children": [_node_json(c, here, crashes) for c in node.children],
    }


class Dashboard:
    """A running dashboard of one system; :meth:`stop` ends its server and subscription.

    Threading: built and stopped from any thread; requests are served on its own
    thread's event loop, blocking reads of the system go to Starlette's thread pool.
    """

    def __init__(
        self,
        system: ActorSystem,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        allow_control: bool = False,
        history: int = 500,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a non-empty string, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int in 0..65535, got {port!r}")
        if token is not None and (not isinstance(token, str) or len(token) < 8):
            raise ValueError("token must be a string of at least 8 characters")
        if token is None and not _is_loopback(host):
            raise ValueError(
                f"serving the dashboard on {host!r} (not loopback) needs token=..., "
                "e.g. token=secrets.token_urlsafe()"
            )
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ValueError(f"history must be an int >= 1, got {history!r}")
        self.system = system
        self.host = host
        self.token = token
        self.allow_control = allow_control
        self.state = DashboardState(history)
        self._crashes: dict[str, str] = {}
        self._closing = False
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sub = system.events.subscribe((), self._on_event, max_queue=10_000)
        try:
            self.url = self._start(port)
        except BaseException:
            self._sub.cancel()
            raise

    # ------------------------------------------------------------------ events

    def _on_event(self, event: Any) -> None:
        if event.topic == ("supervisor", "child_terminated"):
            reason = str(event.data.get("reason"))
            if reason not in ("normal", "shutdown"):
                path = _supervisor_path(self.system.name, str(event.data.get("supervisor")))
                self._crashes[f"{path}/{event.data.get('child_id')}"] = reason
        self.state.on_event(event)

    # ------------------------------------------------------------------ server

    def _start(self, port: int) -> str:
        import uvicorn

        config = uvicorn.Config(
            self._app(),
            host=self.host,
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server
        thread = threading.Thread(target=server.run, name="dspex-dashboard", daemon=True)
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self._stop_server()
                raise RuntimeError(f"the dashboard could not listen on {self.host}:{port}")
            time.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        query = f"?token={self.token}" if self.token else ""
        return f"http://{shown}:{bound}/{query}"

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving (open event streams end) and unsubscribe. Idempotent."""
        self._closing = True
        self._sub.cancel()
        self._stop_server(timeout)

    def _stop_server(self, timeout: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    # --------------------------------------------------------------------- app

    def _app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.routing import Route

        return Starlette(
            routes=[
                Route("/", self._page),
                Route("/api/state", self._api_state),
                Route("/api/events", self._api_events),
                Route("/api/kill", self._api_kill, methods=["POST"]),
            ],
            middleware=[Middleware(_TokenCheck, token=self.token)] if self.token else [],
        )

    async def _page(self, request: Any) -> Any:
        from starlette.responses import HTMLResponse

        control = "true" if self.allow_control else "false"
        return HTMLResponse(PAGE.replace("__ALLOW_CONTROL__", control))

    def _state_json(self) -> dict[str, Any]:
        """Runs in the thread pool: reads the tree and stats (may block briefly)."""
        system = self.system
        tree = _node_json(system.tree(), [], dict(self._crashes))
        programs = [
            {"id": c["id"], "info": c["info"]}
            for c in tree["children"]
            if c["id"] == "programs"
            for c in c["children"]
        ]
        services: list[dict[str, Any]] = next(
            (c["children"] for c in tree["children"] if c["id"] == "services"), []
        )
        return {
            "system": system.name,
            "state": system.state,
            "tree": tree,
            "programs": programs,
            "services": [{"id": s["id"], "state": s["state"]} for s in services],
            "allow_control": self.allow_control,
            **self.state.snapshot(),
        }

    async def _api_state(self, request: Any) -> Any:
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        return JSONResponse(await run_in_threadpool(self._state_json))

    async def _api_kill(self, request: Any) -> Any:
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        if not self.allow_control:
            return JSONResponse({"error": "read-only dashboard (allow_control=False)"}, 403)
        try:
            body = await request.json()
            path = [str(p) for p in body["path"]]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": 'expected {"path": [ids from the root]}'}, 400)
        killed = await run_in_threadpool(self._kill, path)
        if killed is None:
            return JSONResponse({"error": f"no running actor at {'/'.join(path)}"}, 404)
        return JSONResponse({"killed": "/".join(path)})

    def _kill(self, path: list[str]) -> str | None:
        node = self.system.tree()
        if not path or str(node.id) != path[0]:
            return None
        for part in path[1:]:
            node_or_none = next((c for c in node.children if str(c.id) == part), None)
            if node_or_none is None:
                return None
            node = node_or_none
        if node.ref is None or not node.ref.is_alive():
            return None
        sv.kill(node.ref, "killed")
        return "/".join(path)

    async def _api_events(self, request: Any) -> Any:
        from starlette.responses import StreamingResponse

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_QUEUE)

        def put(item: dict[str, Any]) -> None:
            if not queue.full():
                queue.put_nowait(item)

        def listener(item: dict[str, Any]) -> None:  # the dashboard subscription's thread
            loop.call_soon_threadsafe(put, item)

        with self.state.lock:
            history = list(self.state.ring)
            self.state.listeners.add(listener)

        async def stream() -> AsyncIterator[str]:
            try:
                for item in history:
                    yield f"data: {json.dumps(item)}\n\n"
                while not self._closing:
                    try:
                        item = await asyncio.wait_for(queue.get(), timeout=0.5)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield ": keep-alive\n\n"
                        continue
                    yield f"data: {json.dumps(item)}\n\n"
            finally:
                with self.state.lock:
                    self.state.listeners.discard(listener)

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def _supervisor_path(root: str, supervisor: str) -> str:
    """The tree path (ids joined by ``/``) of a supervisor named ``root`` or ``root.part``."""
    if supervisor == root:
        return root
    return f"{root}/{supervisor.removeprefix(root + '.')}"


class _TokenCheck:
    """ASGI middleware: 401 unless the request carries the token (query or bearer header)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self._allowed(scope):
            from starlette.responses import PlainTextResponse

            await PlainTextResponse("token required", 401)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Any) -> bool:
        from urllib.parse import parse_qs

        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = (query.get("token") or [""])[0]
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value.startswith(b"Bearer "):
                given = value[7:].decode("latin-1")
        return secrets.compare_digest(given, self.token)


def serve(system: ActorSystem, **options: Any) -> Dashboard:
    """Start a :class:`Dashboard` of ``system`` (see ``ActorSystem.serve_dashboard``)."""
    return Dashboard(system, **options)
