"""``Evaluate``: score a program on a devset through program actors, losing nothing.

What it adds to DSPy's ``dspy.Evaluate`` (REFERENCE.md section 3):

* every example is one request in its own program actor, which runs the program
  and then the metric (``ScoredRun``: a metric's own LM calls go through that
  program actor), fanned out through the system's one engine (``system.fan_out``):
  at most ``max_concurrency`` in flight whatever the devset size, each with the
  request deadline;
* a failing example scores ``failure_score`` and keeps its error in
  ``result.results``; a metric's exception is logged with its traceback, once per
  type; reaching ``max_errors`` stops at that error and **returns** what was
  taken so far (``result.partial``, ``result.max_errors_reached``), as does
  Ctrl-C (``result.interrupted``); both kill the requests in flight and print
  a one-line notice;
* with ``results_path`` every finished example is appended to a JSONL file as it
  completes (``_results_file.py``), and ``evaluate(program, resume=True)`` skips
  the examples already there;
* a tqdm progress bar on stderr (count, rate, running score, errors), on by default.

Threading: ``Evaluate.__call__`` runs in the calling thread, which starts the
requests, collects their results, writes the file and draws the progress bar;
no other thread is started. An ``Evaluate`` object holds only configuration and
may be shared by threads.
"""

from __future__ import annotations

import itertools
import math
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import supervisors as sv
from dspex_actors.optimize._async import evaluate_async
from dspex_actors.optimize._backend import LOCAL, Backend, Stream
from dspex_actors.optimize._examples import check_examples, example_inputs, input_hash
from dspex_actors.optimize._jsonable import RecordedError
from dspex_actors.optimize._progress import Progress, notice
from dspex_actors.optimize._results_file import ResultsFileError, ResultsWriter, Row, read_results
from dspex_actors.optimize._scoring import Metric, Scored, ScoredRun, module_label
from dspex_actors.primitives import EventBus, Example, Prediction, logger, telemetry
from dspex_actors.runtime import call_result

if TYPE_CHECKING:
    from dspex_actors.runtime import ActorSystem

__all__ = [
    "Evaluate",
    "EvaluationResult",
    "RecordedError",
    "ResultsFileError",
    "input_hash",
]

_POLL = 0.1
"""Seconds the collecting thread waits at most between checks (Ctrl-C stays prompt)."""


def system_for(program: Any, system: ActorSystem | None = None) -> ActorSystem:
    """The system a program runs in: ``system``, else ``program.system``, else the current one."""
    if system is not None:
        return system
    own = getattr(program, "system", None)
    if own is not None:
        return own  # type: ignore[no-any-return]
    from dspex_actors.runtime import current_system

    return current_system()


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
      ``max_errors_reached`` -- stopped because ``max_errors`` examples failed;
    * ``errors`` -- how many finished examples failed; ``metric_errors`` -- how
      many of those failed in the metric (the program answered); ``total`` --
      devset size; ``resumed`` -- how many results came from the results file.
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
        metric_errors: int = 0,
        max_errors_reached: bool = False,
    ) -> None:
        super().__init__(score=score, results=results)
        self._partial = partial
        self._interrupted = interrupted
        self._errors = errors
        self._total = total
        self._resumed = resumed
        self._metric_errors = metric_errors
        self._max_errors_reached = max_errors_reached

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
    def max_errors_reached(self) -> bool:
        """Whether the evaluation stopped because ``max_errors`` examples failed."""
        return self._max_errors_reached

    @property
    def errors(self) -> int:
        """How many finished examples failed (scored ``failure_score``)."""
        return self._errors

    @property
    def metric_errors(self) -> int:
        """How many of :attr:`errors` were the metric's (it raised, or returned no number)."""
        return self._metric_errors

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
        flags += " max_errors_reached" if self.max_errors_reached else ""
        metric = f", metric_errors={self.metric_errors}" if self.metric_errors else ""
        return (
            f"EvaluationResult(score={self.score}, results=<{len(self.results)} of "
            f"{self.total}>, errors={self.errors}{metric}{flags})"
        )


# ------------------------------------------------------------------------ Evaluate


_run_ids = itertools.count(1)


def _publish_row(tally: _Tally, row: Row) -> None:
    """``("evaluate", "example")`` and ``("evaluate", "progress")`` for a finished row."""
    done = len(tally.rows)
    telemetry.publish_from(
        tally.bus,
        ("evaluate", "example"),
        lambda: {
            "run": tally.run_id,
            "program": tally.label,
            "index": row.index,
            "score": row.score,
            "error": row.error,
        },
    )
    telemetry.publish_from(
        tally.bus,
        ("evaluate", "progress"),
        lambda: {
            "run": tally.run_id,
            "program": tally.label,
            "done": done,
            "total": tally.total,
            "score": round(100.0 * tally.score_sum / done, 2) if done else 0.0,
            "errors": tally.errors,
        },
    )


@dataclass
class _Tally:
    """An evaluation run so far (the calling thread): rows by devset index, sums, output."""

    rows: dict[int, Row]
    label: str  # the program, as logs and notices name it
    writer: ResultsWriter | None = None
    progress: Progress | None = None
    score_sum: float = 0.0
    errors: int = 0
    metric_errors: int = 0
    run_errors: int = 0  # errors of this run's requests (what max_errors counts)
    interrupted: bool = False
    stopped: bool = False  # max_errors reached
    resumed: int = field(init=False)
    logged: set[str] = field(default_factory=set)  # metric error types already logged
    bus: EventBus | None = None  # the system's event bus: ("evaluate", ...) events
    total: int = 0  # examples in the devset
    run_id: str = field(default_factory=lambda: f"eval-{next(_run_ids)}")

    def __post_init__(self) -> None:
        self.resumed = len(self.rows)
        self.score_sum = sum(row.score for row in self.rows.values())
        self.errors = sum(1 for row in self.rows.values() if row.error)
        self.metric_errors = sum(1 for row in self.rows.values() if row.metric_error)

    def add(self, row: Row, *, stopping: bool = False) -> None:
        """Keep a finished row: in the results, the file and the progress display."""
        if row.index in self.rows:
            return
        self.rows[row.index] = row
        self.score_sum += row.score
        self.errors += row.error
        self.run_errors += row.error
        self.metric_errors += row.metric_error
        if row.metric_error:
            self._log_metric_error(row)
        if self.writer is not None:
            self.writer.write(row, quiet=stopping)
        if self.progress is not None and not stopping:
            self.progress.update(len(self.rows), self.postfix())
        if self.bus is not None:
            _publish_row(self, row)

    def postfix(self) -> str:
        done = len(self.rows)
        score = 100.0 * self.score_sum / done if done else 0.0
        return f"score {score:.1f}%, errors {self.errors}"

    def _log_metric_error(self, row: Row) -> None:
        """Log a metric's exception with its traceback, once per exception type and run."""
        error = row.outcome
        kind = f"{type(error).__module__}.{type(error).__qualname__}"
        if kind in self.logged:
            return
        self.logged.add(kind)
        logger.warning(
            "evaluate.metric_error",
            program=self.label,
            example=row.index,
            error=f"{type(error).__name__}: {error}",
            note="the metric raised; the example scores failure_score (logged once per type)",
            exc_info=error,
        )

    def close(self) -> None:
        """Close the file and the progress display (idempotent)."""
        if self.writer is not None:
            self.writer.close()
        if self.progress is not None:
            self.progress.update(len(self.rows), self.postfix())
            self.progress.close()


class Evaluate:
    """Evaluate a program on a devset with a metric (DSPy's ``dspy.Evaluate``).

    ``Evaluate(devset=..., metric=fn, max_concurrency=16, display_progress=True,
    max_errors=None, failure_score=0.0, results_path=None, timeout=None,
    system=None)``; ``evaluate(program)`` or ``evaluate(program, resume=True)``
    returns an :class:`EvaluationResult`.

    * ``metric(example, prediction)`` returns a bool or a number; it runs in the
      example's program actor, right after the program (so an LM it calls runs
      in that request). An exception from the program or the metric fails that
      example (``failure_score``; the error is kept in ``results``); a metric's
      exception is also logged (``evaluate.metric_error``, with its traceback,
      once per exception type) and counted in ``result.metric_errors``.
    * ``max_errors``: stop once this many examples of this run failed (``None``,
      the default: never stop for errors; errors read back by ``resume`` do not
      count). The result holds the examples taken up to that error
      (``partial=True``, ``max_errors_reached=True``), and a notice line says so.
    * ``results_path``: a JSONL file, one line per finished example, appended and
      flushed as each example completes (``{"index", "input_hash", "score",
      "prediction", "error", "example"}``). Without ``resume`` the file is started
      afresh; with ``resume=True`` examples already in it are not run again and
      their recorded results are used (an error comes back as
      :class:`RecordedError`); a file from another devset, or a corrupt one,
      raises :class:`ResultsFileError` (naming the line) before anything runs.
    * ``display_progress``: a tqdm progress bar on stderr (a line every ~10% when
      stderr is not a terminal); ``progress_stream`` sends it elsewhere.
    * ``timeout``: per-example request deadline (default: the system's).
    * Ctrl-C in the calling thread kills the requests in flight and returns the
      partial result (``interrupted=True``); results that finished meanwhile are
      kept, and a notice line says how many and where the results file is.

    Raises (before any request): ``ValueError`` for an empty devset, examples
    without inputs, ``max_concurrency < 1``, a non-finite ``failure_score`` or
    ``resume`` without ``results_path``; :class:`ResultsFileError`;
    ``NoSystemError`` when no system runs.
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
        backend: Backend | None = None,
    ) -> None:
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise TypeError(f"max_concurrency must be an int, got {max_concurrency!r}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if max_errors is not None and max_errors < 1:
            raise ValueError(f"max_errors must be >= 1 or None, got {max_errors}")
        if not callable(metric):
            raise TypeError(f"metric must be callable, got {metric!r}")
        if not math.isfinite(float(failure_score)):
            raise ValueError(f"failure_score must be a finite number, got {failure_score!r}")
        self.devset = check_examples(devset, "devset")
        self.metric = metric
        self.max_concurrency = max_concurrency
        self.display_progress = display_progress
        self.max_errors = max_errors
        self.failure_score = float(failure_score)
        self.results_path = Path(results_path) if results_path is not None else None
        self.timeout = timeout
        self.system = system
        self.backend = backend
        self.progress_stream: IO[str] | None = None
        """Where the progress display and notices go (``None``: stderr); tests, notebooks."""

    def __call__(self, program: Any, *, resume: bool = False) -> EvaluationResult:
        """Run ``program`` on every devset example and score it; see the class docstring."""
        if not self.devset:
            raise ValueError("devset must contain at least one example")
        if resume and self.results_path is None:
            raise ValueError("resume=True needs a results_path to resume from")
        system = system_for(program, self.system)
        limit = system.request_timeout(self.timeout)
        backend = self.backend if self.backend is not None else LOCAL
        backend.check(program, self.metric)
        tally = self._start(program, resume)
        tally.bus, tally.total = system.events, len(self.devset)
        todo = [index for index in range(len(self.devset)) if index not in tally.rows]
        try:
            requests = backend.fan_out(
                system,
                todo,
                lambda index: self._call(program, index),
                max_concurrency=self.max_concurrency,
                timeout=limit,
                ordered=False,
            )
        except BaseException:  # the system is shut down
            tally.close()
            raise
        ctrl_c = _CtrlC()
        try:
            ctrl_c.install()
            self._collect(requests, tally, ctrl_c, limit)
        except KeyboardInterrupt:
            ctrl_c.pressed = True  # not the main thread, or a custom SIGINT handler
        finally:
            ctrl_c.uninstall()
            tally.interrupted = ctrl_c.pressed
            self._stop(requests, tally, limit)
        self._notice(tally)
        return self._result(tally)

    async def acall(self, program: Any, *, resume: bool = False) -> EvaluationResult:
        """:meth:`__call__` for asyncio: the same evaluation, awaited; the loop never blocks.

        Results are taken on the loop as program actors answer (no thread waits);
        cancelling the awaiting task kills the requests in flight, keeps what
        finished in the results file, and raises ``CancelledError``.
        """
        if not self.devset:
            raise ValueError("devset must contain at least one example")
        if resume and self.results_path is None:
            raise ValueError("resume=True needs a results_path to resume from")
        system = system_for(program, self.system)
        result: EvaluationResult = await evaluate_async(self, program, resume, system)
        return result

    # ------------------------------------------------------------ the phases

    def _start(self, program: Any, resume: bool) -> _Tally:
        """Setup: read what a results file already has, open it, start the progress display."""
        devset, path = self.devset, self.results_path
        hashes = [input_hash(example) for example in devset]
        rows: dict[int, Row] = {}
        if resume and path is not None:
            rows = read_results(path, devset, hashes)
        tally = _Tally(rows, module_label(program))
        if path is not None:
            done = [rows[i] for i in sorted(rows)]
            tally.writer = ResultsWriter(path, hashes, resume=resume, rows=done)
        if self.display_progress:
            tally.progress = Progress(
                len(devset), label="Evaluate", stream=self.progress_stream, initial=len(rows)
            )
            tally.progress.update(len(rows), tally.postfix())
        return tally

    def _call(self, program: Any, index: int) -> tuple[ScoredRun, dict[str, Any]]:
        """Example ``index`` as a program call: the program and the metric, one request."""
        example = self.devset[index]
        return ScoredRun(program, self.metric, example), example_inputs(example)

    def _collect(self, requests: Stream[int], tally: _Tally, ctrl_c: _CtrlC, limit: float) -> None:
        """Running: keep each finished example until all are done, max_errors, or Ctrl-C."""
        while not ctrl_c.pressed:
            settled = requests.get(timeout=_POLL)
            if settled is None:
                if requests.exhausted:
                    return
                continue
            tally.add(self._row(settled, limit))
            if self.max_errors is not None and tally.run_errors >= self.max_errors:
                tally.stopped = True
                return

    def _row(self, settled: sv.Settled[int], limit: float) -> Row:
        index = settled.item
        example = self.devset[index]
        result = call_result(settled.outcome, limit)
        if isinstance(result, Scored):
            if result.error is None and result.score is not None:
                return Row(index, example, result.prediction, result.score, False)
            if result.error is not None:
                return Row(index, example, result.error, self.failure_score, True, True)
        error = result
        if not isinstance(error, BaseException):
            error = TypeError(f"the evaluation request answered {result!r}")
        return Row(index, example, error, self.failure_score, True)

    def _stop(self, requests: Stream[int], tally: _Tally, limit: float) -> None:
        """Teardown: kill what still runs, close the file and the progress display.

        After Ctrl-C, results that finished meanwhile are kept; after
        ``max_errors`` they are not (the evaluation stopped at that error).
        """
        try:
            finished = requests.cancel()
            if not tally.stopped:
                for settled in finished:
                    tally.add(self._row(settled, limit), stopping=True)
            requests.close()
        finally:
            tally.close()

    def _notice(self, tally: _Tally) -> None:
        """One line on stderr when the evaluation did not run to the end."""
        kept = f"kept {len(tally.rows)} of {len(self.devset)} examples"
        if self.results_path is not None:
            kept += f"; results in {self.results_path} (resume=True runs the rest)"
        if tally.interrupted:
            notice(f"Evaluate interrupted (Ctrl-C): {kept}", self.progress_stream)
        elif tally.stopped:
            notice(
                f"Evaluate stopped at max_errors={self.max_errors}: {tally.run_errors} "
                f"examples failed; {kept}",
                self.progress_stream,
            )

    def _result(self, tally: _Tally) -> EvaluationResult:
        ordered = [tally.rows[index] for index in sorted(tally.rows)]
        finished = len(ordered)
        score = round(100.0 * tally.score_sum / finished, 2) if finished else 0.0
        total = len(self.devset)
        return EvaluationResult(
            score=score,
            results=[(row.example, row.outcome, row.score) for row in ordered],
            partial=finished < total or tally.interrupted,
            interrupted=tally.interrupted,
            errors=tally.errors,
            total=total,
            resumed=tally.resumed,
            metric_errors=tally.metric_errors,
            max_errors_reached=tally.stopped,
        )


class _CtrlC:
    """Turns Ctrl-C into a flag while an evaluation collects results (main thread only).

    A ``KeyboardInterrupt`` raised at an arbitrary point could drop a result that
    was already taken from the fan-out, or write it to the file and not to the
    results; with the flag, the collecting loop stops at a clean point. Installed
    only when SIGINT has Python's default handler and this is the main thread;
    otherwise ``KeyboardInterrupt`` is caught as usual. The first Ctrl-C restores
    the default handler, so a second one interrupts.
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
