"""Compile jobs: a supervised, resumable actor per ``system.compile(...)`` call.

::

    dspex  Supervisor one_for_one
    └── teleprompters  DynamicSupervisor
        └── <job>  CompileJob  (transient: restarted after a crash, not after it finished)

``system.compile(teleprompter, student=..., trainset=...)`` starts a
:class:`CompileJob` under the system's ``teleprompters`` dynamic supervisor and
returns a :class:`Job` handle at once. The job drives the teleprompter's
:class:`~dspex_actors.optimize._teleprompt.CompilePlan`:

* **One unit of work per message.** The actor handles ``_Step`` messages; each
  records one finished request, or does one unit of plan work (one metric verdict,
  one candidate scored), then tells itself the next ``_Step``. So a kill stops it
  at the next boundary, and nothing it does takes long.
* **Requests run concurrently.** Each LM request the plan needs runs in its own
  program actor, driven by a short-lived daemon thread (``dspex:job-<id>``), at
  most the teleprompter's ``max_concurrency`` at once. Finished requests are put
  on a queue owned by the :class:`Job` (not by the actor), so a request that
  finishes while the actor is being restarted is not lost.
* **Checkpoints.** After each unit the new entries are written to the checkpoint:
  a JSON file in ``checkpoint_dir`` (written to a temporary file and renamed), or,
  without ``checkpoint_dir``, a dict held by the :class:`Job` handle. A restarted
  actor rebuilds its plan from the checkpoint and redoes nothing that finished.
  The file is named after a fingerprint of the teleprompter's configuration, the
  student, teacher, trainset and valset, so compiling the same thing again with
  the same ``checkpoint_dir`` (even in a new process) resumes it.
* **Crashes.** An exception in the job (a bug, a metric that raises) crashes the
  actor; its supervisor restarts it and it resumes. A metric exception crashes it
  at most once per unit and :data:`MAX_METRIC_CRASHES` times per job: when the
  restarted job meets it again, or after that many, it is counted as an error
  (DSPy's rule: ``max_errors`` errors fail the job). More than
  :data:`MAX_RESTARTS` restarts fail the job.
* **Status without asking.** ``job.status()`` reads a snapshot the actor keeps up
  to date under a lock: it never waits for the actor.

Log events (structlog, logger ``dspex_actors.compile``): ``compile.started``,
``demo.bootstrapped``, ``candidate.evaluated``, ``compile.finished``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pykka
import structlog

import supervisors as sv
from dspex_actors.modules import Module
from dspex_actors.optimize._evaluate import (
    cancel_program,
    check_examples,
    describe_error,
    json_safe,
    request_timeout,
    run_tracked,
)
from dspex_actors.optimize._teleprompt import (
    CompileError,
    CompileFailure,
    CompilePlan,
    PlanContext,
    Teleprompter,
    TracedResult,
    WorkItem,
    eval_outcome,
    item_inputs,
)
from dspex_actors.primitives import Example

if TYPE_CHECKING:
    from dspex_actors.runtime import ActorSystem

__all__ = [
    "CheckpointError",
    "CompileError",
    "CompileJob",
    "Job",
    "JobCancelled",
    "JobStatus",
    "start_job",
]

logger: Any = structlog.get_logger("dspex_actors.compile")

JobState = Literal["running", "done", "failed", "cancelled"]

MAX_RESTARTS = 5
"""Restarts after which a job is failed instead of being resumed again."""

MAX_METRIC_CRASHES = 2
"""Metric exceptions that may crash (and so restart) a job; later ones count as errors."""

CHECKPOINT_VERSION = 1

_POLL = 0.1
"""Longest single wait in :meth:`Job.result` (between checks that the job still exists)."""


class JobCancelled(Exception):
    """``job.result()`` of a job that was cancelled."""


class CheckpointError(ValueError):
    """A checkpoint file exists but cannot be used (not JSON, another version or job)."""


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a compile job's progress (from :meth:`Job.status`).

    ``state`` is ``running``, ``done``, ``failed`` or ``cancelled``; ``done`` of
    ``total`` units (BootstrapFewShot: trainset examples decided; random search:
    candidates scored); ``best_score`` the best candidate score so far (``None``
    when the teleprompter scores nothing); ``phase`` what it is doing;
    ``errors`` failed teacher runs or metric errors; ``restarts`` how often the
    job actor was restarted; ``requests`` LM requests started; ``in_flight``
    those running now; ``error`` the failure, as text.
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

    @property
    def finished(self) -> bool:
        """Whether the job ended (done, failed or cancelled)."""
        return self.state != "running"


# --------------------------------------------------------------------- checkpoints


class _Checkpoint:
    """Where a job's entries survive restarts: memory (the Job handle) or a JSON file.

    ``put`` may be called from several generations of the job actor; entries are
    facts (a finished request's outcome, a verdict) and never change once written,
    so merging them is always safe. Thread-safe.
    """

    path: Path | None = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, Any] = {}

    def load(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._entries)

    def put(self, items: dict[str, Any]) -> None:
        if not items:
            return
        with self._lock:
            self._entries.update(items)
            self._write()

    def _write(self) -> None:
        """Persist ``_entries`` (called with the lock held). Memory: nothing to do."""

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class _FileCheckpoint(_Checkpoint):
    """A checkpoint in one JSON file, rewritten atomically (temporary file + rename)."""

    def __init__(self, path: Path, fingerprint: str, teleprompter: str) -> None:
        super().__init__()
        self.path = path
        self.fingerprint = fingerprint
        self.teleprompter = teleprompter
        self._entries = self._read()

    def _read(self) -> dict[str, Any]:
        path = self.path
        assert path is not None
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"checkpoint {path} is not JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(f"checkpoint {path}: not a version {CHECKPOINT_VERSION} file")
        if data.get("fingerprint") != self.fingerprint:
            raise CheckpointError(
                f"checkpoint {path} belongs to another compile (fingerprint mismatch)"
            )
        entries = data.get("entries")
        if not isinstance(entries, dict):
            raise CheckpointError(f"checkpoint {path}: 'entries' must be an object")
        return entries

    def _write(self) -> None:
        path = self.path
        assert path is not None
        data = {
            "version": CHECKPOINT_VERSION,
            "teleprompter": self.teleprompter,
            "fingerprint": self.fingerprint,
            "updated": time.time(),
            "entries": self._entries,
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
        tmp.replace(path)


_active_checkpoints: set[Path] = set()
_active_lock = threading.Lock()


# ------------------------------------------------------------------ shared state


class _JobRun:
    """Everything a compile job keeps across restarts of its actor; shared with :class:`Job`.

    Mutable fields are guarded by ``lock``. ``generation`` counts actor starts; an
    actor only updates the status or ends the job while it is the current
    generation (a killed actor's abandoned thread may still be finishing a
    handler).
    """

    def __init__(
        self,
        *,
        job_id: str,
        system: ActorSystem,
        teleprompter: Teleprompter,
        student: Module,
        trainset: list[Example],
        teacher: Module | None,
        valset: list[Example] | None,
        checkpoint: _Checkpoint,
    ) -> None:
        self.id = job_id
        self.system = system
        self.teleprompter = teleprompter
        self.student = student
        self.trainset = trainset
        self.teacher = teacher
        self.valset = valset
        self.checkpoint = checkpoint
        self.actor_name = f"{system.name}.job.{job_id}"
        self.max_concurrency = max(1, int(getattr(teleprompter, "max_concurrency", 16)))
        self.timeout = request_timeout(system, None)
        self.lock = threading.Lock()
        self.generation = 0
        self.crashed_units: set[str] = set()
        self.last_error: BaseException | None = None
        self.live_errors: dict[str, BaseException] = {}
        self.outcomes: queue.SimpleQueue[tuple[str, Any, BaseException | None]] = (
            queue.SimpleQueue()
        )
        self.inflight: dict[str, pykka.ActorRef[Any] | None] = {}
        self.finished = threading.Event()
        self.state: JobState = "running"
        self.result: Module | None = None
        self.error: BaseException | None = None
        self.candidates: list[dict[str, Any]] | None = None
        self.started = time.monotonic()
        self.ended: float | None = None
        self.done = 0
        self.total = 0
        self.best_score: float | None = None
        self.phase = "starting"
        self.errors = 0
        self.requests = 0
        self.spec: sv.ChildSpec | None = None
        self.supervisor: pykka.ActorRef[Any] | None = None

    @property
    def restarts(self) -> int:
        return max(0, self.generation - 1)

    def snapshot(self) -> JobStatus:
        with self.lock:
            end = self.ended if self.ended is not None else time.monotonic()
            return JobStatus(
                id=self.id,
                teleprompter=type(self.teleprompter).__name__,
                state=self.state,
                done=self.done,
                total=self.total,
                best_score=self.best_score,
                phase=self.phase,
                errors=self.errors,
                restarts=self.restarts,
                requests=self.requests,
                in_flight=len(self.inflight),
                elapsed_s=round(end - self.started, 6),
                error=None if self.error is None else f"{type(self.error).__name__}: {self.error}",
            )

    def end(
        self,
        state: JobState,
        *,
        result: Module | None = None,
        error: BaseException | None = None,
        generation: int | None = None,
    ) -> bool:
        """Mark the job ended, once; stop its requests. ``False`` if it had ended or is stale."""
        with self.lock:
            if self.finished.is_set():
                return False
            if generation is not None and generation != self.generation:
                return False
            self.state = state
            self.result = result
            self.error = error
            self.ended = time.monotonic()
            self.phase = state
            if state == "done":
                self.done = self.total
            refs = [ref for ref in self.inflight.values() if ref is not None]
            self.inflight.clear()
            self.finished.set()
        for ref in refs:
            cancel_program(ref)
        path = self.checkpoint.path
        if path is not None:
            with _active_lock:
                _active_checkpoints.discard(path)
        logger.info(
            "compile.finished",
            job=self.id,
            teleprompter=type(self.teleprompter).__name__,
            state=state,
            duration_s=round(self.ended - self.started, 3),
            best_score=self.best_score,
            requests=self.requests,
            restarts=self.restarts,
            error=None if error is None else describe_error(error),
        )
        return True


# ------------------------------------------------------------------- the actor


@dataclass(frozen=True)
class _Step:
    """Job actor -> itself (and request threads -> job actor): do the next unit of work."""


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
        run = self.run
        with run.lock:
            run.generation += 1
            self._gen = run.generation
            run.phase = "resuming" if self._gen > 1 else "starting"
        self._entries = run.checkpoint.load()
        ctx = PlanContext(
            student=run.student,
            trainset=run.trainset,
            teacher=run.teacher,
            valset=run.valset,
            entries=self._entries,
            may_crash=self._may_crash,
            live_errors=run.live_errors,
        )
        self._ctx = ctx
        try:
            self._plan = run.teleprompter.plan(ctx)
        except Exception as exc:  # reported by the first step, as a failed job
            self._broken = exc
        logger.info(
            "compile.started",
            job=run.id,
            teleprompter=type(run.teleprompter).__name__,
            resumed=bool(self._entries) or self._gen > 1,
            restarts=self._gen - 1,
            checkpoint_entries=len(self._entries),
            trainset=len(run.trainset),
        )
        self.actor_ref.tell(_Step())

    def on_stop(self) -> None:
        # Normal exits come after ``end``; anything else (system shutdown) ends it here.
        self.run.end(
            "failed",
            error=CompileError(f"compile job {self.run.id} was stopped before it finished"),
            generation=self._gen,
        )

    def on_failure(self, *exc_info: Any) -> None:
        run = self.run
        with run.lock:
            run.last_error = exc_info[1] if len(exc_info) > 1 else None
            unit = self._ctx.current_unit if self._ctx is not None else None
            if unit is not None:
                run.crashed_units.add(unit)

    def _may_crash(self, key: str) -> bool:
        run = self.run
        with run.lock:
            return key not in run.crashed_units and len(run.crashed_units) < MAX_METRIC_CRASHES

    def describe(self) -> str | None:
        run = self.run  # plain attribute reads: never takes the run's lock
        return f"{type(run.teleprompter).__name__} {run.phase} {run.done}/{run.total}"

    # ---------------------------------------------------------------- messages

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Step):
            self._step()
        return None

    def _step(self) -> None:
        run = self.run
        if run.finished.is_set():  # cancelled (or ended by a previous generation)
            self.exit("normal")
        if self._broken is not None:
            self._end("failed", error=self._broken)
        if run.restarts > MAX_RESTARTS:
            last = run.last_error
            self._end(
                "failed",
                error=last
                if last is not None
                else CompileError(f"compile job restarted more than {MAX_RESTARTS} times"),
            )
        plan = self._plan
        assert plan is not None
        # 1. Record one finished request (a unit: checkpointed).
        try:
            key, outcome, error = run.outcomes.get_nowait()
        except queue.Empty:
            pass
        else:
            with run.lock:
                run.inflight.pop(key, None)
            if key not in self._entries:
                self._entries[key] = outcome
                if error is not None:
                    run.live_errors[key] = error
                run.checkpoint.put({key: outcome})
            self._dispatch(plan)
            self.actor_ref.tell(_Step())
            return
        # 2. One unit of plan work.
        try:
            unit = plan.step()
        except CompileFailure as failure:
            self._publish(plan)
            self._end("failed", error=failure.error)
            return
        if unit is not None:
            run.checkpoint.put({k: self._entries[k] for k in unit.keys})
            for event, fields in unit.events:
                logger.info(event, job=run.id, **fields)
            self._publish(plan)
            if plan.done:
                run.candidates = plan.candidates
                self._end("done", result=plan.result)
            self._dispatch(plan)
            self.actor_ref.tell(_Step())
            return
        # 3. Nothing to do until a request finishes.
        self._publish(plan)
        self._dispatch(plan)
        with run.lock:
            idle = not run.inflight
        if idle and run.outcomes.empty():
            self._end("failed", error=CompileError("compile plan made no progress (a bug)"))

    def _end(
        self, state: JobState, *, result: Module | None = None, error: BaseException | None = None
    ) -> None:
        self.run.end(state, result=result, error=error, generation=self._gen)
        self.exit("normal")

    def _publish(self, plan: CompilePlan) -> None:
        progress = plan.progress()
        run = self.run
        with run.lock:
            if self._gen != run.generation or run.finished.is_set():
                return
            run.done = progress.done
            run.total = progress.total
            run.best_score = progress.best_score
            run.phase = progress.phase
            run.errors = progress.errors

    def _dispatch(self, plan: CompilePlan) -> None:
        run = self.run
        with run.lock:
            if run.finished.is_set() or self._gen != run.generation:
                return
            busy = set(run.inflight)
        free = run.max_concurrency - len(busy)
        if free <= 0:
            return
        for item in plan.requests(busy, free):
            with run.lock:
                if run.finished.is_set():
                    return
                run.inflight[item.key] = None
                run.requests += 1
            thread = threading.Thread(
                target=_execute, args=(run, item), name=f"dspex:job-{run.id}", daemon=True
            )
            thread.start()


def _execute(run: _JobRun, item: WorkItem) -> None:
    """Run one request of a job in a program actor (a helper thread); queue its outcome."""

    def started(ref: pykka.ActorRef[Any]) -> None:
        with run.lock:
            if not run.finished.is_set() and item.key in run.inflight:
                run.inflight[item.key] = ref
                return
        cancel_program(ref)

    error: BaseException | None = None
    outcome: dict[str, Any]
    try:
        answer = run_tracked(
            run.system, item.module, item_inputs(item), timeout=run.timeout, on_started=started
        )
    except Exception as exc:
        if run.system._closed:
            run.end("failed", error=CompileError(f"compile job {run.id}: the system shut down"))
        if run.finished.is_set():
            with run.lock:
                run.inflight.pop(item.key, None)
            return  # stopped because the job ended: not an outcome
        error = exc
        if item.kind == "teacher":
            outcome = {"ok": False, "error": describe_error(exc)}
        else:
            outcome = {"score": item.failure_score, "error": describe_error(exc)}
    else:
        if item.kind == "teacher":
            if isinstance(answer, TracedResult):
                outcome = {"ok": True, "prediction": answer.prediction, "trace": answer.trace}
            else:  # pragma: no cover - TracedRun always answers a TracedResult
                outcome = {"ok": False, "error": {"type": "TypeError", "message": repr(answer)}}
        else:
            outcome, error = eval_outcome(item, answer)
    run.outcomes.put((item.key, outcome, error))
    try:
        sv.named(run.actor_name).tell(_Step())
    except (sv.NoProc, pykka.ActorDeadError):
        pass  # restarting: the next generation drains the queue


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
        return self._run.id

    @property
    def actor_name(self) -> str:
        """The registered name of the job's actor (re-bound after each restart)."""
        return self._run.actor_name

    @property
    def ref(self) -> pykka.ActorRef[Any] | None:
        """The job actor's current ref, or ``None`` (ended, or between restarts)."""
        return sv.whereis(self._run.actor_name)

    @property
    def checkpoint_path(self) -> Path | None:
        """The checkpoint file, or ``None`` when the checkpoint is kept in memory."""
        return self._run.checkpoint.path

    @property
    def candidate_programs(self) -> list[dict[str, Any]] | None:
        """Random search: the candidates ``{"score", "subscores", "seed", "program"}``."""
        return self._run.candidates

    def status(self) -> JobStatus:
        """A snapshot of the job's progress; reads shared state, never waits on the job."""
        return self._run.snapshot()

    def done(self) -> bool:
        """Whether the job ended (done, failed or cancelled)."""
        return self._run.finished.is_set()

    def result(self, timeout: float | None = None) -> Module:
        """Wait for the compiled program and return it.

        ``timeout`` in seconds (``None``: until the job ends); the wait is done in
        short slices, each checking that the job still exists under its
        supervisor.

        Raises:
            TimeoutError: still running after ``timeout`` seconds (the job goes on).
            JobCancelled: the job was cancelled.
            Exception: the job failed: its error (the original exception when
                known, else :class:`CompileError`).
        """
        run = self._run
        deadline = None if timeout is None else time.monotonic() + timeout
        while not run.finished.is_set():
            wait = _POLL
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"compile job {run.id} still running after {timeout} s")
                wait = min(wait, remaining)
            if run.finished.wait(wait):
                break
            if self._lost() and not run.finished.is_set():
                last = run.last_error
                run.end(
                    "failed",
                    error=CompileError(
                        f"compile job {run.id} is gone: its supervisor stopped restarting it"
                        + (f" (last crash: {describe_error(last)})" if last is not None else "")
                    ),
                )
        if run.state == "done":
            assert run.result is not None
            return run.result
        if run.state == "cancelled":
            raise JobCancelled(f"compile job {run.id} was cancelled")
        error = run.error
        raise error if error is not None else CompileError(f"compile job {run.id} failed")

    def cancel(self) -> bool:
        """Stop the job and kill its requests in flight; ``False`` if it had already ended.

        Returns at once; the job actor exits at its next message boundary and
        ``result()`` raises :class:`JobCancelled`.
        """
        run = self._run
        ended = run.end("cancelled", error=JobCancelled(f"compile job {run.id} was cancelled"))
        if ended:
            try:
                sv.named(run.actor_name).tell(_Step())
            except (sv.NoProc, pykka.ActorDeadError):
                pass
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


# --------------------------------------------------------------------- starting


_job_numbers = itertools.count(1)


def _structure(program: Module | None) -> Any:
    if program is None:
        return None
    return [
        [name, predictor.signature.signature, predictor.config, predictor.dump_state()]
        for name, predictor in program.named_predictors()
    ]


def _examples_json(examples: Sequence[Example] | None) -> Any:
    if examples is None:
        return None
    return [[json_safe(ex.toDict()), sorted(ex.input_keys or ())] for ex in examples]


def fingerprint(
    teleprompter: Teleprompter,
    student: Module,
    trainset: Sequence[Example],
    teacher: Module | None,
    valset: Sequence[Example] | None,
) -> str:
    """A hash of everything that decides a compile's result (names its checkpoint file)."""
    data = {
        "teleprompter": teleprompter.config(),
        "student": _structure(student),
        "teacher": _structure(teacher),
        "trainset": _examples_json(trainset),
        "valset": _examples_json(valset),
    }
    text = json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def start_job(
    system: ActorSystem,
    teleprompter: Teleprompter,
    *,
    student: Module,
    trainset: Sequence[Example],
    teacher: Module | None = None,
    valset: Sequence[Example] | None = None,
    checkpoint_dir: str | Path | None = None,
) -> Job:
    """Start a compile job under ``system``'s ``teleprompters`` supervisor; return its handle.

    Returns once the job actor started (it does its work in its own thread).
    ``student``/``teacher`` are copied: later changes to them do not affect the job.

    Raises (in the caller's thread, before anything runs): ``TypeError`` /
    ``ValueError`` for unusable arguments, :class:`CheckpointError` for an
    unusable checkpoint file or one in use by a running job, ``RuntimeError``
    when the system is shut down.
    """
    if not isinstance(teleprompter, Teleprompter):
        raise TypeError(f"expected a dx teleprompter, got {type(teleprompter).__name__}")
    if system._closed:
        raise RuntimeError(f"actor system {system.name!r} is shut down")
    train = check_examples(trainset, "trainset")
    val = check_examples(valset, "valset") if valset is not None else None
    teleprompter.validate(student=student, trainset=train, teacher=teacher, valset=val)
    student_copy = student.deepcopy()
    teacher_copy = teacher.deepcopy() if teacher is not None else None
    job_id = f"{teleprompter.name}-{next(_job_numbers)}-{uuid.uuid4().hex[:6]}"
    checkpoint: _Checkpoint
    if checkpoint_dir is None:
        checkpoint = _Checkpoint()
    else:
        directory = Path(checkpoint_dir)
        directory.mkdir(parents=True, exist_ok=True)
        fp = fingerprint(teleprompter, student_copy, train, teacher_copy, val)
        path = (directory / f"{teleprompter.name}-{fp[:16]}.json").resolve()
        with _active_lock:
            if path in _active_checkpoints:
                raise CheckpointError(f"checkpoint {path} is in use by a running compile job")
            checkpoint = _FileCheckpoint(path, fp, type(teleprompter).__name__)
            _active_checkpoints.add(path)
    run = _JobRun(
        job_id=job_id,
        system=system,
        teleprompter=teleprompter,
        student=student_copy,
        trainset=train,
        teacher=teacher_copy,
        valset=val,
        checkpoint=checkpoint,
    )
    spec = sv.ChildSpec(
        id=job_id,
        start=CompileJob.start,
        args=(run,),
        restart="transient",
        shutdown=5.0,
        name=run.actor_name,
    )
    run.spec = spec
    try:
        run.supervisor = system.teleprompters.resolve()
        sv.start_child(system.teleprompters.name, spec)
    except BaseException:
        if checkpoint.path is not None:
            with _active_lock:
                _active_checkpoints.discard(checkpoint.path)
        raise
    return Job(run)
