"""The :class:`ActorSystem`: one supervision tree running LM programs.

::

    dspex  Supervisor one_for_one
    ├── lm:default     Supervisor         alive  restarts=0   (the LM's own bulkhead)
    │   └── client     LMClient           alive  restarts=0
    ├── cache          CacheActor         alive  restarts=0
    ├── teleprompters  DynamicSupervisor  0 children
    └── programs       DynamicSupervisor  3 children
"""

from __future__ import annotations

import collections
import copy
import importlib
import importlib.util
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, ParamSpec, Protocol, TextIO, TypeVar

import pykka
import structlog

import supervisors as sv
from dspex_actors.cache import CacheActor, CacheConfig, ClearCache
from dspex_actors.lm import LM, AdmissionTable, LMClient, LMCounters, RetryPolicy
from dspex_actors.primitives import EventBus, LogStream, SystemDown, telemetry
from dspex_actors.runtime._async import (
    SystemClosed,
    drain,
    off_loop,
    release_spawner,
    retain_spawner,
    run_in_program_async,
)
from dspex_actors.runtime._fanout import Call, program_stream, run_many
from dspex_actors.runtime._health import (
    SystemState,
    TreeFacts,
    degraded_reasons,
    down_tree,
    health_report,
    stats_report,
)
from dspex_actors.runtime._heart import Heart, Watch
from dspex_actors.runtime._history import print_history
from dspex_actors.runtime._lm_status import lm_supervisor_name
from dspex_actors.runtime._program import Runtime, run_in_program
from dspex_actors.runtime._programs_tree import ProgramTree

__all__ = ["ActorSystem", "Compiler", "NoSystemError", "current_system", "start"]

DEFAULT_HISTORY_SIZE = 100
"""LM calls a system remembers for :meth:`ActorSystem.history` by default."""

DEFAULT_REQUEST_TIMEOUT = 60.0
"""Per-request deadline (seconds) when the retry policy sets none."""

T = TypeVar("T")
P = ParamSpec("P")
J_co = TypeVar("J_co", covariant=True)
J = TypeVar("J")

_systems: list[ActorSystem] = []
_systems_lock = threading.Lock()


class NoSystemError(RuntimeError):
    """A module was called with no running :class:`ActorSystem` (call ``dx.start()``)."""


class Compiler(Protocol[P, J_co]):
    """What :meth:`ActorSystem.compile` accepts: an optimizer that starts a job in a system.

    ``start_job(system, **options)`` starts the job under ``system`` and returns
    its handle at once (``dx.Teleprompter`` returns a ``dx.Job``). Generic in the
    options and the handle, so ``system.compile(tp, ...)`` keeps both typed. The
    runtime knows nothing else of optimizers (they are a layer above it).
    """

    def start_job(self, system: ActorSystem, /, *args: P.args, **kwargs: P.kwargs) -> J_co: ...


def configure_logging(level: int = logging.INFO) -> None:
    """Give structlog a readable default (to stderr, at ``level``) if nobody configured it.

    Applications that call ``structlog.configure`` themselves keep their setup.
    Loggers are filtering loggers cached on first use, so a call below ``level`` (the
    per-request DEBUG events) costs a method call on a no-op; as with any cached
    structlog setup, reconfigure before the first log call, not after.
    """
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=LogStream.stderr()),  # above progress bars
        # Not cached: a cached logger ignores later reconfiguration, so
        # structlog.testing.capture_logs() would miss our events after dx.start().
        # Caching would save ~1.7 us per filtered call (a few per request).
        cache_logger_on_first_use=False,
    )


class _NameTaken(sv.AlreadyStarted):
    """``dx.start`` with the name of a system that is still running (with the fix in it)."""

    def __init__(self, actor_name: str, holder: Any, system: str) -> None:
        super().__init__(actor_name, holder)
        self.args = (
            f"an actor system named {system!r} is already running in this process: shut it "
            f"down first, or give this one another name: dx.start(..., name='other')",
        )


class _LMRefs(sv.NamedRef):
    """``system.lm``: the default LM client's named ref, callable for another LM by name.

    ``system.lm.ask(...)`` / ``system.lm().ask(...)`` reach the default LM client;
    ``system.lm("teacher")`` (or ``system.lm(name="teacher")``) another one. Like every
    named ref, resolved on every send, so a restart is invisible.
    """

    def __init__(self, names: Mapping[str, str], default: str) -> None:
        super().__init__(names[default])
        self._names = dict(names)

    def __call__(self, name: str = "default") -> sv.NamedRef:
        if name == "default" and "default" not in self._names:
            return sv.named(self.name)
        if name not in self._names:
            raise KeyError(f"no LM named {name!r}; configured: {sorted(self._names)}")
        return sv.named(self._names[name])


OnDown = Literal["stay", "restart"]


class ActorSystem:
    """A running dspex system: LM clients, a cache, services and programs in one tree.

    Create it with :func:`start`. It is a context manager; :meth:`shutdown` stops
    the whole tree in order (programs first, LM clients last) and leaves no
    thread running. :attr:`state` is ``"running"``, ``"degraded"`` (a part is
    restarting, a breaker is open, the cache's file failed), ``"down"`` (the root
    supervisor gave up: calls raise :class:`~dspex_actors.SystemDown` until
    :meth:`restart`, or until it comes back by itself with ``on_down="restart"``) or
    ``"stopped"``.

    Threading: every method may be called from any thread.
    """

    def __init__(
        self,
        *,
        name: str,
        lms: Mapping[str, LM],
        cache: CacheConfig | None,
        retry: RetryPolicy,
        max_programs: int | None = None,
        on_down: OnDown = "stay",
        down_backoff: sv.Backoff | None = None,
        history_size: int = DEFAULT_HISTORY_SIZE,
        record_content: bool = False,
    ) -> None:
        if not isinstance(history_size, int) or history_size < 0:
            raise ValueError(f"history_size must be an int >= 0, got {history_size!r}")
        if not lms:
            raise ValueError("an ActorSystem needs at least one LM")
        for lm_name, lm in lms.items():
            if not isinstance(lm, LM):
                raise TypeError(f"lms[{lm_name!r}] must be a dx.LM, got {lm!r}")
        if on_down not in ("stay", "restart"):
            raise ValueError(f"on_down must be 'stay' or 'restart', got {on_down!r}")
        self.name = name
        self.lms = dict(lms)
        self.retry = retry
        self.cache_config = cache
        self._max_programs = max_programs
        self._lm_names = {lm_name: f"{name}.lm.{lm_name}" for lm_name in self.lms}
        self._cache_name = f"{name}.cache" if cache is not None else None
        self._programs_name = f"{name}.programs"
        self._teleprompters_name = f"{name}.teleprompters"
        self._services_name = f"{name}.services"
        self._events_name = f"{name}.events"
        self.events = EventBus(self._events_name, record_content=bool(record_content))
        """The system's event bus: ``subscribe``, ``publish``, ``recording``
        (``docs/observability.md``)."""
        self._observer = telemetry.supervisor_observer(self.events)
        self._counters = {lm_name: LMCounters() for lm_name in self.lms}  # outlive restarts
        default = "default" if "default" in self.lms else next(iter(self.lms))
        self._admissions = AdmissionTable()  # each LM client publishes its admission here
        self.runtime = Runtime(
            system_name=name,
            lms=self.lms,
            lm_names=self._lm_names,
            cache_name=self._cache_name,
            retry=retry,
            default_lm=default,
            admissions=self._admissions,
            history=collections.deque(maxlen=history_size) if history_size else None,
            events=self.events,
        )
        self._lm_refs = _LMRefs(self._lm_names, default)
        self._services: list[sv.ChildSpec] = []  # started again after a system restart
        self._tree_lock = threading.RLock()
        self._closed = False
        self._draining = False  # ashutdown's grace period: nothing new starts
        self._down: str | None = None
        self._system_restarts = 0
        self._dashboards: list[Any] = []
        self.root = self._start_tree()
        backoff = down_backoff if down_backoff is not None else sv.Backoff(min_s=1.0, max_s=60.0)
        with sv.spawn_options(name=f"{name}.heart"):
            self._heart = Heart.start(
                name, self._mark_down, self._restart_tree if on_down == "restart" else None, backoff
            )
        self._heart.tell(self._watch())

    # ------------------------------------------------------------------ tree

    def _lm_spec(self, lm_name: str, lm: LM) -> sv.ChildSpec:
        """The LM's own supervisor (its own intensity) around its client: a crash storm
        stays inside it. It gives up alone; the root restarts it after ``down_backoff``."""
        client = sv.ChildSpec(
            id="client",
            start=LMClient.start,
            args=(lm_name, lm, self._counters[lm_name], self._admissions),
            name=self._lm_names[lm_name],
            backoff=lm.restart_backoff,
        )
        return sv.ChildSpec(
            id=f"lm:{lm_name}",
            start=sv.Supervisor.start,
            args=([client],),
            kwargs={
                "max_restarts": lm.client_max_restarts,
                "max_seconds": lm.client_max_seconds,
                "name": lm_supervisor_name(self._lm_names[lm_name]),
            },
            type="supervisor",
            backoff=lm.down_backoff,
        )

    def _child_specs(self) -> list[sv.ChildSpec]:
        children = [self._lm_spec(lm_name, lm) for lm_name, lm in self.lms.items()]
        if self.cache_config is not None:
            children.append(
                sv.ChildSpec(
                    id="cache",
                    start=CacheActor.start,
                    args=(self.cache_config,),
                    name=self._cache_name,
                )
            )
        for id_, name, kwargs in (
            # A handler that raises restarts its subscription actor: generous intensity.
            ("events", self._events_name, {"max_restarts": 100, "max_seconds": 5}),
            ("services", self._services_name, {"max_restarts": 10, "max_seconds": 60}),
            ("teleprompters", self._teleprompters_name, {"max_restarts": 10, "max_seconds": 60}),
            ("programs", self._programs_name, {"max_children": self._max_programs}),
        ):
            children.append(
                sv.ChildSpec(
                    id=id_,
                    start=sv.DynamicSupervisor.start,
                    kwargs={"name": name, "observer": self._observer, **kwargs},
                    type="supervisor",
                )
            )
        return children

    def _start_tree(self) -> pykka.ActorRef[Any]:
        root = sv.Supervisor.start(
            self._child_specs(),
            strategy="one_for_one",
            max_restarts=10,
            max_seconds=5.0,
            name=self.name,
            observer=self._observer,
        )
        self.events.respawn()  # after a restart of the tree: the subscriptions' actors again
        for spec in self._services:
            sv.start_child(self._services_name, spec)
        return root

    def _watch(self) -> Watch:
        actor = sv.actor_of(self.root)
        return Watch(self.root, lambda: getattr(actor, "gave_up", None))

    def _mark_down(self, reason: str) -> None:
        self._down = reason

    def _restart_tree(self) -> Watch:
        """Start the tree again (same names and configuration); from the heart or a caller."""
        with self._tree_lock:
            if self._closed:
                raise RuntimeError(f"actor system {self.name!r} is shut down")
            if not self.root.is_alive():
                self.root = self._start_tree()
                self._system_restarts += 1
                self._down = None
            return self._watch()

    def restart(self) -> None:
        """Bring a down system back: the same tree, names and configuration, services too.

        A no-op while the tree runs. Counters and history are kept.

        Raises:
            RuntimeError: the system was shut down.
            sv.StartError: a part failed to start again (the system stays down).
        """
        watch = self._restart_tree()
        self._heart.tell(watch)

    # ----------------------------------------------------------------- access

    @property
    def closed(self) -> bool:
        """Whether :meth:`shutdown` was called (nothing new may run)."""
        return self._closed

    def request_timeout(self, timeout: float | None = None) -> float:
        """``timeout``, else the retry policy's deadline, else 60 s: a request's deadline."""
        if timeout is not None:
            return timeout
        return self.retry.deadline or DEFAULT_REQUEST_TIMEOUT

    @property
    def lm(self) -> _LMRefs:
        """The LM clients: ``system.lm`` (the default, a named ref), ``system.lm("name")``."""
        return self._lm_refs

    @property
    def cache(self) -> sv.NamedRef | None:
        """The cache actor's named ref, or ``None`` when the cache is off."""
        return sv.named(self._cache_name) if self._cache_name else None

    @property
    def programs(self) -> sv.NamedRef:
        """The dynamic supervisor of per-request program actors."""
        return sv.named(self._programs_name)

    @property
    def teleprompters(self) -> sv.NamedRef:
        """The dynamic supervisor of compile jobs."""
        return sv.named(self._teleprompters_name)

    @property
    def services(self) -> sv.NamedRef:
        """The dynamic supervisor of your own actors (see :meth:`start_service`)."""
        return sv.named(self._services_name)

    def start_service(
        self,
        spec_or_actor_class: sv.ChildSpec | type[sv.Actor],
        *args: Any,
        name: str | None = None,
        restart: Literal["permanent", "transient", "temporary"] = "permanent",
        **kwargs: Any,
    ) -> pykka.ActorRef[Any]:
        """Put your own actor (a retriever, a tool server, a session store) in the tree.

        It runs under the ``services`` supervisor, restarted per ``restart``
        (default ``"permanent"``), registered under ``name`` so that
        ``sv.named(name)`` finds it across restarts, shown by :meth:`tree`, and
        stopped by :meth:`shutdown` after the programs (which may use it) and before
        the LM clients. ``args``/``kwargs`` go to the actor's ``__init__``. Give a
        ``sv.ChildSpec`` instead of a class for full control (``name``/``restart``
        then come from the spec). After :meth:`restart` of a down system, services
        are started again.

        Raises:
            TypeError / ValueError: neither an actor class nor a ChildSpec; bad options.
            sv.StartError: its ``on_start`` failed (nothing is kept).
            sv.AlreadyStarted: ``name`` is taken.
            SystemDown / RuntimeError: the system is down / shut down.
        """
        self._check_open()
        if isinstance(spec_or_actor_class, sv.ChildSpec):
            spec = spec_or_actor_class
        elif isinstance(spec_or_actor_class, type) and issubclass(spec_or_actor_class, sv.Actor):
            service_id = name or spec_or_actor_class.__name__
            spec = sv.ChildSpec(
                id=service_id,
                start=spec_or_actor_class.start,
                args=args,
                kwargs=kwargs,
                restart=restart,
                name=name,
            )
        else:
            raise TypeError(
                f"start_service takes an sv.Actor subclass or an sv.ChildSpec, "
                f"got {spec_or_actor_class!r}"
            )
        ref = sv.start_child(self._services_name, spec)
        with self._tree_lock:
            self._services.append(spec)
        return ref

    def start_program(
        self, module_class: Callable[..., Any], *args: Any, name: str, **kwargs: Any
    ) -> ProgramTree:
        """Start ``module_class(*args, **kwargs)`` as a long-lived supervision subtree.

        Under ``services``: a ``rest_for_one`` supervisor ``name`` with one actor per
        sub-module (keeping its state) and a coordinator; call the returned handle like
        the module. See ``docs/agents.md``.

        Raises:
            ValueError / TypeError: a bad name or not a module class (nothing started).
            sv.AlreadyStarted: ``name`` is taken.
        """
        from dspex_actors.runtime._programs_tree import start_program_tree

        self._check_open()
        return start_program_tree(
            self.start_service,
            self._stop_service,
            lambda module, inputs, timeout: self.run(module, inputs, timeout=timeout),
            self.request_timeout,
            module_class,
            args,
            kwargs,
            name,
        )

    def _stop_service(self, service_id: str) -> None:
        """Stop the service registered as ``service_id`` for good (restart() skips it too)."""
        ref = sv.whereis(service_id)
        if ref is not None:
            sv.terminate_child(self._services_name, ref)
        with self._tree_lock:
            self._services = [s for s in self._services if s.id != service_id]

    def service(self, name: str) -> sv.NamedRef:
        """The named ref of the service registered as ``name``."""
        return sv.named(name)

    # ---------------------------------------------------------------- running

    def run(self, module: Any, inputs: Mapping[str, Any], *, timeout: float | None = None) -> Any:
        """Run ``module(**inputs)`` in a new program actor and return its result.

        ``timeout`` defaults to the retry policy's deadline (or 60 s).

        Raises:
            dx.LMError: the request failed (typed, with ``attempts``).
            SystemDown: the root supervisor gave up (at once, before any I/O).
            RuntimeError: the system is shut down.
        """
        self._check_open()
        try:
            return run_in_program(
                self.runtime,
                self._programs_name,
                module,
                dict(inputs),
                timeout=self.request_timeout(timeout),
            )
        except (sv.NoProc, pykka.ActorDeadError) as exc:
            raise self._down_error() or exc from exc

    async def arun(
        self, module: Any, inputs: Mapping[str, Any], *, timeout: float | None = None
    ) -> Any:
        """:meth:`run` for asyncio: await the result; no thread waits, the loop never blocks.

        Same errors as :meth:`run`, raised as they are (not wrapped in a future's
        error). Cancelling the awaiting task cancels the request: its program actor
        and I/O workers end, the task gets ``CancelledError``.
        """
        self._check_open()
        try:
            return await run_in_program_async(
                self.runtime,
                self._programs_name,
                module,
                dict(inputs),
                timeout=self.request_timeout(timeout),
            )
        except (sv.NoProc, pykka.ActorDeadError) as exc:
            raise self._down_error() or exc from exc

    def compile(self, teleprompter: Compiler[P, J], /, *args: P.args, **kwargs: P.kwargs) -> J:
        """Start a compile job under ``teleprompters`` and return its handle at once.

        ``system.compile(tp, student=..., trainset=..., teacher=None, valset=None,
        checkpoint_dir=None)`` for the dx teleprompters: it calls
        ``tp.start_job(system, ...)`` (see :class:`Compiler`); argument checks
        raise here, in the caller's thread.

        Raises:
            RuntimeError: the system is shut down.
            TypeError: ``teleprompter`` has no ``start_job``.
        """
        self._check_open()
        if not callable(getattr(teleprompter, "start_job", None)):
            raise TypeError(f"expected a dx teleprompter, got {type(teleprompter).__name__}")
        return teleprompter.start_job(self, *args, **kwargs)

    def run_many(
        self,
        module: Any,
        inputs: Sequence[Mapping[str, Any]],
        *,
        max_concurrency: int = 16,
        timeout: float | None = None,
        on_result: Callable[[int, Any], None] | None = None,
    ) -> list[Any]:
        """Run ``module`` on every input with bounded concurrency; see :func:`run_many`.

        Returns each result or exception in input order (never raises for one
        item's failure). ``on_result(index, result)`` runs in the calling thread as
        items finish.
        """
        self._check_open()
        results = run_many(
            self.runtime,
            self._programs_name,
            module,
            [dict(i) for i in inputs],
            max_concurrency=max_concurrency,
            timeout=self.request_timeout(timeout),
            on_result=on_result,
        )
        down = self._down_error()
        if down is not None:  # the tree died under the batch: say so, not NoProc
            results = [
                down if isinstance(r, sv.NoProc | pykka.ActorDeadError) else r for r in results
            ]
        return results

    def fan_out(
        self,
        items: Iterable[T],
        call: Callable[[T], Call],
        *,
        max_concurrency: int = 16,
        timeout: float | None = None,
        ordered: bool = True,
        notify: Callable[[], None] | None = None,
    ) -> sv.FanOut[T]:
        """Run ``call(item)`` = ``(module, inputs)`` for each item, each in its own program actor.

        The ``sv.fan_out`` engine: at most ``max_concurrency`` unfinished (a result
        not taken yet holds its slot), results as ``sv.Settled`` in input order
        (``ordered``) or as they finish, each request with ``timeout`` (default:
        :meth:`request_timeout`) and its program killed a moment after that;
        ``cancel()``, leaving a ``with`` block or Ctrl-C kill what still runs.
        ``dspex_actors.runtime.call_result(settled.outcome, timeout)`` gives each
        call's result or exception. Consumed in the calling thread (or, with
        ``notify``, by an actor calling ``get(0)``).

        Raises:
            RuntimeError: the system is shut down.
        """
        self._check_open()
        return program_stream(
            self.runtime,
            self._programs_name,
            items,
            call,
            max_concurrency=max_concurrency,
            timeout=self.request_timeout(timeout),
            ordered=ordered,
            notify=notify,
        )

    def _check_open(self) -> None:
        """Fail fast, before any I/O: shut down or shutting down (SystemClosed, a
        RuntimeError) or down (SystemDown)."""
        if self._closed:
            raise SystemClosed(f"actor system {self.name!r} is shut down")
        if self._draining:
            raise SystemClosed(f"actor system {self.name!r} is shutting down")
        down = self._down_error()
        if down is not None:
            raise down

    def _down_error(self) -> SystemDown | None:
        """A :class:`SystemDown` if the root is not running (and no shutdown was asked)."""
        reason = self._down
        if reason is None and not self._closed and not self.root.is_alive():
            reason = getattr(sv.actor_of(self.root), "gave_up", None) or "the root supervisor ended"
        return SystemDown(self.name, reason) if reason is not None else None

    # ----------------------------------------------------------- introspection

    @property
    def state(self) -> SystemState:
        """``"running"``, ``"degraded"``, ``"down"`` or ``"stopped"`` (see the class doc)."""
        if self._closed:
            return "stopped"
        if self._down_error() is not None:
            return "down"
        return "degraded" if degraded_reasons(self._facts("running")) else "running"

    def _facts(self, state: SystemState | None = None) -> TreeFacts:
        down = self._down_error()
        return TreeFacts(
            name=self.name,
            state=state if state is not None else self.state,
            down_reason=down.reason if down is not None else None,
            root=self.root,
            lm_names=self._lm_names,
            counters=self._counters,
            models={name: lm.model for name, lm in self.lms.items()},
            admissions=self._admissions,
            cache_name=self._cache_name,
            programs_name=self._programs_name,
            services_name=self._services_name,
            system_restarts=self._system_restarts,
        )

    def tree(self) -> sv.TreeNode:
        """A snapshot of the supervision tree (prints as a drawing); never raises.

        A down or stopped system draws as one node that says so (and why it went down).
        """
        state = self.state
        if state in ("running", "degraded"):
            try:
                return sv.tree(self.root)
            except sv.NoProc:
                state = self.state
        return down_tree(self.name, state, self._facts(state).down_reason)

    def health(self) -> dict[str, Any]:
        """Overall status (healthy / degraded / down), each part, breakers, load; never raises.

        Keys: ``status``, ``state``, ``reason`` (why down), ``degraded`` (why degraded),
        ``lms`` (alive, restarts, breaker), ``cache`` (alive, restarts, storage),
        ``services``, ``programs_in_flight``, ``system_restarts``, ``threads``,
        ``rss_bytes``, ``time`` (ISO 8601, UTC) and ``timestamp``. Reads snapshots only.
        """
        return health_report(self._facts())

    def stats(self) -> dict[str, Any]:
        """Per-LM requests/tokens/errors/latency, cache hits/misses, live programs.

        Counters are kept across restarts, so a down or stopped system still reports
        them (each part's ``state`` says it is not running). Never raises.
        """
        return stats_report(self._facts())

    def history(self, n: int = 5) -> list[dict[str, Any]]:
        """The last ``n`` LM calls, oldest first: messages, outputs, usage, latency, cache hit.

        Bounded (``dx.start(history_size=100)`` by default; 0 keeps none), shared by all
        programs of this system, and without API keys (messages and completions only).
        Each entry is a copy: changing it changes nothing here.
        """
        kept = self.runtime.history
        if kept is None or n <= 0:
            return []
        return copy.deepcopy(list(kept)[-n:])

    def inspect_history(self, n: int = 1, file: TextIO | None = None) -> None:
        """Print the last ``n`` LM calls as DSPy's ``inspect_history`` does.

        To stdout in colour, or to ``file`` without colour codes.
        """
        print_history(self.history(n), file=file)

    def serve_dashboard(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        allow_control: bool = False,
        history: int = 500,
    ) -> str:
        """Serve the live dashboard of this system; return its URL (``port=0``: any free one).

        Read-only unless ``allow_control`` (a "kill" button per actor). Any ``host`` but
        loopback needs ``token``. Runs in its own daemon thread until :meth:`shutdown`.
        Needs the ``dashboard`` extra (Starlette, uvicorn); see docs/observability.md.

        Raises:
            ValueError: bad options, or a non-loopback host without a token.
            ImportError: the ``dashboard`` extra is not installed.
            RuntimeError: the system is shut down; the server could not listen.
        """
        self._check_open()
        # The dashboard is a layer above the runtime: found by name, as a plug-in.
        missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
        if missing:
            raise ImportError(
                f"system.serve_dashboard needs the 'dashboard' extra ({', '.join(missing)} "
                "not installed): pip install 'dspex-actors[dashboard]'"
            )
        dashboard_module = importlib.import_module("dspex_actors.dashboard")
        dashboard = dashboard_module.serve(
            self, host=host, port=port, token=token, allow_control=allow_control, history=history
        )
        with self._tree_lock:
            self._dashboards.append(dashboard)
        return str(dashboard.url)

    def clear_cache(self) -> None:
        """Drop every cache entry (memory and file)."""
        self._check_open()
        if self.cache is not None:
            self.cache.ask(ClearCache(), timeout=10.0)

    # --------------------------------------------------------------- shutdown

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop the whole tree in reverse start order and wait for every thread.

        Idempotent. Programs still running are stopped (their callers get
        ``ActorDeadError``/``DeadlineExceeded``).
        """
        if self._closed:
            return
        try:
            self._heart.tell(Heart.stop_message())  # an ordered stop, not a crash
        except pykka.ActorDeadError:
            pass  # stopped from outside (pykka.ActorRegistry.stop_all): nothing to tell
        with self._tree_lock:
            self._closed = True
            dashboards, self._dashboards = self._dashboards, []
        for dashboard in dashboards:
            dashboard.stop()
        with _systems_lock:
            if self in _systems:
                _systems.remove(self)
        if self.root.is_alive():
            sv.stop(self.root, timeout=timeout)
        sv.stop(self._heart, timeout=10.0)
        release_spawner()
        sv.shutdown_idle_threads()

    async def ashutdown(self, timeout: float | None = None, *, grace: float = 10.0) -> None:
        """:meth:`shutdown` for asyncio, graceful: the blocking work runs off the loop.

        New calls are refused at once (:class:`SystemClosed`); requests in flight
        get ``grace`` seconds to finish, then the ones left are told to give up
        (their callers get ``Cancelled``, a ``DeadlineExceeded``); then the tree
        stops as :meth:`shutdown` does, on a one-shot thread. Idempotent.
        """
        if self._closed or self._draining:
            return
        self._draining = True
        try:
            await drain(self._programs_name, grace)
        finally:
            await off_loop(self.shutdown, timeout)

    def __enter__(self) -> ActorSystem:
        if self._closed:
            raise RuntimeError(
                f"actor system {self.name!r} is shut down; start a new one with dx.start()"
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = self.state
        why = ""
        if state == "down":
            down = self._down_error()
            why = f" ({down.reason})" if down is not None else ""
        return f"<ActorSystem {self.name!r} {state}{why}, lms={sorted(self.lms)}>"


def start(
    lm: LM | None = None,
    *,
    lms: Mapping[str, LM] | None = None,
    cache: CacheConfig | Literal[False] | None = None,
    retry: RetryPolicy | None = None,
    name: str = "dspex",
    max_programs: int | None = None,
    configure_logs: bool = True,
    on_down: OnDown = "stay",
    down_backoff: sv.Backoff | None = None,
    history_size: int = DEFAULT_HISTORY_SIZE,
    record_content: bool = False,
) -> ActorSystem:
    """Start an :class:`ActorSystem` and make it the current one.

    Give either ``lm`` (registered as ``"default"``) or ``lms={"default": ...,
    "teacher": ...}``. ``cache`` defaults to ``CacheConfig()`` (in memory,
    10,000 entries); ``cache=False`` runs without a cache actor. ``retry``
    defaults to ``RetryPolicy()``. With ``configure_logs`` (default) structlog
    gets a readable stderr setup unless the application configured it already
    (lifecycle at INFO, per-request events at DEBUG, always on stderr).

    ``on_down`` says what happens when the root supervisor gives up (a part crashed
    more than 10 times in 5 s): ``"stay"`` (default) keeps the system down, calls
    raising :class:`~dspex_actors.SystemDown` until :meth:`ActorSystem.restart`;
    ``"restart"`` brings it back by itself after ``down_backoff`` (default
    ``sv.Backoff(min_s=1.0, max_s=60.0)``: 1 s, 2 s, 4 s... while it keeps failing),
    as Erlang's ``heart``; ``health()["system_restarts"]`` counts how often.

    ``record_content=True`` lets telemetry events carry prompts, completions,
    inputs and outputs (off by default, as in OpenTelemetry's GenAI conventions).

    Raises:
        ValueError: neither or both of ``lm`` and ``lms``; a bad ``on_down``.
        AlreadyStarted: a system with this ``name`` is running (pass ``name=``).
    """
    if (lm is None) == (lms is None):
        raise ValueError("give exactly one of lm=dx.LM(...) or lms={'default': dx.LM(...), ...}")
    if configure_logs:
        configure_logging()
    try:
        system = ActorSystem(
            name=name,
            lms={"default": lm} if lm is not None else dict(lms or {}),
            cache=None if cache is False else (cache if cache is not None else CacheConfig()),
            retry=retry if retry is not None else RetryPolicy(),
            max_programs=max_programs,
            on_down=on_down,
            down_backoff=down_backoff,
            history_size=history_size,
            record_content=record_content,
        )
    except sv.AlreadyStarted as exc:
        raise _NameTaken(exc.name, exc.holder, name) from None
    with _systems_lock:
        _systems.append(system)
    retain_spawner()  # awaiting callers' programs are started by it, off their loops
    return system


def current_system() -> ActorSystem:
    """The most recently started system that is still running.

    Raises:
        NoSystemError: none is running.
    """
    with _systems_lock:
        if _systems:
            return _systems[-1]
    raise NoSystemError("no dspex actor system is running: call dx.start(lm=dx.LM(...)) first")
