"""Compile jobs: a supervised, resumable actor per ``system.compile(...)`` call.

::

    dspex  Supervisor one_for_one
    └── teleprompters  DynamicSupervisor
        └── <job>  CompileJob  (transient: restarted after a crash, not after it finished)

``system.compile(teleprompter, student=..., trainset=...)`` calls
:func:`start_job`, which starts a :class:`CompileJob` under the system's
``teleprompters`` dynamic supervisor and returns a :class:`Job` handle at once.
The job drives the teleprompter's :class:`~dspex_actors.optimize._plan.CompilePlan`:

* **One unit of work per message.** The actor handles ``_Step`` messages; each
  records one finished request, or does one unit of plan work (one metric verdict,
  one candidate scored), then tells itself the next ``_Step``. So a kill stops it
  at the next boundary, and nothing it does takes long.
* **Requests fan out through the one engine** (``system.fan_out``, on
  ``sv.fan_out``): each LM request the plan needs runs in its own program actor,
  at most the teleprompter's ``max_concurrency`` at once, with the request
  deadline (the program is killed a moment past it). No thread per request: the
  engine tells the job actor (``notify``) when a result is ready or a deadline
  passed, and the actor takes results with ``get(0)``. The engine belongs to the
  job, not to one actor generation, so a request that finishes while the actor
  is being restarted is not lost.
* **Checkpoints.** After each unit the new entries are written to the checkpoint
  (``_checkpoint.py``); a restarted actor rebuilds its plan from it and redoes
  nothing that finished.
* **Crashes.** An exception in the job (a bug, a metric that raises) crashes the
  actor; its supervisor restarts it and it resumes. A metric exception crashes it
  at most once per unit and :data:`MAX_METRIC_CRASHES` times per job: when the
  restarted job meets it again, or after that many, it is counted as an error
  (DSPy's rule: ``max_errors`` errors fail the job). More than
  :data:`MAX_RESTARTS` restarts fail the job.
* **Status without asking.** ``job.status()`` reads a snapshot the actor keeps up
  to date under a lock: it never waits for the actor.

* **Progress.** ``job.result()`` shows a tqdm bar on stderr while it waits
  (``display_progress=False`` to turn it off; ``_progress.py``).

Log events (structlog, the package's logger ``dspex_actors``): ``compile.started``,
``demo.bootstrapped``, ``candidate.evaluated``, ``compile.finished``, and
``compile.metric_error`` (a metric's exception counted as an error, with its
traceback, once per exception type and job). A metric that raises on every
example it scores fails the job with its exception.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import pykka

import supervisors as sv
from dspex_actors.modules import Module
from dspex_actors.optimize._async import job_result_async
from dspex_actors.optimize._backend import LOCAL, Backend, Stream
from dspex_actors.optimize._checkpoint import (
    Checkpoint,
    CheckpointError,
    claim,
    fingerprint,
    release,
)
from dspex_actors.optimize._events import plan_event
from dspex_actors.optimize._examples import check_examples
from dspex_actors.optimize._jsonable import describe_error
from dspex_actors.optimize._plan import (
    CompileError,
    CompileFailure,
    CompilePlan,
    PlanContext,
    Planner,
    WorkItem,
)
from dspex_actors.optimize._progress import Progress
from dspex_actors.primitives import Example, logger, telemetry
from dspex_actors.runtime import call_result

if TYPE_CHECKING:
    from dspex_actors.runtime import ActorSystem

__all__ = [
    "MAX_METRIC_CRASHES",
    "MAX_RESTARTS",
    "CheckpointError",
    "CompileError",
    "CompileJob",
    "Job",
    "JobCancelled",
    "JobStatus",
    "start_job",
]


JobState = Literal["running", "done", "failed", "cancelled"]

MAX_RESTARTS = 5
"""Restarts after which a job is failed instead of being resumed again."""

MAX_METRIC_CRASHES = 2
"""Metric exceptions that may crash (and so restart) a job; later ones count as errors."""

_DETAIL_FIELDS = frozenset(
    ("trial", "num_trials", "best_trial", "lm_calls", "lm_budget", "budget_exhausted")
)
"""The ``Progress.details`` that ``JobStatus`` shows as fields."""

_POLL = 0.1
"""Longest single wait in :meth:`Job.result` (between checks that the job still exists)."""


class JobCancelled(Exception):
    """``job.result()`` of a job that was cancelled."""


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a compile job's progress (from :meth:`Job.status`).

    ``state`` is ``running``, ``done``, ``failed`` or ``cancelled``; ``done`` of
    ``total`` units (BootstrapFewShot: trainset examples decided; random search:
    candidates scored); ``best_score`` the best candidate score so far (``None``
    when the teleprompter scores nothing); ``phase`` what it is doing;
    ``errors`` failed teacher runs or metric errors; ``restarts`` how often the
    job actor was restarted; ``requests`` LM requests started; ``in_flight``
    those not finished yet; ``error`` the failure, as text. MIPROv2 also fills
    ``trial`` (trials told) of ``num_trials``, ``best_trial`` (its ``Trial.number``),
    ``lm_calls`` used of ``lm_budget`` (``max_lm_calls``) and ``budget_exhausted``.
    """

    id: str
    teleprompter: str
    state: JobState
    done: int
    total: int
    best_score: float | None
    phase: str
    errors: int
    restarts: int
    requests: int
    in_flight: int
    elapsed_s: float
    error: str | None = None
    trial: int | None = None
    num_trials: int | None = None
    best_trial: int | None = None
    lm_calls: int | None = None
    lm_budget: int | None = None
    budget_exhausted: bool = False

    @property
    def finished(self) -> bool:
        """Whether the job ended (done, failed or cancelled)."""
        return self.state != "running"


# ------------------------------------------------------------------ shared state


@dataclass(frozen=True)
class _JobConfig:
    """What a job compiles and how: fixed when it starts."""

    id: str
    system: ActorSystem
    teleprompter: Planner
    student: Module
    trainset: list[Example]
    teacher: Module | None
    valset: list[Example] | None
    checkpoint: Checkpoint
    actor_name: str
    timeout: float
    backend: Backend = LOCAL

    @property
    def label(self) -> str:
        return type(self.teleprompter).__name__


@dataclass
class _JobProgress:
    """What the current actor generation publishes for :meth:`Job.status`."""

    done: int = 0
    total: int = 0
    best_score: float | None = None
    phase: str = "starting"
    errors: int = 0
    requests: int = 0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class _JobOutcome:
    """How the job ended (set once, by :meth:`_JobRun.end`)."""

    state: JobState = "running"
    result: Module | None = None
    error: BaseException | None = None
    candidates: list[dict[str, Any]] | None = None
    ended: float | None = None


@dataclass
class _Restarts:
    """What generations of the job actor leave each other: crash bookkeeping."""

    generation: int = 0  # actor starts
    crashed_units: set[str] = field(default_factory=set)
    last_error: BaseException | None = None

    @property
    def restarts(self) -> int:
        return max(0, self.generation - 1)


class _JobRun:
    """Everything a compile job keeps across restarts of its actor; shared with :class:`Job`.

    ``config`` is immutable; ``progress``, ``outcome``, ``restarts`` and
    ``in_flight`` are guarded by ``lock``. ``requests`` is the job's fan-out of
    LM requests (its own locking). An actor only updates the status or ends the
    job while it is the current generation (a killed actor's abandoned thread may
    still be finishing a handler).
    """

    def __init__(self, config: _JobConfig, requests: Stream[WorkItem]) -> None:
        self.config = config
        self.requests = requests
        self.lock = threading.Lock()
        self.progress = _JobProgress()
        self.outcome = _JobOutcome()
        self.restarts = _Restarts()
        self.in_flight: set[str] = set()  # keys of requests started, not yet recorded
        self.live_errors: dict[str, BaseException] = {}
        self.logged_errors: set[str] = set()  # metric exception types already logged
        self.finished = threading.Event()
        self.started = time.monotonic()
        self.spec: sv.ChildSpec | None = None
        self.supervisor: pykka.ActorRef[Any] | None = None

    @property
    def checkpoint(self) -> Checkpoint:
        return self.config.checkpoint

    def log_metric_error(self, key: str, error: BaseException) -> None:
        """Log a metric's exception counted as an error, once per type (the job actor)."""
        kind = f"{type(error).__module__}.{type(error).__qualname__}"
        with self.lock:
            if kind in self.logged_errors:
                return
            self.logged_errors.add(kind)
        logger.warning(
            "compile.metric_error",
            job=self.config.id,
            teleprompter=self.config.label,
            entry=key,
            error=f"{type(error).__name__}: {error}",
            note="the metric raised; counted as an error (logged once per type)",
            exc_info=error,
        )

    def snapshot(self) -> JobStatus:
        with self.lock:
            progress, outcome = self.progress, self.outcome
            end = outcome.ended if outcome.ended is not None else time.monotonic()
            error = outcome.error
            return JobStatus(
                id=self.config.id,
                teleprompter=self.config.label,
                state=outcome.state,
                done=progress.done,
                total=progress.total,
                best_score=progress.best_score,
                phase=progress.phase,
                errors=progress.errors,
                restarts=self.restarts.restarts,
                requests=progress.requests,
                in_flight=len(self.in_flight),
                elapsed_s=round(end - self.started, 6),
                error=None if error is None else f"{type(error).__name__}: {error}",
                **{k: v for k, v in progress.details.items() if k in _DETAIL_FIELDS},
            )

    def end(
        self,
        state: JobState,
        *,
        result: Module | None = None,
        error: BaseException | None = None,
        generation: int | None = None,
    ) -> bool:
        """Mark the job ended, once; kill its requests. ``False`` if it had ended or is stale.

        Any thread (the job actor, a ``Job.cancel`` caller, ``Job.result``).
        """
        with self.lock:
            if self.finished.is_set():
                return False
            if generation is not None and generation != self.restarts.generation:
                return False
            ended = time.monotonic()
            self.outcome.state, self.outcome.result, self.outcome.error = state, result, error
            self.outcome.ended = ended
            self.progress.phase = state
            if state == "done":
                self.progress.done = self.progress.total
            self.in_flight.clear()
            # Published before ``finished`` is set: whoever waits on the job sees it after.
            _publish_event(self, "finished", {"state": state, "duration_s": ended - self.started})
            self.finished.set()
        self.requests.cancel()
        release(self.config.checkpoint)
        logger.info(
            "compile.finished",
            job=self.config.id,
            teleprompter=self.config.label,
            state=state,
            duration_s=round(ended - self.started, 3),
            best_score=self.progress.best_score,
            requests=self.progress.requests,
            restarts=self.restarts.restarts,
            error=None if error is None else describe_error(error),
        )
        return True


def _publish_event(run: _JobRun, event: str, fields: dict[str, Any]) -> None:
    """``("compile", event)`` on the system's bus: the job, its best score so far, ``fields``."""
    config = run.config
    telemetry.publish_from(
        config.system.events,
        ("compile", event),
        lambda: {
            "job": config.id,
            "teleprompter": config.label,
            "best_score": run.progress.best_score,
            "done": run.progress.done,
            "total": run.progress.total,
            **fields,
        },
    )


def _ring(actor_name: str) -> None:
    """Tell the job actor to take its next step (from any thread; a no-op while restarting).

    The job's fan-out calls it when a request finished or passed its deadline.
    """
    try:
        sv.named(actor_name).tell(_Step())
    except (sv.NoProc, pykka.ActorDeadError):
        pass  # restarting: the next generation starts with a step


# ------------------------------------------------------------------- the actor


@dataclass(frozen=True)
class _Step:
    """Job actor -> itself (and the request fan-out -> job actor): do the next unit of work."""


class CompileJob(sv.Actor):
    """The actor running one compile (a transient child of ``teleprompters``).

    Started by :func:`start_job`; restarted by its supervisor after a crash, when
    it resumes from the checkpoint. Ends normally when the job is done, failed
    (``max_errors`` reached, too many restarts) or cancelled. See the module
    docstring. Runs in its own thread; everything it shares is in its
    :class:`_JobRun`.
    """

    def __init__(self, run: _JobRun) -> None:
        super().__init__()
        self.run = run
        self._gen = 0
        self._plan: CompilePlan | None = None
        self._ctx: PlanContext | None = None
        self._entries: dict[str, Any] = {}
        self._broken: BaseException | None = None

    # -------------------------------------------------------------- lifecycle

    def on_start(self) -> None:
        run, config = self.run, self.run.config
        with run.lock:
            run.restarts.generation += 1
            self._gen = run.restarts.generation
            run.progress.phase = "resuming" if self._gen > 1 else "starting"
        self._entries = config.checkpoint.load()
        self._ctx = PlanContext(
            student=config.student,
            trainset=config.trainset,
            teacher=config.teacher,
            valset=config.valset,
            entries=self._entries,
            may_crash=self._may_crash,
            live_errors=run.live_errors,
            on_metric_error=run.log_metric_error,
        )
        try:
            self._plan = config.teleprompter.plan(self._ctx)
        except Exception as exc:  # reported by the first step, as a failed job
            self._broken = exc
        logger.info(
            "compile.started",
            job=config.id,
            teleprompter=config.label,
            resumed=bool(self._entries) or self._gen > 1,
            restarts=self._gen - 1,
            checkpoint_entries=len(self._entries),
            trainset=len(config.trainset),
        )
        _publish_event(
            run, "started", {"restarts": self._gen - 1, "trainset": len(config.trainset)}
        )
        self.actor_ref.tell(_Step())

    def on_stop(self) -> None:
        # Normal exits come after ``end``; anything else (system shutdown) ends it here.
        self.run.end(
            "failed",
            error=CompileError(f"compile job {self.run.config.id} was stopped before it finished"),
            generation=self._gen,
        )

    def on_failure(self, *exc_info: Any) -> None:
        run = self.run
        with run.lock:
            run.restarts.last_error = exc_info[1] if len(exc_info) > 1 else None
            unit = self._ctx.current_unit if self._ctx is not None else None
            if unit is not None:
                run.restarts.crashed_units.add(unit)

    def _may_crash(self, key: str) -> bool:
        restarts = self.run.restarts
        with self.run.lock:
            return (
                key not in restarts.crashed_units
                and len(restarts.crashed_units) < MAX_METRIC_CRASHES
            )

    def describe(self) -> str | None:
        run = self.run  # plain attribute reads: never takes the run's lock
        progress = run.progress
        return f"{run.config.label} {progress.phase} {progress.done}/{progress.total}"

    # ---------------------------------------------------------------- messages

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Step):
            self._step()
        return None

    def _step(self) -> None:
        """One message's work: a finished request recorded, else one plan unit, else wait."""
        self._check_alive()
        plan = self._plan
        assert plan is not None
        # ``or`` short-circuits: a step records a request *or* does a unit of work.
        if self._record_one() or self._work_one(plan):
            self._dispatch(plan)
            self.actor_ref.tell(_Step())
        else:
            self._wait(plan)

    def _check_alive(self) -> None:
        """Exit if the job ended meanwhile; end it if it cannot go on (never returns then)."""
        run = self.run
        if run.finished.is_set():  # cancelled (or ended by a previous generation)
            self.exit("normal")
        if self._broken is not None:
            self._end("failed", error=self._broken)
        if run.restarts.restarts > MAX_RESTARTS:
            last = run.restarts.last_error
            self._end(
                "failed",
                error=last
                if last is not None
                else CompileError(f"compile job restarted more than {MAX_RESTARTS} times"),
            )

    def _record_one(self) -> bool:
        """Take one finished request from the fan-out and checkpoint its entry (a unit)."""
        run = self.run
        settled = run.requests.get(0)
        if settled is None:
            return False
        item = settled.item
        with run.lock:
            run.in_flight.discard(item.key)
        if not settled.ok and run.config.system.closed:
            shut = CompileError(f"compile job {run.config.id}: the system shut down")
            self._end("failed", error=shut)
        if item.key not in self._entries:
            entry, error = item.entry(call_result(settled.outcome, run.config.timeout))
            self._entries[item.key] = entry
            if error is not None:
                run.live_errors[item.key] = error
                if entry.get("metric_error"):
                    run.log_metric_error(item.key, error)
            run.checkpoint.put({item.key: entry})
        return True

    def _work_one(self, plan: CompilePlan) -> bool:
        """One unit of plan work, checkpointed and logged; ``False`` if the plan must wait."""
        run = self.run
        try:
            unit = plan.step()
        except CompileFailure as failure:
            self._publish(plan)
            self._end("failed", error=failure.error)
        if unit is None:
            return False
        run.checkpoint.put({k: self._entries[k] for k in unit.keys})
        for event, fields in unit.events:
            plan_event(run.config.id, event, fields)
            # ("compile", "trial") for a MIPROv2 trial ("compile.trial" in the logs).
            _publish_event(run, event.removeprefix("compile."), fields)
        self._publish(plan)
        if plan.done:
            run.outcome.candidates = plan.candidates
            self._end("done", result=plan.result)
        return True

    def _wait(self, plan: CompilePlan) -> None:
        """Nothing to do until a request finishes: start what the plan needs, then idle."""
        self._publish(plan)
        self._dispatch(plan)
        requests = self.run.requests
        if requests.buffered:
            self.actor_ref.tell(_Step())  # a request failed to start: its result is ready
        elif requests.exhausted:
            self._end("failed", error=CompileError("compile plan made no progress (a bug)"))

    def _end(
        self, state: JobState, *, result: Module | None = None, error: BaseException | None = None
    ) -> NoReturn:
        """End the job (if this generation is current) and exit the actor normally."""
        self.run.end(state, result=result, error=error, generation=self._gen)
        self.exit("normal")
        raise AssertionError("unreachable: exit() raises")

    def _publish(self, plan: CompilePlan) -> None:
        progress = plan.progress()
        run = self.run
        with run.lock:
            if self._gen != run.restarts.generation or run.finished.is_set():
                return
            mine = run.progress
            mine.done, mine.total = progress.done, progress.total
            mine.best_score, mine.phase, mine.errors = (
                progress.best_score,
                progress.phase,
                progress.errors,
            )
            mine.details = dict(progress.details or {})

    def _dispatch(self, plan: CompilePlan) -> None:
        """Start the requests the plan wants now, as many as the fan-out has free slots."""
        run = self.run
        with run.lock:
            if run.finished.is_set() or self._gen != run.restarts.generation:
                return
            busy = set(run.in_flight)
        free = run.requests.free
        if free <= 0:
            return
        items = plan.requests(busy, free)
        if not items:
            return
        with run.lock:
            if run.finished.is_set():
                return
            run.in_flight.update(item.key for item in items)
            run.progress.requests += len(items)
        run.requests.extend(items)
        run.requests.fill()


# -------------------------------------------------------------------- the handle


class Job:
    """The handle of a compile job, returned at once by ``system.compile(...)``.

    ``job.id``; ``job.status()`` (never blocks); ``job.result(timeout=None)``
    waits for the compiled program; ``job.cancel()`` stops the job and its
    requests. Thread-safe: any thread may use it.
    """

    def __init__(self, run: _JobRun) -> None:
        self._run = run

    @property
    def id(self) -> str:
        """The job's id (its actor is registered as ``<system>.job.<id>``)."""
        return self._run.config.id

    @property
    def actor_name(self) -> str:
        """The registered name of the job's actor (re-bound after each restart)."""
        return self._run.config.actor_name

    @property
    def ref(self) -> pykka.ActorRef[Any] | None:
        """The job actor's current ref, or ``None`` (ended, or between restarts)."""
        return sv.whereis(self._run.config.actor_name)

    @property
    def checkpoint_path(self) -> Path | None:
        """The checkpoint file, or ``None`` when the checkpoint is kept in memory."""
        return self._run.checkpoint.path

    @property
    def candidate_programs(self) -> list[dict[str, Any]] | None:
        """Random search: the candidates ``{"score", "subscores", "seed", "program"}``."""
        return self._run.outcome.candidates

    def status(self) -> JobStatus:
        """A snapshot of the job's progress; reads shared state, never waits on the job."""
        return self._run.snapshot()

    def trials(self) -> list[Any]:
        """MIPROv2: the ``dx.Trial`` records told so far, in order (else ``[]``); never waits."""
        with self._run.lock:
            return list(self._run.progress.details.get("trials", ()))

    def done(self) -> bool:
        """Whether the job ended (done, failed or cancelled)."""
        return self._run.finished.is_set()

    def result(self, timeout: float | None = None, *, display_progress: bool = True) -> Module:
        """Wait for the compiled program and return it.

        ``timeout`` in seconds (``None``: until the job ends); the wait is done in
        short slices, each checking that the job still exists under its
        supervisor. While it waits for a running job, a tqdm progress bar on
        stderr shows the job's units, phase, errors and best score
        (``display_progress=False``: none); it is cleared on a timeout.

        Raises:
            TimeoutError: still running after ``timeout`` seconds (the job goes on).
            JobCancelled: the job was cancelled.
            Exception: the job failed: its error (the original exception when
                known, else :class:`CompileError`).
        """
        run = self._run
        progress = None
        if display_progress and not run.finished.is_set():
            status = self.status()
            progress = Progress(status.total, label=status.teleprompter, unit="unit")
        try:
            self._wait(timeout, progress)
        finally:
            if progress is not None:
                _show(progress, self.status())
                progress.close(leave=run.finished.is_set())
        outcome = run.outcome
        if outcome.state == "done":
            assert outcome.result is not None
            return outcome.result
        if outcome.state == "cancelled":
            raise JobCancelled(f"compile job {self.id} was cancelled")
        error = outcome.error
        raise error if error is not None else CompileError(f"compile job {self.id} failed")

    def _wait(self, timeout: float | None, progress: Progress | None) -> None:
        """Wait in slices until the job ended; ``TimeoutError`` after ``timeout`` seconds."""
        run = self._run
        deadline = None if timeout is None else time.monotonic() + timeout
        while not run.finished.is_set():
            if progress is not None:
                _show(progress, self.status())
            wait = _POLL
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"compile job {self.id} still running after {timeout} s")
                wait = min(wait, remaining)
            if run.finished.wait(wait):
                break
            self._check_lost()

    def _check_lost(self) -> None:
        """End the job as failed if its supervisor no longer holds it (gave up restarting)."""
        run = self._run
        if self._lost() and not run.finished.is_set():
            last = run.restarts.last_error
            run.end(
                "failed",
                error=CompileError(
                    f"compile job {self.id} is gone: its supervisor stopped restarting it"
                    + (f" (last crash: {describe_error(last)})" if last is not None else "")
                ),
            )

    async def aresult(self, timeout: float | None = None) -> Module:
        """:meth:`result` for asyncio: await the compiled program without blocking the loop.

        Looks at the job every few tens of milliseconds (``asyncio.sleep``); no
        thread waits, no progress bar. Cancelling the await leaves the job running.

        Raises: as :meth:`result` (``TimeoutError``, ``JobCancelled``, the job's error).
        """
        program: Module = await job_result_async(self, timeout)
        return program

    def cancel(self) -> bool:
        """Stop the job and kill its requests in flight; ``False`` if it had already ended.

        Returns at once; the job actor exits at its next message boundary and
        ``result()`` raises :class:`JobCancelled`.
        """
        run = self._run
        ended = run.end("cancelled", error=JobCancelled(f"compile job {self.id} was cancelled"))
        if ended:
            _ring(run.config.actor_name)
        return ended

    def _lost(self) -> bool:
        """Whether the job's supervisor no longer holds it (gave up, or was stopped)."""
        run = self._run
        sup_ref = run.supervisor
        if sup_ref is None:
            return False
        sup = sv.actor_of(sup_ref)
        if sup is None or not sup_ref.is_alive():
            return True
        snapshot = getattr(sup, "snapshot", None)
        if snapshot is None:
            return False
        return not any(row[1] is run.spec for row in snapshot())

    def __repr__(self) -> str:
        status = self.status()
        return f"<Job {self.id} {status.teleprompter} {status.state} {status.done}/{status.total}>"


def _show(progress: Progress, status: JobStatus) -> None:
    """Draw a job's status on its progress display (the waiting thread)."""
    parts = [status.phase, f"errors {status.errors}"]
    if status.best_score is not None:
        parts.append(f"best {status.best_score:.1f}%")
    if status.restarts:
        parts.append(f"restarts {status.restarts}")
    progress.update(status.done, ", ".join(parts), total=status.total)


# --------------------------------------------------------------------- starting


_job_numbers = itertools.count(1)


def start_job(
    system: ActorSystem,
    teleprompter: Planner,
    *,
    student: Module,
    trainset: Sequence[Example],
    teacher: Module | None = None,
    valset: Sequence[Example] | None = None,
    checkpoint_dir: str | Path | None = None,
    backend: Backend | None = None,
) -> Job:
    """Start a compile job under ``system``'s ``teleprompters`` supervisor; return its handle.

    ``backend``: where the job's LM requests run (default: program actors of this
    process; ``dx.RayBackend`` runs them on Ray workers, docs/scale-out.md).

    Returns once the job actor started (it does its work in its own thread).
    ``student``/``teacher`` are copied: later changes to them do not affect the job.

    Raises (in the caller's thread, before anything runs): ``TypeError`` /
    ``ValueError`` for unusable arguments, :class:`CheckpointError` for an
    unusable checkpoint file or one in use by a running job, ``RuntimeError``
    when the system is shut down.
    """
    if system.closed:
        raise RuntimeError(f"actor system {system.name!r} is shut down")
    config = _configure(system, teleprompter, student, trainset, teacher, valset, checkpoint_dir)
    if backend is not None:
        metric = getattr(teleprompter, "metric", None)
        for program in (config.student, config.teacher):
            if program is not None:
                backend.check(program, metric)
        config = dataclasses.replace(config, backend=backend)
    try:
        return _start(config)
    except BaseException:
        release(config.checkpoint)
        raise


def _configure(
    system: ActorSystem,
    teleprompter: Planner,
    student: Module,
    trainset: Sequence[Example],
    teacher: Module | None,
    valset: Sequence[Example] | None,
    checkpoint_dir: str | Path | None,
) -> _JobConfig:
    """Check the arguments, copy the programs and open the checkpoint (setup)."""
    train = check_examples(trainset, "trainset")
    val = check_examples(valset, "valset") if valset is not None else None
    teleprompter.validate(student=student, trainset=train, teacher=teacher, valset=val)
    student_copy = student.deepcopy()
    teacher_copy = teacher.deepcopy() if teacher is not None else None
    job_id = f"{teleprompter.name}-{next(_job_numbers)}-{uuid.uuid4().hex[:6]}"
    checkpoint = Checkpoint()
    if checkpoint_dir is not None:
        directory = Path(checkpoint_dir)
        directory.mkdir(parents=True, exist_ok=True)
        fp = fingerprint(teleprompter, student_copy, train, teacher_copy, val)
        path = (directory / f"{teleprompter.name}-{fp[:16]}.json").resolve()
        check = getattr(teleprompter, "check_entry", None)
        checkpoint = claim(path, fp, type(teleprompter).__name__, check)
    return _JobConfig(
        id=job_id,
        system=system,
        teleprompter=teleprompter,
        student=student_copy,
        trainset=train,
        teacher=teacher_copy,
        valset=val,
        checkpoint=checkpoint,
        actor_name=f"{system.name}.job.{job_id}",
        timeout=system.request_timeout(),
    )


def _start(config: _JobConfig) -> Job:
    """Make the job's request fan-out and start its actor (running)."""
    system = config.system
    no_items: list[WorkItem] = []  # the plan's requests come later (``_dispatch``)
    requests = config.backend.fan_out(
        system,
        no_items,
        WorkItem.call,
        max_concurrency=max(1, int(config.teleprompter.max_concurrency)),
        timeout=config.timeout,
        ordered=False,
        notify=functools.partial(_ring, config.actor_name),
    )
    run = _JobRun(config, requests)
    run.spec = sv.ChildSpec(
        id=config.id,
        start=CompileJob.start,
        args=(run,),
        restart="transient",
        shutdown=5.0,
        name=config.actor_name,
    )
    run.supervisor = system.teleprompters.resolve()
    sv.start_child(system.teleprompters.name, run.spec)
    return Job(run)
