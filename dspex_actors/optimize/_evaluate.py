"""``Evaluate``: score a program on a devset through program actors, losing nothing.

What it adds to DSPy's ``dspy.Evaluate`` (REFERENCE.md section 3):

* every example is one request in its own program actor (as ``system.run``), at
  most ``max_concurrency`` in flight whatever the devset size;
* a failing example scores ``failure_score`` and keeps its error in
  ``result.results``; reaching ``max_errors`` stops early and **returns** what
  finished (``result.partial``), as does Ctrl-C (``result.interrupted``), which
  also stops the requests in flight;
* with ``results_path`` every finished example is appended to a JSONL file as it
  completes, and ``evaluate(program, resume=True)`` skips the examples already
  there (matched by devset index and a hash of the example's inputs, so a changed
  devset is detected);
* an optional progress line on stderr (count, running score, rate, errors).

Threading: ``Evaluate.__call__`` runs in the calling thread, which collects
results, writes the file and draws the progress line; it starts up to
``max_concurrency`` daemon helper threads (``dspex:eval-N``) that each run one
request at a time, and joins them before returning. An ``Evaluate`` object holds
only configuration and may be shared by threads.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pykka

import supervisors as sv
from dspex_actors.primitives import Example, Prediction
from dspex_actors.runtime import Cancel, run_in_program

if TYPE_CHECKING:
    from dspex_actors.runtime import ActorSystem

__all__ = [
    "CANCEL_GRACE",
    "Evaluate",
    "EvaluationResult",
    "RecordedError",
    "ResultsFileError",
    "input_hash",
    "run_tracked",
]

Metric = Callable[..., Any]

DEFAULT_REQUEST_TIMEOUT = 60.0
"""Per-request deadline (seconds) when neither ``timeout`` nor the retry policy sets one."""

_POLL = 0.1
"""Seconds the collecting thread waits at most between checks (Ctrl-C stays prompt)."""

CANCEL_GRACE = 1.0
"""Seconds stopped requests get to end by themselves before their program actors are killed."""


class ResultsFileError(ValueError):
    """A results file cannot be resumed: corrupt, or written for a different devset."""


class RecordedError(Exception):
    """An example's error as read back from a results file (the original is gone).

    ``type_name`` is the original exception's class name; ``str()`` its message.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"RecordedError({self.type_name}: {self.args[0]!r})"


# ------------------------------------------------------------------------- helpers


def system_for(program: Any, system: ActorSystem | None = None) -> ActorSystem:
    """The system a program runs in: ``system``, else ``program.system``, else the current one."""
    if system is not None:
        return system
    own = getattr(program, "system", None)
    if own is not None:
        return own  # type: ignore[no-any-return]
    from dspex_actors.runtime import current_system

    return current_system()


def request_timeout(system: ActorSystem, timeout: float | None) -> float:
    """``timeout``, else the system's retry deadline, else 60 s (as ``ActorSystem.run``)."""
    if timeout is not None:
        return timeout
    return system.retry.deadline or DEFAULT_REQUEST_TIMEOUT


def run_tracked(
    system: ActorSystem,
    module: Any,
    inputs: Mapping[str, Any],
    *,
    timeout: float,
    on_started: Callable[[pykka.ActorRef[Any]], None] | None = None,
) -> Any:
    """``system.run(module, inputs)``, also handing the program actor's ref to ``on_started``.

    ``ActorSystem.run`` does not expose the program's ref, and Evaluate and compile
    jobs need it to stop requests in flight; this is the same call with that hook.
    Called from helper threads. Raises what ``system.run`` raises.
    """
    if system._closed:
        raise RuntimeError(f"actor system {system.name!r} is shut down")
    return run_in_program(
        system.runtime, system.programs.name, module, dict(inputs), timeout=timeout,
        on_started=on_started,
    )  # fmt: skip


def cancel_program(ref: pykka.ActorRef[Any]) -> None:
    """Ask a program actor to give up its request (it answers ``Cancelled`` at its next wait)."""
    try:
        ref.tell(Cancel())
    except pykka.ActorDeadError:
        pass


def kill_program(ref: pykka.ActorRef[Any]) -> None:
    """Kill a program actor (its I/O workers go with it); a no-op if it already ended."""
    try:
        sv.kill(ref, reason="shutdown")
    except (sv.NoProc, TypeError):
        pass


def example_inputs(example: Example) -> dict[str, Any]:
    """The keyword arguments of a program call for ``example`` (its marked inputs)."""
    return dict(example.inputs().items())


def check_examples(examples: Sequence[Any], what: str) -> list[Example]:
    """``examples`` as a list of Examples with inputs marked; ``ValueError`` otherwise."""
    out = list(examples)
    for index, example in enumerate(out):
        if not isinstance(example, Example):
            raise TypeError(f"{what}[{index}] must be a dx.Example, got {type(example).__name__}")
        if example.input_keys is None:
            raise ValueError(
                f"{what}[{index}] has no input fields: build it with "
                f"Example(...).with_inputs('question', ...)"
            )
    return out


def json_safe(value: Any) -> Any:
    """``value`` with everything JSON cannot hold turned into JSON (models dumped, else str)."""
    return json.loads(json.dumps(value, default=_json_default, ensure_ascii=False))


def _json_default(value: Any) -> Any:
    if hasattr(value, "toDict"):
        return value.toDict()
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def input_hash(example: Example) -> str:
    """A short stable hash of an example's input fields (names and values)."""
    text = json.dumps(
        example_inputs(example), sort_keys=True, default=_json_default, ensure_ascii=False
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def describe_error(error: BaseException) -> dict[str, str]:
    """An error as JSON: ``{"type": class name, "message": str(error)}``."""
    if isinstance(error, RecordedError):
        return {"type": error.type_name, "message": str(error)}
    return {"type": type(error).__name__, "message": str(error)}


def as_score(value: Any) -> float:
    """A metric's result as a number (bools count 0/1). ``TypeError``/``ValueError`` if not."""
    score = float(value)
    if math.isnan(score):
        raise ValueError("the metric returned NaN")
    return score


# -------------------------------------------------------------------------- result


class EvaluationResult(Prediction):
    """What :class:`Evaluate` returns (a ``Prediction``, as DSPy's ``EvaluationResult``).

    * ``score`` -- percentage 0-100 (rounded to 2 places) of the metric summed over
      the finished examples, divided by how many finished (the whole devset unless
      ``partial``);
    * ``results`` -- ``[(example, prediction_or_error, score)]`` of the finished
      examples, in devset order (an error scored ``failure_score``);
    * ``partial`` -- ``True`` when some examples did not finish (``max_errors``
      reached or interrupted); ``interrupted`` -- stopped by Ctrl-C;
    * ``errors`` -- how many finished examples failed; ``total`` -- devset size;
      ``resumed`` -- how many results came from the results file.
    """

    def __init__(
        self,
        score: float,
        results: list[tuple[Example, Any, float]],
        *,
        partial: bool = False,
        interrupted: bool = False,
        errors: int = 0,
        total: int = 0,
        resumed: int = 0,
    ) -> None:
        super().__init__(score=score, results=results)
        self._partial = partial
        self._interrupted = interrupted
        self._errors = errors
        self._total = total
        self._resumed = resumed

    @property
    def score(self) -> float:
        """Percentage 0-100 over the finished examples."""
        return float(self._store["score"])

    @property
    def results(self) -> list[tuple[Example, Any, float]]:
        """``(example, prediction_or_error, score)`` per finished example, in devset order."""
        results: list[tuple[Example, Any, float]] = self._store["results"]
        return results

    @property
    def partial(self) -> bool:
        """Whether some examples did not finish."""
        return self._partial

    @property
    def interrupted(self) -> bool:
        """Whether Ctrl-C stopped the evaluation."""
        return self._interrupted

    @property
    def errors(self) -> int:
        """How many finished examples failed (scored ``failure_score``)."""
        return self._errors

    @property
    def total(self) -> int:
        """The devset size."""
        return self._total

    @property
    def resumed(self) -> int:
        """How many results were read back from the results file."""
        return self._resumed

    def __repr__(self) -> str:
        flags = " partial" if self.partial else ""
        flags += " interrupted" if self.interrupted else ""
        return (
            f"EvaluationResult(score={self.score}, results=<{len(self.results)} of "
            f"{self.total}>, errors={self.errors}{flags})"
        )


# ------------------------------------------------------------------------ progress


class _Progress:
    """A one-line progress display on a stream (stderr by default); caller's thread only.

    On a TTY the line is redrawn in place (``\\r``), at most every 0.1 s; on
    anything else (a log file, a pipe, pytest's capture) a full line is printed
    each time another ~10% finished, and at the end. Write errors are ignored.
    """

    def __init__(self, total: int, *, label: str = "Evaluate", stream: IO[str] | None = None):
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        try:
            self.tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self.tty = False
        self.started = time.monotonic()
        self._last_draw = 0.0
        self._next_pct = 10
        self._width = 0
        self._base = 0
        self._printed = -1

    def start(self, already: int) -> None:
        """Note ``already`` results that came from a results file (they add no rate)."""
        self._base = already

    def line(self, done: int, score_sum: float, errors: int) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = (done - self._base) / elapsed
        score = 100.0 * score_sum / done if done else 0.0
        return (
            f"{self.label}: {done}/{self.total}  score {score:.1f}%  {rate:.1f}/s  errors {errors}"
        )

    def update(self, done: int, score_sum: float, errors: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            if not final and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            text = self.line(done, score_sum, errors)
            pad = max(0, self._width - len(text))
            self._width = len(text)
            self._write("\r" + text + " " * pad + ("\n" if final else ""))
            return
        pct = 100 * done // self.total if self.total else 100
        if (final and done != self._printed) or pct >= self._next_pct:
            while self._next_pct <= pct:
                self._next_pct += 10
            self._printed = done
            self._write(self.line(done, score_sum, errors) + "\n")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass


# ---------------------------------------------------------------------- the file


@dataclass
class _Row:
    index: int
    example: Example
    outcome: Any  # Prediction or exception
    score: float
    error: bool


def _row_json(row: _Row, hash_: str) -> str:
    outcome = row.outcome
    record = {
        "index": row.index,
        "input_hash": hash_,
        "score": row.score,
        "prediction": None if row.error else json_safe(outcome.toDict()),
        "error": describe_error(outcome) if row.error else None,
        "example": json_safe(row.example.toDict()),
    }
    return json.dumps(record, ensure_ascii=False)


def _rewrite(path: Path, rows: Sequence[_Row], hashes: Sequence[str]) -> None:
    """Replace ``path`` with ``rows`` (temporary file + rename: never half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(_row_json(row, hashes[row.index]) + "\n")
    tmp.replace(path)


def _read_results(path: Path, devset: Sequence[Example], hashes: Sequence[str]) -> dict[int, _Row]:
    """Rows already in ``path`` (missing file: none). Raises :class:`ResultsFileError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ResultsFileError(f"cannot read results file {path}: {exc}") from exc
    rows: dict[int, _Row] = {}
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            index = record["index"]
            hash_ = record["input_hash"]
            score = float(record["score"])
            error = record.get("error")
            prediction = record.get("prediction")
            if not isinstance(index, int) or isinstance(index, bool):
                raise TypeError("index must be an int")
        except (ValueError, KeyError, TypeError) as exc:
            if number == len(lines) or all(not rest.strip() for rest in lines[number:]):
                break  # a last line cut short by a crash: that example did not finish
            raise ResultsFileError(f"{path}:{number}: not a results record ({exc})") from None
        if not 0 <= index < len(devset):
            raise ResultsFileError(
                f"{path}:{number}: example index {index} is outside this devset of "
                f"{len(devset)}: the file was written for a different devset"
            )
        if hash_ != hashes[index]:
            raise ResultsFileError(
                f"{path}:{number}: the inputs of devset[{index}] changed since the file "
                f"was written (hash {hash_} != {hashes[index]}): resume needs the same "
                f"devset, or a new results_path"
            )
        if error is not None:
            outcome: Any = RecordedError(str(error.get("type")), str(error.get("message")))
        else:
            outcome = Prediction(**(prediction or {}))
        rows[index] = _Row(index, devset[index], outcome, score, error is not None)
    return rows


# ------------------------------------------------------------------------ Evaluate


class Evaluate:
    """Evaluate a program on a devset with a metric (DSPy's ``dspy.Evaluate``).

    ``Evaluate(devset=..., metric=fn, max_concurrency=16, display_progress=True,
    max_errors=None, failure_score=0.0, results_path=None, timeout=None,
    system=None)``; ``evaluate(program)`` or ``evaluate(program, resume=True)``
    returns an :class:`EvaluationResult`.

    * ``metric(example, prediction)`` returns a bool or a number; it runs in the
      helper threads. An exception from the program or the metric fails that
      example (``failure_score``; the error is kept in ``results``).
    * ``max_errors``: stop once this many examples failed (``None``, the default:
      never stop for errors). What finished is returned with ``partial=True``.
    * ``results_path``: a JSONL file, one line per finished example, appended and
      flushed as each example completes (``{"index", "input_hash", "score",
      "prediction", "error", "example"}``). Without ``resume`` the file is started
      afresh; with ``resume=True`` examples already in it are not run again and
      their recorded results are used (an error comes back as
      :class:`RecordedError`); a file from another devset raises
      :class:`ResultsFileError` before anything runs.
    * ``timeout``: per-example request deadline (default: the system's).
    * Ctrl-C in the calling thread stops the requests in flight, joins the helper
      threads and returns the partial result (``interrupted=True``).

    Raises (before any request): ``ValueError`` for an empty devset, examples
    without inputs, ``max_concurrency < 1`` or ``resume`` without ``results_path``;
    :class:`ResultsFileError`; ``NoSystemError`` when no system runs.
    """

    def __init__(
        self,
        *,
        devset: Sequence[Example],
        metric: Metric,
        max_concurrency: int = 16,
        display_progress: bool = True,
        max_errors: int | None = None,
        failure_score: float = 0.0,
        results_path: str | Path | None = None,
        timeout: float | None = None,
        system: ActorSystem | None = None,
    ) -> None:
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise TypeError(f"max_concurrency must be an int, got {max_concurrency!r}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if max_errors is not None and max_errors < 1:
            raise ValueError(f"max_errors must be >= 1 or None, got {max_errors}")
        if not callable(metric):
            raise TypeError(f"metric must be callable, got {metric!r}")
        self.devset = check_examples(devset, "devset")
        self.metric = metric
        self.max_concurrency = max_concurrency
        self.display_progress = display_progress
        self.max_errors = max_errors
        self.failure_score = float(failure_score)
        self.results_path = Path(results_path) if results_path is not None else None
        self.timeout = timeout
        self.system = system
        self.progress_stream: IO[str] | None = None
        """Where the progress line goes (``None``: stderr); for tests and notebooks."""

    def __call__(self, program: Any, *, resume: bool = False) -> EvaluationResult:
        """Run ``program`` on every devset example and score it; see the class docstring."""
        devset = self.devset
        if not devset:
            raise ValueError("devset must contain at least one example")
        if resume and self.results_path is None:
            raise ValueError("resume=True needs a results_path to resume from")
        system = system_for(program, self.system)
        limit = request_timeout(system, self.timeout)
        hashes = [input_hash(example) for example in devset]
        rows: dict[int, _Row] = {}
        if resume and self.results_path is not None:
            rows = _read_results(self.results_path, devset, hashes)
        resumed = len(rows)
        todo = [index for index in range(len(devset)) if index not in rows]

        out: IO[str] | None = None
        if self.results_path is not None:
            self.results_path.parent.mkdir(parents=True, exist_ok=True)
            if resume:
                # Rewrite what was read (drops a line cut short by a crash), then append.
                _rewrite(self.results_path, [rows[i] for i in sorted(rows)], hashes)
            out = self.results_path.open("a" if resume else "w", encoding="utf-8")

        progress = (
            _Progress(len(devset), stream=self.progress_stream) if self.display_progress else None
        )
        score_sum = sum(row.score for row in rows.values())
        errors = sum(1 for row in rows.values() if row.error)
        if progress is not None:
            progress.start(len(rows))
            if rows:
                progress.update(len(rows), score_sum, errors)

        runner = _Runner(self, program, system, limit, devset, todo)
        ctrl_c = _CtrlC()
        stopped_early = False
        try:
            ctrl_c.install()
            runner.start()
            received = 0
            while received < len(todo) and not ctrl_c.pressed:
                try:
                    row = runner.done.get(timeout=_POLL)
                except queue.Empty:
                    if not runner.alive():
                        break  # every helper ended (cannot happen unless one died oddly)
                    continue
                received += 1
                rows[row.index] = row
                score_sum += row.score
                errors += row.error
                if out is not None:
                    out.write(_row_json(row, hashes[row.index]) + "\n")
                    out.flush()
                if progress is not None:
                    progress.update(len(rows), score_sum, errors)
                if self.max_errors is not None and errors >= self.max_errors:
                    stopped_early = received < len(todo)
                    break
        except KeyboardInterrupt:
            ctrl_c.pressed = True  # not the main thread, or a custom SIGINT handler
        finally:
            ctrl_c.uninstall()
            runner.stop()
            # Requests that finished while we were stopping are finished work: keep them.
            for row in runner.drain():
                if row.index in rows:
                    continue
                rows[row.index] = row
                score_sum += row.score
                errors += row.error
                if out is not None:
                    try:
                        out.write(_row_json(row, hashes[row.index]) + "\n")
                        out.flush()
                    except (OSError, ValueError):
                        pass
            if out is not None:
                out.close()
            if progress is not None:
                progress.update(len(rows), score_sum, errors, final=True)

        ordered = [rows[index] for index in sorted(rows)]
        finished = len(ordered)
        score = round(100.0 * score_sum / finished, 2) if finished else 0.0
        return EvaluationResult(
            score=score,
            results=[(row.example, row.outcome, row.score) for row in ordered],
            partial=finished < len(devset) or stopped_early or ctrl_c.pressed,
            interrupted=ctrl_c.pressed,
            errors=errors,
            total=len(devset),
            resumed=resumed,
        )


class _CtrlC:
    """Turns Ctrl-C into a flag while an evaluation collects results (main thread only).

    A ``KeyboardInterrupt`` raised at an arbitrary point could drop a result that
    was already taken off the queue; with the flag, the collecting loop stops at
    a clean point. Installed only when SIGINT has Python's default handler and
    this is the main thread; otherwise ``KeyboardInterrupt`` is caught as usual.
    The first Ctrl-C restores the default handler, so a second one interrupts.
    """

    def __init__(self) -> None:
        self.pressed = False
        self._installed = False

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return
        signal.signal(signal.SIGINT, self._handle)
        self._installed = True

    def _handle(self, signum: int, frame: object) -> None:
        self.pressed = True
        self.uninstall()

    def uninstall(self) -> None:
        if self._installed:
            self._installed = False
            signal.signal(signal.SIGINT, signal.default_int_handler)


class _Runner:
    """The helper threads of one evaluation, and the program actors they have in flight.

    Helpers take the next devset index, run the program in a program actor, apply
    the metric, and put a :class:`_Row` on ``done``. ``stop()`` (caller's thread)
    makes them take no more work, kills the program actors in flight and joins them.
    """

    def __init__(
        self,
        evaluate: Evaluate,
        program: Any,
        system: ActorSystem,
        timeout: float,
        devset: Sequence[Example],
        todo: Sequence[int],
    ) -> None:
        self.evaluate = evaluate
        self.program = program
        self.system = system
        self.timeout = timeout
        self.devset = devset
        self.todo = todo
        self.done: queue.SimpleQueue[_Row] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._next = 0
        self._stopping = False
        self._inflight: dict[int, pykka.ActorRef[Any]] = {}
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        count = min(self.evaluate.max_concurrency, len(self.todo))
        self._threads = [
            threading.Thread(target=self._work, name=f"dspex:eval-{n}", daemon=True)
            for n in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def _take(self) -> int | None:
        with self._lock:
            if self._stopping or self._next >= len(self.todo):
                return None
            index = self.todo[self._next]
            self._next += 1
            return index

    def _started(self, index: int, ref: pykka.ActorRef[Any]) -> None:
        with self._lock:
            if not self._stopping:
                self._inflight[index] = ref
                return
        cancel_program(ref)

    def _work(self) -> None:
        evaluate = self.evaluate
        while True:
            index = self._take()
            if index is None:
                return
            example = self.devset[index]
            try:
                prediction = run_tracked(
                    self.system,
                    self.program,
                    example_inputs(example),
                    timeout=self.timeout,
                    on_started=functools.partial(self._started, index),
                )
            except Exception as exc:
                with self._lock:
                    self._inflight.pop(index, None)
                    if self._stopping:
                        return  # stopped by us: not a result
                self.done.put(_Row(index, example, exc, evaluate.failure_score, True))
                continue
            with self._lock:
                self._inflight.pop(index, None)
            try:
                score = as_score(evaluate.metric(example, prediction))
            except Exception as exc:
                self.done.put(_Row(index, example, exc, evaluate.failure_score, True))
                continue
            self.done.put(_Row(index, example, prediction, score, False))

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._stopping = True
            inflight = list(self._inflight.values())
            self._inflight.clear()
        for ref in inflight:
            cancel_program(ref)
        grace = time.monotonic() + CANCEL_GRACE
        for thread in self._threads:
            while thread.is_alive() and time.monotonic() < grace:
                try:
                    thread.join(max(0.0, min(grace - time.monotonic(), _POLL)))
                except KeyboardInterrupt:
                    continue
        for ref in inflight:
            kill_program(ref)  # still running after the grace period (a no-op for the others)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            while thread.is_alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return  # a metric stuck in user code: the thread is a daemon
                try:
                    thread.join(min(remaining, _POLL))
                except KeyboardInterrupt:
                    continue  # a second Ctrl-C while stopping: keep stopping
        for ref in inflight:  # a program answers first, then ends: wait for the end
            ref.actor_stopped.wait(max(0.0, deadline - time.monotonic()))

    def drain(self) -> list[_Row]:
        rows: list[_Row] = []
        while True:
            try:
                rows.append(self.done.get_nowait())
            except queue.Empty:
                return rows
