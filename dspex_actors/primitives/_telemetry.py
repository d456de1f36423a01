"""Telemetry spans on the event bus, in the style of Erlang's ``:telemetry``.

Each span publishes ``(..., "start")``, then ``(..., "stop")`` with ``duration_s`` or
``(..., "exception")`` with ``error.type`` and ``error.message``. A :class:`Span`
holds the ids; the runtime carries it across threads by hand (the ``Run`` message,
the I/O worker's constructor), and each thread keeps its running span in a
thread-local, so events published there (a breaker's transition, a user's
``publish``) carry the same ``trace_id``. LM attributes follow the OpenTelemetry
GenAI semantic conventions (``gen_ai.*``, ``error.type``).

Cost: with no subscription on the bus every entry point returns after one
attribute read (``bus.active``), allocating nothing; ids are made only when
someone listens. The functions here are called from the request path as one-liners
(``runtime/_program.py``, ``lm/_breaker.py``); none raises.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from dspex_actors.primitives._events import EventBus, Topic, _local

__all__ = [
    "LM_REQUEST",
    "PROGRAM",
    "Span",
    "SpanKind",
    "current",
    "emit_here",
    "provider_of",
    "supervisor_observer",
]

_bits = random.SystemRandom().getrandbits  # ids need no reproducible seed, and no fork clash


class SpanKind:
    """A span's topic prefix and its three precomputed topics (no tuple built per event)."""

    __slots__ = ("exception", "prefix", "start", "stop")

    def __init__(self, prefix: Topic) -> None:
        self.prefix = prefix
        self.start = (*prefix, "start")
        self.stop = (*prefix, "stop")
        self.exception = (*prefix, "exception")


PROGRAM = SpanKind(("program",))
LM_REQUEST = SpanKind(("lm", "request"))
COMPILE = SpanKind(("compile", "trial"))
LM_RETRY: Topic = ("lm", "retry")
BREAKER_STATE: Topic = ("breaker", "state")
CACHE_HIT: Topic = ("cache", "hit")
CACHE_MISS: Topic = ("cache", "miss")
_SUPERVISOR_TOPICS = {
    name: ("supervisor", name)
    for name in ("child_started", "child_terminated", "child_restarted", "shutdown")
}


class Span:
    """One running span: its bus, ids, start time and a few attributes. Not shared
    between threads while it runs (each thread publishes its own spans' events)."""

    __slots__ = (
        "attempt",
        "bus",
        "kind",
        "lm",
        "lm_name",
        "name",
        "parent_id",
        "span_id",
        "started",
        "trace_id",
    )

    def __init__(self, bus: EventBus, kind: SpanKind, parent: Span | None) -> None:
        self.bus = bus
        self.kind = kind
        self.span_id = f"{_bits(64):016x}"
        self.trace_id: str = parent.trace_id if parent is not None else f"{_bits(128):032x}"
        self.parent_id: str | None = parent.span_id if parent is not None else None
        self.started = time.perf_counter()
        self.lm: Any = None
        self.lm_name: str | None = None
        self.attempt = 0
        self.name = ""

    def emit(self, topic: Topic, data: Mapping[str, Any] | None) -> None:
        self.bus.emit(topic, data, self.span_id, self.parent_id, self.trace_id)

    def wants(self, topic: Topic) -> bool:
        return self.bus.wants(topic)


def current() -> Span | None:
    """The span running in this thread, or ``None``."""
    span: Span | None = _local.span
    return span


def begin(bus: EventBus | None, kind: SpanKind, parent: Span | None, data: Any) -> Span | None:
    """Start a span (``None`` when nobody listens); ``data`` may be a callable making the dict."""
    if bus is None or not bus.active:
        return None
    span = Span(bus, kind, parent)
    if bus.wants(kind.start):
        span.emit(kind.start, data() if callable(data) else data)
    return span


def end(span: Span | None, data: Any = None, error: BaseException | None = None) -> None:
    """Publish the span's stop (with ``duration_s``) or, with ``error``, its exception."""
    if span is None:
        return
    kind = span.kind
    topic = kind.stop if error is None else kind.exception
    if not span.bus.wants(topic):
        return
    fields: dict[str, Any] = dict(data() if callable(data) else (data or {}))
    fields["duration_s"] = time.perf_counter() - span.started
    if error is not None:
        fields["error.type"] = type(error).__name__
        fields["error.message"] = str(error)[:500]
    span.emit(topic, fields)


def emit_here(topic: Topic, data: Callable[[], Mapping[str, Any]]) -> None:
    """Publish ``topic`` on the bus of the span running in this thread (if any listens)."""
    span: Span | None = _local.span
    if span is not None and span.bus.wants(topic):
        span.emit(topic, data())


def provider_of(lm: Any) -> str:
    """``gen_ai.provider.name`` of an LM: the prefix of ``provider/model`` (else ``openai``)."""
    model = str(getattr(lm, "model", "") or "")
    return model.split("/", 1)[0] if "/" in model else "openai"


# ------------------------------------------------------------------ program spans


def program_start(program: Any, label: str) -> Span | None:
    """A program actor begins a module call (its thread); sets this thread's span."""
    bus: EventBus | None = program.runtime.events
    if bus is None or not bus.active:
        _local.span = None
        return None

    def data() -> dict[str, Any]:
        signature = getattr(
            getattr(program.module, "__wrapped__", program.module), "signature", None
        )
        fields: dict[str, Any] = {
            "module": label,
            "signature": getattr(signature, "signature", None),
            "inputs": sorted(program.inputs),
        }
        if bus.record_content:
            fields["input_values"] = dict(program.inputs)
        return fields

    span = begin(bus, PROGRAM, getattr(program, "span_parent", None), data)
    if span is not None:
        span.name = label
    _local.span = span
    return span


def program_end(span: Span | None, program: Any, outcome: Any) -> None:
    """The module call ended: ``outcome`` is a prediction, a ``Failed`` or an exception."""
    if span is None:
        return
    _local.span = None
    error = outcome if isinstance(outcome, BaseException) else getattr(outcome, "error", None)

    def data() -> dict[str, Any]:
        fields: dict[str, Any] = {
            "module": span.name,
            "outcome": "ok" if error is None else type(error).__name__,
            "lm_calls": program.lm_calls,
            "attempts": program.attempts,
            "cache_hits": program.cache_hits,
            "tokens": program.tokens,
        }
        if error is None and span.bus.record_content and hasattr(outcome, "toDict"):
            fields["outputs"] = outcome.toDict()
        return fields

    end(span, data, error if isinstance(error, BaseException) else None)


def note_attempt(lm_name: str, lm: Any, attempt: int) -> None:
    """The program is about to make attempt ``attempt`` on ``lm`` (its thread)."""
    span: Span | None = _local.span
    if span is not None:
        span.lm, span.lm_name, span.attempt = lm, lm_name, attempt


# ----------------------------------------------------------------------- LM spans


WorkerContext = tuple[Span, Any, str | None, int]


def worker_context() -> WorkerContext | None:
    """What an I/O worker takes from its program's thread when it is made."""
    span: Span | None = _local.span
    if span is None:
        return None
    return (span, span.lm, span.lm_name, span.attempt)


def _lm_fields(
    lm: Any, lm_name: str | None, model: str, attempt: int, cache_hit: bool
) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider_of(lm),
        "gen_ai.request.model": model,
        "lm": lm_name,
        "attempt": attempt,
        "cache_hit": cache_hit,
    }


def lm_start(context: WorkerContext | None, plan: Any) -> Span | None:
    """An I/O worker starts its attempt (worker thread); sets this thread's span."""
    if context is None:
        return None
    parent, lm, lm_name, attempt = context
    bus = parent.bus

    def data() -> dict[str, Any]:
        fields = _lm_fields(lm, lm_name, plan.model, attempt, False)
        if bus.record_content:
            fields["gen_ai.input.messages"] = plan.json.get("messages")
        return fields

    span = begin(bus, LM_REQUEST, parent, data)
    if span is not None:
        span.lm, span.lm_name, span.attempt, span.name = lm, lm_name, attempt, plan.model
    _local.span = span
    return span


def lm_end(span: Span | None, completion: Any = None, error: BaseException | None = None) -> None:
    """The attempt ended with ``completion`` or ``error`` (worker thread)."""
    if span is None:
        return
    _local.span = None
    end(span, lambda: _lm_stop_fields(span, completion, error), error)


def _lm_stop_fields(span: Span, completion: Any, error: BaseException | None) -> dict[str, Any]:
    lm = span.lm
    fields = _lm_fields(lm, span.lm_name, span.name, span.attempt, False)
    if completion is not None:
        got = completion.get if isinstance(completion, Mapping) else completion.__getattribute__
        usage = got("usage") or {}
        finish = got("finish_reason")
        fields["gen_ai.response.model"] = got("model")
        fields["gen_ai.usage.input_tokens"] = usage.get("prompt_tokens", 0)
        fields["gen_ai.usage.output_tokens"] = usage.get("completion_tokens", 0)
        fields["gen_ai.response.finish_reasons"] = [finish] if finish else []
        if span.bus.record_content:
            fields["gen_ai.output.messages"] = [{"role": "assistant", "content": got("text")}]
    if error is not None:
        fields["error.type"] = type(error).__name__
    return fields


def cache_lookup(lm_name: str, lm: Any, completion: Any) -> None:
    """The program looked its prompt up in the cache; a hit is also a (cache_hit) LM span."""
    parent: Span | None = _local.span
    if parent is None:
        return
    topic = CACHE_HIT if completion is not None else CACHE_MISS
    if parent.wants(topic):
        parent.emit(topic, {"lm": lm_name, "gen_ai.request.model": getattr(lm, "wire_model", None)})
    if completion is None:
        return
    model = getattr(lm, "wire_model", None) or ""
    span = begin(parent.bus, LM_REQUEST, parent, lambda: _lm_fields(lm, lm_name, model, 0, True))
    if span is None:
        return
    span.lm, span.lm_name, span.name = lm, lm_name, model

    def data() -> dict[str, Any]:
        fields = _lm_stop_fields(span, completion, None)
        fields["cache_hit"] = True
        fields["gen_ai.usage.input_tokens"] = fields["gen_ai.usage.output_tokens"] = 0
        return fields

    end(span, data)


def retry(lm_name: str, attempt: int, error: BaseException, delay: float) -> None:
    """The program waits ``delay`` seconds before attempt ``attempt + 1``."""
    span: Span | None = _local.span
    if span is not None and span.wants(LM_RETRY):
        span.emit(
            LM_RETRY,
            {
                "lm": lm_name,
                "attempt": attempt,
                "delay_s": delay,
                "reason": type(error).__name__,
                "error.type": type(error).__name__,
            },
        )


def breaker_state(old: str, new: str) -> None:
    """A circuit breaker changed state in this thread (a worker's report, an admission)."""
    if old != new:
        emit_here(BREAKER_STATE, lambda: _breaker_fields(old, new))


def _breaker_fields(old: str, new: str) -> dict[str, Any]:
    span: Span | None = _local.span
    return {"old": old, "new": new, "lm": span.lm_name if span is not None else None}


# ----------------------------------------------------------------- supervisors


def supervisor_observer(bus: EventBus) -> Callable[[str, str, Any, Any], None]:
    """An ``sv`` supervisor observer publishing ``("supervisor", event)`` on ``bus``."""

    def observe(event: str, supervisor: str, child_id: Any, detail: Any) -> None:
        topic = _SUPERVISOR_TOPICS.get(event)
        if topic is None or not bus.wants(topic):
            return
        data: dict[str, Any] = {"supervisor": supervisor, "child_id": str(child_id)}
        if event == "child_restarted":
            data["restarts"] = detail
        elif event == "child_started":
            data["actor"] = detail
        elif detail is not None:
            data["reason"] = str(detail)
        bus.emit(topic, data)

    return observe


def publish_from(bus: EventBus | None, topic: Topic, data: Callable[[], Mapping[str, Any]]) -> None:
    """Publish a runtime event on ``bus`` with this thread's span ids, if anyone listens."""
    if bus is None or not bus.wants(topic):
        return
    span: Span | None = _local.span
    if span is None:
        bus.emit(topic, data())
    else:
        span.emit(topic, data())
