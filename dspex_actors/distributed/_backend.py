"""``dx.RayBackend``: run ``Evaluate`` and compile jobs' requests on a Ray cluster.

A backend object holds configuration; per system it starts one
:class:`~dspex_actors.distributed._coordinator.RayCoordinator` under the system's
``services`` (which starts and watches the Ray workers) and, per fan-out, a
:class:`~dspex_actors.distributed._fanout.RayFanOut`. See docs/scale-out.md.

Threading: any thread may use a backend; ``shutdown`` stops its coordinators (and
Ray, if this backend started it).
"""

from __future__ import annotations

import hmac
import itertools
import os
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import pykka

import supervisors as sv
from dspex_actors.distributed._coordinator import PoolConfig, RayCoordinator
from dspex_actors.distributed._fanout import RayFanOut
from dspex_actors.distributed._ship import object_path, program_spec
from dspex_actors.distributed._worker import WorkerConfig
from dspex_actors.primitives import logger
from supervisors import safe_repr

if TYPE_CHECKING:
    from dspex_actors.lm import LM
    from dspex_actors.runtime import ActorSystem

__all__ = ["RayBackend", "key_variable", "worker_config"]

T = TypeVar("T")

_EXTRA_HINT = "pip install 'dspex-actors[ray]'"
_numbers = itertools.count(1)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError(
            f"dx.RayBackend needs Ray, which is not installed: {_EXTRA_HINT}"
        ) from None
    return ray


def key_variable(
    name: str, lm: LM, environ: os._Environ[str] | dict[str, str] | None = None
) -> str | None:
    """The environment variable whose value is ``lm``'s key (``None``: the LM has no key).

    Workers read the key from that variable in their own environment; nothing
    carries the key itself. ``OPENAI_API_KEY`` is preferred when several match.

    Raises:
        ValueError: the key is in no environment variable of this process.
    """
    if lm.api_key is None:
        return None
    env = os.environ if environ is None else environ
    key = lm.api_key.get_secret_value().encode("utf-8")
    found = [
        var
        for var, value in env.items()
        if hmac.compare_digest(value.strip().encode("utf-8", "surrogateescape"), key)
    ]
    if not found:
        raise ValueError(
            f"LM {name!r}: its API key is in no environment variable of this process, and "
            "RayBackend never sends keys to workers (not in task payloads, not in "
            "runtime_env, which Ray logs): export it (e.g. OPENAI_API_KEY) on the driver and "
            "on every Ray node before `ray start`/ray.init, and build the LM from it"
        )
    return "OPENAI_API_KEY" if "OPENAI_API_KEY" in found else sorted(found)[0]


def worker_config(system: ActorSystem, num_workers: int) -> WorkerConfig:
    """The JSON a worker builds its system from: the LMs without keys, ``rpm`` split.

    Raises:
        ValueError: an LM's key cannot reach the workers (see :func:`key_variable`).
    """
    lms: dict[str, dict[str, Any]] = {}
    key_env: dict[str, str | None] = {}
    for name, lm in system.lms.items():
        config = lm.model_dump(mode="json", exclude={"api_key"})
        if lm.rpm is not None:
            config["rpm"] = lm.rpm / num_workers  # the cluster keeps the provider's limit
        lms[name] = config
        key_env[name] = key_variable(name, lm)
    cache = system.cache_config
    cache_json = None
    if cache is not None:
        cache_json = cache.model_dump(mode="json", exclude={"path"})  # the file stays here
    return WorkerConfig(
        lms=lms,
        key_env=key_env,
        retry=system.retry.model_dump(mode="json"),
        cache=cache_json,
        name=f"{system.name}-ray",
    )


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{what} must be >= 1, got {value}")
    return value


class RayBackend:
    """Run ``Evaluate(backend=...)`` and ``system.compile(..., backend=...)`` on Ray.

    ``RayBackend(address=None, num_workers=4, max_concurrency_per_worker=32,
    runtime_env=None)``: ``address=None`` uses the Ray already initialized in this
    process, else starts a local one (``ray.init()``); ``"auto"`` or
    ``"ray://host:port"`` connect to a cluster. ``num_workers`` Ray actors each own
    a local ``ActorSystem`` built from the driver's LM configuration (keys read
    from the workers' environment, never sent), and run at most
    ``max_concurrency_per_worker`` requests at once. ``runtime_env`` is given to
    the worker actors (do not put keys in it: Ray logs it). ``max_restarts`` /
    ``max_seconds``: the coordinator's restart intensity (3 replacements within
    60 s; one more death gives up). Each LM's ``rpm`` is divided by
    ``num_workers`` on the workers.

    Raises:
        ImportError: Ray is not installed (naming the ``ray`` extra).
        TypeError / ValueError: bad options.
    """

    def __init__(
        self,
        address: str | None = None,
        num_workers: int = 4,
        max_concurrency_per_worker: int = 32,
        runtime_env: dict[str, Any] | None = None,
        *,
        max_restarts: int = 3,
        max_seconds: float = 60.0,
        watch_interval: float = 1.0,
    ) -> None:
        self._ray = _import_ray()
        self.address = address
        self.num_workers = _positive_int(num_workers, "num_workers")
        self.max_concurrency_per_worker = _positive_int(
            max_concurrency_per_worker, "max_concurrency_per_worker"
        )
        if runtime_env is not None and not isinstance(runtime_env, dict):
            raise TypeError(f"runtime_env must be a dict or None, got {runtime_env!r}")
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
            raise ValueError(f"max_restarts must be an int >= 0, got {max_restarts!r}")
        if not max_seconds > 0 or not watch_interval > 0:
            raise ValueError("max_seconds and watch_interval must be > 0")
        self.runtime_env = runtime_env
        self.max_restarts = max_restarts
        self.max_seconds = float(max_seconds)
        self.watch_interval = float(watch_interval)
        self._number = next(_numbers)
        self._lock = threading.Lock()
        self._started_ray = False
        self._coordinators: dict[str, str] = {}  # system name -> coordinator's registered name

    def __repr__(self) -> str:
        return (
            f"RayBackend(address={self.address!r}, num_workers={self.num_workers}, "
            f"max_concurrency_per_worker={self.max_concurrency_per_worker})"
        )

    # ------------------------------------------------------------ the seam

    def check(self, program: Any, metric: Any) -> None:
        """Refuse what cannot travel, before any request: the program's spec, the metric's path."""
        program_spec(program)
        if metric is not None:
            object_path(metric, "the metric")

    def fan_out(
        self,
        system: ActorSystem,
        items: Iterable[T],
        call: Callable[[T], tuple[Any, Any]],
        *,
        max_concurrency: int,
        timeout: float,
        ordered: bool = False,
        notify: Callable[[], None] | None = None,
    ) -> RayFanOut[T]:
        """Start the calls on the workers of ``system``'s coordinator (started on first use)."""
        if ordered:
            raise ValueError("RayBackend streams results as they finish: use ordered=False")
        coordinator = self.coordinator(system)
        return RayFanOut(
            coordinator,
            items,
            call,
            max_concurrency=max_concurrency,
            per_worker=self.max_concurrency_per_worker,
            timeout=timeout,
            notify=notify,
        )

    # ------------------------------------------------------------ lifecycle

    def _ensure_ray(self) -> None:
        ray = self._ray
        with self._lock:
            if ray.is_initialized():
                return
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            self._started_ray = True

    def coordinator(self, system: ActorSystem) -> pykka.ActorRef[Any]:
        """``system``'s coordinator for this backend, started (with its workers) if needed.

        Raises:
            ValueError: an LM's key cannot reach the workers.
            sv.StartError: the workers did not start (the cause names why).
        """
        name = f"{system.name}.ray.{self._number}"
        ref = sv.whereis(name)
        if ref is not None and ref.is_alive():
            return ref
        config = PoolConfig(
            num_workers=self.num_workers,
            max_concurrency_per_worker=self.max_concurrency_per_worker,
            worker=worker_config(system, self.num_workers),
            runtime_env=self.runtime_env,
            max_restarts=self.max_restarts,
            max_seconds=self.max_seconds,
            watch_interval=self.watch_interval,
        )
        self._ensure_ray()
        with self._lock:
            self._coordinators[system.name] = name
        return system.start_service(RayCoordinator, config, name=name, restart="temporary")

    def shutdown(self) -> None:
        """Stop this backend's coordinators (their workers die) and Ray if it started it."""
        with self._lock:
            names = list(self._coordinators.values())
            self._coordinators.clear()
        for name in names:
            ref = sv.whereis(name)
            if ref is not None:
                try:
                    sv.stop(ref, timeout=30.0)
                except Exception as exc:  # it ended meanwhile, or its stop failed
                    logger.warning("ray.coordinator_stop_failed", name=name, error=safe_repr(exc))
        if self._started_ray:
            self._started_ray = False
            self._ray.shutdown()

    def __enter__(self) -> RayBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
