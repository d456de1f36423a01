"""The :class:`ActorSystem`: one supervision tree running LM programs.

::

    dspex  Supervisor one_for_one
    ├── lm:default     LMClient           alive  restarts=0
    ├── cache          CacheActor         alive  restarts=0
    ├── teleprompters  DynamicSupervisor  0 children
    └── programs       DynamicSupervisor  3 children
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, ParamSpec, Protocol, TypeVar

import structlog

import supervisors as sv
from dspex_actors.cache import CacheActor, CacheClear, CacheConfig
from dspex_actors.lm import LM, LMClient, LMCounters, RetryPolicy
from dspex_actors.primitives import GetStats, LogStream
from dspex_actors.runtime._fanout import Call, program_stream, run_many
from dspex_actors.runtime._program import Runtime, run_in_program

__all__ = ["ActorSystem", "Compiler", "NoSystemError", "current_system", "start"]

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
        cache_logger_on_first_use=False,
    )


class ActorSystem:
    """A running dspex system: LM clients, a cache and program supervisors in one tree.

    Create it with :func:`start`. It is a context manager; :meth:`shutdown` stops
    the whole tree in order (programs first, LM clients last) and leaves no
    thread running.

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
    ) -> None:
        if not lms:
            raise ValueError("an ActorSystem needs at least one LM")
        for lm_name, lm in lms.items():
            if not isinstance(lm, LM):
                raise TypeError(f"lms[{lm_name!r}] must be a dx.LM, got {lm!r}")
        self.name = name
        self.lms = dict(lms)
        self.retry = retry
        self.cache_config = cache
        self._lm_names = {lm_name: f"{name}.lm.{lm_name}" for lm_name in self.lms}
        self._cache_name = f"{name}.cache" if cache is not None else None
        self._programs_name = f"{name}.programs"
        self._teleprompters_name = f"{name}.teleprompters"
        default = "default" if "default" in self.lms else next(iter(self.lms))
        self.runtime = Runtime(
            system_name=name,
            lms=self.lms,
            lm_names=self._lm_names,
            cache_name=self._cache_name,
            retry=retry,
            default_lm=default,
        )
        children = [
            sv.ChildSpec(
                id=f"lm:{lm_name}",
                start=LMClient.start,
                args=(lm_name, lm, LMCounters()),
                name=self._lm_names[lm_name],
            )
            for lm_name, lm in self.lms.items()
        ]
        if cache is not None:
            children.append(
                sv.ChildSpec(
                    id="cache", start=CacheActor.start, args=(cache,), name=self._cache_name
                )
            )
        children.append(
            sv.ChildSpec(
                id="teleprompters",
                start=sv.DynamicSupervisor.start,
                kwargs={"name": self._teleprompters_name, "max_restarts": 10, "max_seconds": 60},
                type="supervisor",
            )
        )
        children.append(
            sv.ChildSpec(
                id="programs",
                start=sv.DynamicSupervisor.start,
                kwargs={"name": self._programs_name, "max_children": max_programs},
                type="supervisor",
            )
        )
        self.root = sv.Supervisor.start(
            children, strategy="one_for_one", max_restarts=10, max_seconds=5.0, name=name
        )
        self._closed = False

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

    def lm(self, name: str = "default") -> sv.NamedRef:
        """The named ref of the LM client called ``name`` (resolved on every send)."""
        if name not in self._lm_names:
            raise KeyError(f"no LM named {name!r}; configured: {sorted(self._lm_names)}")
        return sv.named(self._lm_names[name])

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

    # ---------------------------------------------------------------- running

    def run(self, module: Any, inputs: Mapping[str, Any], *, timeout: float | None = None) -> Any:
        """Run ``module(**inputs)`` in a new program actor and return its result.

        ``timeout`` defaults to the retry policy's deadline (or 60 s).

        Raises:
            dx.LMError: the request failed (typed, with ``attempts``).
            RuntimeError: the system is shut down.
        """
        if self._closed:
            raise RuntimeError(f"actor system {self.name!r} is shut down")
        limit = timeout if timeout is not None else (self.retry.deadline or DEFAULT_REQUEST_TIMEOUT)
        return run_in_program(
            self.runtime, self._programs_name, module, dict(inputs), timeout=limit
        )

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
        return run_many(
            self.runtime,
            self._programs_name,
            module,
            [dict(i) for i in inputs],
            max_concurrency=max_concurrency,
            timeout=self.request_timeout(timeout),
            on_result=on_result,
        )

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
        if self._closed:
            raise RuntimeError(f"actor system {self.name!r} is shut down")

    # ----------------------------------------------------------- introspection

    def tree(self) -> sv.TreeNode:
        """A snapshot of the supervision tree (prints as a drawing)."""
        return sv.tree(self.root)

    def stats(self) -> dict[str, Any]:
        """Per-LM requests/tokens/errors/latency, cache hits/misses, live programs."""
        out: dict[str, Any] = {"lms": {}, "cache": None}
        for lm_name in self._lm_names:
            try:
                out["lms"][lm_name] = self.lm(lm_name).ask(GetStats(), timeout=5.0)
            except (sv.NoProc, sv.ActorDeadError, sv.Timeout):
                out["lms"][lm_name] = {"state": "restarting"}
        if self.cache is not None:
            try:
                out["cache"] = self.cache.ask(GetStats(), timeout=5.0)
            except (sv.NoProc, sv.ActorDeadError, sv.Timeout):
                out["cache"] = {"state": "restarting"}
        try:
            out["programs"] = sv.count_children(self._programs_name).active
        except sv.NoProc:
            out["programs"] = None
        return out

    def clear_cache(self) -> None:
        """Drop every cache entry (memory and file)."""
        if self.cache is not None:
            self.cache.ask(CacheClear(), timeout=10.0)

    # --------------------------------------------------------------- shutdown

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop the whole tree in reverse start order and wait for every thread.

        Idempotent. Programs still running are stopped (their callers get
        ``ActorDeadError``/``DeadlineExceeded``).
        """
        if self._closed:
            return
        self._closed = True
        with _systems_lock:
            if self in _systems:
                _systems.remove(self)
        if self.root.is_alive():
            sv.stop(self.root, timeout=timeout)
        sv.shutdown_idle_threads()

    def __enter__(self) -> ActorSystem:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "shut down" if self._closed else "running"
        return f"<ActorSystem {self.name!r} {state}, lms={sorted(self.lms)}>"


def start(
    lm: LM | None = None,
    *,
    lms: Mapping[str, LM] | None = None,
    cache: CacheConfig | Literal[False] | None = None,
    retry: RetryPolicy | None = None,
    name: str = "dspex",
    max_programs: int | None = None,
    configure_logs: bool = True,
) -> ActorSystem:
    """Start an :class:`ActorSystem` and make it the current one.

    Give either ``lm`` (registered as ``"default"``) or ``lms={"default": ...,
    "teacher": ...}``. ``cache`` defaults to ``CacheConfig()`` (in memory,
    10,000 entries); ``cache=False`` runs without a cache actor. ``retry``
    defaults to ``RetryPolicy()``. With ``configure_logs`` (default) structlog
    gets a readable stderr setup unless the application configured it already.

    Raises:
        ValueError: neither or both of ``lm`` and ``lms``.
        AlreadyStarted: a system with this ``name`` is running.
    """
    if (lm is None) == (lms is None):
        raise ValueError("give exactly one of lm=dx.LM(...) or lms={'default': dx.LM(...), ...}")
    if configure_logs:
        configure_logging()
    system = ActorSystem(
        name=name,
        lms={"default": lm} if lm is not None else dict(lms or {}),
        cache=None if cache is False else (cache if cache is not None else CacheConfig()),
        retry=retry if retry is not None else RetryPolicy(),
        max_programs=max_programs,
    )
    with _systems_lock:
        _systems.append(system)
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
