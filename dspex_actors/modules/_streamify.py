"""``dx.streamify(program)``: the program's output fields as they are written, then its Prediction.

::

    stream = dx.streamify(program, listeners=[dx.StreamListener("answer")])
    for item in stream(question="..."):          # StreamResponse ..., then the Prediction
        ...
    async for item in stream.aiter(question="..."):
        ...

Without listeners every output field of every predictor is streamed. A cache hit
yields only the final Prediction (nothing was streamed); a partial stream is never
cached. docs/streaming.md has the details.
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pykka

from dspex_actors.modules._module import Module, Predict
from dspex_actors.primitives import DeadlineExceeded
from dspex_actors.runtime import (
    AsyncSink,
    Cancel,
    StreamListener,
    ThreadSink,
    current_system,
    final_of,
    start_streaming,
)

__all__ = ["DEFAULT_MAX_BUFFERED", "StreamingProgram", "streamify"]

DEFAULT_MAX_BUFFERED = 64
"""Stream items a caller may fall behind by before the program waits for it."""

_GRACE = 1.0


class StreamingProgram:
    """A program that streams: call it for an iterator, :meth:`aiter` for an async one.

    Each call runs in its own program actor, with fresh listener state. Threading:
    ``__call__``'s iterator is consumed by one thread; :meth:`aiter` by one event
    loop (it never blocks the loop: items arrive through ``call_soon_threadsafe``).
    Closing the iterator early cancels the program.
    """

    def __init__(
        self,
        program: Module,
        listeners: Sequence[StreamListener] | None,
        max_buffered: int,
    ) -> None:
        if max_buffered < 1:
            raise ValueError(f"max_buffered must be >= 1, got {max_buffered}")
        self.program = program
        self.max_buffered = max_buffered
        named = program.named_predictors() if not isinstance(program, Predict) else []
        if isinstance(program, Predict):
            named = [("self", program)]
        self._names = {id(p): name for name, p in named}
        if listeners is None:
            listeners = [
                StreamListener(field, predict=p)
                for _, p in named
                for field in p.signature.output_fields
            ]
        self.listeners = list(listeners)
        for listener in self.listeners:
            if not isinstance(listener, StreamListener):
                raise TypeError(f"listeners must be dx.StreamListener, got {listener!r}")

    def _system(self) -> Any:
        system = getattr(self.program, "system", None)
        return system if system is not None else current_system()

    def _check(self, inputs: dict[str, Any]) -> None:
        check = getattr(self.program, "_check_inputs", None)
        if check is not None:
            check(inputs)

    def __call__(self, **inputs: Any) -> Iterator[Any]:
        """Start the program now; iterate its :class:`StreamResponse` s, then its Prediction."""
        self._check(inputs)
        system = self._system()
        sink = ThreadSink(self.listeners, self._names, self.max_buffered)
        ref = start_streaming(system, self.program, inputs, sink)
        return self._iterate(sink, ref)

    def _iterate(self, sink: ThreadSink, ref: Any) -> Iterator[Any]:
        finished = False
        try:
            while True:
                left = sink.deadline - time.monotonic() + _GRACE
                try:
                    item = sink.items.get(timeout=max(left, 0.001))
                except queue.Empty:
                    raise DeadlineExceeded("no end of the stream within the deadline") from None
                done, value = final_of(item)
                if done:
                    finished = True
                    yield value
                    return
                sink.taken()
                yield value
        finally:
            if not finished:
                _cancel(sink, ref)

    def aiter(self, **inputs: Any) -> AsyncIterator[Any]:
        """The same as an async iterator, for an event loop. The program starts on
        the first ``__anext__`` (in the loop's thread: starting it takes microseconds)."""
        self._check(inputs)
        return self._aiterate(inputs)

    async def _aiterate(self, inputs: dict[str, Any]) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        sink = AsyncSink(loop, self.listeners, self._names, self.max_buffered)
        ref = start_streaming(self._system(), self.program, inputs, sink)
        finished = False
        try:
            while True:
                left = sink.deadline - time.monotonic() + _GRACE
                try:
                    item = await asyncio.wait_for(sink.items.get(), timeout=max(left, 0.001))
                except TimeoutError:
                    raise DeadlineExceeded("no end of the stream within the deadline") from None
                done, value = final_of(item)
                if done:
                    finished = True
                    yield value
                    return
                sink.taken()
                yield value
        finally:
            if not finished:
                _cancel(sink, ref)


def _cancel(sink: Any, ref: Any) -> None:
    """The consumer left early: drop what comes, and cancel the program."""
    sink.closed = True
    sink.taken()  # a program blocked on a full buffer wakes (and drops from now on)
    try:
        ref.tell(Cancel())
    except pykka.ActorDeadError:
        pass


def streamify(
    program: Module,
    listeners: Sequence[StreamListener] | None = None,
    *,
    max_buffered: int = DEFAULT_MAX_BUFFERED,
) -> StreamingProgram:
    """``program`` as a :class:`StreamingProgram` (DSPy's ``dspy.streamify``).

    ``listeners`` pick the output fields to stream (:class:`StreamListener`); by
    default all of them. ``max_buffered`` bounds how far the consumer may fall
    behind (back-pressure reaches the socket). Raises ``TypeError`` for a listener
    that is not a ``StreamListener`` and ``ValueError`` for ``max_buffered < 1``.
    """
    if not isinstance(program, Module):
        raise TypeError(f"streamify takes a dx.Module, got {type(program).__name__}")
    return StreamingProgram(program, listeners, max_buffered)
