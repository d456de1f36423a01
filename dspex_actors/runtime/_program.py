"""Per-request program actors and their I/O worker actors (blueprint 3, corrected design).

A call of a module from outside the actor system starts a :class:`ProgramActor`
(a temporary child of the ``programs`` dynamic supervisor) and waits for its
answer, bounded by the request deadline. The program actor runs the module's
whole ``forward`` in its own thread. For each LM call it:

1. formats the prompt with the adapter and builds the HTTP request plan;
2. looks the prompt up in the cache through the cache actor's view (a lock, no
   ask; a miss, a dead or a slow cache all mean "miss");
3. asks the LM's admission, which the LM client owns and publishes, whether the
   attempt may go (rate limit and circuit breaker decide; a lock, no ask);
4. spawns an :class:`IOWorker`, monitors it, and waits (selective receive) for
   either the completion, sent straight to it by the worker, or a ``Down``
   carrying the worker's crash reason (the worker records the outcome in the
   admission itself);
5. on ``Down`` applies its :class:`RetryPolicy` (backoff with jitter,
   Retry-After honoured, overall deadline) and spawns a new worker;
6. parses the completion, stores it in the cache, and returns the prediction.

When the program actor ends, for any reason, no worker of its own outlives it.
Per-request events log at DEBUG; a request that gives up on a retryable error
logs ``request.retries_exhausted`` at WARNING.
"""

from __future__ import annotations

import collections
import datetime
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pykka

import supervisors as sv
from dspex_actors.adapters import ChatAdapter
from dspex_actors.cache import CacheGet, CachePut, cache_key, view_of
from dspex_actors.lm import (
    LM,
    RESTART_POLL,
    AdmissionTable,
    AttemptAbort,
    Completion,
    Outcome,
    Permit,
    Planned,
    PlanRequest,
    Refused,
    RequestPlan,
    RetryPolicy,
    Wait,
    build_plan,
    execute_plan,
    stream_plan,
)
from dspex_actors.primitives import (
    AdapterParseError,
    DeadlineExceeded,
    EventBus,
    LMBadRequest,
    LMConnectionError,
    LMError,
    Prediction,
    logger,
)
from dspex_actors.primitives import telemetry as _tm
from dspex_actors.runtime._lm_status import unavailable
from dspex_actors.runtime._messages import Cancel, Completed, Failed, Perform, Run
from dspex_actors.runtime._stream import (
    CREDITS,
    StreamChunk,
    StreamSink,
    StreamWorker,
    json_path,
)

if TYPE_CHECKING:
    import requests

__all__ = ["IOWorker", "ProgramActor", "Runtime", "current_program"]

CACHE_TIMEOUT = 0.25
"""Seconds a program waits for the cache before treating the lookup as a miss."""

PLAN_TIMEOUT = 5.0
"""Seconds a program waits for an LM client's plan before counting it as a failure
(only without an admission table, when plans are asked for)."""

_call_ids = itertools.count(1)
_local = threading.local()


@dataclass(frozen=True)
class Runtime:
    """What a program actor needs to know about its system (immutable, shared).

    ``admissions`` is the table where LM clients publish their admission; without
    it (``None``) programs ask the LM client for a plan per attempt instead.
    """

    system_name: str
    lms: Mapping[str, LM]
    lm_names: Mapping[str, str]  # lm name -> registered actor name
    cache_name: str | None
    retry: RetryPolicy
    default_lm: str = "default"
    adapter: ChatAdapter = field(default_factory=ChatAdapter)
    admissions: AdmissionTable | None = None
    history: collections.deque[dict[str, Any]] | None = None
    """The system's bounded history of LM calls (``system.history()``), or ``None``."""
    events: EventBus | None = None
    """The system's event bus (telemetry spans are published there), or ``None``."""
    program_spec: sv.ChildSpec = field(init=False, repr=False, compare=False)
    """The child spec of every program actor of this runtime (the request itself
    travels in the :class:`Run` message), built once instead of per request."""

    def __post_init__(self) -> None:
        spec = sv.ChildSpec(
            id="program",
            start=ProgramActor.start,
            args=(self,),
            restart="temporary",
            shutdown=1.0,
        )
        object.__setattr__(self, "program_spec", spec)


def current_program() -> ProgramActor | None:
    """The program actor whose ``forward`` is running in this thread, if any."""
    program: ProgramActor | None = getattr(_local, "program", None)
    return program


class Cancelled(DeadlineExceeded):
    """The caller gave up on the request (it timed out or was interrupted)."""


Report = Callable[[Outcome], None]
"""Where an I/O worker records its attempt's outcome (an admission's ``record``)."""


@dataclass(frozen=True, slots=True)
class _Admitted:
    """An attempt that may go: the plan, the LM's connection pool, where to report,
    and the bulkhead slot it holds (released by the worker's report or, if the worker
    never reports, when the program stops waiting for it)."""

    plan: RequestPlan
    session: requests.Session
    report: Report
    permit: Permit | None = None


def _releasing(permit: Permit, report: Report) -> Report:
    """``report``, giving the bulkhead slot back first (the attempt's I/O is over)."""

    def release_and_report(outcome: Outcome) -> None:
        permit.release()
        report(outcome)

    return release_and_report


def _tell_outcome(client: sv.NamedRef) -> Report:
    """A :data:`Report` that tells the LM client (the path without an admission table)."""

    def report(outcome: Outcome) -> None:
        try:
            client.tell(outcome)
        except pykka.ActorDeadError:
            pass  # the client is restarting: this one outcome goes uncounted

    return report


# --------------------------------------------------------------------------- worker


class IOWorker(sv.Actor):
    """Runs one HTTP request for one program actor, then exits.

    On success it records the :class:`Outcome` (``report``: the LM's admission, called
    in this thread) and sends :class:`Completed` straight to the program. On failure
    it records the outcome and then *crashes* with the typed :class:`LMError`: the
    program receives the crash as a ``Down`` message. Its crashes are expected, so
    they are not logged as ``actor_crashed``; the program logs ``worker_crashed``.
    """

    log_crashes = False
    reuse_threads = True
    register_in_pykka = False

    def __init__(
        self,
        plan: Any,
        session: requests.Session,
        program: pykka.ActorRef[Any],
        report: Report,
        call_id: int,
    ) -> None:
        super().__init__()
        self._plan = plan
        self._session = session
        self._program = program
        self._report = report
        self._call_id = call_id
        #: Lets the program end the attempt from its own thread (cancel, deadline).
        self.abort = AttemptAbort()
        self._span = _tm.worker_context()  # made in the program's thread: its span

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, Perform):
            return None
        started = time.monotonic()
        span = _tm.lm_start(self._span, self._plan)
        try:
            completion = execute_plan(self._session, self._plan, self.abort)
        except LMError as exc:
            self._report(Outcome(ok=False, latency_s=time.monotonic() - started, error=exc))
            _tm.lm_end(span, error=exc)
            raise
        # Bookkeeping first, the program's wake-up last: under the GIL, whatever this
        # thread does after waking the program delays the program. So the worker
        # ends first (no ExitSignal, no Down: the program needs only the result)
        # and hands over the completion as its very last act.
        self._report(Outcome(ok=True, latency_s=completion.latency_s, usage=completion.usage))
        _tm.lm_end(span, completion)
        self.unlink(self._program)
        self.drop_monitors_of(self._program)
        program, done = self._program, Completed(self._call_id, completion)

        def hand_over() -> None:
            try:
                program.tell(done)
            except pykka.ActorDeadError:
                pass  # the program gave up (deadline, cancel) meanwhile

        self.exit_then(hand_over)
        return None

    def on_kill(self) -> None:
        """Killed (the program's deadline or cancel, or the program itself killed, by
        link): close the connection now, so the abandoned thread's read returns."""
        self.abort.abort()

    def describe(self) -> str | None:
        return f"POST {self._plan.model}"


# -------------------------------------------------------------------------- program


class ProgramActor(sv.Actor):
    """Runs one module call (a whole ``forward``) and owns its I/O workers.

    Started by the caller as a temporary child of ``programs``; handles one
    :class:`Run` ask, stops, and answers it once stopped (``reply_and_exit``) with
    the prediction (or a :class:`Failed` wrapper for an expected ``LMError``). A bug
    in user code (any other exception) crashes it, OTP-style: the caller gets that
    exception.

    ``trap_exits`` is on because it links its workers (so a killed program takes
    them down); it learns of their crashes through monitors.
    """

    trap_exits = True
    reuse_threads = True
    register_in_pykka = False

    @staticmethod
    def _create_future() -> sv.FutureReply:
        """pykka's hook: asks of a program actor answer into a ``concurrent.futures.Future``,
        which asyncio awaits without a thread (``runtime/_async.py``)."""
        return sv.FutureReply()

    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self.runtime = runtime
        self.module: Any = None  # the request arrives with the Run message
        self.inputs: dict[str, Any] = {}
        self.deadline = 0.0  # the request's, from its Run (already queued at start)
        self.attempts = 0
        self.lm_calls = 0
        self.cache_hits = 0
        self.tokens = 0
        self.usage: dict[str, dict[str, int]] = {}  # model -> token counts of this request
        self._workers: dict[str, sv.Actor] = {}
        self._rng: random.Random | None = None  # made on the first retry (seeding costs)
        self._status = "starting"
        self.stream: StreamSink | None = None  # set by a streaming Run
        self.span_parent: Any = None  # the caller's span (telemetry), from the Run

    # ------------------------------------------------------------------ running

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Run):
            self.module, self.inputs, self.deadline = (
                message.module,
                message.inputs,
                message.deadline,
            )
            self.stream = message.stream
            self.span_parent = message.span
            return self._run()
        if isinstance(message, sv.ExitSignal) and message.actor.actor_urn == self.parent_urn:
            self.exit(message.reason)  # our supervisor is gone: nothing runs unowned
        return None  # exits of our own workers, stray messages: nothing to do

    def _run(self) -> Any:
        started = time.monotonic()
        label = _module_label(self.module)
        debug = logger.is_enabled_for(logging.DEBUG)  # the default INFO drops both events
        if debug:
            logger.debug("request.start", program=label)
        _local.program = self
        span = _tm.program_start(self, label)
        outcome: Any
        try:
            outcome = self.module.forward(**self.inputs)
            status = "ok"
            if isinstance(outcome, Prediction):
                outcome.set_lm_usage({model: dict(u) for model, u in self.usage.items()})
        except LMError as exc:
            outcome = Failed(exc)
            status = type(exc).__name__
        except BaseException as exc:
            _tm.program_end(span, self, exc)
            raise
        finally:
            _local.program = None
        _tm.program_end(span, self, outcome)
        if debug:
            logger.debug(
                "request.stop",
                program=label,
                status=status,
                duration_ms=round((time.monotonic() - started) * 1000, 3),
                lm_calls=self.lm_calls,
                attempts=self.attempts,
                cache_hits=self.cache_hits,
                tokens=self.tokens,
            )
        # Stop, and answer once gone: the caller wakes when this thread has nothing
        # left to do, instead of competing with its teardown for the GIL.
        self.reply_and_exit(outcome)

    def on_stop(self) -> None:
        self._kill_workers("shutdown")

    def on_failure(self, *_exc_info: Any) -> None:
        self._kill_workers("shutdown")

    def _kill_workers(self, reason: str) -> None:
        for worker in list(self._workers.values()):
            self._end_worker(worker, reason)

    def _end_worker(self, worker: sv.Actor, reason: str) -> None:
        """Close the worker's connection now (its thread may be blocked reading) and
        kill it; the request's own outcome is logged, not the worker's end."""
        if isinstance(worker, IOWorker):
            worker.abort.abort()
        sv.kill(worker, reason, quiet=True)
        self._workers.pop(worker.actor_urn, None)

    def describe(self) -> str | None:
        if self.module is None:
            return "starting"
        label = _module_label(self.module)
        n = len(self._workers)
        if n:
            return f"{label}  waiting on {n} worker{'s' if n != 1 else ''}"
        return f"{label}  {self._status}"

    # --------------------------------------------------------------- LM calls

    def remaining(self) -> float:
        """Seconds left before this request's deadline."""
        return self.deadline - time.monotonic()

    def lm_call(self, predictor: Any, inputs: dict[str, Any]) -> Prediction:
        """One predictor call: format, cache, plan, worker, retry, parse. Actor thread only."""
        runtime = self.runtime
        lm_name = predictor.lm or runtime.default_lm
        lm = runtime.lms.get(lm_name)
        if lm is None:
            raise LMBadRequest(f"no LM named {lm_name!r}; configured: {sorted(runtime.lms)}")
        signature = predictor.signature
        adapter = predictor.adapter or runtime.adapter
        demos = list(predictor.demos)
        support = lm.response_format_support
        overrides = {**adapter.request_overrides(signature, support), **predictor.config}
        messages = adapter.format(signature, demos, inputs)
        self.lm_calls += 1
        stream = self.stream
        try:
            if stream is not None:
                stream.begin(predictor, json_path(adapter))
            completion, key = self._complete(lm_name, lm, messages, overrides)
            parsed = adapter.parse(signature, completion.text)
        except AdapterParseError as first:
            # DSPy's fallback: one more call asking for JSON (unless the adapter
            # already is the JSON one or its fallback is off).
            json_adapter = adapter.fallback()
            if json_adapter is None:
                first.attempts = self.attempts
                raise
            messages = json_adapter.format(signature, demos, inputs)
            overrides = {**json_adapter.request_overrides(signature, support), **predictor.config}
            if stream is not None:
                stream.begin(predictor, json_path(json_adapter))
            try:
                completion, key = self._complete(lm_name, lm, messages, overrides)
                parsed = json_adapter.parse(signature, completion.text)
            except AdapterParseError as second:
                second.attempts = self.attempts
                raise second from first
        if stream is not None:
            stream.end()
        if key is not None:  # fresh from the LM and parsed: worth keeping
            self.tokens += int(completion.usage.get("total_tokens", 0) or 0)
            self._cache_put(key, completion)
        return Prediction(**parsed)

    def _key(self, lm: LM, messages: list[dict[str, Any]], overrides: dict[str, Any]) -> str:
        return cache_key(lm.wire_model, messages, lm.request_params(**overrides), lm.cache_endpoint)

    def _cache_ref(self) -> pykka.ActorRef[Any] | None:
        name = self.runtime.cache_name
        return sv.whereis(name) if name is not None else None

    def _cache_get(self, key: str) -> Any:
        ref = self._cache_ref()
        if ref is None:
            return None
        timeout = min(CACHE_TIMEOUT, max(self.remaining(), 0.001))
        view = view_of(ref)
        if view is not None:
            return view.get(key, timeout)
        try:  # the actor is still starting: ask it (its answer waits for on_start)
            return sv.ask(ref, CacheGet(key), timeout)
        except Exception as exc:
            logger.debug("cache.miss_on_error", error=repr(exc))
            return None

    def _cache_put(self, key: str, completion: Completion) -> None:
        ref = self._cache_ref()
        if ref is None:
            return
        value = completion.to_dict()
        view = view_of(ref)
        if view is not None and view.put(key, value):
            return
        try:  # a file-backed store writes on the actor's thread (or it is still starting)
            ref.tell(CachePut(key, value))
        except pykka.ActorDeadError:
            pass

    def _complete(
        self, lm_name: str, lm: LM, messages: list[dict[str, Any]], overrides: dict[str, Any]
    ) -> tuple[Completion, str | None]:
        """The completion for ``messages`` and its cache key if it came from the LM
        (``None`` for a cache hit or when there is no cache: nothing to store)."""
        if self.runtime.cache_name is None:
            completion = self._request(lm_name, lm, messages, overrides)
            self._note_call(lm, messages, completion, cache_hit=False)
            return completion, None
        key = self._key(lm, messages, overrides)
        cached = self._cache_get(key)
        _tm.cache_lookup(lm_name, lm, cached)
        if cached is not None:
            try:
                completion = Completion.from_dict(cached)
            except (KeyError, TypeError, ValueError):
                logger.warning("cache.bad_entry", key=key[:16])
            else:
                self.cache_hits += 1
                self._note_call(lm, messages, completion, cache_hit=True)
                return completion, None
        completion = self._request(lm_name, lm, messages, overrides)
        self._note_call(lm, messages, completion, cache_hit=False)
        return completion, key

    def _note_call(
        self, lm: LM, messages: list[dict[str, Any]], completion: Completion, *, cache_hit: bool
    ) -> None:
        """Count this call's tokens for ``get_lm_usage()`` and add it to the system's history."""
        usage = {} if cache_hit else dict(completion.usage)
        if usage:
            mine = self.usage.setdefault(lm.model, {})
            for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
                value = usage.get(name)
                if isinstance(value, int) and not isinstance(value, bool):
                    mine[name] = mine.get(name, 0) + value
        history = self.runtime.history
        if history is not None:
            history.append(
                {
                    "timestamp": datetime.datetime.now().isoformat(),
                    "model": lm.model,
                    "messages": messages,
                    "outputs": [completion.text],
                    "usage": usage,
                    "latency_ms": round(completion.latency_s * 1000, 3),
                    "cache_hit": cache_hit,
                }
            )

    def _request(
        self, lm_name: str, lm: LM, messages: list[dict[str, Any]], overrides: dict[str, Any]
    ) -> Completion:
        try:
            plan = build_plan(lm, messages, **overrides)
        except (ValueError, TypeError) as exc:
            self.attempts += 1
            raise LMBadRequest(f"bad request parameters: {exc}", attempts=1) from None
        started = time.monotonic()
        attempt = 0
        while True:
            remaining = self.remaining()
            if remaining <= 0:
                raise DeadlineExceeded(
                    f"request deadline passed after {attempt} attempt(s)", attempts=max(attempt, 1)
                )
            go = self._admit(lm_name, plan, messages, overrides, remaining)
            if isinstance(go, Wait):
                if go.seconds >= self.remaining():
                    raise DeadlineExceeded(
                        "rate limit wait would pass the deadline", attempts=max(attempt, 1)
                    )
                self._status = f"rate limited, waiting {go.seconds:.3f}s"
                self._pause(go.seconds)
                continue
            attempt += 1
            self.attempts += 1
            _tm.note_attempt(lm_name, lm, attempt)
            if isinstance(go, Refused):
                go.error.attempts = attempt
                raise go.error
            error = self._attempt(go)
            if isinstance(error, Completion):
                return error
            error.attempts = attempt
            delay = self._retry_delay(lm_name, attempt, error, time.monotonic() - started)
            self._status = f"retrying in {delay:.3f}s after {type(error).__name__}"
            self._pause(delay)

    def _retry_delay(self, lm_name: str, attempt: int, error: LMError, elapsed: float) -> float:
        """The wait before the next attempt; raises ``error`` when the request gives up."""
        if self._rng is None:
            self._rng = random.Random()
        delay = self.runtime.retry.next_delay(attempt, error, elapsed, self._rng)
        if delay is None or delay >= self.remaining():
            if error.retryable:
                logger.warning(
                    "request.retries_exhausted",
                    lm=lm_name,
                    attempts=attempt,
                    error=type(error).__name__,
                    program=_module_label(self.module),
                )
            raise error
        logger.debug(
            "request.retry",
            lm=lm_name,
            attempt=attempt,
            error=type(error).__name__,
            delay_s=round(delay, 4),
        )
        _tm.retry(lm_name, attempt, error, delay)
        return delay

    def _admit(
        self,
        lm_name: str,
        plan: RequestPlan,
        messages: list[dict[str, Any]],
        overrides: dict[str, Any],
        remaining: float,
    ) -> _Admitted | Wait | Refused:
        """Whether an attempt may go now, from the LM's admission (no ask)."""
        table = self.runtime.admissions
        if table is None:
            return self._ask_plan(lm_name, messages, overrides, remaining)
        admission = table.get(lm_name)
        if admission is None or admission.closed:  # starting (wait), or down (fail fast)
            return unavailable(
                lm_name, self.runtime.lms[lm_name], self.runtime.lm_names[lm_name], remaining
            )
        try:
            permit = admission.bulkhead.acquire(remaining)
        except LMError as exc:  # LMQueueFull / LMQueueTimeout / DeadlineExceeded: no I/O
            return Refused(exc)
        verdict = admission.admit()
        if verdict is not None:
            permit.release()
            return verdict
        return _Admitted(plan, admission.session, _releasing(permit, admission.record), permit)

    def _ask_plan(
        self,
        lm_name: str,
        messages: list[dict[str, Any]],
        overrides: dict[str, Any],
        remaining: float,
    ) -> _Admitted | Wait | Refused:
        """The same decision asked of the LM client (a runtime without admission table)."""
        client = sv.named(self.runtime.lm_names[lm_name])
        try:
            reply = client.ask(
                PlanRequest(messages, overrides), timeout=min(PLAN_TIMEOUT, remaining)
            )
        except (pykka.ActorDeadError, pykka.Timeout):
            # The client is restarting (or stuck): wait a moment and ask again; the
            # request deadline bounds how long.
            return Wait(RESTART_POLL)
        if isinstance(reply, Planned):
            return _Admitted(reply.plan, reply.session, _tell_outcome(client))
        assert isinstance(reply, Wait | Refused)
        return reply

    def _attempt(self, admitted: _Admitted) -> Completion | LMError:
        call_id = next(_call_ids)
        worker, mref, credits = self._spawn(admitted, call_id)
        self._workers[worker.actor_urn] = worker
        self._status = "waiting on worker"

        def match(message: Any) -> bool:
            return (
                (isinstance(message, Completed | StreamChunk) and message.call_id == call_id)
                or (isinstance(message, sv.Down) and message.ref == mref)
                or self._is_cancel(message)
            )

        try:
            message = self.receive(match, timeout=max(self.remaining(), 0.0))
            while isinstance(message, StreamChunk):  # streaming: forward, free a credit
                assert self.stream is not None and credits is not None
                self.stream.deadline = self.deadline
                self.stream.feed(message.text)
                credits.release()
                message = self.receive(match, timeout=max(self.remaining(), 0.0))
        except pykka.Timeout:
            if admitted.permit is not None:
                admitted.permit.release()
            self._end_worker(worker, "killed")
            raise DeadlineExceeded(
                "request deadline passed while waiting for the LM", attempts=self.attempts
            ) from None
        if admitted.permit is not None:
            admitted.permit.release()  # the worker's report did it already, unless it died
        if self._is_cancel(message):
            self._end_worker(worker, "shutdown")
            raise Cancelled("the caller cancelled the request", attempts=self.attempts)
        if isinstance(message, Completed):
            # No Down can follow: the worker dropped our monitor before handing over.
            self.demonitor(mref, flush=False)
            self._workers.pop(worker.actor_urn, None)
            return message.completion
        self._workers.pop(worker.actor_urn, None)
        reason = message.reason
        error = (
            reason
            if isinstance(reason, LMError)
            else LMConnectionError(
                f"I/O worker ended without a result: {sv.describe_reason(reason)}"
            )
        )
        logger.debug(
            "worker_crashed", program=_module_label(self.module), reason=sv.describe_reason(reason)
        )
        return error

    def _spawn(
        self, admitted: _Admitted, call_id: int
    ) -> tuple[sv.Actor, Any, threading.Semaphore | None]:
        """Start the attempt's worker (a stream worker when the caller streams):
        linked (a killed program takes its workers down) and monitored from birth,
        with its work already in its mailbox: one wake-up, no gap. The worker closes
        the socket at the request deadline."""
        plan = admitted.plan.within(self.remaining())
        credits = threading.Semaphore(CREDITS) if self.stream is not None else None
        ref: pykka.ActorRef[Any]
        with sv.spawn_options(link=self, monitor=self, first_message=Perform()) as options:
            if credits is None:
                ref = IOWorker.start(
                    plan, admitted.session, self.actor_ref, admitted.report, call_id
                )
            else:
                ref = StreamWorker.start(
                    stream_plan(plan),
                    admitted.session,
                    self.actor_ref,
                    admitted.report,
                    call_id,
                    credits,
                    self.deadline,
                )
        worker = sv.actor_of(ref)
        mref = options.monitor_ref
        assert worker is not None and mref is not None
        return worker, mref, credits

    def _is_cancel(self, message: Any) -> bool:
        """A :class:`Cancel` from the caller, or the exit of our supervisor (we follow it)."""
        return isinstance(message, Cancel) or (
            isinstance(message, sv.ExitSignal) and message.actor.actor_urn == self.parent_urn
        )

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` (backoff, rate limit) while still hearing a cancellation."""
        try:
            self.receive(self._is_cancel, timeout=seconds)
        except pykka.Timeout:
            return
        raise Cancelled("the caller cancelled the request", attempts=max(self.attempts, 1))


def _module_label(module: Any) -> str:
    module = getattr(module, "__wrapped__", module)  # a wrapper (Evaluate's) names the user's
    signature = getattr(module, "signature", None)
    if signature is None:
        return type(module).__name__
    name = getattr(signature, "__name__", "Signature")
    shown = getattr(signature, "signature", name) if name == "StringSignature" else name
    return f"{type(module).__name__}({shown})"  # Predict(question -> answer), Predict(QA)


# ----------------------------------------------------------------------- entry point


def run_in_program(
    runtime: Runtime,
    programs: str,
    module: Any,
    inputs: dict[str, Any],
    *,
    timeout: float,
    on_started: Callable[[pykka.ActorRef[Any]], None] | None = None,
) -> Any:
    """Start a program actor under ``programs``, run ``module(**inputs)`` in it, return the result.

    Called from any thread outside the actor system. Blocks at most ``timeout``
    seconds (plus a small grace for the program to report its own deadline).

    Raises:
        LMError: the request failed (typed; ``attempts`` says how many were made).
        DeadlineExceeded: no answer within the deadline (the program is killed).
        Exception: a bug in the module's ``forward`` (its exception, as raised).
    """
    deadline = time.monotonic() + timeout
    answer = sv.Reply()  # a one-slot queue: lighter than pykka's future on this hot path
    # The Run request rides in the new actor's mailbox from birth.
    run = Run(module, inputs, deadline, _tm.current())
    ref = sv.start_child(
        programs, runtime.program_spec, in_caller=True, first_message=(run, answer)
    )
    if on_started is not None:
        on_started(ref)
    try:
        result = answer.get(timeout=timeout + 1.0)
    except pykka.Timeout:
        sv.kill(ref, reason="killed")
        raise DeadlineExceeded(f"no answer within {timeout} s") from None
    except KeyboardInterrupt:
        try:
            ref.tell(Cancel())
        except pykka.ActorDeadError:
            pass
        sv.kill(ref, reason="shutdown")
        raise
    if isinstance(result, Failed):
        raise result.error
    return result
