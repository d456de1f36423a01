"""The body of one Ray worker: a Ray actor that owns a local ``ActorSystem``.

:class:`RayWorker` is a plain class; ``dspex_actors.distributed`` turns it into
a Ray actor (``max_restarts=0``, ``max_task_retries=0``: a dead worker is our
coordinator's business, not Ray's). It is built from a :class:`WorkerConfig`,
pure JSON: the LMs without their keys, each key read here from the worker's
environment variable that the driver named (never sent). Each task rebuilds the
program from its JSON spec (cached by content hash), runs one request in the
local system (``system.fan_out`` of one call, so a cancel kills it), and
answers JSON.

Threading: a threaded Ray actor; each task runs in one of Ray's threads, and the
local system's actors do the work. ``cancel(job)`` may run concurrently with that
job's tasks.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import supervisors as sv
from dspex_actors.cache import CacheConfig
from dspex_actors.distributed._ship import build_program, encode_result, worker_module
from dspex_actors.lm import LM, RetryPolicy
from dspex_actors.modules import Module
from dspex_actors.runtime import ActorSystem, call_result, start

__all__ = ["RayWorker", "WorkerConfig"]

_PROGRAMS_KEPT = 64
"""Rebuilt programs a worker keeps (by spec hash): one per candidate of a compile."""


@dataclass(frozen=True)
class WorkerConfig:
    """How a worker builds its system: JSON only, no key (see the module docstring).

    ``lms``: name -> ``LM.model_dump`` without ``api_key`` (``rpm`` already split
    across workers); ``key_env``: name -> the environment variable holding that
    LM's key on the worker (``None``: no key).
    """

    lms: dict[str, dict[str, Any]]
    key_env: dict[str, str | None]
    retry: dict[str, Any]
    cache: dict[str, Any] | None
    name: str = "dspex-ray"

    def build_lms(self) -> dict[str, LM]:
        """The LMs, each with its key from this process's environment.

        Raises:
            RuntimeError: a named variable is not set here (its name is given, never a value).
        """
        lms = {}
        for name, config in self.lms.items():
            var = self.key_env.get(name)
            key = None
            if var is not None:
                key = os.environ.get(var)
                if not key:
                    raise RuntimeError(
                        f"LM {name!r}: ${var} is not set on this Ray worker; workers read API "
                        "keys from their environment (export it on every node, before "
                        "`ray start`/ray.init)"
                    )
            lms[name] = LM(**config, api_key=key)
        return lms


class RayWorker:
    """One Ray worker (see the module docstring); built by Ray in the worker process."""

    def __init__(self, worker_id: str, config: WorkerConfig) -> None:
        self.worker_id = worker_id
        self.config = config
        self._lock = threading.Lock()
        self._programs: collections.OrderedDict[str, Module] = collections.OrderedDict()
        self._running: dict[str, set[sv.FanOut[int]]] = {}
        self._tasks = 0  # calls run here (ready() reports it)
        cache: CacheConfig | Literal[False] = (
            CacheConfig(**config.cache) if config.cache is not None else False
        )
        self.system: ActorSystem = start(
            lms=config.build_lms(),
            retry=RetryPolicy(**config.retry),
            cache=cache,
            name=f"{config.name}.{worker_id}",
            configure_logs=False,
        )

    def ready(self) -> dict[str, Any]:
        """What this worker runs: pid, calls run, CPU seconds, per LM its rpm and key presence."""
        return {
            "worker": self.worker_id,
            "pid": os.getpid(),
            "tasks": self._tasks,
            "cpu_s": time.process_time(),
            "running": sum(len(fans) for fans in self._running.values()),
            "lms": {
                name: {"rpm": lm.rpm, "has_key": lm.api_key is not None}
                for name, lm in self.system.lms.items()
            },
        }

    def ping(self) -> int:
        """The worker's pid (the coordinator's liveness check)."""
        return os.getpid()

    def _program(self, key: str, spec: Mapping[str, Any] | None) -> Module:
        with self._lock:
            program = self._programs.get(key)
            if program is not None:
                self._programs.move_to_end(key)
                return program
        if spec is None:
            raise RuntimeError(f"program {key} is not known on this worker")
        program = build_program(spec)
        with self._lock:
            self._programs[key] = program
            while len(self._programs) > _PROGRAMS_KEPT:
                self._programs.popitem(last=False)
        return program

    def run(
        self, job: str, key: str, spec: list[Any], payload: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        """Run one call; answer :func:`encode_result`'s JSON (errors included, never raises).

        ``spec`` is ``[ObjectRef]`` of the program's JSON spec, fetched only when
        the program is not cached here.
        """
        with self._lock:
            self._tasks += 1
        try:
            known = key in self._programs
            program_spec = None
            if not known:
                import ray

                program_spec = ray.get(spec[0], timeout=timeout)
            program = self._program(key, program_spec)
            module = worker_module(program, payload)
        except Exception as exc:
            return encode_result(exc)
        inputs = dict(payload["inputs"])
        fan = self.system.fan_out(
            [0], lambda _: (module, inputs), max_concurrency=1, timeout=timeout, ordered=False
        )
        with self._lock:
            self._running.setdefault(job, set()).add(fan)
        try:
            settled = None
            end = time.monotonic() + timeout + 5.0
            while settled is None and not fan.exhausted and time.monotonic() < end:
                settled = fan.get(timeout=0.5)
        finally:
            with self._lock:
                self._running.get(job, set()).discard(fan)
            fan.close()
        if settled is None:
            return {"cancelled": True}
        return encode_result(call_result(settled.outcome, timeout))

    def cancel(self, job: str) -> int:
        """Kill the requests of ``job`` still running here; return how many."""
        with self._lock:
            fans = list(self._running.pop(job, ()))
        for fan in fans:
            fan.cancel()
        return len(fans)

    def shutdown(self) -> None:
        """Stop the local system (a graceful end; ``ray.kill`` is the other)."""
        self.system.shutdown()
