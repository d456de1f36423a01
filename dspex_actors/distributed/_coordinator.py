"""The driver-side coordinator: an actor in the system's tree that owns the Ray workers.

:class:`RayCoordinator` runs under the system's ``services`` supervisor (one per
system and :class:`~dspex_actors.distributed.RayBackend`). It starts the Ray
workers (Ray actors with ``max_restarts=0``, ``max_task_retries=0``: recovery is
ours), watches them (a ping each ``watch_interval``; a fan-out also reports a
worker whose task failed with Ray's actor-died error), and replaces a dead one, as an OTP
supervisor restarts a child: at most ``max_restarts`` replacements within
``max_seconds``. One more death in that window and it gives up: it ends with a
:class:`WorkersGaveUp` reason (its supervisor sees a crash; it is ``temporary``,
so the next use starts a fresh one) and the fan-outs using it stop, returning
what finished.

Threading: the actor's own thread; Ray calls made from it are Ray's thread-safe
driver API. Workers are killed with ``ray.kill`` when the actor stops or crashes.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import supervisors as sv
from dspex_actors.distributed._worker import RayWorker, WorkerConfig
from dspex_actors.primitives import logger
from supervisors import safe_repr

__all__ = ["GetWorkers", "PoolConfig", "RayCoordinator", "WorkerDied", "WorkerRef", "WorkersGaveUp"]

_READY_TIMEOUT = 120.0
"""Seconds a new worker has to build its system (imports, LM clients) before it counts as dead."""


class WorkersGaveUp(RuntimeError):
    """The coordinator gave up: workers died more than its restart intensity allows."""


@dataclass(frozen=True)
class PoolConfig:
    """What the coordinator starts: how many workers, their options and the intensity."""

    num_workers: int
    max_concurrency_per_worker: int
    worker: WorkerConfig
    runtime_env: dict[str, Any] | None = None
    max_restarts: int = 3
    max_seconds: float = 60.0
    watch_interval: float = 1.0


@dataclass(frozen=True)
class WorkerRef:
    """One live worker: its id and its Ray actor handle."""

    id: str
    handle: Any


@dataclass(frozen=True)
class GetWorkers:
    """Ask: the live workers, a ``list[WorkerRef]`` (or ``WorkersGaveUp``)."""


@dataclass(frozen=True)
class WorkerDied:
    """Ask: worker ``id`` died (a task of it failed so): answers the workers after recovery."""

    id: str
    why: str = ""


@dataclass(frozen=True)
class _Watch:
    pass


_ray_worker_class: Any = None
_class_lock = threading.Lock()


def _remote_class() -> Any:
    """``ray.remote(RayWorker)``, made once per process."""
    global _ray_worker_class
    with _class_lock:
        if _ray_worker_class is None:
            import ray

            _ray_worker_class = ray.remote(RayWorker)
        return _ray_worker_class


@dataclass
class _Pool:
    workers: dict[str, WorkerRef] = field(default_factory=dict)
    pings: dict[str, Any] = field(default_factory=dict)  # worker id -> pending ping ref
    deaths: deque[float] = field(default_factory=deque)
    replaced: int = 0


class RayCoordinator(sv.Actor):
    """Owns and watches the Ray workers of one system (see the module docstring)."""

    def __init__(self, config: PoolConfig) -> None:
        super().__init__()
        self.config = config
        self._pool = _Pool()
        self._ids = itertools.count(1)
        self._tag = uuid.uuid4().hex[:6]
        self._timer: threading.Timer | None = None
        self._gave_up: WorkersGaveUp | None = None

    # ------------------------------------------------------------ lifecycle

    def on_start(self) -> None:
        import ray

        starting = [self._spawn() for _ in range(self.config.num_workers)]
        try:
            ray.get([w.handle.ready.remote() for w in starting], timeout=_READY_TIMEOUT)
        except Exception:
            for worker in starting:
                ray.kill(worker.handle)
            raise
        for worker in starting:
            self._pool.workers[worker.id] = worker
        logger.info("ray.workers_started", workers=len(starting))
        self._arm()

    def on_stop(self) -> None:
        self._teardown()

    def on_failure(self, *exc_info: Any) -> None:
        self._teardown()

    def _teardown(self) -> None:
        import ray

        if self._timer is not None:
            self._timer.cancel()
        for worker in self._pool.workers.values():
            try:
                ray.kill(worker.handle)
            except Exception:
                pass
        self._pool.workers.clear()

    def _spawn(self) -> WorkerRef:
        config = self.config
        worker_id = f"w{next(self._ids)}-{self._tag}"
        options: dict[str, Any] = {
            "max_restarts": 0,
            "max_task_retries": 0,
            # control calls (ping, cancel) beside the requests
            "max_concurrency": config.max_concurrency_per_worker + 4,
            "num_cpus": 0,
            "scheduling_strategy": "SPREAD",
        }
        if config.runtime_env is not None:
            options["runtime_env"] = config.runtime_env
        handle = _remote_class().options(**options).remote(worker_id, config.worker)
        return WorkerRef(worker_id, handle)

    def _arm(self) -> None:
        ref = self.actor_ref
        timer = threading.Timer(self.config.watch_interval, _tell, (ref, _Watch()))
        timer.daemon = True
        timer.start()
        self._timer = timer

    # ------------------------------------------------------------ messages

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, GetWorkers):
            return list(self._pool.workers.values())
        if isinstance(message, WorkerDied):
            self._died(message.id, message.why)
            return list(self._pool.workers.values())
        if isinstance(message, _Watch):
            self._watch()
            self._arm()
        return None

    def _watch(self) -> None:
        """Check the pings sent last time; a worker whose ping failed is dead."""
        import ray

        pool = self._pool
        for worker_id, ref in list(pool.pings.items()):
            ready, _ = ray.wait([ref], timeout=0)
            if not ready:
                continue
            del pool.pings[worker_id]
            try:
                ray.get(ref, timeout=0)
            except ray.exceptions.RayActorError as exc:
                self._died(worker_id, f"ping failed: {type(exc).__name__}")
            except Exception as exc:  # the worker lives; its ping raised
                logger.warning("ray.ping_error", worker=worker_id, error=safe_repr(exc))
        for worker_id, worker in list(pool.workers.items()):
            if worker_id not in pool.pings:
                pool.pings[worker_id] = worker.handle.ping.remote()

    def _died(self, worker_id: str, why: str) -> None:
        """Replace a dead worker within the restart intensity, else give up (crash)."""
        import ray

        pool = self._pool
        worker = pool.workers.pop(worker_id, None)
        if worker is None:
            return  # already replaced (reported twice: by a fan-out and by the watch)
        pool.pings.pop(worker_id, None)
        now = time.monotonic()
        pool.deaths.append(now)
        while pool.deaths and pool.deaths[0] < now - self.config.max_seconds:
            pool.deaths.popleft()
        logger.warning("ray.worker_died", worker=worker_id, why=why, deaths=len(pool.deaths))
        try:
            ray.kill(worker.handle)
        except Exception as exc:  # gone already, most likely
            logger.debug("ray.kill_failed", worker=worker_id, error=safe_repr(exc))
        if len(pool.deaths) > self.config.max_restarts:
            error = WorkersGaveUp(
                f"Ray workers died {len(pool.deaths)} times within {self.config.max_seconds} s "
                f"(max_restarts={self.config.max_restarts}); last: {worker_id} ({why})"
            )
            logger.error("ray.workers_gave_up", error=str(error))
            self.reply_and_exit(error, reason=error)
        replacement = self._spawn()
        pool.workers[replacement.id] = replacement
        pool.replaced += 1
        logger.info("ray.worker_replaced", dead=worker_id, worker=replacement.id)

    def get_state(self) -> dict[str, Any]:
        return {
            "workers": sorted(self._pool.workers),
            "replaced": self._pool.replaced,
            "recent_deaths": len(self._pool.deaths),
        }


def _tell(ref: Any, message: Any) -> None:
    try:
        ref.tell(message)
    except Exception:
        pass  # the coordinator ended meanwhile
