"""A fan-out whose calls run on Ray workers: the ``Stream`` that ``RayBackend`` returns.

The consumer's side is ``sv.FanOut``'s: ``get``/``fill``/``extend`` in one
consumer thread, at most ``max_concurrency`` items held in total (running on any
worker, or finished and not taken yet), results as they finish. Each call is
shipped as JSON (``_ship``): the program's spec once per program (``ray.put``),
then per item the example, the inputs and the metric's path.

One pump thread per fan-out waits on the Ray tasks (``ray.wait``) and settles
them; it calls ``notify`` (a consumer actor's wake-up) after each batch. A task
whose worker died (Ray's actor-died error) is reported to the coordinator, which
replaces the worker; every unfinished task of that worker is sent again to the
workers now alive (finished items are never re-run). If the coordinator gives up,
the items not finished are dropped (``Evaluate`` returns a partial result) or,
with ``notify`` (a compile job), settled with the :class:`WorkersGaveUp` error.
``cancel``/``close`` cancel the job's requests on every worker and stop the pump
thread (joined, with a timeout).
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pykka

import supervisors as sv
from dspex_actors.distributed._coordinator import GetWorkers, WorkerDied, WorkerRef, WorkersGaveUp
from dspex_actors.distributed._ship import call_payload, decode_result, program_spec, spec_key
from dspex_actors.primitives import logger

__all__ = ["RayFanOut"]

T = TypeVar("T")

GRACE = 5.0
"""Seconds past a request's deadline before the driver gives up on its task.

(Its outcome is then ``Exit("timeout")``.)"""

_ASK_TIMEOUT = 60.0
_WAIT_SLICE = 0.1


@dataclass
class _Task(Generic[T]):
    index: int
    item: T
    key: str
    spec_ref: Any
    payload: dict[str, Any]
    worker: str | None = None
    ref: Any = None
    started: float = 0.0


class RayFanOut(Generic[T]):
    """The ``Stream`` of calls on Ray workers (see the module docstring)."""

    def __init__(
        self,
        coordinator: pykka.ActorRef[Any],
        items: Iterable[T],
        call: Callable[[T], tuple[Any, Any]],
        *,
        max_concurrency: int,
        per_worker: int,
        timeout: float,
        notify: Callable[[], None] | None = None,
    ) -> None:
        import ray

        self._ray = ray
        self._coordinator = coordinator
        self._call = call
        self.max_concurrency = max_concurrency
        self._per_worker = per_worker
        self._timeout = timeout
        self._notify = notify
        self._job = uuid.uuid4().hex[:12]
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._sources: deque[Iterator[T]] = deque([iter(items)])
        self._waiting: deque[_Task[T]] = deque()
        self._pending: dict[Any, _Task[T]] = {}
        self._load: collections.Counter[str] = collections.Counter()
        self._done: deque[sv.Settled[T]] = deque()
        self._next_index = 0
        self._cancelled = False
        self._gave_up: BaseException | None = None
        self._programs: dict[int, tuple[Any, str, Any]] = {}
        self.reruns = 0
        """How many tasks were sent again because their worker died."""
        workers = coordinator.ask(GetWorkers(), timeout=_ASK_TIMEOUT)
        self._workers: list[WorkerRef] = list(workers)  # type: ignore[arg-type]
        self._kick = threading.Event()
        self._stopped = threading.Event()
        self._pump = threading.Thread(target=self._run_pump, name="dspex:ray-fanout", daemon=True)
        self._pump.start()

    # ---------------------------------------------------------------- counters

    def _held(self) -> int:
        return len(self._pending) + len(self._waiting) + len(self._done)

    @property
    def in_flight(self) -> int:
        """Items sent to a worker whose answer has not come back."""
        return len(self._pending)

    @property
    def free(self) -> int:
        with self._lock:
            return max(0, self.max_concurrency - self._held())

    @property
    def buffered(self) -> int:
        return len(self._done)

    @property
    def exhausted(self) -> bool:
        with self._lock:
            return self._exhausted()

    def _exhausted(self) -> bool:
        return self._cancelled or (not self._sources and self._held() == 0)

    # ---------------------------------------------------------------- consumer

    def extend(self, items: Iterable[T]) -> None:
        with self._lock:
            if not self._cancelled and self._gave_up is None:
                self._sources.append(iter(items))

    def fill(self) -> int:
        """Prepare items into the free slots and send what the workers can take."""
        started = 0
        while True:
            with self._lock:
                if self._cancelled or self._held() >= self.max_concurrency or not self._sources:
                    break
                source = self._sources[0]
                try:
                    item = next(source)
                except StopIteration:
                    self._sources.popleft()
                    continue
                index = self._next_index
                self._next_index += 1
            task = self._prepare(index, item)
            if task is None:
                continue
            with self._lock:
                self._waiting.append(task)
            started += 1
        self._submit()
        return started

    def _prepare(self, index: int, item: T) -> _Task[T] | None:
        """The task of one item; a call that cannot travel settles at once with its error."""
        try:
            module, inputs = self._call(item)
            program, payload = call_payload(module, inputs)
            key, spec_ref = self._shipped(program)
        except Exception as exc:
            self._settle_now(sv.Settled(index, item, sv.Exit(exc)))
            return None
        return _Task(index, item, key, spec_ref, payload)

    def _shipped(self, program: Any) -> tuple[str, Any]:
        known = self._programs.get(id(program))
        if known is not None:
            return known[1], known[2]
        spec = program_spec(program)
        key = spec_key(spec)
        ref = self._ray.put(spec)
        self._programs[id(program)] = (program, key, ref)  # keeps ``program`` alive: ids stay
        return key, ref

    def get(self, timeout: float | None = 0.0) -> sv.Settled[T] | None:
        """The next finished item, waiting at most ``timeout`` s (``None``: until one comes)."""
        self.fill()
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._done:
                if self._exhausted():
                    return None
                wait = _WAIT_SLICE * 5 if end is None else end - time.monotonic()
                if wait <= 0:
                    return None
                self._cond.wait(min(wait, 0.5))
            settled = self._done.popleft()
        self.fill()
        return settled

    def __iter__(self) -> Iterator[sv.Settled[T]]:
        return self

    def __next__(self) -> sv.Settled[T]:
        settled = self.get(timeout=None)
        if settled is None:
            raise StopIteration
        return settled

    def cancel(self) -> list[sv.Settled[T]]:
        """Stop: cancel the requests on the workers; return the finished, untaken items."""
        with self._lock:
            if self._cancelled:
                return []
            self._cancelled = True
            self._sources.clear()
            self._waiting.clear()
            leftover = list(self._done)
            self._done.clear()
            refs = list(self._pending)
            self._pending.clear()
            workers = list(self._workers)
        for worker in workers:
            try:
                worker.handle.cancel.remote(self._job)
            except Exception:
                pass
        for ref in refs:
            try:
                self._ray.cancel(ref)
            except Exception:
                pass
        self._stop_pump()
        return leftover

    def close(self) -> None:
        """Cancel what still runs and stop the pump thread (as :meth:`cancel`)."""
        self.cancel()
        self._stop_pump()

    def _stop_pump(self) -> None:
        """Stop the pump thread: nothing is left for it once cancelled (joined, 5 s at most)."""
        self._stopped.set()
        self._kick.set()
        if self._pump is not threading.current_thread():
            self._pump.join(timeout=5.0)

    def __enter__(self) -> RayFanOut[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- sending

    def _submit(self) -> None:
        """Send waiting tasks to the least loaded live workers (at most ``per_worker`` each)."""
        sent = False
        with self._lock:
            while self._waiting and self._workers and not self._cancelled:
                worker = min(self._workers, key=lambda w: self._load[w.id])
                if self._load[worker.id] >= self._per_worker:
                    break
                task = self._waiting.popleft()
                task.worker = worker.id
                task.started = time.monotonic()
                task.ref = worker.handle.run.remote(
                    self._job, task.key, [task.spec_ref], task.payload, self._timeout
                )
                self._pending[task.ref] = task
                self._load[worker.id] += 1
                sent = True
        if sent:
            self._kick.set()

    def _settle_now(self, settled: sv.Settled[T]) -> None:
        with self._cond:
            self._done.append(settled)
            self._cond.notify_all()
        if self._notify is not None:
            self._notify()

    # ---------------------------------------------------------------- the pump

    def _run_pump(self) -> None:
        try:
            while not self._stopped.is_set():
                with self._lock:
                    refs = list(self._pending)
                if not refs:
                    self._kick.wait(_WAIT_SLICE)
                    self._kick.clear()
                    continue
                ready, rest = self._ray.wait(refs, num_returns=1, timeout=_WAIT_SLICE)
                if ready and rest:
                    more, _ = self._ray.wait(rest, num_returns=len(rest), timeout=0)
                    ready.extend(more)
                changed = any([self._take(ref) for ref in ready])
                changed = self._expire() or changed
                if changed:
                    self._submit()
                    if self._notify is not None:
                        self._notify()
        except Exception as exc:  # a bug: end the stream with it rather than hang
            logger.error("ray.fanout_failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
            self._give_up(exc)

    def _take(self, ref: Any) -> bool:
        """Settle one ready task (or recover from its worker's death); whether anything changed."""
        ray = self._ray
        with self._lock:
            task = self._pending.get(ref)
        if task is None:
            return False
        try:
            answer = ray.get(ref, timeout=0)
        except ray.exceptions.RayActorError as exc:
            self._worker_died(task, exc)
            return True
        except Exception as exc:
            outcome: sv.Ok[Any] | sv.Exit = sv.Exit(exc)
        else:
            cancelled = answer.get("cancelled")
            outcome = sv.Exit("cancelled") if cancelled else decode_result(answer)
        self._finish(task, outcome)
        return True

    def _finish(self, task: _Task[T], outcome: sv.Ok[Any] | sv.Exit) -> None:
        with self._cond:
            if self._pending.pop(task.ref, None) is None:
                return
            if task.worker is not None:
                self._load[task.worker] -= 1
            self._done.append(sv.Settled(task.index, task.item, outcome))
            self._cond.notify_all()

    def _expire(self) -> bool:
        """Give up on tasks past their deadline plus :data:`GRACE` (``Exit("timeout")``)."""
        limit = time.monotonic() - self._timeout - GRACE
        with self._lock:
            late = [t for t in self._pending.values() if t.started < limit]
        for task in late:
            try:
                self._ray.cancel(task.ref)
            except Exception:
                pass
            self._finish(task, sv.Exit("timeout"))
        return bool(late)

    def _worker_died(self, task: _Task[T], error: BaseException) -> None:
        """Ask the coordinator to recover; send the dead worker's unfinished tasks again."""
        dead = task.worker or "?"
        why = type(error).__name__
        answer: list[WorkerRef] | BaseException
        try:
            answer = self._coordinator.ask(WorkerDied(dead, why), timeout=_ASK_TIMEOUT)  # type: ignore[assignment]
        except Exception as exc:  # the coordinator ended (gave up, or was stopped)
            answer = exc
        if isinstance(answer, BaseException):
            gave_up = answer if isinstance(answer, WorkersGaveUp) else WorkersGaveUp(str(answer))
            self._give_up(gave_up)
            return
        with self._lock:
            self._workers = list(answer)
            alive = {w.id for w in self._workers}
            orphans = [t for t in self._pending.values() if t.worker not in alive]
            for orphan in orphans:
                del self._pending[orphan.ref]
                if orphan.worker is not None:
                    self._load[orphan.worker] -= 1
                orphan.worker, orphan.ref = None, None
            for gone in [w for w in self._load if w not in alive]:
                del self._load[gone]
            self._waiting.extendleft(reversed(orphans))
            self.reruns += len(orphans)
        if orphans:
            logger.warning("ray.shard_rerun", worker=dead, tasks=len(orphans))

    def _give_up(self, error: BaseException) -> None:
        """The coordinator gave up: drop (or, with ``notify``, fail) what did not finish."""
        with self._cond:
            self._gave_up = error
            unfinished = list(self._pending.values()) + list(self._waiting)
            self._pending.clear()
            self._waiting.clear()
            self._sources.clear()
            if self._notify is not None:
                for task in unfinished:
                    self._done.append(sv.Settled(task.index, task.item, sv.Exit(error)))
            self._cond.notify_all()
        logger.error(
            "ray.fanout_gave_up",
            error=f"{type(error).__name__}: {error}",
            unfinished=len(unfinished),
        )
        if self._notify is not None:
            self._notify()

    @property
    def gave_up(self) -> BaseException | None:
        """Why the stream stopped early (the coordinator gave up), else ``None``."""
        return self._gave_up
