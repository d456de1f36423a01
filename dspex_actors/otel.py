"""OpenTelemetry bridge (``dx.otel.instrument``): the bus's spans as OpenTelemetry spans.

Needs the ``otel`` extra (``opentelemetry-api``/``-sdk``). A program span becomes an
INTERNAL span named after the module; each LM attempt a CLIENT span named
``chat {model}`` with the GenAI attributes (``gen_ai.*``, ``error.type``) under it,
parent links intact across the threads the request crossed. Spans are made in
the bridge's subscription actor, from the events' recorded times.
"""

from __future__ import annotations

from typing import Any

from dspex_actors.primitives import Event
from dspex_actors.runtime import ActorSystem

__all__ = ["Instrumentation", "instrument"]

_KEPT = 10_000  # open spans remembered at most (a span whose stop never came is dropped)


def _attributes(data: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dict(data).items():
        if isinstance(value, bool | int | float | str):
            out[str(key)] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            out[str(key)] = list(value)
    return out


class Instrumentation:
    """A running bridge; :meth:`uninstrument` stops it. The handler runs in its
    subscription actor (one thread, in event order)."""

    def __init__(self, system: ActorSystem, tracer_provider: Any = None) -> None:
        from opentelemetry import trace

        self._trace = trace
        self._tracer = trace.get_tracer("dspex_actors", tracer_provider=tracer_provider)
        self._open: dict[str, Any] = {}
        # One subscription for both topics: delivery is in order per subscription, so a
        # program's start is always seen before its LM requests (two subscriptions are
        # two actors, and a request could then be seen first, without its parent).
        self._subs = [system.events.subscribe((), self._on_event, max_queue=10_000)]

    def _on_event(self, event: Event) -> None:
        topic = event.topic
        if event.span_id is None or not (
            topic[:1] == ("program",) or topic[:2] == ("lm", "request")
        ):
            return
        phase = topic[-1]
        if phase == "start":
            self._start(event)
        elif phase in ("stop", "exception"):
            self._end(event, failed=phase == "exception")

    def _start(self, event: Event) -> None:
        from opentelemetry.trace import SpanKind

        data = event.data
        parent = self._open.get(event.parent_id) if event.parent_id else None
        context = self._trace.set_span_in_context(parent) if parent is not None else None
        if event.topic[0] == "lm":
            name, kind = f"chat {data.get('gen_ai.request.model')}", SpanKind.CLIENT
        else:
            name, kind = str(data.get("module", "program")), SpanKind.INTERNAL
        span = self._tracer.start_span(
            name,
            context=context,
            kind=kind,
            attributes=_attributes(data),
            start_time=int(event.time * 1e9),
        )
        if len(self._open) < _KEPT:
            self._open[event.span_id or ""] = span

    def _end(self, event: Event, *, failed: bool) -> None:
        from opentelemetry.trace import Status, StatusCode

        span = self._open.pop(event.span_id or "", None)
        if span is None:
            return
        span.set_attributes(_attributes(event.data))
        if failed:
            span.set_status(Status(StatusCode.ERROR, str(event.data.get("error.message", ""))))
        span.end(end_time=int(event.time * 1e9))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the events published so far became spans."""
        return all(sub.flush(timeout) for sub in self._subs)

    def uninstrument(self) -> None:
        """Stop making spans (spans still open are left unended)."""
        for sub in self._subs:
            sub.cancel()


def instrument(system: ActorSystem, tracer_provider: Any = None) -> Instrumentation:
    """Turn ``system``'s telemetry spans into OpenTelemetry spans (global provider by default).

    Raises:
        ImportError: the ``otel`` extra is not installed.
    """
    return Instrumentation(system, tracer_provider)
